"""Exceptions become google.rpc.Status through the one table, with nothing leaking to callers."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text

from server.audit import verify_chain
from server.errors import STATUS_TABLE, map_exception
from server.storage.db import Database
from tests.support.pki import TestPki
from tests.support.probe import SECRET, probe_pb2, probe_pb2_grpc
from tests.support.server import running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc


@pytest.fixture
async def stub(pki: TestPki, tmp_path: Path, sqlite_db: Database, probe_service: None):  # type: ignore[no-untyped-def]
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        yield probe_pb2_grpc.ProbeServiceStub(srv.channel(pki.portal)), srv


def info_of(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    assert status is not None and status.code == err.code().value[0]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


@pytest.mark.parametrize("kind,code,reason,extra", [
    ("vnid_invalid", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PERSONAL_ID",
     {"field": "personal_id"}),
    ("signing_not_found", grpc.StatusCode.NOT_FOUND, "CERTIFICATE_NOT_FOUND", {}),
    ("payments_conflict", grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED", {}),
    ("payments_precondition", grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_EXPIRED", {}),
    ("rate", grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", {}),
])
async def test_library_errors_map_through_the_table(stub, kind, code, reason, extra) -> None:  # type: ignore[no-untyped-def]
    probe, _ = stub
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await probe.Fail(probe_pb2.FailRequest(kind=kind))
    assert err.value.code() == code
    info = info_of(err.value)
    assert info.reason == reason and info.domain == "vnegov"
    assert {k: v for k, v in info.metadata.items() if k != "request_id"} == extra
    assert len(info.metadata["request_id"]) == 32


async def test_unknown_exception_is_internal_without_details(stub, caplog) -> None:  # type: ignore[no-untyped-def]
    probe, srv = stub
    with caplog.at_level(logging.ERROR, logger="server.rpc"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await probe.Fail(probe_pb2.FailRequest(kind="runtime"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    info = info_of(err.value)
    request_id = info.metadata["request_id"]
    assert err.value.details() == f"internal error (request id {request_id})"
    everything_sent = repr(err.value.details()) + repr(err.value.trailing_metadata())
    assert SECRET not in everything_sent and "Traceback" not in everything_sent
    assert "RuntimeError" not in everything_sent
    # The server's own log has the stack trace, under the same request id.
    assert any("RuntimeError" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    admin = admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.portal))
    events = (await admin.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter=f'request_id = "{request_id}"'))).audit_events
    assert [(e.outcome, e.details["cause"]) for e in events] == [("INTERNAL", "RuntimeError")]
    assert all(SECRET not in str(e) for e in events)


async def test_error_in_the_middle_of_a_stream(stub) -> None:  # type: ignore[no-untyped-def]
    probe, _ = stub
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for item in probe.Count(probe_pb2.CountRequest(up_to=5, fail_at="3")):
            got.append(item.n)
    assert got == [1, 2]
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info_of(err.value).reason == "PAYMENT_EXPIRED"


async def test_streams_complete(stub) -> None:  # type: ignore[no-untyped-def]
    probe, _ = stub
    assert [r.n async for r in probe.Count(probe_pb2.CountRequest(up_to=4))] == [1, 2, 3, 4]


def test_every_library_category_is_mapped() -> None:
    import payments.errors as pe
    import signing.errors as se
    import vnid.errors as ve

    for module in (ve, se, pe):
        categories = [c for c in vars(module).values() if isinstance(c, type)
                      and issubclass(c, Exception) and c.__module__ == module.__name__
                      and c.__name__ not in {"VnidError", "SigningError", "PaymentsError"}]
        assert categories
        for category in categories:
            assert category in STATUS_TABLE, f"{category.__qualname__} has no status code"


def test_subclasses_inherit_their_category() -> None:
    from signing.ca.keys import WeakKey

    mapped = map_exception(WeakKey("RSA keys must have at least 2048 bits"), "rid")
    assert mapped.code == grpc.StatusCode.INVALID_ARGUMENT
    assert mapped.reason == "WEAK_OR_UNSUPPORTED_KEY"


async def test_a_call_that_cannot_be_audited_is_answered_unavailable(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    """No answer goes out unrecorded: with the audit log unwritable, the call is refused."""
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        admin = admin_pb2_grpc.AdminServiceStub(srv.channel(pki.hcm))
        await admin.GetCaller(admin_pb2.GetCallerRequest())
        with sqlite_db.write() as s:
            s.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin.GetCaller(admin_pb2.GetCallerRequest())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info_of(err.value).reason == "AUDIT_UNAVAILABLE"
        assert "audit_events" not in (err.value.details() or "")
        with sqlite_db.write() as s:
            s.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
        caller = await admin.GetCaller(admin_pb2.GetCallerRequest())  # recovers by itself
        assert caller.agency_code == "000.00.00.H29"
    assert verify_chain(sqlite_db).ok


async def test_the_last_message_of_a_stream_waits_for_its_audit_event(
        pki: TestPki, tmp_path: Path, sqlite_db: Database, probe_service: None) -> None:
    """A response stream's last message (for a signed document, the part with the result) goes
    out only once the call is recorded: with the audit log unwritable, it never reaches the
    caller."""
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        probe = probe_pb2_grpc.ProbeServiceStub(srv.channel(pki.portal))
        assert [r.n async for r in probe.Count(probe_pb2.CountRequest(up_to=3))] == [1, 2, 3]
        with sqlite_db.write() as s:
            s.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
        got = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for item in probe.Count(probe_pb2.CountRequest(up_to=3)):
                got.append(item.n)
        assert got == [1, 2]
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info_of(err.value).reason == "AUDIT_UNAVAILABLE"
        with sqlite_db.write() as s:
            s.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
        assert [r.n async for r in probe.Count(probe_pb2.CountRequest(up_to=1))] == [1]
    assert verify_chain(sqlite_db).ok
