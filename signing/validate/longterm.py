"""Validation of signatures with long-term validation data, ETSI EN 319 102-1 §5.6 (validation
process for signatures providing long term availability and integrity of validation material),
built on pyHanko's AdES primitives.

The validation time is a parameter. What the process relies on:

* **Time-stamps are proofs of existence (PoE).** The signature time-stamp proves the signature
  existed at its ``genTime``; each later document time-stamp proves the revision it covers
  (earlier time-stamps and the DSS included) existed at its own ``genTime``.
* **Each time-stamp is checked at the time it must be trusted.** The last one at the validation
  time; an earlier one at the ``genTime`` of the next valid one (its PoE). A time-stamp whose
  TSA certificate expired before its PoE proves nothing (``OUT_OF_BOUNDS_NO_POE``): that is
  what archive renewal (:mod:`signing.sign.ltv`) prevents.
* **The signer is judged at the signature's PoE.** Its chain is validated at that moment, so a
  signing certificate that expired *after* the PoE does not matter. Revocation data is judged
  fresh against the time it must cover (the PoE), not against the validation time: data issued
  after the PoE says whether the certificate was revoked by then. A revocation *after* the PoE
  leaves the signature valid and is reported (``revoked_at``); one before it fails it.
* **Nothing is fetched unless allowed**: the document's DSS and the trust settings' own
  revocation data are the validation material.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as ocsp_x509
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus
from pyhanko.sign.validation.ades import (
    AdESBasicValidationResult,
    ades_basic_validation,
    ades_timestamp_validation,
)
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
    bootstrap_validation_data_handlers,
)
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo

from signing.sign.revocation import describe
from signing.validate.report import Indication, TimeSource

__all__ = ["LongTermOutcome", "long_term_spec", "validate_long_term"]


@dataclass(frozen=True, slots=True)
class LongTermOutcome:
    """The outcome of :func:`validate_long_term` for one signature."""

    indication: Indication
    sub_indication: str | None
    poe: dt.datetime | None  # best signature time: when the signature provably existed
    poe_source: TimeSource
    revoked_at: dt.datetime | None  # the signer's certificate was revoked after ``poe``, then
    messages: tuple[str, ...]
    basic: AdESBasicValidationResult[Any] | None  # the signer's validation at ``poe``


@dataclass(frozen=True, slots=True)
class _Token:
    label: str
    signed_data: cms.SignedData
    gen_time: dt.datetime
    imprint: Callable[[str], bytes]
    source: TimeSource


def long_term_spec(spec: SignatureValidationSpec, *, fetching: bool) -> SignatureValidationSpec:
    """``spec`` with revocation data taken as valid for any time before it was issued (so data
    collected just after a time-stamp covers that time-stamp's PoE for ever), and online
    fetching only where the trust settings allow it."""
    policy = spec.cert_validation_policy
    revinfo = dataclasses.replace(policy.revinfo_policy, retroactive_revinfo=True)
    rule = RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH if fetching \
        else RevinfoOnlineFetchingRule.LOCAL_ONLY
    return dataclasses.replace(
        spec, cert_validation_policy=dataclasses.replace(policy, revinfo_policy=revinfo),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=rule))


def _point_in_time(at: dt.datetime) -> ValidationTimingInfo:
    return ValidationTimingInfo(validation_time=at, best_signature_time=at,
                                point_in_time_validation=True)


def _gen_time(signed_data: cms.SignedData) -> dt.datetime:
    content = signed_data["encap_content_info"]["content"]
    info = content.parsed if isinstance(content, core.ParsableOctetString) else None
    if not isinstance(info, tsp.TSTInfo):
        raise ValueError("a time-stamp token without TSTInfo")
    value: dt.datetime = info["gen_time"].native
    return value


def _signature_imprint(sig: EmbeddedPdfSignature) -> Callable[[str], bytes]:
    value = sig.signer_info["signature"].native

    def imprint(algorithm: str) -> bytes:
        return hashlib.new(algorithm.replace("_", "-"), value).digest()

    return imprint


def _document_imprint(dts: EmbeddedPdfSignature) -> Callable[[str], bytes]:
    def imprint(algorithm: str) -> bytes:
        if algorithm != dts.md_algorithm:
            return b""  # a token over another digest than the one declared: no match
        return dts.compute_digest()

    return imprint


def _tokens(sig: EmbeddedPdfSignature,
            later: Sequence[EmbeddedPdfSignature]) -> list[_Token]:
    tokens: list[_Token] = []
    tst = next(extract_tst_data_iter(sig.signer_info, signed=False), None)
    if tst is not None:
        tokens.append(_Token("signature time-stamp", tst, _gen_time(tst),
                             _signature_imprint(sig), TimeSource.SIGNATURE_TIMESTAMP))
    for n, dts in enumerate(sorted(later, key=lambda t: t.signed_revision), 1):
        tokens.append(_Token(f"document time-stamp {n} ({dts.field_name})", dts.signed_data,
                             _gen_time(dts.signed_data), _document_imprint(dts),
                             TimeSource.DOCUMENT_TIMESTAMP))
    return tokens


def _expired_before(outcome: AdESBasicValidationResult[Any],
                    poe: dt.datetime) -> asn1_x509.Certificate | None:
    """The first certificate of the token's path (the anchor excepted) that expired before
    ``poe``: the time-stamp cannot be trusted at that time."""
    path = outcome.api_status.validation_path if outcome.api_status is not None else None
    if path is None:
        return None
    for cert in path.iter_certs(include_root=False):
        if cert.not_valid_after < poe:
            return cert
    return None


async def validate_long_term(sig: EmbeddedPdfSignature, later: Sequence[EmbeddedPdfSignature],
                             spec: SignatureValidationSpec, at: dt.datetime,
                             known: LocalKnowledge) -> LongTermOutcome:
    """Validate ``sig`` at ``at`` with its signature time-stamp and the ``later`` document
    time-stamps as proofs of existence. ``spec`` should come from :func:`long_term_spec`;
    ``known`` is the revocation material (DSS and configured) searched for a later
    revocation of the signer's certificate."""
    messages: list[str] = []
    poe_next = at
    # One set of handlers for every check of this signature: the certificates and revocation
    # data are registered (parsed, indexed) once, and a CRL or OCSP response verified for one
    # path is not verified again for the next.
    handlers = bootstrap_validation_data_handlers(spec, _point_in_time(at))
    valid: list[_Token] = []
    first_problem: tuple[str, str] | None = None
    for token in reversed(_tokens(sig, later)):
        outcome = await ades_timestamp_validation(
            token.signed_data, spec, token.imprint, timing_info=_point_in_time(token.gen_time),
            validation_data_handlers=handlers)
        if outcome.ades_subindic.status is not AdESStatus.PASSED:
            why = (outcome.ades_subindic.standard_name,
                   f"the {token.label} of {_iso(token.gen_time)} is not valid"
                   + (f": {outcome.failure_msg}" if outcome.failure_msg else ""))
        elif (expired := _expired_before(outcome, poe_next)) is not None:
            why = (AdESIndeterminate.OUT_OF_BOUNDS_NO_POE.name,
                   f"the {token.label} of {_iso(token.gen_time)} was made with "
                   f"{describe(expired)}, which expired on {_iso(expired.not_valid_after)}, "
                   f"and no later time-stamp proves it existed before then (renew the "
                   "archive time-stamp before the TSA certificate expires)")
        else:
            valid.append(token)
            poe_next = token.gen_time
            continue
        messages.append(why[1])
        first_problem = first_problem or why
    if not valid:
        sub, text = first_problem or (AdESIndeterminate.NO_POE.name,
                                      "no time-stamp proves when the signature existed")
        return LongTermOutcome(Indication.INDETERMINATE, sub, None, TimeSource.NONE, None,
                               (text,) if text not in messages else tuple(messages), None)
    proof = valid[-1]  # the earliest valid one
    poe = proof.gen_time
    basic = await ades_basic_validation(
        sig.signed_data, spec, timing_info=_point_in_time(poe), raw_digest=sig.compute_digest(),
        validation_data_handlers=handlers)
    status = basic.ades_subindic.status
    indication = {AdESStatus.PASSED: Indication.TOTAL_PASSED,
                  AdESStatus.FAILED: Indication.TOTAL_FAILED,
                  AdESStatus.INDETERMINATE: Indication.INDETERMINATE}[status]
    sub_indication = None if status is AdESStatus.PASSED else basic.ades_subindic.standard_name
    if basic.failure_msg and status is not AdESStatus.PASSED:
        messages.append(basic.failure_msg)
    revoked_at = _revocation_time(sig.signer_cert, _issuer_of(sig.signer_cert, basic), known)
    if revoked_at is not None:
        if revoked_at > poe:
            messages.append(f"the signer's certificate was revoked on {_iso(revoked_at)}, "
                            f"after the signature existed ({_iso(poe)}): the signature "
                            "stays valid")
        else:  # EN 319 102-1 §5.6.2.4: revoked before the best signature time fails
            indication, sub_indication = Indication.TOTAL_FAILED, AdESFailure.REVOKED.name
            messages.append(f"the signer's certificate was revoked on {_iso(revoked_at)}, "
                            f"before the signature is proven to exist ({_iso(poe)})")
            revoked_at = None
    return LongTermOutcome(indication, sub_indication, poe, proof.source, revoked_at,
                           tuple(messages), basic)


def _issuer_of(cert: asn1_x509.Certificate,
               basic: AdESBasicValidationResult[Any]) -> x509.Certificate | None:
    path = basic.api_status.validation_path if basic.api_status is not None else None
    if path is None:
        return None
    try:
        issuer = path.find_issuing_authority(cert)
    except LookupError:
        return None
    der = getattr(issuer, "certificate", None)
    return x509.load_der_x509_certificate(der.dump()) if der is not None else None


def _signed_by(data: x509.CertificateRevocationList | x509.Certificate,
               issuer: x509.Certificate) -> bool:
    try:
        if isinstance(data, x509.CertificateRevocationList):
            return data.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        data.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _ocsp_responder_ok(response: ocsp_x509.OCSPResponse, issuer: x509.Certificate) -> bool:
    """The response is signed by the CA itself or by a responder certificate the CA issued."""
    for candidate in [issuer, *response.certificates]:
        if candidate != issuer and not _signed_by(candidate, issuer):
            continue
        key = candidate.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                           response.signature_hash_algorithm)  # type: ignore[arg-type]
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(response.signature, response.tbs_response_bytes,
                           ec.ECDSA(response.signature_hash_algorithm))  # type: ignore[arg-type]
            else:
                continue
            return True
        except (InvalidSignature, ValueError, TypeError):
            continue
    return False


