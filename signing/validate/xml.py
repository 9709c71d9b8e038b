"""Validation of enveloped XML signatures (W3C XMLDSig) with EN 319 102-1 indications.

The cryptographic check is :func:`signing.sign.xmldsig.verify_xml`; the signer's certificate is
then validated to the trust anchors with revocation (fetched, or given) at the validation time:
these signatures carry no time-stamp, so the claimed ``SigningTime`` is reported but proves
nothing, and the best signature time is the validation time (EN 319 102-1 §5.5 without POE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace

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
from signing.sign.expected import ExpectedSigner, check_signer
from signing.sign.revocation import TrustSettings
from signing.sign.xmldsig import VerifiedXmlSignature, inspect_xml
from signing.validate.identity import signer_identity
from signing.validate.report import Indication, SignatureResult, TimeSource, ValidationReport

__all__ = ["validate_xml"]


def validate_xml(document: bytes, *, trust: TrustSettings, at: dt.datetime,
                 id_attribute: str = "Id",
                 expected_signer: ExpectedSigner | None = None) -> ValidationReport:
    """Validate every XML signature of ``document`` at ``at``.

    Each result names the signed element (path, Id, digest) and carries the canonical signed data
    (``signed_data``) that applications read instead of ``document``. A signature whose signed
    element is imitated by data outside it (signature wrapping) is TOTAL-FAILED /
    ``SIGNATURE_WRAPPING``; one made by someone other than ``expected_signer`` is TOTAL-FAILED /
    ``SIGNER_NOT_EXPECTED``, with the mismatch in the messages.
    """
    digest = hashlib.sha256(document).hexdigest()
    try:
        verified = inspect_xml(document, id_attribute=id_attribute)
    except SignatureInvalid as exc:
        sub = "HASH_FAILURE" if isinstance(exc.__cause__, InvalidDigest) else "SIG_CRYPTO_FAILURE"
        failed = SignatureResult(
            id="xml", indication=Indication.TOTAL_FAILED, sub_indication=sub, signer=None,
            signing_time=None, signing_time_source=TimeSource.NONE, format="XMLDSig",
            messages=("the signature value or a reference digest does not verify",))
        return ValidationReport("xml", digest, at, (failed,))
    results = tuple(_judge(v, run(_trust(v, trust, at)), expected_signer) for v in verified)
    return ValidationReport("xml", digest, at, results)


def _judge(verified: VerifiedXmlSignature, result: SignatureResult,
           expected: ExpectedSigner | None) -> SignatureResult:
    """Add what was signed, and fail wrapping and unexpected signers (these override the chain
    verdict: a forged document or someone else's seal is failed whatever its certificate)."""
    indication, sub = result.indication, result.sub_indication
    messages = list(result.messages)
    if verified.imitations:
        indication, sub = Indication.TOTAL_FAILED, "SIGNATURE_WRAPPING"
        messages = [*verified.imitations, *messages]
    elif expected is not None:
        check = check_signer(verified.signer, expected)
        if check.ok:
            messages.append(f"signed by the expected signer ({expected.describe()})")
        else:
            indication, sub = Indication.TOTAL_FAILED, "SIGNER_NOT_EXPECTED"
            messages = [f"expected {expected.describe()}", *check.reasons, *messages]
    messages += verified.notes
    elements = (verified.signed_element,) if verified.signed_element is not None else ()
    return replace(result, indication=indication, sub_indication=sub, messages=tuple(messages),
                   signed_elements=elements, signed_data=verified.signed_data)


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
