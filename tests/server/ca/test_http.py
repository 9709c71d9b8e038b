"""The /pki endpoints: OCSP over GET and POST, its cache and invalidation (also for changes made by
another process), full and delta CRLs as they are regenerated, CA certificates, and bad input."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import urllib.parse

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from server.ca.module import open_ca
from server.ca.records import Actor
from server.config import Config
from server.storage.db import Database
from signing.ca import RevocationReason
from tests.server.ca.conftest import CaServer, issue
from tests.support.server import server_config_dict
from vnegov.signing.v1 import certificate_authority_pb2 as pb


async def _cert(ca: CaServer, **kwargs: object) -> tuple[x509.Certificate, str]:
    req, _ = await issue(ca, **kwargs)  # type: ignore[arg-type]
    msg = await ca.stub().GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
    return x509.load_der_x509_certificate(msg.der), req.result_certificate


def _request(ca: CaServer, cert: x509.Certificate) -> bytes:
    return ocsp.OCSPRequestBuilder().add_certificate(
        cert, ca.pki.issuing.cert, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)


def _status(body: bytes) -> ocsp.OCSPCertStatus:
    parsed = ocsp.load_der_ocsp_response(body)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return parsed.certificate_status


async def _metric(client: httpx.AsyncClient, base: str, result: str) -> float:
    text = (await client.get(f"{base}/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'vnegov_ocsp_responses_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_ocsp_get_post_cache_and_invalidation(ca_server_sqlite: CaServer) -> None:
    ca = ca_server_sqlite
    cert, name = await _cert(ca)
    der = _request(ca, cert)
    url = f"{ca.http}/pki/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    async with httpx.AsyncClient() as client:
        first = await client.get(url)
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/ocsp-response"
        assert "max-age=" in first.headers["cache-control"]
        assert first.headers["etag"] and first.headers["expires"]
        assert _status(first.content) == ocsp.OCSPCertStatus.GOOD
        hits = await _metric(client, ca.http, "cache")
        again = await client.get(url)
        assert again.content == first.content  # the cached, already signed answer
        posted = await client.post(f"{ca.http}/pki/ocsp", content=der,
                                   headers={"content-type": "application/ocsp-request"})
        assert posted.content == first.content
        assert await _metric(client, ca.http, "cache") == hits + 2
        await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
            name=name, reason=pb.RevocationReason.KEY_COMPROMISE))
        revoked = await client.get(url)
        assert _status(revoked.content) == ocsp.OCSPCertStatus.REVOKED
        parsed = ocsp.load_der_ocsp_response(revoked.content)
        assert parsed.revocation_reason == x509.ReasonFlags.key_compromise


async def test_bad_requests(ca_server_sqlite: CaServer) -> None:
    ca = ca_server_sqlite
    async with httpx.AsyncClient() as client:
        for response in (await client.post(f"{ca.http}/pki/ocsp", content=b"\x30\x03junk"),
                         await client.get(f"{ca.http}/pki/ocsp/%%%not-base64")):
            assert response.status_code == 200
            assert ocsp.load_der_ocsp_response(response.content).response_status == \
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        assert (await client.post(f"{ca.http}/pki/ocsp", content=b"\x30" * 20000)
                ).status_code == 413
        assert (await client.get(f"{ca.http}/pki/ocsp")).status_code == 405
        assert (await client.get(f"{ca.http}/pki/tsa")).status_code == 405
        assert (await client.get(f"{ca.http}/pki/crl/nobody.crl")).status_code == 404
        assert (await client.get(f"{ca.http}/pki/nothing")).status_code == 404
        cer = await client.get(f"{ca.http}/pki/certs/issuing-ca.cer")
        assert x509.load_der_x509_certificate(cer.content) == ca.pki.issuing.cert
        root = await client.get(f"{ca.http}/pki/certs/root-ca.cer")
        assert x509.load_der_x509_certificate(root.content) == ca.pki.root.cert
        chain = await client.get(f"{ca.http}/pki/certs/chain.pem")
        assert x509.load_pem_x509_certificates(chain.content) == [ca.pki.issuing.cert,
                                                                  ca.pki.root.cert]


async def _crl(client: httpx.AsyncClient, ca: CaServer, name: str
               ) -> x509.CertificateRevocationList:
    response = await client.get(f"{ca.http}/pki/crl/{name}.crl")
    assert response.status_code == 200
    return x509.load_der_x509_crl(response.content)


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


async def test_full_and_delta_crls_follow_hold_and_release(ca_server_sqlite: CaServer) -> None:
    ca = ca_server_sqlite
    cert, name = await _cert(ca)
    issuing_key = ca.pki.issuing.cert.public_key()
    async with httpx.AsyncClient() as client:
        full0 = await _crl(client, ca, "issuing-ca")
        base = full0.extensions.get_extension_for_class(x509.FreshestCRL)
        assert base.value[0].full_name[0].value.endswith("/pki/crl/issuing-ca-delta.crl")
        await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
            name=name, reason=pb.RevocationReason.CERTIFICATE_HOLD))
        full1 = await _crl(client, ca, "issuing-ca")
        delta1 = await _crl(client, ca, "issuing-ca-delta")
        assert _number(full1) > _number(full0)
        assert full1.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
        indicator = delta1.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        assert indicator.critical and indicator.value.crl_number <= _number(full1)
        assert _number(delta1) > _number(full1)
        held = delta1.get_revoked_certificate_by_serial_number(cert.serial_number)
        assert held is not None and held.extensions.get_extension_for_class(
            x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
        await ca.stub().ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=name))
        full2 = await _crl(client, ca, "issuing-ca")
        delta2 = await _crl(client, ca, "issuing-ca-delta")
        assert full2.get_revoked_certificate_by_serial_number(cert.serial_number) is None
        removed = delta2.get_revoked_certificate_by_serial_number(cert.serial_number)
        assert removed is not None and removed.extensions.get_extension_for_class(
            x509.CRLReason).value.reason == x509.ReasonFlags.remove_from_crl
        for crl in (full0, full1, delta1, full2, delta2):
            assert crl.is_signature_valid(issuing_key)  # type: ignore[arg-type]
        assert len({_number(c) for c in (full0, full1, delta1, full2, delta2)}) == 5


async def test_changes_made_by_another_process_reach_ocsp_and_crls(
        ca_server_sqlite: CaServer, sqlite_db: Database) -> None:
    """The `vnegov ca` command (or another replica) revokes: this server answers revoked within
    its poll interval, having dropped its cached OCSP answer."""
    ca = ca_server_sqlite
    cert, name = await _cert(ca)
    der = _request(ca, cert)
    url = f"{ca.http}/pki/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    app_config = ca.server.app.config
    other_db = Database(sqlite_db.url.render_as_string(hide_password=False))
    other = open_ca(Config.from_config(server_config_dict(
        ca.pki, ca.directory / "other", other_db.url.render_as_string(hide_password=False),
        extra={"ca": dict(app_config.extensions["ca"]),
               "server": {"public_url": app_config.server.public_url}})),
        other_db, lambda: dt.datetime.now(dt.UTC))
    try:
        async with httpx.AsyncClient() as client:
            assert _status((await client.get(url)).content) == ocsp.OCSPCertStatus.GOOD
            await asyncio.to_thread(other.service.revoke, Actor.command_line("test"),
                                    int(name.split("/")[1]),
                                    reason=RevocationReason.CESSATION_OF_OPERATION)
            deadline = asyncio.get_running_loop().time() + 5
            while True:
                body = (await client.get(url)).content
                if _status(body) == ocsp.OCSPCertStatus.REVOKED:
                    break
                assert asyncio.get_running_loop().time() < deadline, "change never arrived"
                await asyncio.sleep(0.1)
            # The other process publishes its CRLs after the status change has committed, so
            # they may arrive a poll after the status: within the same few seconds.
            while True:
                crl = await _crl(client, ca, "issuing-ca")
                if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                    break
                assert asyncio.get_running_loop().time() < deadline, "the CRL never had it"
                await asyncio.sleep(0.1)
    finally:
        other.runtime.close()
        other_db.dispose()
