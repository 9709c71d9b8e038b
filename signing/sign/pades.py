"""PAdES signatures (ETSI EN 319 142-1) at the baseline levels B-B, B-T, B-LT and B-LTA, made with
pyHanko as incremental updates (``/SubFilter /ETSI.CAdES.detached``).

* B-B: a CAdES signature with the signing certificate attribute (and ``signingTime``).
* B-T: plus a signature time-stamp from an RFC 3161 TSA (unsigned attribute).
* B-LT: plus a Document Security Store holding every certificate and the revocation data (OCSP
  responses, CRLs) of the signer's chain and of the TSA's chain. Fail closed: if revocation data
  for one of those certificates cannot be obtained, nothing is signed and
  :class:`~signing.sign.errors.RevocationUnavailable` names that certificate.
* B-LTA: plus a document time-stamp over the whole, so the validation data stays verifiable
  after the algorithms or certificates it relies on expire.

Earlier signatures stay valid: every signature appends an incremental update and never rewrites
bytes another signature covers. Certification (DocMDP) is optional; P=1 (no changes) also forbids
the DSS and document time-stamps of later LTV maintenance, so asking for it yields a warning.

Documents are read from and written to binary streams; pyHanko hashes the byte ranges in chunks,
so with files on disk a 100 MB PDF signs without being held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import tempfile
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.fields import (
    FieldMDPAction,
    FieldMDPSpec,
    MDPPerm,
    SigFieldSpec,
    SigSeedSubFilter,
)
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner, PdfTimeStamper
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko.stamp import BaseStampStyle
from pyhanko_certvalidator.errors import PathError, ValidationError

from signing.errors import InvalidInput
from signing.sign._aio import run
from signing.sign._pyhanko import PyHankoSigner
from signing.sign.errors import (
    DocumentInvalid,
    RevocationUnavailable,
    SigningRefused,
    TimestampUnavailable,
)
from signing.sign.ltv import cover_signatures
from signing.sign.revocation import TrustSettings, require_revocation_data
from signing.sign.signers import Signer, hash_for, signature_size
from signing.sign.timestamps import PortTimeStamper, TimeStampTransport

_SPOOL_LIMIT = 16 * 1024 * 1024

__all__ = [
    "DocMdp",
    "PadesLevel",
    "PadesOptions",
    "SignedPdf",
    "VisibleSignature",
    "sign_pdf",
]


class PadesLevel(StrEnum):
    """The PAdES baseline level: B-B, B-T (time-stamped), B-LT (with validation data), B-LTA (with a document
    time stamp)."""
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def timestamped(self) -> bool:
        return self is not PadesLevel.B_B

    @property
    def long_term(self) -> bool:
        return self in (PadesLevel.B_LT, PadesLevel.B_LTA)


class DocMdp(IntEnum):
    """DocMDP permissions of a certification signature (ISO 32000-1 §12.8.2.2)."""

    NO_CHANGES = 1
    FILL_FORMS_AND_SIGN = 2
    ANNOTATE_FILL_AND_SIGN = 3


@dataclass(frozen=True, slots=True)
class VisibleSignature:
    """Where and how a signature shows: page (0-based), box ``(x1, y1, x2, y2)`` in points, and
    a pyHanko stamp style (see :mod:`signing.stamp`)."""

    page: int
    box: tuple[float, float, float, float]
    style: BaseStampStyle
    text_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PadesOptions:
    """How to sign a PDF: the level, the field, reason and location, certification (DocMDP), the hash and the
    visible appearance."""
    level: PadesLevel = PadesLevel.B_B
    field_name: str | None = None
    reason: str | None = None
    location: str | None = None
    certify: DocMdp | None = None
    # Certify (with these DocMDP permissions) when this is the document's first signature, as a
    # signer's profile may ask: the agency that issues a document certifies it, later signers
    # approve. Ignored when ``certify`` is set.
    certify_if_first: DocMdp | None = None
    hash_algorithm: str = "sha256"
    appearance: VisibleSignature | None = None
    # Lock the form fields that exist when signing (FieldMDP, ISO 32000-1 §12.8.2.4): a later
    # change to one of them fails this signature; fields added later stay fillable.
    lock_fields: bool = True

    def __post_init__(self) -> None:
        hash_for(self.hash_algorithm)
        if self.field_name is not None and (not self.field_name or "." in self.field_name):
            raise InvalidInput("field names must be non-empty and contain no '.'",
                               reason="INVALID_FIELD_NAME")


@dataclass(frozen=True, slots=True)
class SignedPdf:
    """The result of signing a PDF: the field signed, the level reached, the signing time and any warnings."""
    field_name: str
    level: PadesLevel
    signing_time: dt.datetime
    warnings: tuple[str, ...] = ()


class _TimedPdfSigner(PdfSigner):
    """pyHanko's signer with the signing time as a parameter instead of the system clock."""

    def __init__(self, *args: Any, at: dt.datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at = at

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self._at
        return session


def _spool() -> Any:
    # Intermediate revisions stay in memory while small and go to disk when large.
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)


