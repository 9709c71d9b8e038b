"""Validation of PDF signatures (PAdES, ETSI EN 319 142-1) with ETSI EN 319 102-1 procedures.

Every signature (not the document time-stamps, which serve as proofs of existence) goes through
pyHanko's validation for long-term signatures (EN 319 102-1 §5.6.3): signature and hash over the
byte ranges, path validation to the configured anchors, revocation from the DSS or fetched,
time-stamps as proofs of existence, and the difference analysis of later incremental updates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import IO, Any

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation.ades import (
    AdESBasicValidationResult,
    _dss_to_local_knowledge,
    ades_basic_validation,
    ades_with_time_validation,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import LocalKnowledge, SignatureValidationSpec
from pyhanko.sign.validation.status import PdfSignatureStatus

from signing.sign._aio import run
from signing.sign._pyhanko import to_crypto
from signing.sign.errors import DocumentInvalid
from signing.sign.revocation import TrustSettings, describe
from signing.validate._speedups import install as install_speedups
from signing.validate.changes import changes_after
from signing.validate.identity import signer_identity
from signing.validate.longterm import LongTermOutcome, long_term_spec, validate_long_term
from signing.validate.policy import pdf_spec, timing, unobtainable_revocation
from signing.validate.report import Indication, SignatureResult, TimeSource, ValidationReport

__all__ = ["validate_pdf"]

install_speedups()

_CHUNK = 1 << 20


def _sha256(source: IO[bytes]) -> str:
    source.seek(0)
    h = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        h.update(chunk)
    source.seek(0)
    return h.hexdigest()


def validate_pdf(source: IO[bytes], *, trust: TrustSettings, at: dt.datetime,
                 etsi_report: bool = True) -> ValidationReport:
    """Validate every signature of the PDF in ``source`` (a seekable binary stream) at ``at``."""
    return run(_validate(source, trust, at, etsi_report))


async def _validate(source: IO[bytes], trust: TrustSettings, at: dt.datetime,
                    etsi_report: bool) -> ValidationReport:
    digest = _sha256(source)
    try:
        reader = PdfFileReader(source, strict=False)
        embedded, malformed = _collect(reader)
        has_dss = "/DSS" in reader.root
    except (PdfError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise DocumentInvalid("the document is not a readable PDF") from exc
    signatures = [s for s in embedded if s.sig_object_type == "/Sig"]
    doc_timestamps = [s for s in embedded if s.sig_object_type == "/DocTimeStamp"]
    spec = pdf_spec(trust)
    with_dss = _with_dss(spec.signature_validation_spec, reader)
    known = with_dss.local_knowledge
    lt_spec = long_term_spec(with_dss, fetching=trust.allow_fetching)
    results: list[SignatureResult] = []
    reports: list[str] = []
    for sig in signatures:
        later_ts = [t for t in doc_timestamps if t.signed_revision > sig.signed_revision]
        outcome: AdESBasicValidationResult[Any]
        try:
            sig.compute_integrity_info(diff_policy=spec.diff_policy)  # type: ignore[no-untyped-call]
            timestamped = _has_signature_timestamp(sig)
            if has_dss and (timestamped or later_ts):
                # EN 319 102-1 §5.6: long-term validation material present; time-stamps as
                # proofs of existence, revocation judged against the time it must cover.
                long_term = await validate_long_term(sig, later_ts, lt_spec, at, known)
                result = _long_term_result(sig, long_term, timestamped, len(later_ts))
                basic = long_term.basic
                if (result.indication is Indication.INDETERMINATE
                        and result.sub_indication in _NO_REVOCATION_DATA and timestamped
                        and not later_ts and trust.allow_fetching
                        and not _has_own_validation_data(reader, sig)):
                    # A B-T signature in a document whose DSS holds only other signers'
                    # validation data (made after a B-LT one): the long-term process finds
                    # nothing for this signer; it is a B-T signature, validated with time
                    # (§5.5), fetching what it needs where fetching is allowed.
                    with_time = await ades_with_time_validation(
                        sig.signed_data, _with_dss(spec.signature_validation_spec, reader),
                        timing_info=timing(at), raw_digest=sig.compute_digest(),
                        extra_status_kwargs=sig.summarise_integrity_info(),
                        status_cls=PdfSignatureStatus)
                    fetched = _result(sig, with_time, has_dss, bool(later_ts))
                    if fetched.indication is not Indication.INDETERMINATE:
                        result, basic = fetched, with_time
                results.append(dataclasses.replace(result, changes=changes_after(sig)))
                if etsi_report and basic is not None:
                    report = _etsi(sig, basic)
                    if report is not None:
                        reports.append(report)
                continue
            if timestamped:  # B-T: validation with time, §5.5
                outcome = await ades_with_time_validation(
                    sig.signed_data, _with_dss(spec.signature_validation_spec, reader),
                    timing_info=timing(at), raw_digest=sig.compute_digest(),
                    extra_status_kwargs=sig.summarise_integrity_info(),
                    status_cls=PdfSignatureStatus)
            else:
                # B-B: basic signature validation, §5.3, with the DSS as local knowledge.
                # Also when a later signer added a document time-stamp: pyHanko's long-term
                # process starts with validation with time, which requires a signature
                # time-stamp and reports SIG_CONSTRAINTS_FAILURE without one.
                outcome = await ades_basic_validation(
                    sig.signed_data, _with_dss(spec.signature_validation_spec, reader),
                    timing_info=timing(at), raw_digest=sig.compute_digest())
        except (SignatureValidationError, PdfError, ValueError, AssertionError) as exc:
            results.append(_broken(sig, exc))
            continue
        result = dataclasses.replace(_result(sig, outcome, has_dss, bool(later_ts)),
                                     changes=changes_after(sig))
        if result.sub_indication == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE.name:
            result = await _try_later(result, sig, trust, at, reader)
        results.append(result)
        if etsi_report:
            report = _etsi(sig, outcome)
            if report is not None:
                reports.append(report)
    results.extend(malformed)
    return ValidationReport("pdf", digest, at, tuple(results), tuple(reports))


# What the long-term process answers when the DSS holds no revocation data for the signer.
_NO_REVOCATION_DATA = frozenset({AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE.name,
                                 AdESIndeterminate.TRY_LATER.name})


def _has_own_validation_data(reader: PdfFileReader, sig: EmbeddedPdfSignature) -> bool:
    """Whether the DSS has a VRI entry for this signature (validation data added for it)."""
    try:
        vri = reader.root["/DSS"].get("/VRI")
        if vri is None:
            return False
        key = "/" + hashlib.sha1(sig.pkcs7_content).hexdigest().upper()  # noqa: S324 - PDF's key
        return key in vri
    except (KeyError, TypeError, AttributeError):
        return False


def _collect(reader: PdfFileReader) -> tuple[list[EmbeddedPdfSignature], list[SignatureResult]]:
    """The document's signatures in signing order, and a TOTAL-FAILED / FORMAT_FAILURE result
    for each signature dictionary that cannot be one (no or empty ``/Contents``, a
    ``/ByteRange`` that does not describe the file around the ``/Contents``, contents that are
    not CMS), instead of refusing the whole document."""
    size = reader.stream.seek(0, 2)
    good: list[EmbeddedPdfSignature] = []
    bad: list[SignatureResult] = []
    for name, _, field in enumerate_sig_fields(reader, filled_status=True):
        try:
            sig = EmbeddedPdfSignature(reader, field, name)
            problem = _byte_range_problem(sig, size)
            if problem is None:
                sig.signed_revision  # noqa: B018 - must be computable
        except (PdfError, ValueError, KeyError, IndexError, TypeError, AttributeError,
                AssertionError) as exc:
            problem = _contents_problem(field) or \
                f"the signature dictionary is malformed ({type(exc).__name__})"
        if problem is not None:
            bad.append(SignatureResult(
                id=str(name), indication=Indication.TOTAL_FAILED,
                sub_indication=AdESFailure.FORMAT_FAILURE.name, signer=None,
                signing_time=None, signing_time_source=TimeSource.NONE, format="PAdES",
                messages=(problem,)))
        else:
            good.append(sig)
    good.sort(key=lambda s: s.signed_revision)
    reader._embedded_signatures = good  # type: ignore[assignment]  # what diff analysis lists
    return good, bad


def _contents_problem(field: Any) -> str | None:
    try:
        value = field.get_object()["/V"].get_object()
    except (KeyError, AttributeError, PdfError):
        return "the signature field has no signature dictionary"
    if "/Contents" not in value:
        return "the signature dictionary has no /Contents"
    contents = value.raw_get("/Contents")
    data = getattr(contents, "original_bytes", b"")
    if not data or not data.strip(b"\x00"):
        return "the signature dictionary's /Contents is empty"
    return None


def _byte_range_problem(sig: EmbeddedPdfSignature, size: int) -> str | None:
    """Why ``/ByteRange`` is impossible: it must be four integers ``[0 a b c]`` covering the
    file from its start to its end except exactly a gap, with ``a < b``."""
    try:
        values = [int(v) for v in sig.byte_range]
    except (TypeError, ValueError):
        return "the signature's /ByteRange is not a list of integers"
    if len(values) != 4:
        return f"the signature's /ByteRange has {len(values)} numbers instead of 4"
    start, first, second, length = values
    if start != 0 or min(values) < 0 or first >= second or second + length > size:
        return (f"the signature's /ByteRange {values} is impossible for a file of {size} "
                "bytes (it must start at 0, leave a gap for /Contents and end inside the file)")
    return None


def _with_dss(spec: SignatureValidationSpec, reader: PdfFileReader) -> SignatureValidationSpec:
    """``spec`` knowing the certificates and revocation data of the document's DSS."""
    try:
        dss = _dss_to_local_knowledge(reader=reader)
    except (PdfError, ValueError, KeyError):
        return spec
    known = spec.local_knowledge
    return dataclasses.replace(spec, local_knowledge=LocalKnowledge(
        known_ocsps=known.known_ocsps + dss.known_ocsps,
        known_crls=known.known_crls + dss.known_crls,
        known_certs=known.known_certs + dss.known_certs,
        known_poes=known.known_poes))


