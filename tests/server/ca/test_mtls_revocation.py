"""The CA is the mutual-TLS authenticator's revocation checker: a client certificate revoked (or
put on hold) is refused on the very next call of an open connection; released, it works again."""

from __future__ import annotations

import grpc
import pytest
from cryptography import x509

from tests.server.ca.conftest import CaServer, issue
from tests.support.pki import Issued
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov.signing.v1 import certificate_authority_pb2 as pb

DEVICE = {"system_name": "dvc-hcm-2", "parent_body": "UBND Thành phố Hồ Chí Minh",
          "agency_code": "000.00.00.H29", "province_code": "79"}


async def _client(ca: CaServer) -> tuple[Issued, str]:
    req, key = await issue(ca, profile="device", subject=DEVICE, managing_body="000.00.00.H29")
    cert = await ca.stub().GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
    return Issued(x509.load_der_x509_certificate(cert.der), key, [ca.pki.issuing.cert]), \
        req.result_certificate


async def test_revoked_client_certificate_gets_unauthenticated_on_next_call(
        ca_server_sqlite: CaServer) -> None:
    ca = ca_server_sqlite
    client, name = await _client(ca)
    admin = admin_pb2_grpc.AdminServiceStub(ca.server.channel(client))
    caller = await admin.GetCaller(admin_pb2.GetCallerRequest())
    assert caller.agency_code == "000.00.00.H29" and caller.display_name == "dvc-hcm-2"

    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=name, reason=pb.RevocationReason.KEY_COMPROMISE))
    with pytest.raises(grpc.aio.AioRpcError) as err:  # same channel, same TLS connection
        await admin.GetCaller(admin_pb2.GetCallerRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # A new connection fares no better.
    fresh = admin_pb2_grpc.AdminServiceStub(ca.server.channel(client))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fresh.GetCaller(admin_pb2.GetCallerRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    audit = admin_pb2_grpc.AdminServiceStub(ca.server.channel(ca.pki.portal))
    events = await audit.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter='outcome = "UNAUTHENTICATED"', page_size=100))
    assert any(e.details.get("cause") == "CERTIFICATE_REVOKED" for e in events.audit_events)


async def test_hold_suspends_and_release_restores(ca_server_sqlite: CaServer) -> None:
    ca = ca_server_sqlite
    client, name = await _client(ca)
    admin = admin_pb2_grpc.AdminServiceStub(ca.server.channel(client))
    await admin.GetCaller(admin_pb2.GetCallerRequest())
    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=name, reason=pb.RevocationReason.CERTIFICATE_HOLD))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.GetCaller(admin_pb2.GetCallerRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await ca.stub().ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=name))
    assert (await admin.GetCaller(admin_pb2.GetCallerRequest())).display_name == "dvc-hcm-2"
