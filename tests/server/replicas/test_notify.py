"""Changes reach every replica at once by LISTEN/NOTIFY: two server processes on one PostgreSQL;
a client disabled through one is refused by the other within one second (the cache it used to
wait for expires after 30 s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import grpc
import pytest

from server.identity.state import ClientDirectory
from server.storage.db import Database
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki, pem
from tests.support.server import ServerProcess, free_port, server_config_dict
from vnegov.identity.v1 import identity_pb2 as pb
from vnegov.identity.v1 import identity_pb2_grpc
from vnid.oauth2.clients import Client

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENT = {
    "client_id": "dvc-binh-duong", "client_name": "Cổng DVC Bình Dương", "profile": "fapi2",
    "redirect_uris": ["https://dvc.example.vn/cb"], "agency_code": "000.00.00.H29",
    "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
                       "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                       "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},
    "scope": "openid profile", "claim_profile": "national_portal",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def replica(pki: TestPki, directory: Path, url: str) -> ServerProcess:
    directory.mkdir()
    config = server_config_dict(pki, directory, url, grpc_port=free_port(),
                                http_port=free_port())
    return ServerProcess(config, directory)


async def profile_code(stub: identity_pb2_grpc.IdentityServiceStub) -> grpc.StatusCode:
    try:
        await stub.GetCitizenProfile(pb.GetCitizenProfileRequest(
            client_id=CLIENT["client_id"], subject="nobody-here"))
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_a_client_disabled_through_one_replica_is_refused_by_the_other_within_a_second(
        pki: TestPki, postgres_templates: PostgresTemplates, tmp_path: Path) -> None:
    url = postgres_templates.new_database()
    db = Database(url)
    a, b = replica(pki, tmp_path / "a", url), replica(pki, tmp_path / "b", url)
    try:
        ClientDirectory.save(db, Client.from_metadata(CLIENT), _now(), actor="operator")
        a.start()
        b.start()
        creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                             pki.hcm.chain_pem)
        async with grpc.aio.secure_channel(f"localhost:{a.grpc_port}", creds) as ch_a, \
                grpc.aio.secure_channel(f"localhost:{b.grpc_port}", creds) as ch_b:
            stub_a = identity_pb2_grpc.IdentityServiceStub(ch_a)
            stub_b = identity_pb2_grpc.IdentityServiceStub(ch_b)
            # Both replicas know the client (and cache it): its agency may ask, nothing is found.
            assert await profile_code(stub_a) == grpc.StatusCode.NOT_FOUND
            assert await profile_code(stub_b) == grpc.StatusCode.NOT_FOUND
            # The operator disables it (what `vnegov identity client disable` does, on host A).
            assert ClientDirectory.disable(db, CLIENT["client_id"], _now(), actor="operator")
            committed = time.monotonic()
            elapsed: dict[str, float] = {}
            while len(elapsed) < 2 and time.monotonic() - committed < 5:
                for name, stub in (("a", stub_a), ("b", stub_b)):
                    if name not in elapsed and \
                            await profile_code(stub) == grpc.StatusCode.PERMISSION_DENIED:
                        elapsed[name] = time.monotonic() - committed
                await asyncio.sleep(0.005)
            print(f"client refused after: replica a {elapsed.get('a', -1) * 1000:.0f} ms, "
                  f"replica b {elapsed.get('b', -1) * 1000:.0f} ms")
            assert set(elapsed) == {"a", "b"} and max(elapsed.values()) < 1.0
    finally:
        a.kill()
        b.kill()
        db.dispose()


async def test_a_certificate_revoked_through_one_replica_is_refused_by_the_other_within_a_second(
        pki: TestPki, postgres_templates: PostgresTemplates, tmp_path: Path) -> None:
    """Both replicas run the CA and authenticate callers by client certificate; the status poll
    (the fallback) is set to 30 s, so only the notification can make the other one refuse fast."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.server.ca.conftest import CALLERS, csr_for, write_ca_files
    from tests.support.pki import Issued
    from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
    from vnegov.signing.v1 import certificate_authority_pb2 as ca_pb
    from vnegov.signing.v1 import certificate_authority_pb2_grpc as ca_grpc

    url = postgres_templates.new_database()
    procs = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        http_port = free_port()
        section = write_ca_files(pki, directory / "ca", f"http://127.0.0.1:{http_port}")
        section["status_poll_seconds"] = 30
        config = server_config_dict(pki, directory, url, grpc_port=free_port(),
                                    http_port=http_port, extra={
                                        "ca": section, "auth": {"callers": CALLERS,
                                                                "plaintext_caller": "000.00.00.G22"},
                                        "server": {"public_url": f"http://127.0.0.1:{http_port}"}})
        procs.append(ServerProcess(config, directory))
    a, b = procs
    root = pem(pki.root.cert)
    try:
        a.start()
        b.start()
        portal = grpc.ssl_channel_credentials(root, pki.portal.key_pem, pki.portal.chain_pem)
        async with grpc.aio.secure_channel(f"localhost:{a.grpc_port}", portal) as ch:
            ca = ca_grpc.CertificateAuthorityServiceStub(ch)
            key = ec.generate_private_key(ec.SECP256R1())
            request = await ca.CreateCertificateRequest(ca_pb.CreateCertificateRequestRequest(
                profile="device", managing_body="000.00.00.H29", csr=csr_for(key),
                subject=ca_pb.CertificateSubject(
                    system_name="dvc-hcm-3", parent_body="UBND Thành phố Hồ Chí Minh",
                    agency_code="000.00.00.H29", province_code="79")))
            issued = await ca.GetCertificate(ca_pb.GetCertificateRequest(
                name=request.result_certificate))
            client = Issued(x509.load_der_x509_certificate(issued.der), key, [pki.issuing.cert])
            creds = grpc.ssl_channel_credentials(root, client.key_pem, client.chain_pem)
            async with grpc.aio.secure_channel(f"localhost:{b.grpc_port}", creds) as on_b:
                admin = admin_pb2_grpc.AdminServiceStub(on_b)
                # B learnt of the new certificate at once (not at its next poll) and lets it in.
                deadline = time.monotonic() + 2
                while True:
                    try:
                        await admin.GetCaller(admin_pb2.GetCallerRequest())
                        break
                    except grpc.aio.AioRpcError:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.2)
                await ca.RevokeCertificate(ca_pb.RevokeCertificateRequest(
                    name=request.result_certificate,
                    reason=ca_pb.RevocationReason.KEY_COMPROMISE))
                revoked = time.monotonic()
                refused = None
                while refused is None and time.monotonic() - revoked < 5:
                    try:
                        await admin.GetCaller(admin_pb2.GetCallerRequest())
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                        refused = time.monotonic() - revoked
                    await asyncio.sleep(0.005)
        print(f"revoked certificate refused by the other replica after "
              f"{(refused or -1) * 1000:.0f} ms")
        assert refused is not None and refused < 1.0
    finally:
        a.kill()
        b.kill()