async def _try_later(result: SignatureResult, sig: EmbeddedPdfSignature, trust: TrustSettings,
                     at: dt.datetime, reader: PdfFileReader) -> SignatureResult:
    """INDETERMINATE / TRY_LATER instead of a general chain failure when the failure is
    revocation data that could not be obtained for now (pyHanko reports both the same way)."""
    try:
        known = _dss_to_local_knowledge(reader=reader)
    except (PdfError, ValueError, KeyError):
        known = None
    certs = list(sig.signed_data["certificates"] or ())
    others = [c.chosen for c in certs if c.name == "certificate"]
    why = await unobtainable_revocation(trust, at, sig.signer_cert, others, known=known)
    if why is None:
        return result
    return dataclasses.replace(result, sub_indication=AdESIndeterminate.TRY_LATER.name,
                               messages=(*result.messages, why))


def _has_signature_timestamp(sig: EmbeddedPdfSignature) -> bool:
    return next(extract_tst_data_iter(sig.signer_info, signed=False), None) is not None


def _etsi(sig: EmbeddedPdfSignature, outcome: AdESBasicValidationResult[Any]) -> str | None:
    try:
        from pyhanko.sign.validation.report.tools import generate_report
    except ImportError:  # pyHanko's "etsi" extra (xsdata) is not installed
        return None
    try:
        return str(generate_report(sig, outcome))
    except (ValueError, TypeError, AttributeError, KeyError):
        return None


