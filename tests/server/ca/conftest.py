"""A real server with the certificate authority configured on the test PKI's issuing CA, so that
certificates the CA issues are trusted by the server's own mutual TLS."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from server.storage.db import Database
from signing.ca import (
    AuthorityUrls,
    IssuingAuthority,
    SubjectData,
    default_profiles,
    dump_encrypted_private_key,
    new_validity,
)
from tests.support.pki import PASSPHRASE, TestPki, pem
from tests.support.server import RunningServer, free_port, running_server
from vnegov.signing.v1 import certificate_authority_pb2 as pb
from vnegov.signing.v1 import certificate_authority_pb2_grpc as pb_grpc

CALLERS = [
    {"agency_code": "000.00.00.H29", "name": "dvc-hcm", "scopes": ["signing.issue"],
     "provinces": ["79"]},
    {"agency_code": "000.00.00.H26", "scopes": ["signing.issue"], "provinces": ["01"]},
    {"agency_code": "000.00.00.G22", "scopes": ["signing.issue", "signing.admin", "audit.read",
                                                "identity.read"], "provinces": ["*"]},
]

SUBJECT_HCM = {"full_name": "Nguyễn Văn An", "title": "Chuyên viên",
               "unit": "Phòng Văn hóa - Xã hội", "parent_body": "UBND Phường Sài Gòn",
               "agency_code": "000.00.31.H29", "province_code": "79",
               "personal_id": "079084000999"}


def write_ca_files(pki: TestPki, directory: Path, base_url: str,
                   hierarchy: Any = None) -> dict[str, Any]:
    """The [ca] section for the test PKI's issuing CA (or ``hierarchy``'s), with a delegated OCSP
    responder and a TSA issued by it; keys in encrypted files."""
    directory.mkdir(parents=True, exist_ok=True)
    if hierarchy is not None:
        issuing_cert, issuing_key = hierarchy.issuing, hierarchy.issuing_key
        root_cert, root_key = hierarchy.root, hierarchy.root_key
    else:
        issuing_cert, issuing_key = pki.issuing.cert, pki.issuing.key
        root_cert, root_key = pki.root.cert, pki.root.key
    authority = IssuingAuthority("issuing-ca", issuing_cert, issuing_key, AuthorityUrls(
        crl=f"{base_url}/pki/crl/issuing-ca.crl", delta_crl=f"{base_url}/pki/crl/issuing-ca-delta.crl",
        ocsp=f"{base_url}/pki/ocsp", ca_issuers=f"{base_url}/pki/certs/issuing-ca.cer"))
    files: dict[str, Any] = {}
    for name, cert, key in (("issuing", issuing_cert, issuing_key), ("root", root_cert, root_key)):
        (directory / f"{name}.pem").write_bytes(pem(cert))
        (directory / f"{name}.key.pem").write_bytes(dump_encrypted_private_key(key, PASSPHRASE))
    now = dt.datetime.now(dt.UTC)
    for name, profile_id in (("ocsp", "ocsp-responder"), ("tsa", "timestamping")):
        profile = default_profiles().get(profile_id)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = authority.issue(profile, SubjectData(system_name=f"test {name}",
                                                    parent_body="vnegov tests"),
                               key.public_key(), new_validity(
                                   profile, now=now - dt.timedelta(minutes=5), days=None,
                                   issuer_not_after=issuing_cert.not_valid_after_utc))
        (directory / f"{name}.pem").write_bytes(pem(cert, issuing_cert))
        (directory / f"{name}.key.pem").write_bytes(dump_encrypted_private_key(key, PASSPHRASE))
    (directory / "passphrase").write_bytes(PASSPHRASE)
    files.update(
        issuing_certificate=str(directory / "issuing.pem"),
        issuing_key=str(directory / "issuing.key.pem"),
        root_certificate=str(directory / "root.pem"), root_key=str(directory / "root.key.pem"),
        ocsp_certificate=str(directory / "ocsp.pem"), ocsp_key=str(directory / "ocsp.key.pem"),
        tsa_certificate=str(directory / "tsa.pem"), tsa_key=str(directory / "tsa.key.pem"),
        key_passphrase_file=str(directory / "passphrase"), status_poll_seconds=0.2)
    return files


def database_url(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


@dataclass
class CaServer:
    server: RunningServer
    pki: TestPki
    directory: Path

    @property
    def http(self) -> str:
        return self.server.http_url

    def stub(self, client: Any = None) -> pb_grpc.CertificateAuthorityServiceStub:
        return pb_grpc.CertificateAuthorityServiceStub(
            self.server.channel(client or self.pki.portal))


@dataclass
class CaServerFactory:
    pki: TestPki
    tmp_path: Path
    url: str

    def config(self, hierarchy: Any = None, port: int = 0, **ca: Any
               ) -> tuple[int, dict[str, Any]]:
        port = port or free_port()
        base = f"http://127.0.0.1:{port}"
        section = write_ca_files(self.pki, self.tmp_path / "ca", base, hierarchy)
        section.update(ca)
        extra = {"ca": section, "auth": {"callers": CALLERS, "plaintext_caller": "000.00.00.G22"},
                 "server": {"public_url": base}}
        return port, extra


@pytest.fixture
async def ca_server(pki: TestPki, tmp_path: Path, db: Database) -> AsyncIterator[CaServer]:
    port, extra = CaServerFactory(pki, tmp_path, database_url(db)).config()
    async with running_server(pki, tmp_path, database_url(db), http_port=port,
                              extra=extra) as srv:
        yield CaServer(srv, pki, tmp_path)


@pytest.fixture
async def ca_server_sqlite(pki: TestPki, tmp_path: Path, sqlite_db: Database
                           ) -> AsyncIterator[CaServer]:
    port, extra = CaServerFactory(pki, tmp_path, database_url(sqlite_db)).config()
    async with running_server(pki, tmp_path, database_url(sqlite_db), http_port=port,
                              extra=extra) as srv:
        yield CaServer(srv, pki, tmp_path)


def csr_for(key: Any, cn: str = "subscriber") -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .sign(key, algorithm))
    return request.public_bytes(serialization.Encoding.PEM)


def error_reason(err: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


async def issue(ca: CaServer, *, client: Any = None, profile: str = "individual",
                subject: dict[str, Any] | None = None, key: Any = None, csr: bytes = b"",
                **kwargs: Any) -> tuple[pb.CertificateRequest, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    if client is None:  # the national operator, acting for TP. Hồ Chí Minh's people's committee
        kwargs.setdefault("managing_body", "000.00.00.H29")
    request = await ca.stub(client).CreateCertificateRequest(pb.CreateCertificateRequestRequest(
        profile=profile, subject=pb.CertificateSubject(**(subject or SUBJECT_HCM)),
        csr=csr or csr_for(key), **kwargs))
    return request, key
