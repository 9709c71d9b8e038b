"""The production front door: real HAProxy with deploy/haproxy/vnegov.cfg terminating mutual TLS and
balancing each call over HTTP/2 to two replicas on one PostgreSQL database, which trust the
forwarded client certificate on their balancer listener only and still decide themselves."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization

from tests.support.balancer import Balancer, Replica
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki, pem
from tests.support.server import RunningServer, running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _der_header(*certs: bytes) -> str:
    return ", ".join(":" + base64.b64encode(c).decode() + ":" for c in certs)


@dataclass
class Front:
    balancer: Balancer
    replicas: list[RunningServer]


@pytest.fixture
def pg_url(postgres_templates: PostgresTemplates) -> Iterator[str]:
    url = postgres_templates.new_database()
    yield url
    postgres_templates.drop(url)


@pytest.fixture
async def front(pki: TestPki, tmp_path: Path, pg_url: str) -> AsyncIterator[Front]:
    async with AsyncExitStack() as stack:
        replicas: list[RunningServer] = []
        for i in (1, 2):
            directory = tmp_path / f"r{i}"
            directory.mkdir()
            socket_path = directory / "grpc.sock"
            replicas.append(await stack.enter_async_context(running_server(
                pki, directory, pg_url,
                extra={"server": {"balancer_listen": f"unix:{socket_path}", "admin_port": 0,
                                  "trusted_proxies": ["127.0.0.1"]}})))
        balancer = Balancer(pki, tmp_path / "haproxy", [
            Replica(f"unix@{r.app.config.server.balancer_listen[5:]}", r.app.http_port,
                    r.app.admin_port) for r in replicas])
        balancer.start()
        try:
            balancer.wait_up(2)
            yield Front(balancer, replicas)
        finally:
            await balancer.close_channels()
            balancer.stop()


def _started(replica: RunningServer, method: str) -> float:
    metric = replica.app.metrics.grpc_started.labels("vnegov.admin.v1.AdminService", method)
    return float(metric._value.get())


async def _audit(front: Front) -> list[admin_pb2.AuditEvent]:
    stub = admin_pb2_grpc.AdminServiceStub(front.balancer.channel(front.balancer.pki.portal))
    response = await stub.ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_size=1000))
    return list(response.audit_events)


async def test_calls_are_balanced_per_request_with_the_forwarded_certificate(
        front: Front) -> None:
    pki = front.balancer.pki
    stub = admin_pb2_grpc.AdminServiceStub(front.balancer.channel(pki.hcm))
    for _ in range(20):  # one client connection to the balancer
        caller = await stub.GetCaller(admin_pb2.GetCallerRequest())
        assert caller.agency_code == "000.00.00.H29" and caller.display_name == "dvc-hcm"
        assert caller.authentication_method == admin_pb2.Caller.MUTUAL_TLS
    per_replica = [_started(r, "GetCaller") for r in front.replicas]
    assert sum(per_replica) == 20 and min(per_replica) >= 5, per_replica


@pytest.mark.parametrize("who,cause", [
    (None, "NO_CLIENT_CERTIFICATE"),
    ("foreign", "CERTIFICATE_UNTRUSTED"),
    ("expired", "CERTIFICATE_EXPIRED"),
    ("no_agency", "CERTIFICATE_WITHOUT_AGENCY_CODE"),
])
async def test_replicas_refuse_and_audit_what_the_balancer_let_through(
        front: Front, who: str | None, cause: str) -> None:
    client = None if who is None else getattr(front.balancer.pki, who)
    stub = admin_pb2_grpc.AdminServiceStub(front.balancer.channel(client))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    events = [e for e in await _audit(front) if e.outcome == "UNAUTHENTICATED"]
    assert any(e.details.get("cause") == cause for e in events), events
    refused = next(e for e in events if e.details.get("cause") == cause)
    assert refused.details.get("remote", "127.0.0.1") == "127.0.0.1"  # from X-Forwarded-For
    if client is not None:
        assert refused.details.get("certificate_sha256") == \
            client.cert.fingerprint(hashes.SHA256()).hex()


async def test_a_client_cannot_forge_the_forwarded_certificate_headers(front: Front) -> None:
    pki = front.balancer.pki
    portal_der = pki.portal.cert.public_bytes(serialization.Encoding.DER)
    forged = (("client-cert", _der_header(portal_der)),
              ("client-cert-chain", _der_header(portal_der)))
    # Without a certificate of its own: the balancer drops the forged headers.
    anonymous = admin_pb2_grpc.AdminServiceStub(front.balancer.channel(None))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await anonymous.GetCaller(admin_pb2.GetCallerRequest(), metadata=forged)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # With its own certificate: it is itself, not the portal it claims to be.
    hcm = admin_pb2_grpc.AdminServiceStub(front.balancer.channel(pki.hcm))
    caller = await hcm.GetCaller(admin_pb2.GetCallerRequest(), metadata=forged)
    assert caller.agency_code == "000.00.00.H29"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hcm.ListAuditEvents(admin_pb2.ListAuditEventsRequest(), metadata=forged)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_embedded_front_ignores_forwarded_certificate_headers(front: Front) -> None:
    """The headers mean something on the balancer listener only: on a replica's own TLS port a
    client without a certificate stays anonymous whatever it sends."""
    pki = front.balancer.pki
    portal_der = pki.portal.cert.public_bytes(serialization.Encoding.DER)
    stub = admin_pb2_grpc.AdminServiceStub(front.replicas[0].channel(None))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest(), metadata=(
            ("client-cert", _der_header(portal_der)),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_http_is_balanced_with_the_client_address_forwarded(front: Front) -> None:
    ssl_root = pem(front.balancer.pki.root.cert)
    context = ssl.create_default_context(cadata=ssl_root.decode())
    async with httpx.AsyncClient(verify=context) as http:
        url = f"https://localhost:{front.balancer.http_port}/healthz"
        for _ in range(4):
            response = await http.get(url, headers={"x-forwarded-for": "203.0.113.9"})
            assert response.status_code == 200 and response.json() == {"status": "ok"}
    # /metrics is on each replica's admin listener, not on the public port.
    async with httpx.AsyncClient(verify=context) as http:
        public = await http.get(f"https://localhost:{front.balancer.http_port}/metrics")
        assert public.status_code == 404
    async with httpx.AsyncClient() as http:
        admin = await http.get(f"http://127.0.0.1:{front.replicas[0].app.admin_port}/metrics")
        assert admin.status_code == 200 and "http_requests_total" in admin.text


async def test_a_revoked_certificate_is_refused_behind_the_balancer(
        pki: TestPki, tmp_path: Path, pg_url: str) -> None:
    """Revocation is the replica's check: a client certificate revoked while its connection to
    the balancer stays open is refused on the next call, and the refusal is audited."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.server.ca.conftest import CALLERS as CA_CALLERS
    from tests.server.ca.conftest import csr_for, write_ca_files
    from tests.support.pki import Issued
    from vnegov.signing.v1 import certificate_authority_pb2 as ca_pb
    from vnegov.signing.v1 import certificate_authority_pb2_grpc as ca_grpc

    directory = tmp_path / "r1"
    directory.mkdir()
    socket_path = directory / "grpc.sock"
    section = write_ca_files(pki, tmp_path / "ca", "http://127.0.0.1:9")
    async with running_server(pki, directory, pg_url, extra={
            "server": {"balancer_listen": f"unix:{socket_path}", "admin_port": 0},
            "auth": {"callers": CA_CALLERS, "plaintext_caller": "000.00.00.G22"},
            "ca": section}) as replica:
        balancer = Balancer(pki, tmp_path / "haproxy", [
            Replica(f"unix@{socket_path}", replica.app.http_port, replica.app.admin_port)])
        balancer.start()
        try:
            balancer.wait_up(1)
            authority = ca_grpc.CertificateAuthorityServiceStub(balancer.channel(pki.portal))
            key = ec.generate_private_key(ec.SECP256R1())
            request = await authority.CreateCertificateRequest(
                ca_pb.CreateCertificateRequestRequest(
                    profile="device", csr=csr_for(key), managing_body="000.00.00.H29",
                    subject=ca_pb.CertificateSubject(
                        system_name="dvc-hcm-3", parent_body="UBND Thành phố Hồ Chí Minh",
                        agency_code="000.00.00.H29", province_code="79")))
            issued = await authority.GetCertificate(ca_pb.GetCertificateRequest(
                name=request.result_certificate))
            client = Issued(x509.load_der_x509_certificate(issued.der), key, [pki.issuing.cert])
            stub = admin_pb2_grpc.AdminServiceStub(balancer.channel(client))
            assert (await stub.GetCaller(admin_pb2.GetCallerRequest())).display_name == \
                "dvc-hcm-3"
            await authority.RevokeCertificate(ca_pb.RevokeCertificateRequest(
                name=request.result_certificate, reason=ca_pb.RevocationReason.KEY_COMPROMISE))
            with pytest.raises(grpc.aio.AioRpcError) as err:  # same connection to the balancer
                await stub.GetCaller(admin_pb2.GetCallerRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            audit = admin_pb2_grpc.AdminServiceStub(balancer.channel(pki.portal))
            events = await audit.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
                filter='outcome = "UNAUTHENTICATED"', page_size=100))
            assert any(e.details.get("cause") == "CERTIFICATE_REVOKED"
                       for e in events.audit_events)
        finally:
            await balancer.close_channels()
            balancer.stop()