def _broken(sig: EmbeddedPdfSignature, exc: Exception) -> SignatureResult:
    sub = getattr(exc, "ades_subindication", None) or AdESFailure.FORMAT_FAILURE
    indication = {AdESStatus.PASSED: Indication.TOTAL_FAILED,  # cannot happen for an error
                  AdESStatus.FAILED: Indication.TOTAL_FAILED,
                  AdESStatus.INDETERMINATE: Indication.INDETERMINATE}[sub.status]
    return SignatureResult(
        id=str(sig.field_name), indication=indication, sub_indication=sub.standard_name,
        signer=None, signing_time=None, signing_time_source=TimeSource.NONE, format="PAdES",
        messages=(f"the signature could not be processed: {type(exc).__name__}",))


def _result(sig: EmbeddedPdfSignature, outcome: AdESBasicValidationResult[Any], has_dss: bool,
            doc_ts_after: bool) -> SignatureResult:
    status = outcome.api_status
    sub = outcome.ades_subindic
    indication = {AdESStatus.PASSED: Indication.TOTAL_PASSED,
                  AdESStatus.FAILED: Indication.TOTAL_FAILED,
                  AdESStatus.INDETERMINATE: Indication.INDETERMINATE}[sub.status]
    sub_indication = None if indication is Indication.TOTAL_PASSED else sub.standard_name
    messages: list[str] = [m for m in (_chain_message(sig, sub_indication),) if m]
    if outcome.failure_msg:
        messages.append(outcome.failure_msg)
    integrity = sig.summarise_integrity_info()
    coverage = integrity["coverage"].name if integrity.get("coverage") is not None else None
    diff = integrity.get("diff_result")
    level = getattr(diff, "modification_level", None)
    if diff is not None and level is None:  # a suspicious modification: pyHanko gave up
        level = ModificationLevel.OTHER
    modifications = level.name if level is not None else None
    if level is ModificationLevel.OTHER or integrity.get("docmdp_ok") is False:
        # The signed revision is intact, but a later update changed what it shows.
        if indication is not Indication.TOTAL_FAILED:
            indication, sub_indication = Indication.TOTAL_FAILED, AdESFailure.FORMAT_FAILURE.name
        messages.append("the document was changed after this signature in a way the "
                        "signature does not allow")
    signing_time, source = None, TimeSource.NONE
    ts = status.timestamp_validity if status is not None else None
    if ts is not None and ts.intact and ts.valid:
        signing_time, source = ts.timestamp, TimeSource.SIGNATURE_TIMESTAMP
    elif doc_ts_after and getattr(outcome, "best_signature_time", None) is not None and \
            sub is not AdESIndeterminate.NO_POE:
        signing_time = getattr(outcome, "best_signature_time", None)
        source = TimeSource.DOCUMENT_TIMESTAMP
    elif sig.self_reported_timestamp is not None:
        signing_time, source = sig.self_reported_timestamp, TimeSource.CLAIMED
    level_name = "B-B"
    if ts is not None:
        level_name = "B-T"
        if has_dss:
            level_name = "B-LTA" if doc_ts_after else "B-LT"
    return SignatureResult(
        id=str(sig.field_name), indication=indication, sub_indication=sub_indication,
        signer=signer_identity(to_crypto(sig.signer_cert)), signing_time=signing_time,
        signing_time_source=source, format=f"PAdES-{level_name}", coverage=coverage,
        modifications=modifications, messages=tuple(messages))