async def _add_long_term_data(signed: IO[bytes], output: IO[bytes], field_name: str,
                              options: PadesOptions, trust: TrustSettings, at: dt.datetime,
                              timestamper: PortTimeStamper) -> None:
    """B-LT: a DSS revision with the certificates and revocation data fetched *after* the
    signature time-stamp (so they prove the status at that time); B-LTA: then a document
    time-stamp, whose TSA chain data goes into the DSS too."""
    # Revocation data must be newer than the signature time-stamp to prove anything about the
    # signing time (EN 319 102-1 "grace period"); responders answer in whole seconds.
    await asyncio.sleep(trust.grace_period)
    context = trust.context(at)
    signed.seek(0)
    reader = PdfFileReader(signed, strict=False)
    embedded = next(s for s in reader.embedded_regular_signatures if s.field_name == field_name)
    if options.level is PadesLevel.B_LT:
        await async_add_validation_info(embedded, context, output=output, force_write=True)
        return
    with _spool() as with_dss:
        await async_add_validation_info(embedded, context, output=with_dss, force_write=True)
        with_dss.seek(0)
        await PdfTimeStamper(timestamper).async_timestamp_pdf(
            IncrementalPdfFileWriter(with_dss, strict=False), options.hash_algorithm,
            validation_context=context, output=output)


def _reserve(signer: Signer, timestamped: bool) -> int:
    """Bytes to reserve for the CMS: the certificates, the signature, the signed attributes and
    room for a time-stamp token. Knowing it saves pyHanko a trial signature (a third of the
    cost of a small document); the margins only cost a few kilobytes of zeros in the file."""
    certs = sum(len(c.public_bytes(serialization.Encoding.DER))
                for c in (signer.certificate, *signer.chain))
    total = certs + 2 * signature_size(signer.certificate) + 6144 + (24576 if timestamped else 0)
    return total + total % 2  # pyHanko wants an even number


def _open(source: IO[bytes]) -> IncrementalPdfFileWriter:
    try:
        writer = IncrementalPdfFileWriter(source, strict=False)
    except (PdfError, ValueError, KeyError, IndexError) as exc:
        raise DocumentInvalid("the document is not a readable PDF") from exc
    if writer.prev.encrypted:
        raise DocumentInvalid("encrypted PDFs cannot be signed here")
    return writer


def _signed(writer: IncrementalPdfFileWriter) -> bool:
    return any(True for _ in fields.enumerate_sig_fields(writer.prev, filled_status=True))


def _form_fields(writer: IncrementalPdfFileWriter) -> list[str]:
    """Fully qualified names of the document's form fields other than signature fields."""
    from signing.validate.changes import form_field_names

    return form_field_names(writer.prev.root)


def _next_field_name(writer: IncrementalPdfFileWriter) -> str:
    taken = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev)}
    n = len(taken) + 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


def sign_pdf(source: IO[bytes], output: IO[bytes], signer: Signer, *, at: dt.datetime,
             options: PadesOptions = PadesOptions(),
             timestamps: TimeStampTransport | None = None,
             trust: TrustSettings | None = None) -> SignedPdf:
    """Sign the PDF read from ``source`` and write the signed document to ``output``.

    ``at`` is the signing time claimed in the signature (the time-stamp, from B-T up, is the
    trusted one). B-T and up need ``timestamps``; B-LT and B-LTA also ``trust`` (the trust
    anchors the chains are built to, and whether revocation data may be fetched).
    """
    if at.tzinfo is None:
        raise InvalidInput("`at` must be timezone-aware", reason="NAIVE_DATETIME")
    if options.level.timestamped and timestamps is None:
        raise InvalidInput(f"PAdES {options.level} needs a time-stamping authority",
                           reason="TSA_REQUIRED")
    if options.level.long_term and trust is None:
        raise InvalidInput(f"PAdES {options.level} needs trust settings to collect validation "
                           "data", reason="TRUST_REQUIRED")
    return run(_sign(source, output, signer, at, options, timestamps, trust))


