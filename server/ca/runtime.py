"""Everything the CA needs at run time, loaded once from the settings: the issuing authority with
its key, the root, the OCSP responder identity, the TSA, the profiles, and the in-memory status
index and OCSP response cache shared by the servicer, the HTTP endpoints and the workers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from server.ca.keys import KeyUnavailable, open_key_source
from server.ca.settings import CaSettings
from signing.ca import (
    AuthorityUrls,
    IssuingAuthority,
    KeySource,
    OcspResponder,
    ProfileRegistry,
    ResponderIdentity,
    ResponseCache,
    StatusIndex,
    default_profiles,
    load_profiles,
)
from signing.ca.oids import TSA_POLICY
from signing.errors import SigningError
from signing.pkcs11 import Token
from signing.tsa import TimeStampAuthority, TsaSettings

__all__ = ["CaRuntime", "load_runtime", "urls"]


def urls(public_url: str, name: str) -> AuthorityUrls:
    base = public_url.rstrip("/")
    return AuthorityUrls(crl=f"{base}/pki/crl/{name}.crl",
                         delta_crl=f"{base}/pki/crl/{name}-delta.crl",
                         ocsp=f"{base}/pki/ocsp", ca_issuers=f"{base}/pki/certs/{name}.cer")


@dataclass
class CaRuntime:
    settings: CaSettings
    profiles: ProfileRegistry
    authority: IssuingAuthority
    root: x509.Certificate
    root_key: CertificateIssuerPrivateKeyTypes | None
    root_crl: bytes | None
    responder: OcspResponder | None
    tsa: TimeStampAuthority | None
    key_source: KeySource
    token: Token | None = None
    index: StatusIndex = field(default_factory=StatusIndex)
    cache: ResponseCache = field(default_factory=ResponseCache)

    @property
    def holidays(self) -> frozenset[dt.date]:
        return self.settings.holiday_dates

    @property
    def root_name(self) -> str:
        return "root-ca"

    def close(self) -> None:
        if self.token is not None:
            self.token.close()


def _certificate(path: str, what: str) -> x509.Certificate:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the {what} certificate {path}: {exc.strerror}") \
            from None
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        try:
            return x509.load_der_x509_certificate(data)
        except ValueError:
            raise KeyUnavailable(f"{path} holds no certificate") from None


def load_runtime(settings: CaSettings, public_url: str) -> CaRuntime:
    """Load certificates and keys; raises a :class:`signing.errors.SigningError` saying what is
    missing."""
    if not settings.configured:
        raise KeyUnavailable("the certificate authority is not configured ([ca] or [pki])")
    profiles = default_profiles()
    if settings.profiles_file:
        profiles = load_profiles(Path(settings.profiles_file).read_bytes())
    if settings.renewal is not None:
        profiles = profiles.with_renewal({"*": settings.renewal})
    keys, token = open_key_source(settings)
    issuing = _certificate(settings.issuing_certificate, "issuing CA")
    root = _certificate(settings.root_certificate, "root CA") if settings.root_certificate \
        else issuing
    chain = (issuing,) if root != issuing else ()
    authority = IssuingAuthority(settings.name, issuing, keys.signing_key(settings.issuing_key),
                                 urls(public_url, settings.name), chain=chain)
    root_key = None
    if settings.root_key and root != issuing:
        try:
            root_key = keys.signing_key(settings.root_key)
        except SigningError:
            root_key = None  # an offline root: its CRL comes from root_crl
    root_crl = None
    if settings.root_crl:
        root_crl = Path(settings.root_crl).read_bytes()
    identity = None
    if settings.ocsp_certificate and Path(settings.ocsp_certificate).exists():
        identity = ResponderIdentity(issuing, _certificate(settings.ocsp_certificate, "OCSP"),
                                     keys.signing_key(settings.ocsp_key))
    tsa = None
    if settings.tsa_certificate and Path(settings.tsa_certificate).exists():
        cfg = settings.tsa
        tsa = TimeStampAuthority(
            _certificate(settings.tsa_certificate, "TSA"), keys.signing_key(settings.tsa_key),
            chain=chain, settings=TsaSettings(
                policy_oid=cfg.policy_oid or TSA_POLICY.dotted_string,
                accuracy_seconds=cfg.accuracy_seconds, accuracy_millis=cfg.accuracy_millis,
                hash_algorithms=cfg.hash_algorithms))
    runtime = CaRuntime(settings=settings, profiles=profiles, authority=authority, root=root,
                        root_key=root_key, root_crl=root_crl, responder=None, tsa=tsa,
                        key_source=keys, token=token,
                        cache=ResponseCache(max_entries=settings.ocsp_cache_entries))
    runtime.index.add_issuer(authority.key_id, issuing.subject)
    if identity is not None:
        runtime.responder = OcspResponder(
            [identity], runtime.index.lookup,
            validity=dt.timedelta(seconds=settings.ocsp_validity_seconds))
    runtime.index.on_change(runtime.cache.invalidate)
    return runtime
