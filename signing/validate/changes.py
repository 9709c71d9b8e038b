"""What changed in a PDF after a signature: form field values (name, old value, new value),
signatures and document time-stamps added, validation data (DSS) added, compared between the
revision a signature covers and the last revision of the file. The modification analysis
(:mod:`signing.validate.diffs`) decides whether a change is allowed; this module lists the
allowed ones, so a reader sees that the page shows content the signer did not sign.

Also :func:`extract_signed_revision`: the document exactly as a signer signed it (the bytes
its ``/ByteRange`` ends with), for viewing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from signing.errors import InvalidInput
from signing.sign.errors import DocumentInvalid

__all__ = ["DocumentChange", "changes_after", "extract_signed_revision", "form_field_names"]

_CHUNK = 1 << 20
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """One change after a signature. ``kind``: ``form-field`` (with ``old`` and ``new``
    values), ``signature`` (a later signature in field ``name``), ``document-timestamp``,
    ``validation-data`` (certificates and revocation data added to the DSS)."""

    kind: str
    name: str | None = None
    old: str | None = None
    new: str | None = None

    def describe(self) -> str:
        if self.kind == "form-field":
            return f"form field '{self.name}': {_show(self.old)} -> {_show(self.new)}"
        if self.kind == "signature":
            return f"signature added in field '{self.name}'"
        if self.kind == "document-timestamp":
            return f"document time-stamp added ('{self.name}')"
        return "validation data (DSS) added"


def _show(value: str | None) -> str:
    return "(empty)" if value is None else repr(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = value.get_object() if isinstance(value, generic.IndirectObject) else value  # type: ignore[no-untyped-call]
    if isinstance(value, generic.TextStringObject | generic.ByteStringObject):
        return str(value) if isinstance(value, generic.TextStringObject) else \
            value.original_bytes.decode("latin-1")
    if isinstance(value, generic.NameObject):
        return str(value)[1:]
    if isinstance(value, generic.ArrayObject):
        return ", ".join(t for v in value if (t := _text(v)) is not None)
    return str(value)


def _fields(root: generic.DictionaryObject) -> Iterator[tuple[str, str | None, Any]]:
    """``(qualified name, field type, value)`` of every terminal field."""
    try:
        acroform = root["/AcroForm"]
        top = acroform["/Fields"]
    except KeyError:
        return

    def walk(ref: Any, prefix: str, inherited: str | None, depth: int) -> Iterator[
            tuple[str, str | None, Any]]:
        if depth > _MAX_DEPTH:
            return
        node = ref.get_object()
        if not isinstance(node, generic.DictionaryObject):
            return
        part = node.get("/T")
        name = prefix if part is None else (f"{prefix}.{part}" if prefix else str(part))
        kind = str(node["/FT"]) if "/FT" in node else inherited
        kids = node.get("/Kids")
        named_kids = [k for k in kids if "/T" in k.get_object()] \
            if isinstance(kids, generic.ArrayObject) else []
        if named_kids:
            for kid in named_kids:
                yield from walk(kid, name, kind, depth + 1)
        elif part is not None:
            yield name, kind, node.get("/V")

    for ref in top:
        yield from walk(ref, "", None, 0)


def form_field_names(root: generic.DictionaryObject) -> list[str]:
    """Fully qualified names of the terminal form fields other than signature fields."""
    try:
        return [name for name, kind, _ in _fields(root) if kind != "/Sig"]
    except (PdfError, KeyError, ValueError, TypeError, AttributeError):
        return []


def _dss_size(root: generic.DictionaryObject) -> int:
    try:
        dss = root["/DSS"]
    except KeyError:
        return 0
    return sum(len(dss[key]) for key in ("/Certs", "/OCSPs", "/CRLs", "/VRI") if key in dss)


def changes_after(sig: EmbeddedPdfSignature) -> tuple[DocumentChange, ...]:
    """Every change between the revision ``sig`` covers and the document's last revision."""
    reader = sig.reader
    try:
        then = reader.get_historical_root(sig.signed_revision)
        now = reader.root
        before = {name: (kind, value) for name, kind, value in _fields(then)}
        after = list(_fields(now))
    except (PdfError, KeyError, ValueError, TypeError, AttributeError):
        return ()
    changes: list[DocumentChange] = []
    for name, kind, value in after:
        old_kind, old_value = before.get(name, (kind, None))
        if kind == "/Sig":
            if value is not None and old_value is None:
                is_ts = _text(value.get_object().get("/Type")) == "DocTimeStamp"
                changes.append(DocumentChange("document-timestamp" if is_ts else "signature",
                                              name))
            continue
        old, new = _text(old_value), _text(value)
        if old != new:
            changes.append(DocumentChange("form-field", name, old, new))
    if _dss_size(now) != _dss_size(then):
        changes.append(DocumentChange("validation-data"))
    return tuple(changes)


def extract_signed_revision(source: IO[bytes], output: IO[bytes], number: int) -> str:
    """Write to ``output`` the revision the ``number``-th signature (1-based, in the order of
    the validation report) signed; returns that signature's field name."""
    source.seek(0)
    try:
        reader = PdfFileReader(source, strict=False)
        signatures = list(reader.embedded_regular_signatures)
    except (PdfError, ValueError, KeyError, IndexError) as exc:
        raise DocumentInvalid("the document is not a readable PDF") from exc
    if not 1 <= number <= len(signatures):
        raise InvalidInput(f"the document has {len(signatures)} signature(s); there is no "
                           f"signature {number}", reason="NO_SUCH_SIGNATURE")
    sig = signatures[number - 1]
    try:
        byte_range = [int(v) for v in sig.sig_object["/ByteRange"]]
        end = byte_range[2] + byte_range[3]
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise DocumentInvalid("the signature's /ByteRange is malformed") from exc
    source.seek(0)
    remaining = end
    while remaining > 0:
        chunk = source.read(min(_CHUNK, remaining))
        if not chunk:
            raise DocumentInvalid("the signature's /ByteRange runs past the end of the file")
        output.write(chunk)
        remaining -= len(chunk)
    return str(sig.field_name)
