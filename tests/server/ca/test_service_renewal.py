"""The CA renews its own OCSP-responder and time-stamping certificates before they expire."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from server.storage.db import Database
from signing.ca import (
    AuthorityUrls,
    IssuingAuthority,
    default_profiles,
    load_private_key,
    new_validity,
)
from signing.ca.subject import SubjectData
from tests.server.ca.conftest import CaServer, CaServerFactory, database_url, issue
from tests.support.pki import PASSPHRASE, TestPki, pem
from tests.support.server import running_server
from vnegov.signing.v1 import certificate_authority_pb2 as pb


def _expiring(pki: TestPki, key_file: Path, profile_id: str, days: int) -> x509.Certificate:
    """A certificate for the key in ``key_file`` that expires in ``days`` days."""
    key = load_private_key(key_file.read_bytes(), PASSPHRASE)
    authority = IssuingAuthority("issuing-ca", pki.issuing.cert, pki.issuing.key, AuthorityUrls(
        crl="http://x/crl", delta_crl="http://x/delta", ocsp="http://x/ocsp",
        ca_issuers="http://x/ca"))
    profile = default_profiles().get(profile_id)
    now = dt.datetime.now(dt.UTC)
    return authority.issue(profile, SubjectData(system_name=f"old {profile_id}",
                                                parent_body="vnegov tests"),
                           key.public_key(),  # type: ignore[arg-type]
                           new_validity(profile, now=now - dt.timedelta(days=80), days=80 + days,
                                        issuer_not_after=pki.issuing.cert.not_valid_after_utc))


@pytest.fixture
async def ca(pki: TestPki, tmp_path: Path, sqlite_db: Database):  # type: ignore[no-untyped-def]
    port, extra = CaServerFactory(pki, tmp_path, database_url(sqlite_db)).config()
    files = Path(extra["ca"]["ocsp_certificate"]).parent
    for name, profile in (("ocsp", "ocsp-responder"), ("tsa", "timestamping")):
        old = _expiring(pki, files / f"{name}.key.pem", profile, days=5)
        (files / f"{name}.pem").write_bytes(pem(old, pki.issuing.cert))
    async with running_server(pki, tmp_path, database_url(sqlite_db), http_port=port,
                              extra=extra) as srv:
        yield CaServer(srv, pki, tmp_path), files


async def test_expiring_service_certificates_are_renewed_with_the_same_keys(ca) -> None:  # type: ignore[no-untyped-def]
    server, files = ca
    now = dt.datetime.now(dt.UTC)
    for name in ("ocsp", "tsa"):
        renewed = x509.load_pem_x509_certificates((files / f"{name}.pem").read_bytes())[0]
        key = load_private_key((files / f"{name}.key.pem").read_bytes(), PASSPHRASE)
        assert renewed.public_key() == key.public_key()
        assert renewed.not_valid_after_utc - now > dt.timedelta(days=60)

    # OCSP answers are signed under the renewed certificate, which OCSP itself knows as good.
    request, _ = await issue(server)
    cert = x509.load_der_x509_certificate((await server.stub().GetCertificate(
        pb.GetCertificateRequest(name=request.result_certificate))).der)
    der = ocsp.OCSPRequestBuilder().add_certificate(
        cert, server.pki.issuing.cert, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    async with httpx.AsyncClient() as client:
        answer = ocsp.load_der_ocsp_response((await client.post(
            f"{server.http}/pki/ocsp", content=der,
            headers={"content-type": "application/ocsp-request"})).content)
        responder = answer.certificates[0]
        assert responder.not_valid_after_utc - now > dt.timedelta(days=60)
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        about_responder = ocsp.OCSPRequestBuilder().add_certificate(
            responder, server.pki.issuing.cert, hashes.SHA1()).build().public_bytes(
            serialization.Encoding.DER)
        known = ocsp.load_der_ocsp_response((await client.post(
            f"{server.http}/pki/ocsp", content=about_responder,
            headers={"content-type": "application/ocsp-request"})).content)
    assert known.certificate_status == ocsp.OCSPCertStatus.GOOD
