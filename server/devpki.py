"""The development PKI that ``vnegov init`` creates for the embedded deployment.

A root CA (20 years), an issuing CA, the certificate authority's OCSP responder and time-stamping
unit, the server's TLS certificate, and client certificates for two sample provincial systems and
the national portal, all ECDSA P-256 and issued with :mod:`signing.ca`. CA, responder, TSA and
server keys are encrypted PKCS#8 files protected by a random passphrase kept in
``secrets/pki-passphrase``; the sample clients' keys are plain PKCS#8 files readable only by their
owner, as a client system would keep them.

The sample agency codes are illustrative, in the QCVN 102 form.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.ca import (
    CA_KEY_USAGES,
    AuthorityUrls,
    CertificateSpec,
    IssuingAuthority,
    KeyAlgorithm,
    KeyUsages,
    SubjectData,
    default_profiles,
    dump_encrypted_private_key,
    generate_private_key,
    issue_certificate,
    new_validity,
)

__all__ = [
    "SAMPLE_AGENCIES",
    "SAMPLE_CLIENTS",
    "DevPki",
    "SampleAgency",
    "SampleClient",
    "create_dev_pki",
    "demo_sections",
]


@dataclass(frozen=True)
class SampleClient:
    file_name: str
    common_name: str
    organisation: str
    agency_code: str
    province_code: str | None
    scopes: tuple[str, ...]
    provinces: tuple[str, ...]


# What a provincial public-service system does: read consented identities, request certificates
# for its officials, sign and verify documents, collect fees, refund, issue receipts, reconcile.
_PROVINCIAL_SCOPES = (
    "identity.read", "signing.issue", "documents.sign", "documents.verify",
    "documents.archive",
    "documents.remote_sign", "payments.collect", "payments.refund", "payments.receipts",
    "payments.reconcile", "payments.accounts",
)
# The national portal also manages identities and certificates, and reads the audit log.
_NATIONAL_SCOPES = (*_PROVINCIAL_SCOPES, "identity.manage", "signing.admin", "audit.read")

SAMPLE_CLIENTS = (
    SampleClient("dvc-hcm", "dvc-hcm", "UBND Thành phố Hồ Chí Minh", "000.00.00.H29", "79",
                 _PROVINCIAL_SCOPES, ("79",)),
    SampleClient("dvc-hanoi", "dvc-hanoi", "UBND Thành phố Hà Nội", "000.00.00.H26", "01",
                 _PROVINCIAL_SCOPES, ("01",)),
    SampleClient("national-portal", "dichvucong-quocgia", "Văn phòng Chính phủ", "000.00.00.G22",
                 None, _NATIONAL_SCOPES, ("*",)),
)


@dataclass(frozen=True)
class SampleAgency:
    """A collecting and signing body of the demo: its electronic seal signs documents and
    e-receipts; the bank account receives fees (illustrative values)."""

    agency_code: str
    name: str
    parent_body: str
    province_code: str
    tax_code: str
    address: str
    account: tuple[str, str, str] | None  # bank BIN, account number, account name (ASCII)

    @property
    def stem(self) -> str:
        return self.agency_code.replace(".", "-")


SAMPLE_AGENCIES = (
    SampleAgency("000.00.00.H29", "Ủy ban nhân dân Thành phố Hồ Chí Minh", "Chính phủ", "79",
                 "0301234567", "86 Lê Thánh Tôn, Phường Sài Gòn, TP. Hồ Chí Minh",
                 ("970415", "113000012345", "UBND TP Ho Chi Minh")),
    SampleAgency("000.00.13.H29", "Ủy ban nhân dân Phường Bến Thành",
                 "Ủy ban nhân dân Thành phố Hồ Chí Minh", "79", "0309876543",
                 "92 Nguyễn Trãi, Phường Bến Thành, TP. Hồ Chí Minh", None),
    SampleAgency("000.00.00.H26", "Ủy ban nhân dân Thành phố Hà Nội", "Chính phủ", "01",
                 "0101234567", "12 Lê Lai, Phường Hoàn Kiếm, Hà Nội",
                 ("970436", "0011001234567", "UBND TP Ha Noi")),
)


@dataclass(frozen=True)
class DevPki:
    directory: Path
    passphrase_file: Path

    @property
    def root(self) -> Path:
        return self.directory / "root-ca.pem"

    @property
    def issuing(self) -> Path:
        return self.directory / "issuing-ca.pem"

    @property
    def ocsp_responder(self) -> Path:
        return self.directory / "ocsp-responder.pem"

    @property
    def tsa(self) -> Path:
        return self.directory / "tsa.pem"

    @property
    def server_chain(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key.pem"

    def client_chain(self, name: str) -> Path:
        return self.directory / "clients" / f"{name}.pem"

    def client_key(self, name: str) -> Path:
        return self.directory / "clients" / f"{name}.key.pem"

    def agency_chain(self, agency: SampleAgency) -> Path:
        return self.directory / "agencies" / f"{agency.stem}.pem"

    def agency_key(self, agency: SampleAgency) -> Path:
        return self.directory / "agencies" / f"{agency.stem}.key.pem"


def _name(cn: str, org: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def create_dev_pki(directory: Path, passphrase_file: Path, *, public_url: str,
                   server_names: tuple[str, ...] = ("localhost",),
                   now: dt.datetime | None = None) -> DevPki:
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    passphrase = secrets.token_urlsafe(32).encode()
    _write(passphrase_file, passphrase + b"\n", 0o600)
    pki = DevPki(directory, passphrase_file)
    start = now - dt.timedelta(minutes=5)
    org = "vnegov development"

    root_key = generate_private_key(KeyAlgorithm.EC_P256)
    root = issue_certificate(CertificateSpec(
        subject=_name("vnegov Development Root CA", org), not_before=start,
        not_after=start + dt.timedelta(days=365 * 20), key_usages=CA_KEY_USAGES, is_ca=True,
    ), root_key.public_key(), root_key)

    issuing_key = generate_private_key(KeyAlgorithm.EC_P256)
    issuing = issue_certificate(CertificateSpec(
        subject=_name("vnegov Development Issuing CA G1", org), not_before=start,
        not_after=start + dt.timedelta(days=365 * 10), key_usages=CA_KEY_USAGES, is_ca=True,
        path_length=0,
        crl_urls=(f"{public_url}/pki/crl/root-ca.crl",),
        ca_issuers_urls=(f"{public_url}/pki/certs/root-ca.cer",),
    ), issuing_key.public_key(), root_key, root)

    # The CA's own OCSP responder and time-stamping unit, from the CA's profiles.
    authority = IssuingAuthority("issuing-ca", issuing, issuing_key, AuthorityUrls(
        crl=f"{public_url}/pki/crl/issuing-ca.crl",
        delta_crl=f"{public_url}/pki/crl/issuing-ca-delta.crl", ocsp=f"{public_url}/pki/ocsp",
        ca_issuers=f"{public_url}/pki/certs/issuing-ca.cer"), chain=(issuing,))
    for profile_id, cn, cert_path in (("ocsp-responder", "vnegov OCSP Responder",
                                       pki.ocsp_responder),
                                      ("timestamping", "vnegov Time-Stamping Unit", pki.tsa)):
        profile = default_profiles().get(profile_id)
        service_key = generate_private_key(KeyAlgorithm.EC_P256)
        cert = authority.issue(profile, SubjectData(system_name=cn, parent_body=org),
                               service_key.public_key(), new_validity(
                                   profile, now=start, days=None,
                                   issuer_not_after=issuing.not_valid_after_utc))
        _write(cert_path, _pem(cert, issuing))
        _write(cert_path.with_suffix(".key.pem"),
               dump_encrypted_private_key(service_key, passphrase), 0o600)
    server_key = generate_private_key(KeyAlgorithm.EC_P256)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
    sans += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    server = issue_certificate(CertificateSpec(
        subject=_name(server_names[0], org, "vnegov server"),
        not_after=start + dt.timedelta(days=825),
        key_usages=KeyUsages(digital_signature=True),
        extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,), subject_alt_names=sans,
        not_before=start, crl_urls=(f"{public_url}/pki/crl/issuing-ca.crl",),
        ocsp_urls=(f"{public_url}/pki/ocsp",),
        ca_issuers_urls=(f"{public_url}/pki/certs/issuing-ca.cer",),
    ), server_key.public_key(), issuing_key, issuing)

    _write(pki.root, _pem(root))
    _write(pki.issuing, _pem(issuing))
    _write(directory / "root-ca.key.pem", dump_encrypted_private_key(root_key, passphrase), 0o600)
    _write(directory / "issuing-ca.key.pem",
           dump_encrypted_private_key(issuing_key, passphrase), 0o600)
    _write(pki.server_chain, _pem(server, issuing))
    _write(pki.server_key, dump_encrypted_private_key(server_key, passphrase), 0o600)

    def issue(profile_id: str, subject: SubjectData, key: ec.EllipticCurvePrivateKey
              ) -> x509.Certificate:
        profile = default_profiles().get(profile_id)
        return authority.issue(profile, subject, key.public_key(), new_validity(
            profile, now=start, days=None, issuer_not_after=issuing.not_valid_after_utc))

    for client in SAMPLE_CLIENTS:  # calling systems: the device profile (clientAuth)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue("device", SubjectData(
            system_name=client.common_name, parent_body=client.organisation,
            unit="hệ thống thông tin", agency_code=client.agency_code,
            province_code=client.province_code or ""), key)
        _write(pki.client_chain(client.file_name), _pem(cert, issuing))
        _write(pki.client_key(client.file_name), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), 0o600)

    for agency in SAMPLE_AGENCIES:  # electronic seals: the organisation profile
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue("organisation", SubjectData(
            agency_name=agency.name, parent_body=agency.parent_body,
            agency_code=agency.agency_code, province_code=agency.province_code), key)
        _write(pki.agency_chain(agency), _pem(cert, issuing))
        _write(pki.agency_key(agency), dump_encrypted_private_key(key, passphrase), 0o600)
    return pki


def issue_dev_certificate(pki: DevPki, public_url: str, profile_id: str, subject: SubjectData,
                          public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
                          ) -> list[x509.Certificate]:
    """Certify ``public_key`` with the development issuing CA (the chain, subject first). For the
    embedded demo only: a real official's certificate comes from a licensed CA."""
    from signing.ca.keys import load_private_key

    passphrase = pki.passphrase_file.read_bytes().strip()
    issuing = x509.load_pem_x509_certificate(pki.issuing.read_bytes())
    key = load_private_key((pki.directory / "issuing-ca.key.pem").read_bytes(), passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the development issuing CA key is not the EC key `vnegov init` made")
    authority = IssuingAuthority("issuing-ca", issuing, key, AuthorityUrls(
        crl=f"{public_url}/pki/crl/issuing-ca.crl",
        delta_crl=f"{public_url}/pki/crl/issuing-ca-delta.crl", ocsp=f"{public_url}/pki/ocsp",
        ca_issuers=f"{public_url}/pki/certs/issuing-ca.cer"), chain=(issuing,))
    profile = default_profiles().get(profile_id)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    cert = authority.issue(profile, subject, public_key, new_validity(
        profile, now=now, days=None, issuer_not_after=issuing.not_valid_after_utc))
    return [cert, issuing]


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class DevToken:
    """The embedded default's PKCS#11 token: a SoftHSM2 token in the data directory, holding the
    officials' keys for remote signing (``vnegov documents key-generate`` or
    ``softhsm2-util --import``; docs/document-signing.md)."""

    label: str
    directory: Path  # the token store
    conf: Path  # SOFTHSM2_CONF for every process that opens it
    pin_file: Path
    module: str = SOFTHSM_MODULE


def create_dev_token(data_dir: Path, *, force: bool = False,
                     label: str = "vnegov") -> DevToken | None:
    """Create the SoftHSM2 token of the embedded default in ``data_dir/softhsm`` (user PIN in
    ``secrets/token-pin``, security officer PIN in ``secrets/token-so-pin``); ``None`` when
    SoftHSM2 is not installed."""
    import shutil
    import subprocess

    tool = shutil.which("softhsm2-util")
    if tool is None or not Path(SOFTHSM_MODULE).exists():
        return None
    store = data_dir / "softhsm"
    tokens = store / "tokens"
    if force and tokens.exists():
        shutil.rmtree(tokens)
    tokens.mkdir(parents=True, exist_ok=True)
    os.chmod(store, 0o700)
    conf = store / "softhsm2.conf"
    _write(conf, (f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                  "log.level = ERROR\n").encode(), 0o600)
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    pin_file = data_dir / "secrets" / "token-pin"
    _write(pin_file, pin.encode() + b"\n", 0o600)
    _write(data_dir / "secrets" / "token-so-pin", so_pin.encode() + b"\n", 0o600)
    subprocess.run([tool, "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", so_pin], check=True, capture_output=True,
                   env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    return DevToken(label, tokens, conf, pin_file)


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def demo_sections(pki: DevPki, public_url: str, data_dir: Path,
                  token: DevToken | None = None) -> str:
    """``[documents]`` and ``[payments]`` for the embedded demo: the sample agencies' seals sign
    documents and e-receipts, the CA's own time-stamping unit stamps them, the development root
    is trusted, and the payment channels get random secrets."""
    def rel(path: Path) -> str:  # relative to the data directory, as the whole file is
        return _toml_str(str(path.relative_to(data_dir)))

    passphrase = rel(pki.passphrase_file)
    lines = [
        "# The embedded demo's document signing: agencies' seals from the development CA.",
        "[documents]", f"tsa_url = {_toml_str(public_url + '/pki/tsa')}",
        f"trust_roots = [{rel(pki.root)}]",
    ]
    if token is not None:
        lines += ["# Officials' keys for remote signing: the SoftHSM2 token `vnegov init` created.",
                  f"token_module = {_toml_str(token.module)}",
                  f"token_label = {_toml_str(token.label)}",
                  f"token_pin_file = {rel(token.pin_file)}",
                  f"softhsm2_conf = {rel(token.conf)}"]
    for agency in SAMPLE_AGENCIES:
        lines += ["", "[[documents.signers]]", f"name = {_toml_str(agency.stem)}",
                  f"agency_code = {_toml_str(agency.agency_code)}",
                  f"certificate_file = {rel(pki.agency_chain(agency))}",
                  f"key_file = {rel(pki.agency_key(agency))}",
                  f"key_passphrase_file = {passphrase}"]
    lines += [
        "", "# The embedded demo's collecting bodies, accounts and channel secrets.",
        "[payments]", f"platform_partner_code = {_toml_str(SAMPLE_AGENCIES[0].agency_code)}",
        f"platform_secret = {_toml_str(secrets.token_urlsafe(24))}",
        f"bank_notification_secret = {_toml_str(secrets.token_urlsafe(24))}",
        'sender_code = "V0301234567"',
        f"receipt_qr_roots_file = {rel(pki.root)}  # the root the QR check page trusts",
    ]
    for agency in SAMPLE_AGENCIES:
        lines += ["", "[[payments.organisations]]",
                  f"agency_code = {_toml_str(agency.agency_code)}",
                  f"name = {_toml_str(agency.name)}", f"tax_code = {_toml_str(agency.tax_code)}",
                  f"address = {_toml_str(agency.address)}",
                  f"key_file = {rel(pki.agency_key(agency))}",
                  f"cert_file = {rel(pki.agency_chain(agency))}",
                  f"key_passphrase_file = {passphrase}"]
    for agency in SAMPLE_AGENCIES:
        if agency.account is not None:
            bank_bin, number, name = agency.account
            lines += ["", "[[payments.accounts]]",
                      f"agency_code = {_toml_str(agency.agency_code)}",
                      f"bank_bin = {_toml_str(bank_bin)}",
                      f"account_number = {_toml_str(number)}",
                      f"account_name = {_toml_str(name)}"]
    return "\n".join(lines) + "\n"
