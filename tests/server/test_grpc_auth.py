"""Caller authentication and authorisation over real mutual TLS, with every decision audited."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server.audit import verify_chain
from server.storage.db import Database
from signing.ca import CertificateSpec, KeyUsages, SubjectInfo, issue_certificate
from tests.support.pki import Authority, Issued, TestPki, name, pem
from tests.support.server import RunningServer, running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc


@pytest.fixture
async def srv(pki: TestPki, tmp_path: Path, db: Database):  # type: ignore[no-untyped-def]
    async with running_server(pki, tmp_path, db.url.render_as_string(False)) as running:
        yield running


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def audit_events(srv: RunningServer) -> list[admin_pb2.AuditEvent]:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.portal))
    response = await stub.ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_size=1000))
    return list(response.audit_events)


async def test_sample_system_sees_its_agency_and_province(srv: RunningServer) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.hcm))
    caller = await stub.GetCaller(admin_pb2.GetCallerRequest())
    assert caller.agency_code == "000.00.00.H29"
    assert caller.province_code == "79"
    assert caller.display_name == "dvc-hcm"
    assert list(caller.scopes) == ["identity.read", "payments.collect"]
    assert list(caller.provinces) == ["79"]
    assert caller.authentication_method == admin_pb2.Caller.MUTUAL_TLS
    assert caller.certificate_sha256 == srv.pki.hcm.cert.fingerprint(hashes.SHA256()).hex()


async def test_health_check_over_mtls_says_serving(srv: RunningServer) -> None:
    stub = health_pb2_grpc.HealthStub(srv.channel(srv.pki.hcm))
    overall = await stub.Check(health_pb2.HealthCheckRequest())
    admin = await stub.Check(health_pb2.HealthCheckRequest(
        service="vnegov.admin.v1.AdminService"))
    assert overall.status == admin.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("who,cause", [
    (None, "NO_CLIENT_CERTIFICATE"),
    ("foreign", "CERTIFICATE_UNTRUSTED"),
    ("expired", "CERTIFICATE_EXPIRED"),
    ("no_agency", "CERTIFICATE_WITHOUT_AGENCY_CODE"),
])
async def test_bad_certificates_are_unauthenticated_and_audited(
        srv: RunningServer, who: str | None, cause: str) -> None:
    client = None if who is None else getattr(srv.pki, who)
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(client))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(err.value)
    assert info.reason == "UNAUTHENTICATED" and info.domain == "vnegov"
    # The caller learns nothing about which check failed...
    assert cause not in (err.value.details() or "")
    assert set(info.metadata) == {"request_id"}
    # ...but the audit log knows, with the request id the caller was given.
    events = [e for e in await audit_events(srv) if e.request_id == info.metadata["request_id"]]
    assert len(events) == 1
    event = events[0]
    assert event.outcome == "UNAUTHENTICATED" and event.caller == "anonymous"
    assert event.details["cause"] == cause
    assert event.action == "/vnegov.admin.v1.AdminService/GetCaller"
    if client is not None:
        assert event.details["certificate_subject"] == client.cert.subject.rfc4514_string()


@pytest.fixture(scope="module")
def forged(pki: TestPki) -> dict[str, Issued]:
    """Certificates an attacker can make or obtain, none of which may authenticate."""
    now = pki.now

    # A provincial system signs itself a national-portal certificate with its own (non-CA) key.
    key = ec.generate_private_key(ec.SECP256R1())
    minted = issue_certificate(CertificateSpec(
        subject=name("dichvucong-quocgia"), not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=30), key_usages=KeyUsages(digital_signature=True),
        extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        subject_info=SubjectInfo(agency_code="000.00.00.G22"),
    ), key.public_key(), pki.hcm.key, pki.hcm.cert)
    # A foreign root's intermediate that carries exactly the name of our issuing CA.
    twin = Authority("vnegov Test Issuing CA", now, pki.foreign_root)
    assert twin.cert.subject == pki.issuing.cert.subject
    twin_leaf = twin.issue("dvc-hcm", agency_code="000.00.00.H29", province_code="79")
    return {
        "minted_by_a_leaf": Issued(minted, key, [pki.hcm.cert, pki.issuing.cert]),
        "issuing_ca_name_twin": twin_leaf,
        "server_auth_only": pki.issuing.issue(
            "dvc-hcm", eku=ExtendedKeyUsageOID.SERVER_AUTH, agency_code="000.00.00.H29",
            province_code="79"),
        "not_yet_valid": pki.issuing.issue(
            "dvc-hcm", agency_code="000.00.00.H29", province_code="79",
            not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=30)),
    }


@pytest.mark.parametrize("which,cause", [
    ("minted_by_a_leaf", "CERTIFICATE_UNTRUSTED"),
    ("issuing_ca_name_twin", "CERTIFICATE_UNTRUSTED"),
    ("server_auth_only", "CERTIFICATE_UNTRUSTED"),
    ("not_yet_valid", "CERTIFICATE_NOT_YET_VALID"),
])
async def test_forged_and_misissued_certificates_are_unauthenticated_and_audited(
        srv: RunningServer, forged: dict[str, Issued], which: str, cause: str) -> None:
    client = forged[which]
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(client))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(err.value)
    assert info.reason == "UNAUTHENTICATED" and set(info.metadata) == {"request_id"}
    events = [e for e in await audit_events(srv) if e.request_id == info.metadata["request_id"]]
    assert [(e.outcome, e.caller, e.details["cause"]) for e in events] == [
        ("UNAUTHENTICATED", "anonymous", cause)]
    assert events[0].details["certificate_sha256"] == \
        client.cert.fingerprint(hashes.SHA256()).hex()
    assert events[0].details["certificate_issuer"] == client.cert.issuer.rfc4514_string()


async def test_health_also_needs_a_valid_certificate(srv: RunningServer) -> None:
    stub = health_pb2_grpc.HealthStub(srv.channel(srv.pki.foreign))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_missing_scope_is_permission_denied_and_audited(srv: RunningServer) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.hcm))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListAuditEvents(admin_pb2.ListAuditEventsRequest())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(err.value)
    assert info.reason == "MISSING_SCOPE"
    assert info.metadata["missing_scopes"] == "audit.read"
    events = [e for e in await audit_events(srv) if e.request_id == info.metadata["request_id"]]
    assert [(e.outcome, e.caller, e.reason) for e in events] == [
        ("PERMISSION_DENIED", "000.00.00.H29/dvc-hcm", "MISSING_SCOPE")]


async def test_client_that_does_not_trust_the_server_never_talks(srv: RunningServer,
                                                                 pki: TestPki) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(pki.hcm, trust=pem(pki.foreign_root.cert)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_unknown_method_is_audited_and_unimplemented(srv: RunningServer) -> None:
    channel = srv.channel(srv.pki.hcm)
    call = channel.unary_unary("/vnegov.admin.v1.AdminService/DropAllTables")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(b"")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    events = await audit_events(srv)
    assert any(e.action == "/vnegov.admin.v1.AdminService/DropAllTables"
               and e.outcome == "UNIMPLEMENTED" and e.caller == "000.00.00.H29/dvc-hcm"
               for e in events)


async def test_every_call_lands_in_a_valid_chain(srv: RunningServer, db: Database) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.hcm))
    for _ in range(5):
        await stub.GetCaller(admin_pb2.GetCallerRequest())
    bad = admin_pb2_grpc.AdminServiceStub(srv.channel(None))
    with pytest.raises(grpc.aio.AioRpcError):
        await bad.GetCaller(admin_pb2.GetCallerRequest())
    events = await audit_events(srv)
    assert len(events) >= 6
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    report = verify_chain(db)
    assert report.ok and report.checked >= 6


async def test_request_id_is_echoed_and_taken_from_the_caller(srv: RunningServer) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.hcm))
    call = stub.GetCaller(admin_pb2.GetCallerRequest(),
                          metadata=(("x-request-id", "portal-2025-07-01-0001"),))
    await call
    assert ("x-request-id", "portal-2025-07-01-0001") in list(await call.trailing_metadata())
    events = await audit_events(srv)
    assert any(e.request_id == "portal-2025-07-01-0001" for e in events)
    # A request id that could smuggle content into logs is replaced, not trusted.
    call = stub.GetCaller(admin_pb2.GetCallerRequest(),
                          metadata=(("x-request-id", "bad id <script>alert(1)</script>"),))
    await call
    echoed = dict(await call.trailing_metadata())["x-request-id"]
    assert echoed != "bad id <script>alert(1)</script>" and len(echoed) == 32


async def test_bearer_tokens_are_refused_until_a_provider_is_configured(
        srv: RunningServer) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.hcm))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest(),
                             metadata=(("authorization", "Bearer abc"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reflection_lists_the_services(srv: RunningServer) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(srv.channel(srv.pki.hcm))

    async def requests():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = []
    async for response in stub.ServerReflectionInfo(requests()):
        names = [s.name for s in response.list_services_response.service]
    assert {"vnegov.admin.v1.AdminService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= set(names)


@pytest.mark.slow
async def test_certificate_expiring_while_connected_is_refused(pki: TestPki, tmp_path: Path,
                                                                sqlite_db: Database) -> None:
    """Verification is cached per connection, but expiry is checked again on every call."""
    now = dt.datetime.now(dt.UTC)
    short = pki.issuing.issue("dvc-short", agency_code="000.00.00.H29", province_code="79",
                              not_after=now + dt.timedelta(seconds=3))
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as running:
        stub = admin_pb2_grpc.AdminServiceStub(running.channel(short))
        await stub.GetCaller(admin_pb2.GetCallerRequest())
        await asyncio.sleep((short.cert.not_valid_after_utc - dt.datetime.now(dt.UTC))
                            .total_seconds() + 1.1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetCaller(admin_pb2.GetCallerRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_v1_and_v1alpha_both_describe_the_api(srv: RunningServer, version: str) -> None:
    """grpcurl and the Java/.NET reflection clients ask for v1 first; older tools for v1alpha. Both
    list the services and return the file describing a service, themselves included."""
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    channel = srv.channel(srv.pki.hcm)
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)

    async def requests():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="vnegov.payments.v1.PaymentsService")
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol=f"grpc.reflection.{version}.ServerReflection")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Service")

    responses = [r async for r in call(requests())]
    listed, payments, itself, missing = responses
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
            "vnegov.payments.v1.PaymentsService"} <= {s.name for s in listed.list_services_response.service}
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in payments.file_descriptor_response.file_descriptor_proto]
    assert files[0].name == "vnegov/payments/v1/payments.proto"
    assert files[0].options.java_package == "vn.vnegov.payments.v1"
    own = descriptor_pb2.FileDescriptorProto.FromString(
        itself.file_descriptor_response.file_descriptor_proto[0])
    assert own.package == f"grpc.reflection.{version}"
    assert own.service[0].method[0].input_type == f".grpc.reflection.{version}.ServerReflectionRequest"
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
