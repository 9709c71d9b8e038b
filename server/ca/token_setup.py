"""``vnegov ca token init``: put the CA's signing keys in the PKCS#11 token.

The issuing CA, OCSP responder and TSA keys are generated inside the token (sensitive, never
extractable) under the labels the ``[ca]`` section names; the root certifies the issuing CA (the
root's key is an encrypted file kept offline apart from this ceremony), and the new issuing CA
certifies the responder and the TSA. The certificates are written to the paths ``[ca]`` names.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from server.ca.keys import KeyUnavailable, open_key_source
from server.ca.runtime import urls
from server.ca.settings import CaSettings
from server.config import Config
from signing.ca import (
    CA_KEY_USAGES,
    CertificateSpec,
    IssuingAuthority,
    KeyAlgorithm,
    SubjectData,
    default_profiles,
    issue_certificate,
    load_private_key,
    new_validity,
)
from signing.pkcs11 import TokenKeySource

__all__ = ["initialise_token"]


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def initialise_token(config: Config, *, algorithm: str = "ec-p256", force: bool = False,
                     root_key_file: str = "", now: dt.datetime | None = None) -> list[Path]:
    settings = CaSettings.for_server(config)
    if settings.key_source != "pkcs11":
        raise KeyUnavailable("set ca.key_source = 'pkcs11' (and [ca.pkcs11]) first")
    targets = [Path(p) for p in (settings.issuing_certificate, settings.ocsp_certificate,
                                 settings.tsa_certificate)]
    if not force and any(p.exists() for p in targets):
        raise KeyUnavailable("certificate files exist already (use --force to replace them)")
    root_pem = Path(settings.root_certificate).read_bytes()
    root = x509.load_pem_x509_certificates(root_pem)[0]
    key_file = root_key_file or str(Path(config.pki.directory or ".") / "root-ca.key.pem")
    passphrase = Path(settings.key_passphrase_file or config.pki.key_passphrase_file
                      ).read_bytes().strip()
    root_key = load_private_key(Path(key_file).read_bytes(), passphrase)
    keys, token = open_key_source(settings)
    assert isinstance(keys, TokenKeySource) and token is not None
    alg = KeyAlgorithm(algorithm)
    for label in (settings.issuing_key, settings.ocsp_key, settings.tsa_key):
        token.generate_key(label, alg)
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    start = now - dt.timedelta(minutes=5)
    base = config.server.public_url.rstrip("/")
    org = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org_name = str(org[0].value) if org else "vnegov"
    issuing_key = keys.signing_key(settings.issuing_key)
    issuing = issue_certificate(CertificateSpec(
        subject=x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
                           x509.NameAttribute(NameOID.COMMON_NAME,
                                              f"vnegov Issuing CA {now:%Y%m%d}")]),
        not_before=start,
        not_after=min(start + dt.timedelta(days=365 * 10), root.not_valid_after_utc),
        key_usages=CA_KEY_USAGES, is_ca=True, path_length=0,
        crl_urls=(f"{base}/pki/crl/root-ca.crl",),
        ca_issuers_urls=(f"{base}/pki/certs/root-ca.cer",),
    ), issuing_key.public_key(), root_key, root)  # type: ignore[arg-type]
    authority = IssuingAuthority(settings.name, issuing, issuing_key,
                                 urls(base, settings.name), chain=(issuing,))
    written = []
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    targets[0].write_bytes(_pem(issuing))
    written.append(targets[0])
    for profile_id, label, cn, path in (
            ("ocsp-responder", settings.ocsp_key, "vnegov OCSP Responder", targets[1]),
            ("timestamping", settings.tsa_key, "vnegov Time-Stamping Unit", targets[2])):
        profile = default_profiles().get(profile_id)
        cert = authority.issue(profile, SubjectData(system_name=cn, parent_body=org_name),
                               keys.signing_key(label).public_key(),
                               new_validity(profile, now=start, days=None,
                                            issuer_not_after=issuing.not_valid_after_utc))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_pem(cert, issuing))
        written.append(path)
    token.close()
    return written
