"""Validation results with ETSI EN 319 102-1 indications, rendered as JSON and as text.

Each signature gets a main indication (TOTAL-PASSED, TOTAL-FAILED, INDETERMINATE) and, unless it
passed, a sub-indication from EN 319 102-1 §5.1.3 (HASH_FAILURE, REVOKED,
NO_CERTIFICATE_CHAIN_FOUND, OUT_OF_BOUNDS_NO_POE, ...). The signer's identity, the signing time
and where that time comes from are reported with it. For PDFs, the ETSI TS 119 102-2 XML report
produced by pyHanko is attached when it could be generated.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from signing.sign.xmldsig import SignedElement
from signing.validate.changes import DocumentChange

__all__ = [
    "Indication",
    "SignatureResult",
    "SignerIdentity",
    "TimeSource",
    "ValidationReport",
]

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


class Indication(StrEnum):
    """The overall result of validating a signature (ETSI EN 319 102-1)."""
    TOTAL_PASSED = "TOTAL-PASSED"
    TOTAL_FAILED = "TOTAL-FAILED"
    INDETERMINATE = "INDETERMINATE"


class TimeSource(StrEnum):
    """Where a reported signing time comes from, most trustworthy first."""

    SIGNATURE_TIMESTAMP = "signature-timestamp"  # genTime of an RFC 3161 token on the signature
    DOCUMENT_TIMESTAMP = "document-timestamp"  # genTime of a later PDF document time-stamp
    CLAIMED = "claimed-signing-time"  # the signer's own claim (CMS signingTime, XML SigningTime)
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who signed, as the signing certificate says (name, title, organisation, agency code)."""
    name: str
    title: str | None
    organisation: str | None
    organisational_unit: str | None
    agency_code: str | None
    subject: str
    issuer: str
    serial_number: str
    certificate_sha256: str


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """One signature's outcome. ``id`` is the PDF field name, the XML Signature Id or ``cms``."""

    id: str
    indication: Indication
    sub_indication: str | None
    signer: SignerIdentity | None
    signing_time: dt.datetime | None
    signing_time_source: TimeSource
    format: str  # "PAdES-B-LTA", "CAdES-B-T", "XMLDSig", ...
    coverage: str | None = None  # PDFs: ENTIRE_FILE / ENTIRE_REVISION
    modifications: str | None = None  # PDFs: modification level of later revisions
    messages: tuple[str, ...] = ()
    # XML: the element(s) the signature covers, and the canonical signed data that applications
    # read instead of the document they passed in (not part of the JSON/text report).
    signed_elements: tuple[SignedElement, ...] = ()
    signed_data: bytes | None = field(default=None, repr=False, compare=False)
    # The signer's certificate was revoked at this time, after the signature's proof of
    # existence (a revocation before it fails the signature).
    revoked_at: dt.datetime | None = None
    # PDFs: what changed after this signature (allowed changes; a forbidden one fails it)
    changes: tuple[DocumentChange, ...] = ()

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The validation report of a document: each signature's result, with the ETSI TS 119 102-2
    XML reports."""
    document_kind: str  # pdf / cms / xml
    document_sha256: str
    validation_time: dt.datetime
    signatures: tuple[SignatureResult, ...]
    etsi_xml_reports: tuple[str, ...] = field(default=())

    @property
    def indication(self) -> Indication:
        """TOTAL-PASSED only when every signature passed (and there is one)."""
        if not self.signatures:
            return Indication.INDETERMINATE
        kinds = {s.indication for s in self.signatures}
        if Indication.TOTAL_FAILED in kinds:
            return Indication.TOTAL_FAILED
        if Indication.INDETERMINATE in kinds:
            return Indication.INDETERMINATE
        return Indication.TOTAL_PASSED

    def to_dict(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, dt.datetime):
                return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [convert(v) for v in value]
            return value

        data = asdict(self)
        data.pop("etsi_xml_reports")
        for sig in data["signatures"]:
            sig.pop("signed_data", None)
        data["indication"] = self.indication.value
        return convert(data)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)

    def to_text(self) -> str:
        lines = [f"Document ({self.document_kind}) SHA-256 {self.document_sha256}",
                 f"Validated at {_vn(self.validation_time)}",
                 f"Overall: {self.indication.value}", ""]
        for n, sig in enumerate(self.signatures, 1):
            verdict = sig.indication.value + (f" / {sig.sub_indication}"
                                              if sig.sub_indication else "")
            lines.append(f"Signature {n} [{sig.id}] {sig.format}: {verdict}")
            if sig.signer is not None:
                who = sig.signer.name + (f", {sig.signer.title}" if sig.signer.title else "")
                lines.append(f"  Signer: {who}")
                if sig.signer.organisation:
                    lines.append(f"  Organisation: {sig.signer.organisation}")
                if sig.signer.agency_code:
                    lines.append(f"  Agency code: {sig.signer.agency_code}")
                lines.append(f"  Certificate: serial {sig.signer.serial_number}, issued by "
                             f"{sig.signer.issuer}")
            when = _vn(sig.signing_time) if sig.signing_time else "unknown"
            lines.append(f"  Signing time: {when} ({sig.signing_time_source.value})")
            if sig.coverage:
                lines.append(f"  Coverage: {sig.coverage}"
                             + (f"; later changes: {sig.modifications}"
                                if sig.modifications else ""))
            for element in sig.signed_elements:
                lines.append(f"  Signed element: {element.path}"
                             + (f" (Id {element.id})" if element.id else " (whole document)")
                             + f", canonical SHA-256 {element.sha256}")
            for change in sig.changes:
                lines.append(f"  Changed after signing: {change.describe()}")
            if sig.revoked_at is not None:
                lines.append(f"  Certificate revoked: {_vn(sig.revoked_at)} (after the "
                             "signature's proof of existence)")
            if not sig.passed:  # pyHanko's notes explain failures; a passed one needs none
                lines.extend(f"  Note: {m}" for m in sig.messages)
        return "\n".join(lines) + "\n"


def _vn(value: dt.datetime) -> str:
    return value.astimezone(VIETNAM).strftime("%H:%M:%S %d/%m/%Y (GMT+7)")

