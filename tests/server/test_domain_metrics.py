"""Domain metrics on the admin listener (not on the public port): payments by state, receipts
issued, outbox lag, logins by result and level, certificates expiring."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import httpx

from payments.channels import PlatformSimulator
from payments.channels.simulators import _PlatformPayment
from server.audit import AuditEvent
from server.storage.db import Database
from tests.server.payments.test_server import PARTNER, SECRET, payments_section
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc


def _value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and \
                line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_domain_metrics_on_the_admin_listener(pki: TestPki, tmp_path: Path,
                                                    sqlite_db: Database) -> None:
    extra = {"payments": payments_section(pki, tmp_path, interval=0.1),
             "server": {"admin_port": 0}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra=extra) as srv:
        admin = f"http://127.0.0.1:{srv.app.admin_port}/metrics"
        async with httpx.AsyncClient() as http:
            first = (await http.get(admin)).text  # starts the login count from here
            assert "vnegov_certificates_expiring" in first
            assert (await http.get(srv.http_url + "/metrics")).status_code == 404
            stub = payments_pb2_grpc.PaymentsServiceStub(srv.channel(pki.hcm))
            payment = await stub.CreatePayment(pb.CreatePaymentRequest(
                request_id="metrics-0001", procedure_code="2.000815", province_code="79",
                dossier_code="H29-METRICS", payer=pb.Payer(name="Lê Văn C"), channel="platform"))
            await stub.CreatePayment(pb.CreatePaymentRequest(
                request_id="metrics-0002", procedure_code="2.000815", province_code="79",
                dossier_code="H29-METRICS-2", payer=pb.Payer(name="Lê Văn D"),
                channel="platform"))
            platform = PlatformSimulator(PARTNER, SECRET)
            platform.payments[payment.reference] = _PlatformPayment(
                {"MaThamChieu": payment.reference, "SoTien": payment.amount_due})
            answer = await http.post(srv.http_url + "/payments/platform/callback",
                                     json=platform.pay(payment.reference,
                                                       now=dt.datetime.now(dt.UTC)))
            assert platform.check_answer(answer.json()) == "00"
            now = dt.datetime.now(dt.UTC)
            for action, outcome, reason, details in (
                    ("session.start", "OK", "", {"acr": "urn:vn:level2"}),
                    ("session.start", "OK", "", {"acr": "urn:vn:level2"}),
                    ("login.password", "FAILED", "WRONG_PASSWORD", {})):
                await srv.app.audit.record(AuditEvent(
                    at=now, request_id="-", caller="identity", kind="identity", action=action,
                    outcome=outcome, reason=reason, details=details))
            # A durable job whose owner died (lease run out) and one being worked on.
            from sqlalchemy import insert

            from server.storage.jobs import JobRow

            with sqlite_db.write() as s:
                for job_id, lease in (("dead", now - dt.timedelta(minutes=5)),
                                      ("alive", now + dt.timedelta(minutes=5))):
                    s.execute(insert(JobRow).values(
                        id=f"metrics-{job_id}", kind="metrics.test", state="running",
                        params_json="{}", checkpoint_json="{}", result_json="{}", error="",
                        progress=0, total=0, attempts=1, lease_owner="elsewhere",
                        lease_until=lease, heartbeat_at=now, not_before=now, created_at=now,
                        done_at=None))
            for _ in range(100):
                text = (await http.get(admin)).text
                if _value(text, 'vnegov_receipts_issued_total{kind="original"}'):
                    break
                await asyncio.sleep(0.1)
    assert _value(text, 'vnegov_payments{state="paid"}') == 1
    assert _value(text, 'vnegov_payments{state="awaiting_payment"}') == 1
    assert _value(text, 'vnegov_receipts_issued_total{kind="original"}') == 1
    assert _value(text, 'vnegov_logins_total{level="urn:vn:level2",result="success"}') == 2
    assert _value(text, 'vnegov_logins_total{level="",result="wrong_password"}') == 1
    assert "grpc_server_handled_total" in text
    assert _value(text, 'vnegov_job_leases{state="expired"}') == 1
    assert _value(text, 'vnegov_job_leases{state="held"}') == 1