def _long_term_result(sig: EmbeddedPdfSignature, outcome: LongTermOutcome, timestamped: bool,
                      doc_ts_after: int) -> SignatureResult:
    """The level reported is the level present (EN 319 142-1 §5.3-5.5): with the DSS, B-LT;
    B-LTA when a document time-stamp follows the time-stamp that makes it B-T (its own
    signature time-stamp, or else a first document time-stamp, as for a B-B signature that a
    later signer's DSS and document time-stamp cover)."""
    indication, sub_indication = outcome.indication, outcome.sub_indication
    from_signer = outcome.basic is not None and \
        outcome.basic.ades_subindic.standard_name == sub_indication
    messages = [m for m in (_chain_message(sig, sub_indication),) if m and from_signer]
    messages.extend(outcome.messages)
    coverage, modifications, changed = _modifications(sig)
    if changed and indication is not Indication.TOTAL_FAILED:
        indication, sub_indication = Indication.TOTAL_FAILED, AdESFailure.FORMAT_FAILURE.name
    if changed:
        messages.append("the document was changed after this signature in a way the "
                        "signature does not allow")
    signing_time, source = outcome.poe, outcome.poe_source
    if signing_time is None and sig.self_reported_timestamp is not None:
        signing_time, source = sig.self_reported_timestamp, TimeSource.CLAIMED
    level = "B-LTA" if doc_ts_after > (0 if timestamped else 1) else "B-LT"
    return SignatureResult(
        id=str(sig.field_name), indication=indication, sub_indication=sub_indication,
        signer=signer_identity(to_crypto(sig.signer_cert)), signing_time=signing_time,
        signing_time_source=source, format=f"PAdES-{level}", coverage=coverage,
        modifications=modifications, messages=tuple(messages), revoked_at=outcome.revoked_at)


def _modifications(sig: EmbeddedPdfSignature) -> tuple[str | None, str | None, bool]:
    """Coverage, modification level, and whether a later change is one the signature does
    not allow."""
    integrity = sig.summarise_integrity_info()
    coverage = integrity["coverage"].name if integrity.get("coverage") is not None else None
    diff = integrity.get("diff_result")
    level = getattr(diff, "modification_level", None)
    if diff is not None and level is None:  # a suspicious modification: pyHanko gave up
        level = ModificationLevel.OTHER
    modifications = level.name if level is not None else None
    changed = level is ModificationLevel.OTHER or integrity.get("docmdp_ok") is False
    return coverage, modifications, changed


_CHAIN_REASONS = {
    "NO_CERTIFICATE_CHAIN_FOUND": "does not chain to a trusted root",
    "CERTIFICATE_CHAIN_GENERAL_FAILURE": "could not be validated with the revocation data at "
                                         "hand (missing, unverifiable or not covering the time)",
    "TRY_LATER": "has no revocation data for now",
    "REVOKED": "is revoked",
    "REVOKED_NO_POE": "is revoked, and nothing proves the signature existed before",
    "REVOKED_CA_NO_POE": "has a revoked issuing CA",
    "OUT_OF_BOUNDS_NO_POE": "was expired or not yet valid when used, and nothing proves the "
                            "signature existed while it was valid",
    "OUT_OF_BOUNDS_NOT_REVOKED": "was expired or not yet valid when used",
    "EXPIRED": "has expired",
    "CHAIN_CONSTRAINTS_FAILURE": "breaks a constraint of its chain (key usage, policy, name)",
    "SIG_CONSTRAINTS_FAILURE": "is not allowed to make this signature (key usage)",
}


def _chain_message(sig: EmbeddedPdfSignature, sub_indication: str | None) -> str | None:
    """For a failure about the signer's certificate: which certificate, and why."""
    reason = _CHAIN_REASONS.get(sub_indication or "")
    if reason is None:
        return None
    return f"the signer's certificate {describe(sig.signer_cert)} {reason}"
