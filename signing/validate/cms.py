"""Validation of detached CMS/CAdES signatures (RFC 5652, ETSI EN 319 122-1) with EN 319 102-1
procedures: basic validation (§5.3) for B-B, validation with time (§5.5) when a signature
time-stamp is present. The signed file is hashed in chunks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import IO, Any

from asn1crypto import cms
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus
from pyhanko.sign.validation.ades import (
    AdESBasicValidationResult,
    ades_basic_validation,
    ades_with_time_validation,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter

from signing.sign._aio import run
from signing.sign._pyhanko import to_crypto
from signing.sign.cms import CHUNK
from signing.sign.errors import DocumentInvalid
from signing.sign.revocation import TrustSettings
from signing.validate.identity import signer_identity
from signing.validate.policy import signature_spec, timing, unobtainable_revocation
from signing.validate.report import Indication, SignatureResult, TimeSource, ValidationReport

__all__ = ["validate_cms"]

_HASHES = {"sha256", "sha384", "sha512"}
_INDICATION = {AdESStatus.PASSED: Indication.TOTAL_PASSED,
               AdESStatus.FAILED: Indication.TOTAL_FAILED,
               AdESStatus.INDETERMINATE: Indication.INDETERMINATE}


def _load(signature: bytes) -> cms.SignedData:
    data = signature
    if data.lstrip().startswith(b"-----BEGIN"):
        import base64

        body = b"".join(line for line in data.splitlines() if line and not line.startswith(b"-----"))
        data = base64.b64decode(body)
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed = info["content"]
        signed.native  # parse everything now  # noqa: B018
    except (ValueError, TypeError, KeyError) as exc:
        raise DocumentInvalid("the signature is not a CMS SignedData structure") from exc
    return signed


def _claimed_signing_time(signed: cms.SignedData) -> dt.datetime | None:
    for attr in signed["signer_infos"][0]["signed_attrs"]:
        if attr["type"].native == "signing_time":
            value = attr["values"][0].native
            return value if isinstance(value, dt.datetime) else None
    return None


def validate_cms(signature: bytes, content: IO[bytes], *, trust: TrustSettings,
                 at: dt.datetime) -> ValidationReport:
    """Validate the detached ``signature`` (DER or PEM) over the bytes read from ``content``."""
    signed = _load(signature)
    infos = signed["signer_infos"]
    if len(infos) != 1:
        raise DocumentInvalid("exactly one signer is supported per CMS signature")
    algorithm = infos[0]["digest_algorithm"]["algorithm"].native
    if algorithm not in _HASHES:
        raise DocumentInvalid(f"unsupported digest algorithm {algorithm}")
    h = hashlib.new(algorithm)
    whole = hashlib.sha256()
    while chunk := content.read(CHUNK):
        h.update(chunk)
        whole.update(chunk)
    return run(_validate(signed, h.digest(), whole.hexdigest(), trust, at))


async def _validate(signed: cms.SignedData, digest: bytes, sha256: str, trust: TrustSettings,
                    at: dt.datetime) -> ValidationReport:
    spec = signature_spec(trust)
    has_ts = next(extract_tst_data_iter(signed["signer_infos"][0], signed=False), None) \
        is not None
    outcome: AdESBasicValidationResult[Any]
    try:
        if has_ts:
            outcome = await ades_with_time_validation(signed, spec, timing_info=timing(at),
                                                      raw_digest=digest)
        else:
            outcome = await ades_basic_validation(signed, spec, timing_info=timing(at),
                                                  raw_digest=digest)
    except SignatureValidationError as exc:
        # pyHanko gave up on the signature itself (e.g. a disallowed or mislabelled algorithm)
        sub = exc.ades_subindication or AdESFailure.FORMAT_FAILURE
        failed = SignatureResult(
            id="cms", indication=_INDICATION[sub.status], sub_indication=sub.standard_name,
            signer=None, signing_time=None, signing_time_source=TimeSource.NONE,
            format="CAdES", messages=(exc.failure_message,))
        return ValidationReport("cms", sha256, at, (failed,))
    except (ValueError, AssertionError) as exc:
        # Hostile or malformed input can trip assertions inside the parser (e.g. an ECDSA
        # signature labelled RSA): the signature is broken, not the validator.
        failed = SignatureResult(
            id="cms", indication=Indication.TOTAL_FAILED,
            sub_indication=AdESFailure.FORMAT_FAILURE.name, signer=None, signing_time=None,
            signing_time_source=TimeSource.NONE, format="CAdES",
            messages=(f"the signature could not be processed: {type(exc).__name__}",))
        return ValidationReport("cms", sha256, at, (failed,))
    status = outcome.api_status
    sub = outcome.ades_subindic
    indication = _INDICATION[sub.status]
    signing_time, source = None, TimeSource.NONE
    ts = getattr(status, "timestamp_validity", None)
    if ts is not None and ts.intact and ts.valid:
        signing_time, source = ts.timestamp, TimeSource.SIGNATURE_TIMESTAMP
    elif (claimed := _claimed_signing_time(signed)) is not None:
        signing_time, source = claimed, TimeSource.CLAIMED
    signer_cert = status.signing_cert if status is not None else None
    result = SignatureResult(
        id="cms", indication=indication,
        sub_indication=None if indication is Indication.TOTAL_PASSED else sub.standard_name,
        signer=signer_identity(to_crypto(signer_cert)) if signer_cert is not None else None,
        signing_time=signing_time, signing_time_source=source,
        format="CAdES-B-T" if has_ts else "CAdES-B-B",
        messages=(outcome.failure_msg,) if outcome.failure_msg else ())
    if sub is AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE and signer_cert is not None:
        # pyHanko reports revocation data that could not be obtained for now as a general
        # chain failure; EN 319 102-1 says INDETERMINATE / TRY_LATER.
        certs = [c.chosen for c in signed["certificates"] or () if c.name == "certificate"]
        why = await unobtainable_revocation(trust, at, signer_cert, certs)
        if why is not None:
            result = dataclasses.replace(result, sub_indication=AdESIndeterminate.TRY_LATER.name,
                                         messages=(*result.messages, why))
    return ValidationReport("cms", sha256, at, (result,))
