"""Validation policy: trust anchors, revocation requirements and where revocation data may come
from, as pyHanko's ``SignatureValidationSpec``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from asn1crypto import crl, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.errors import PathError, ValidationError
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    REQUIRE_REVINFO,
    CertRevTrustPolicy,
    FreshnessReqType,
    RevocationCheckingPolicy,
)
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from signing.sign._pyhanko import to_asn1
from signing.sign.revocation import TrustSettings, _has_revocation_data, _path, describe
from signing.validate.diffs import DIFF_POLICY

__all__ = ["SIGNER_KEY_USAGE", "pdf_spec", "signature_spec", "timing", "unobtainable_revocation"]

SIGNER_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                                       match_all_key_usages=False)


def signature_spec(trust: TrustSettings) -> SignatureValidationSpec:
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[to_asn1(c) for c in trust.trust_roots]),
        # Revocation data is required for every certificate below the anchor, and may be of any
        # age relative to the time it proves (what is embedded at signing time stays usable).
        revinfo_policy=CertRevTrustPolicy(
            REQUIRE_REVINFO if trust.require_revocation
            else RevocationCheckingPolicy.from_legacy("hard-fail"), freshness=None,
            freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION),
    )
    rule = (RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH if trust.allow_fetching
            else RevinfoOnlineFetchingRule.LOCAL_ONLY)
    return SignatureValidationSpec(
        cert_validation_policy=policy,
        # The signer's key must be for signatures: digitalSignature or nonRepudiation
        # (contentCommitment). pyHanko checks no key usage unless told to.
        key_usage_settings=SIGNER_KEY_USAGE,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=rule),
        local_knowledge=LocalKnowledge(
            known_certs=[to_asn1(c) for c in trust.other_certs],
            known_crls=[CRLContainer(crl.CertificateList.load(c)) for c in trust.crls],
            known_ocsps=[OCSPContainer.load_multi(ocsp.OCSPResponse.load(o))[0]
                         for o in trust.ocsp_responses],
        ),
    )


def pdf_spec(trust: TrustSettings) -> PdfSignatureValidationSpec:
    return PdfSignatureValidationSpec(signature_validation_spec=signature_spec(trust),
                                      diff_policy=DIFF_POLICY)


def timing(at: dt.datetime) -> ValidationTimingInfo:
    return ValidationTimingInfo(validation_time=at, best_signature_time=at,
                                point_in_time_validation=False)


async def unobtainable_revocation(trust: TrustSettings, at: dt.datetime,
                                  signer: asn1_x509.Certificate,
                                  others: Sequence[asn1_x509.Certificate], *,
                                  known: LocalKnowledge | None = None) -> str | None:
    """After a chain failure: why revocation data is missing when it is only *for now* — a
    certificate of the signer's path names a revocation source (OCSP responder or CRL) and
    neither it nor the document's data gave anything (EN 319 102-1: INDETERMINATE /
    TRY_LATER). ``None`` when the failure has another cause, or fetching is not allowed."""
    if not trust.allow_fetching:
        return None
    if known is not None:
        trust = dataclasses.replace(
            trust, crls=[*trust.crls, *(c.crl_data.dump() for c in known.known_crls)],
            ocsp_responses=[*trust.ocsp_responses,
                            *(o.ocsp_response_data.dump() for o in known.known_ocsps)])
    context = trust.context(at, hard_fail=False)
    try:
        path = await _path(context, signer, [*others, *(known.known_certs if known else ())])
    except (PathError, ValidationError):
        return None
    for cert in path.iter_certs(include_root=False):
        if not cert.ocsp_urls and not cert.crl_distribution_points:
            continue  # no source to try again later
        if not await _has_revocation_data(context, cert, path.find_issuing_authority(cert)):
            return (f"no revocation data could be obtained for {describe(cert)} (its OCSP "
                    "responder and CRL did not answer); try again later")
    return None
