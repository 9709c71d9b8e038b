"""Trust anchors and revocation data for long-term (B-LT, B-LTA) signatures.

Before an LT/LTA signature is made, :func:`require_revocation_data` checks that revocation data
(an OCSP response or a CRL, RFC 6960 / RFC 5280) can be obtained for every certificate of the
signer's chain and of the TSA's chain below the trust anchor, and refuses to sign otherwise,
naming the certificate. pyHanko then validates the chains with that data (hard-fail) and embeds it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.errors import (
    CRLFetchError,
    OCSPFetchError,
    PathError,
    ValidationError,
)
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.path import ValidationPath

from signing.sign._pyhanko import to_asn1
from signing.sign.errors import RevocationUnavailable
from signing.sign.signers import Signer

__all__ = ["TrustSettings", "describe", "require_revocation_data"]


def describe(cert: asn1_x509.Certificate) -> str:
    """``subject (serial 0x...)``: how a certificate is named in errors and reports."""
    return f"{cert.subject.human_friendly} (serial {cert.serial_number:#x})"


@dataclass(frozen=True, slots=True)
class TrustSettings:
    """Trust anchors, extra certificates, and where revocation data comes from.

    ``allow_fetching``: fetch OCSP responses and CRLs from the URLs in the certificates (the
    default); otherwise only ``crls`` and ``ocsp_responses`` (DER) are used.
    """

    trust_roots: Sequence[x509.Certificate]
    other_certs: Sequence[x509.Certificate] = ()
    allow_fetching: bool = True
    crls: Sequence[bytes] = ()
    ocsp_responses: Sequence[bytes] = ()
    fetch_timeout: float = 10.0
    # Require revocation data for every certificate below the anchor (EN 319 102-1 practice,
    # and this project's default). When False, only certificates that name a revocation
    # source (OCSP or CRL URL) are checked: for closed test or demo PKIs without responders.
    require_revocation: bool = True
    # Seconds to wait after the signature time-stamp before collecting the revocation data of a
    # B-LT/B-LTA signature, so that the data is issued after the time it must vouch for.
    grace_period: float = 1.1

    def context(self, at: dt.datetime, *, hard_fail: bool = True) -> ValidationContext:
        return ValidationContext(
            trust_roots=[to_asn1(c) for c in self.trust_roots],
            other_certs=[to_asn1(c) for c in self.other_certs],
            moment=at, allow_fetching=self.allow_fetching,
            crls=list(self.crls), ocsps=list(self.ocsp_responses),
            revocation_mode=("require" if self.require_revocation else "hard-fail")
            if hard_fail else "soft-fail",
            fetcher_backend=RequestsFetcherBackend(per_request_timeout=self.fetch_timeout),
        )


async def _has_revocation_data(context: ValidationContext, cert: asn1_x509.Certificate,
                               authority: Authority) -> bool:
    manager = context.revinfo_manager
    try:
        ocsps = await manager.async_retrieve_ocsps(cert, authority)
    except OCSPFetchError:
        ocsps = []
    if any(_ocsp_covers(resp, cert) for resp in ocsps):
        return True
    try:
        crls = await manager.async_retrieve_crls(cert)
    except CRLFetchError:
        crls = []
    return any(c.crl_data.issuer == cert.issuer for c in crls)


def _ocsp_covers(container: object, cert: asn1_x509.Certificate) -> bool:
    try:
        response = container.ocsp_response_data  # type: ignore[attr-defined]
        if response["response_status"].native != "successful":
            return False
        basic = response["response_bytes"]["response"].parsed
        return any(single["cert_id"]["serial_number"].native == cert.serial_number
                   for single in basic["tbs_response_data"]["responses"])
    except (KeyError, AttributeError, ValueError, TypeError):
        return False


async def _path(context: ValidationContext, cert: asn1_x509.Certificate,
                intermediates: Sequence[asn1_x509.Certificate]) -> ValidationPath:
    # Soft-fail here: this pass only builds the path; revocation is checked certificate by
    # certificate below so that the error can name the one that lacks data.
    validator = CertificateValidator(cert, intermediate_certs=list(intermediates),
                                     validation_context=context)
    return await validator.async_validate_path()


async def require_revocation_data(trust: TrustSettings, at: dt.datetime, signer: Signer,
                                  timestamper: TimeStamper) -> None:
    """Raise :class:`RevocationUnavailable` naming the first certificate of the signer's or the
    TSA's chain for which no revocation data can be obtained."""
    # Soft-fail while building the paths: revocation is then checked certificate by
    # certificate, so that the error names the one that lacks data.
    context = trust.context(at, hard_fail=False)
    leaf = to_asn1(signer.certificate)
    chain = [to_asn1(c) for c in signer.chain]
    paths: list[ValidationPath] = []
    try:
        paths.append(await _path(context, leaf, chain))
    except (PathError, ValidationError) as exc:
        raise RevocationUnavailable(
            f"the signer's certificate {describe(leaf)} does not chain to a trust anchor",
            metadata={"certificate": describe(leaf)}) from exc
    try:
        async for ts_path in timestamper.validation_paths(context):  # type: ignore[no-untyped-call]
            paths.append(ts_path)
    except (PathError, ValidationError) as exc:
        raise RevocationUnavailable("the TSA's certificate does not chain to a trust anchor",
                                    metadata={"certificate": "time-stamping authority"}) from exc
    for path in paths:
        for cert in path.iter_certs(include_root=False):
            authority = path.find_issuing_authority(cert)
            if not await _has_revocation_data(context, cert, authority):
                raise RevocationUnavailable(
                    f"no revocation data could be obtained for {describe(cert)}",
                    metadata={"certificate": describe(cert)})