def _revocation_time(cert: asn1_x509.Certificate, issuer: x509.Certificate | None,
                     known: LocalKnowledge) -> dt.datetime | None:
    """The earliest revocation time of ``cert`` stated by a CRL or OCSP response at hand whose
    signature verifies with its issuing CA's key (a forged statement in the document's DSS must
    neither fail a signature nor show a revocation)."""
    if issuer is None:
        return None
    times: list[dt.datetime] = []
    for container in known.known_crls:
        try:
            data = x509.load_der_x509_crl(container.crl_data.dump())
        except ValueError:
            continue
        entry = data.get_revoked_certificate_by_serial_number(cert.serial_number) \
            if data.issuer == issuer.subject else None
        if entry is not None and _signed_by(data, issuer):
            times.append(entry.revocation_date_utc)
    for ocsp_container in known.known_ocsps:
        try:
            response = ocsp_x509.load_der_ocsp_response(ocsp_container.ocsp_response_data.dump())
            if response.response_status is not ocsp_x509.OCSPResponseStatus.SUCCESSFUL:
                continue
            revoked = [single.revocation_time_utc for single in response.responses
                       if single.serial_number == cert.serial_number
                       and single.certificate_status is ocsp_x509.OCSPCertStatus.REVOKED
                       and single.revocation_time_utc is not None]
        except ValueError:
            continue
        if revoked and _ocsp_responder_ok(response, issuer):
            times.extend(revoked)
    return min(times) if times else None


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
