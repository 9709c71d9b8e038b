"""Long-term validation data for signed PDFs (ETSI EN 319 142-1 §5.5: DSS and document
time-stamps) and its maintenance: archive renewal.

* :func:`cover_signatures` adds the validation data (certificates, OCSP responses, CRLs) of a
  document's signatures and time-stamps in a revision of its own, that changes nothing but the
  DSS: the kind of update every earlier signature's modification analysis accepts. Signing
  calls it *before* a new signature, so the new signature covers it.
* :func:`extend_ltv` renews a B-LT/B-LTA document: fresh validation data for everything in it,
  then a new document time-stamp over the whole. Run before the certificate of the last
  time-stamp's TSA expires (or its algorithms weaken), it keeps every signature verifiable
  (EN 319 102-1 §5.6: each time-stamp proves the previous one existed while it was valid).
* :func:`archive_status` says when a document's last time-stamp stops proving anything: the
  earliest expiry in the chain of its TSA certificate. An archive renews what expires within
  its window (``vnegov ltv status`` / ``vnegov ltv extend``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from dataclasses import dataclass
from typing import IO

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore, collect_validation_info
from pyhanko.sign.validation.errors import SignatureValidationError, ValidationInfoReadingError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko_certvalidator.errors import PathError, ValidationError

from signing.errors import InvalidInput
from signing.sign._aio import run
from signing.sign.errors import DocumentInvalid, RevocationUnavailable, TimestampUnavailable
from signing.sign.revocation import TrustSettings
from signing.sign.signers import hash_for
from signing.sign.timestamps import PortTimeStamper, TimeStampTransport

__all__ = ["ArchiveStatus", "LtvExtension", "archive_status", "cover_signatures", "extend_ltv"]

_SPOOL_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LtvExtension:
    """What :func:`extend_ltv` added: a document time-stamp at ``timestamp_time`` whose TSA
    certificate chain stays valid until ``valid_until``."""

    timestamp_time: dt.datetime
    valid_until: dt.datetime
    signatures: int  # signatures and earlier time-stamps the new validation data covers


@dataclass(frozen=True, slots=True)
class ArchiveStatus:
    """``last_timestamp``: ``genTime`` of the document's newest time-stamp (document or
    signature time-stamp), ``expires``: when the earliest certificate of its TSA chain
    expires (after that, only a later time-stamp keeps the document verifiable)."""

    signatures: int
    document_timestamps: int
    last_timestamp: dt.datetime | None
    expires: dt.datetime | None

    def expires_within(self, window: dt.timedelta, at: dt.datetime) -> bool:
        return self.expires is not None and self.expires <= at + window


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)


def _reader(source: IO[bytes]) -> PdfFileReader:
    source.seek(0)
    try:
        reader = PdfFileReader(source, strict=False)
        reader.embedded_signatures  # noqa: B018 - parse the signature fields now
    except (PdfError, ValueError, KeyError, IndexError) as exc:
        raise DocumentInvalid("the document is not a readable PDF") from exc
    return reader


async def cover_signatures(source: IO[bytes], trust: TrustSettings, at: dt.datetime,
                           spools: contextlib.ExitStack) -> IO[bytes] | None:
    """The document read from ``source`` plus one revision with the validation data of all its
    signatures and document time-stamps (``None`` when it has none). VRI entries an earlier
    update wrote are left exactly as they are. Best effort: a signature whose chain cannot be
    completed gets what can be found and does not stop the others."""
    reader = _reader(source)
    earlier = list(reader.embedded_signatures)
    if not earlier:
        return None
    try:
        present = set(DocumentSecurityStore.read_dss(reader).vri_entries)
    except (ValidationInfoReadingError, PdfError, KeyError, ValueError):
        present = set()
    soft = trust.context(at, hard_fail=False)
    writer = IncrementalPdfFileWriter.from_reader(reader)
    for embedded in earlier:
        try:
            paths = await collect_validation_info(embedded, soft)
        except (PathError, ValidationError, SignatureValidationError, PdfError, ValueError):
            continue
        contents = embedded.pkcs7_content.hex().encode("ascii")
        vri = embedded.sig_object_type == "/Sig" and \
            DocumentSecurityStore.sig_content_identifier(contents) not in present
        DocumentSecurityStore.supply_dss_in_writer(
            writer, contents if vri else None, validation_context=soft, paths=paths)
    covered = spools.enter_context(_spool())
    writer.write(covered)  # type: ignore[no-untyped-call]
    covered.seek(0)
    return covered


def extend_ltv(source: IO[bytes], output: IO[bytes], *, timestamps: TimeStampTransport,
               trust: TrustSettings, at: dt.datetime,
               hash_algorithm: str = "sha256") -> LtvExtension:
    """Renew the archive: write to ``output`` the document from ``source`` with fresh
    validation data for every signature and time-stamp (one DSS revision) and a new document
    time-stamp whose TSA chain data is in the DSS too. Earlier signatures stay valid: both
    revisions only add DSS data and a time-stamp."""
    if at.tzinfo is None:
        raise InvalidInput("`at` must be timezone-aware", reason="NAIVE_DATETIME")
    hash_for(hash_algorithm)
    return run(_extend(source, output, timestamps, trust, at, hash_algorithm))


async def _extend(source: IO[bytes], output: IO[bytes], timestamps: TimeStampTransport,
                  trust: TrustSettings, at: dt.datetime, hash_algorithm: str) -> LtvExtension:
    reader = _reader(source)
    if reader.encrypted:
        raise DocumentInvalid("encrypted PDFs cannot be extended here")
    count = len(reader.embedded_signatures)
    if count == 0:
        raise InvalidInput("the document has no signature to keep verifiable",
                           reason="NOT_SIGNED")
    stamper = PortTimeStamper(timestamps)
    try:
        with contextlib.ExitStack() as spools:
            covered = await cover_signatures(source, trust, at, spools)
            assert covered is not None
            await PdfTimeStamper(stamper).async_timestamp_pdf(
                IncrementalPdfFileWriter(covered, strict=False), hash_algorithm,
                validation_context=trust.context(at), output=output)
    except TimestampUnavailable:
        raise
    except (PathError, ValidationError) as exc:
        raise RevocationUnavailable(
            "the TSA's certificate could not be validated with revocation data",
            metadata={"certificate": "time-stamping authority"}) from exc
    except (PdfError, PyHankoSigningError) as exc:
        raise DocumentInvalid(f"the document could not be time-stamped: {exc}") from exc
    status = archive_status(output)
    assert status.last_timestamp is not None and status.expires is not None
    return LtvExtension(timestamp_time=status.last_timestamp, valid_until=status.expires,
                        signatures=count)


def archive_status(source: IO[bytes]) -> ArchiveStatus:
    """When the newest time-stamp of the PDF in ``source`` stops proving anything."""
    reader = _reader(source)
    signatures = list(reader.embedded_regular_signatures)
    stamps = list(reader.embedded_timestamp_signatures)
    # The newest time-stamp is the one in the latest revision (time-stamps made in the same
    # second are ordered by the document, not by their genTime).
    tokens: list[tuple[int, cms.SignedData]] = [(t.signed_revision, t.signed_data)
                                                for t in stamps]
    for sig in signatures:
        tokens.extend((sig.signed_revision, tst)
                      for tst in extract_tst_data_iter(sig.signer_info, signed=False))
    last: tuple[dt.datetime, dt.datetime] | None = None
    for _, token in sorted(tokens, key=lambda item: item[0]):
        try:
            gen_time: dt.datetime = token["encap_content_info"]["content"].parsed[
                "gen_time"].native
            certs = [c.chosen for c in token["certificates"] or () if c.name == "certificate"]
            signer = token["signer_infos"][0]["sid"]
        except (KeyError, ValueError, TypeError, IndexError, AttributeError):
            continue
        expires = _chain_expiry(certs, signer)
        if expires is not None:
            last = (gen_time, expires)
    return ArchiveStatus(signatures=len(signatures), document_timestamps=len(stamps),
                         last_timestamp=last[0] if last else None,
                         expires=last[1] if last else None)


def _chain_expiry(certs: list[asn1_x509.Certificate],
                  sid: cms.SignerIdentifier) -> dt.datetime | None:
    """The earliest expiry among the token's signing certificate and the certificates the token
    carries that issued it (up to the root, when embedded)."""
    by_subject = {c.subject.dump(): c for c in certs}
    current: asn1_x509.Certificate | None
    if sid.name == "issuer_and_serial_number":
        want = sid.chosen
        current = next((c for c in certs if c.serial_number == want["serial_number"].native
                        and c.issuer == want["issuer"]), None)
    else:
        current = next((c for c in certs if c.key_identifier == sid.chosen.native), None)
    if current is None:
        return None
    expiry: dt.datetime = current.not_valid_after
    seen: set[bytes] = set()
    while current is not None and current.issuer.dump() not in seen and \
            current.issuer != current.subject:
        seen.add(current.issuer.dump())
        current = by_subject.get(current.issuer.dump())
        if current is not None:
            expiry = min(expiry, current.not_valid_after)
    return expiry