async def _sign(source: IO[bytes], output: IO[bytes], signer: Signer, at: dt.datetime,
                options: PadesOptions, timestamps: TimeStampTransport | None,
                trust: TrustSettings | None) -> SignedPdf:
    writer = _open(source)
    field_name = options.field_name or _next_field_name(writer)
    warnings: list[str] = []
    certify = options.certify
    if certify is None and options.certify_if_first is not None and not _signed(writer):
        certify = options.certify_if_first
    if certify is not None and _signed(writer):
        raise InvalidInput("only the first signature of a document can certify it",
                           reason="ALREADY_SIGNED")
    options = dataclasses.replace(options, certify=certify)
    if options.certify is DocMdp.NO_CHANGES:
        warnings.append("certification with DocMDP P=1 forbids any later change, including the "
                        "validation data and document time-stamps that keep B-LT/B-LTA "
                        "signatures verifiable: use P=2 unless the document must never change")
    timestamper = PortTimeStamper(timestamps) \
        if timestamps is not None and options.level.timestamped else None
    if options.level.long_term:
        assert trust is not None and timestamper is not None
        await require_revocation_data(trust, at, signer, timestamper)
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=options.hash_algorithm,
        subfilter=SigSeedSubFilter.PADES,
        reason=options.reason,
        location=options.location,
        certify=options.certify is not None,
        docmdp_permissions=MDPPerm(int(options.certify or DocMdp.FILL_FORMS_AND_SIGN)),
        signer_key_usage={"non_repudiation"},
    )
    appearance = options.appearance
    locked = _form_fields(writer) if options.lock_fields else []
    spec = SigFieldSpec(sig_field_name=field_name,
                        field_mdp_spec=FieldMDPSpec(FieldMDPAction.INCLUDE, fields=locked)
                        if locked else None,
                        on_page=appearance.page if appearance else 0,
                        box=tuple(round(v) for v in appearance.box)  # type: ignore[arg-type]
                        if appearance else None)
    pdf_signer = _TimedPdfSigner(meta, PyHankoSigner(signer), timestamper=timestamper,
                                 stamp_style=appearance.style if appearance else None,
                                 new_field_spec=spec, at=at)
    try:
        with contextlib.ExitStack() as spools:
            if options.level.long_term:
                assert trust is not None
                # The earlier signatures' validation data first, in its own revision: the new
                # signature covers it, so nothing is added for them after it.
                covered = await cover_signatures(source, trust, at, spools)
                if covered is not None:
                    writer = _open(covered)
            return await _sign_opened(writer, output, pdf_signer, signer, options, field_name,
                                      warnings, at, trust, timestamper)
    except (TimestampUnavailable, RevocationUnavailable, SigningRefused):
        raise
    except (PathError, ValidationError) as exc:
        raise RevocationUnavailable(
            "the signer's or the TSA's certificate could not be validated with revocation data",
            metadata={"certificate": signer.certificate.subject.rfc4514_string()}) from exc
    except PyHankoSigningError as exc:
        raise SigningRefused(f"the document could not be signed: {exc}") from exc
    except PdfError as exc:
        raise DocumentInvalid(f"the document could not be signed: {exc}") from exc


async def _sign_opened(writer: IncrementalPdfFileWriter, output: IO[bytes],
                       pdf_signer: _TimedPdfSigner, signer: Signer, options: PadesOptions,
                       field_name: str, warnings: list[str], at: dt.datetime,
                       trust: TrustSettings | None,
                       timestamper: PortTimeStamper | None) -> SignedPdf:
    appearance = options.appearance
    reserved = _reserve(signer, options.level.timestamped)
    if not options.level.long_term:
        await pdf_signer.async_sign_pdf(
            writer, output=output, bytes_reserved=reserved,
            appearance_text_params=dict(appearance.text_params) if appearance else None)
    else:
        assert trust is not None and timestamper is not None
        with _spool() as signed:
            await pdf_signer.async_sign_pdf(
                writer, output=signed, bytes_reserved=reserved,
                appearance_text_params=dict(appearance.text_params)
                if appearance else None)
            await _add_long_term_data(signed, output, field_name, options, trust, at,
                                      timestamper)
    return SignedPdf(field_name=field_name, level=options.level, signing_time=at,
                     warnings=tuple(warnings))

