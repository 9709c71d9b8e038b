"""Validation of enveloped XML signatures (W3C XMLDSig) with EN 319 102-1 indications.

The cryptographic check is :func:`signing.sign.xmldsig.verify_xml`; the signer's certificate is
then validated to the trust anchors with revocation (fetched, or given) at the validation time:
these signatures carry no time-stamp, so the claimed ``SigningTime`` is reported but proves
nothing, and the best signature time is the validation time (EN 319 102-1 §5.5 without POE).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from signxml.exceptions import InvalidDigest

from signing.sign._aio import run
from signing.sign._pyhanko import to_asn1
from signing.sign.errors import SignatureInvalid
from signing.sign.revocation import TrustSettings
from signing.sign.xmldsig import VerifiedXmlSignature, verify_xml
from signing.validate.identity import signer_identity
from signing.validate.report import Indication, SignatureResult, TimeSource, ValidationReport

__all__ = ["validate_xml"]


def validate_xml(document: bytes, *, trust: TrustSettings, at: dt.datetime,
                 id_attribute: str = "Id") -> ValidationReport:
    """Validate the XML signatures (XAdES/XMLDSig) of ``document`` at ``at`` against ``trust``."""
    digest = hashlib.sha256(document).hexdigest()
    try:
        verified = verify_xml(document, id_attribute=id_attribute)
    except SignatureInvalid as exc:
        sub = "HASH_FAILURE" if isinstance(exc.__cause__, InvalidDigest) else "SIG_CRYPTO_FAILURE"
        failed = SignatureResult(
            id="xml", indication=Indication.TOTAL_FAILED, sub_indication=sub, signer=None,
            signing_time=None, signing_time_source=TimeSource.NONE, format="XMLDSig",
            messages=("the signature value or a reference digest does not verify",))
        return ValidationReport("xml", digest, at, (failed,))
    results = tuple(run(_trust(v, trust, at)) for v in verified)
    return ValidationReport("xml", digest, at, results)


async def _trust(verified: VerifiedXmlSignature, trust: TrustSettings,
                 at: dt.datetime) -> SignatureResult:
    context = trust.context(at, hard_fail=True)
    validator = CertificateValidator(
        to_asn1(verified.signer), [to_asn1(c) for c in verified.certificates[1:]],
        validation_context=context)
    indication: Indication = Indication.TOTAL_PASSED
    sub: str | None = None
    messages: tuple[str, ...] = ()
    try:
        await validator.async_validate_usage({"digital_signature"})  # type: ignore[no-untyped-call]
    except RevokedError as exc:
        indication, sub, messages = Indication.TOTAL_FAILED, "REVOKED", (str(exc),)
    except ExpiredError as exc:
        indication, sub, messages = Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE", (str(exc),)
    except NotYetValidError as exc:
        indication, sub, messages = Indication.TOTAL_FAILED, "NOT_YET_VALID", (str(exc),)
    except InsufficientRevinfoError as exc:
        indication, sub, messages = Indication.INDETERMINATE, "TRY_LATER", (str(exc),)
    except PathBuildingError as exc:
        indication, sub, messages = (Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND",
                                     (str(exc),))
    except InvalidCertificateError as exc:
        indication, sub, messages = (Indication.INDETERMINATE, "CHAIN_CONSTRAINTS_FAILURE",
                                     (str(exc),))
    except (PathValidationError, PathError, ValidationError) as exc:
        indication, sub, messages = (Indication.INDETERMINATE,
                                     "CERTIFICATE_CHAIN_GENERAL_FAILURE", (str(exc),))
    return SignatureResult(
        id=verified.signature_id or "xml", indication=indication, sub_indication=sub,
        signer=signer_identity(verified.signer), signing_time=verified.signing_time,
        signing_time_source=TimeSource.CLAIMED if verified.signing_time else TimeSource.NONE,
        format="XMLDSig", messages=messages)
