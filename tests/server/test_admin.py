"""AdminService.ListAuditEvents: AIP-158 paging, AIP-160 filters, and their errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import httpx
import pytest

from server.audit import AuditEvent, append_events
from server.storage.db import Database
from tests.support.pki import TestPki
from tests.support.server import RunningServer, running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

T0 = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)


@pytest.fixture
async def srv(pki: TestPki, tmp_path: Path, db: Database):  # type: ignore[no-untyped-def]
    with db.write() as s:
        append_events(s, [AuditEvent(
            at=T0 + dt.timedelta(minutes=i), request_id=f"seed-{i:04d}",
            caller="000.00.00.H29/dvc-hcm" if i % 2 else "000.00.00.H26/dvc-hanoi",
            kind="payments" if i % 3 == 0 else "rpc", action=f"action.{i % 4}",
            outcome="OK" if i % 5 else "PERMISSION_DENIED") for i in range(1, 121)])
    async with running_server(pki, tmp_path, db.url.render_as_string(False)) as running:
        yield running


def stub(srv: RunningServer) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(srv.channel(srv.pki.portal))


async def list_all(s: admin_pb2_grpc.AdminServiceStub, **kw: object) -> list[admin_pb2.AuditEvent]:
    out: list[admin_pb2.AuditEvent] = []
    token = ""
    while True:
        page = await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_token=token, **kw))
        out += page.audit_events
        token = page.next_page_token
        if not token:
            return out


async def test_paging_returns_every_event_once_in_order(srv: RunningServer) -> None:
    events = await list_all(stub(srv), page_size=7, filter="sequence <= 120")
    assert [e.sequence for e in events] == list(range(1, 121))
    assert events[0].name == "auditEvents/1"
    assert events[0].previous_hash == "0" * 64
    assert all(b.previous_hash == a.hash for a, b in zip(events, events[1:], strict=False))


async def test_default_and_maximum_page_sizes(srv: RunningServer) -> None:
    s = stub(srv)
    assert len((await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest())).audit_events) == 50
    big = await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_size=100000))
    assert len(big.audit_events) >= 120  # capped at 1000, which is more than there are


async def test_filters(srv: RunningServer) -> None:
    s = stub(srv)
    denied = await list_all(s, filter='outcome = "PERMISSION_DENIED" AND kind != "payments"')
    assert denied and all(e.outcome == "PERMISSION_DENIED" and e.kind != "payments"
                          for e in denied)
    assert {e.sequence for e in denied} == {i for i in range(1, 121) if i % 5 == 0 and i % 3}
    window = await list_all(s, filter='time >= "2025-07-01T01:00:00Z" AND time < '
                                      '"2025-07-01T01:10:00+00:00"')
    assert [e.request_id for e in window] == [f"seed-{i:04d}" for i in range(60, 70)]
    hanoi = await list_all(s, filter='caller = "000.00.00.H26/dvc-hanoi" AND sequence > 100')
    assert [e.sequence for e in hanoi] == list(range(102, 121, 2))


@pytest.mark.parametrize("filter_,fragment", [
    ('password = "x"', "unknown filter field"),
    ('outcome "OK" x', "expected an operator"),
    ('outcome = "OK" OR kind = "rpc"', "joined by AND"),
    ("time >= yesterday", "RFC 3339"),
    ('time >= "2025-07-01T00:00:00"', "UTC offset"),
    ("sequence > ten", "integers"),
    ("outcome =", "incomplete"),
    ("outcome = ;", "unexpected character"),
])
async def test_bad_filters_are_invalid_argument(srv: RunningServer, filter_: str,
                                               fragment: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub(srv).ListAuditEvents(admin_pb2.ListAuditEventsRequest(filter=filter_))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (err.value.details() or "")


async def test_page_tokens_are_bound_to_their_query(srv: RunningServer) -> None:
    s = stub(srv)
    first = await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        page_size=5, filter='kind = "rpc"'))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
            page_size=5, filter='kind = "payments"', page_token=first.next_page_token))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for garbage in ["not-base64!", "AAAA", first.next_page_token[:-3]]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
                filter='kind = "rpc"', page_token=garbage))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await s.ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_size=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_http_health_readiness_and_metrics(srv: RunningServer) -> None:
    await stub(srv).ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_size=1))
    async with httpx.AsyncClient(base_url=srv.http_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz", headers={"x-request-id": "probe-request-0001"})
        assert ready.status_code == 200 and ready.headers["x-request-id"] == "probe-request-0001"
        metrics = (await http.get("/metrics")).text
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="ListAuditEvents",' \
           'grpc_service="vnegov.admin.v1.AdminService"}' in metrics
    assert "grpc_server_handling_seconds_bucket" in metrics
    assert 'http_requests_total{method="GET",route="/readyz",status="200"}' in metrics
