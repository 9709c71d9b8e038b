"""Rolling restarts with no failed call: three server processes on one PostgreSQL database behind
real HAProxy (deploy/haproxy/vnegov.cfg), clients using the published service config
(vnegov_client), mixed load -- identity reads, certificate issuance, payments and their platform
callbacks over HTTPS, citizens' logins at the identity provider, documents signed with the
agency's seal (SignDocument, streamed both ways: PDFs at B-T of one page, which HAProxy could
re-send itself, and of three pages, which only the client's retry can repeat, and a small XML),
each signed document checked with VerifyDocument -- while every replica in turn is stopped with
SIGTERM and started again, and one is killed with SIGKILL; at each signal a burst of signing
calls has just been spread over the replicas (a stopping replica finishes its share, a killed
one's are repeated elsewhere). The replicas share one documents configuration (the same SoftHSM2
token settings, agency key and certificate files, time-stamping authority). No call fails;
nothing is lost or done twice: every payment created is paid once with one receipt, receipt
numbers have no gaps, certificate requests are not duplicated, every signed document received
verifies and its call is in the audit log with that document's SHA-256 (a repeated signing call
may leave a second event under the same request id: vnegov_client documents why that is safe),
and the audit chain verifies."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import signal
import ssl
import subprocess
import sys
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from payments.channels import PlatformSimulator
from payments.channels.simulators import _PlatformPayment
from server.audit import verify_chain
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from server.storage.payments import PaymentRow, ReceiptRow, TransitionRow
from tests.server.ca.conftest import SUBJECT_HCM, csr_for, write_ca_files
from tests.server.documents.test_signing_service import documents_section, sign, verify
from tests.server.identity.harness import CLASSIC_SECRET, PASSWORD, pkce
from tests.server.payments.test_server import PARTNER, SECRET, payments_section
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.signing.sign.fixtures import doc_pki  # noqa: F401 - fixture
from tests.signing.sign.pdfs import decision_pdf
from tests.support.balancer import Balancer, Replica, listen_port
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki, pem
from tests.support.server import ServerProcess, server_config_dict
from tests.support.softhsm import SoftHsm
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov.payments.v1 import payments_pb2 as pay
from vnegov.payments.v1 import payments_pb2_grpc as pay_grpc
from vnegov.signing.v1 import certificate_authority_pb2 as ca
from vnegov.signing.v1 import certificate_authority_pb2_grpc as ca_grpc
from vnegov.signing.v1 import documents_pb2 as doc
from vnegov.signing.v1 import documents_pb2_grpc as doc_grpc
from vnegov_client import channel_options
from vnid.oauth2.clients import hash_secret

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CALLERS = [
    {"agency_code": AGENCY_CODE, "name": "dvc-hcm", "provinces": ["79"],
     "scopes": ["identity.read", "payments.collect", "documents.sign", "documents.verify"]},
    {"agency_code": "000.00.00.G22",
     "scopes": ["identity.read", "audit.read", "signing.issue", "signing.admin"],
     "provinces": ["*"]},
]


CLASSIC_CLIENT = {"client_id": "classic", "profile": "oidc",
                  "redirect_uris": ["http://127.0.0.1:9/cb"],
                  "token_endpoint_auth_method": "client_secret_basic",
                  "client_secret_sha256": hash_secret(CLASSIC_SECRET), "subject_type": "public"}
CITIZEN = "079084000321"
SIGN_DOCUMENT = "/vnegov.signing.v1.SigningService/SignDocument"
XML = (b'<BLai><DLBLai Id="DLBLai"><TgTien>50000</TgTien></DLBLai>'
       b'<DSCKS><NBan/></DSCKS></BLai>')


def _create_citizen(process: ServerProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(process.config_path), "identity",
         "account", "create", "--kind", "citizen", "--identifier", CITIZEN,
         "--name", "Nguyễn Văn An", "--born", "1984-05-17", "--sex", "male",
         "--province", "79", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=120, close_fds=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _where(exc: BaseException) -> str:
    """The line of this test module that made the failed call."""
    here = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
    return f"line {here[-1].lineno}" if here else "?"


class Load:
    """Client loops that run until told to stop; any call that fails is counted."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.ok: Counter[str] = Counter()
        self.failed: list[str] = []
        self.payments: list[str] = []
        self.certificate_requests: list[str] = []
        self.signed: dict[str, str] = {}  # request id -> SHA-256 of the signed document received
        self.phase = "warm-up"  # what the replicas are going through, for failure reports

    async def loop(self, kind: str, step: Callable[[], Awaitable[None]]) -> None:
        while not self.stop.is_set():
            if not await self.once(kind, step):
                await asyncio.sleep(0.1)

    async def once(self, kind: str, step: Callable[[], Awaitable[None]]) -> bool:
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - every failure is the test's finding
            self.failed.append(f"{kind} during {self.phase}: {type(exc).__name__}: "
                               f"{str(exc)[:300]} at {_where(exc)}")
            return False
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not this task cancelled: grpc's asyncio client reports some failed calls so.
            self.failed.append(f"{kind} during {self.phase}: the call was cancelled at "
                               f"{_where(exc)}")
            return False
        self.ok[kind] += 1
        return True


async def test_rolling_restart_under_mixed_load_fails_no_call(
        pki: TestPki, tmp_path: Path, postgres_templates: PostgresTemplates,
        doc_pki: DocumentPki, softhsm: SoftHsm) -> None:  # noqa: F811 - the fixture
    url = postgres_templates.new_database()
    replicas: list[Replica] = []
    for i in range(3):
        (tmp_path / f"r{i}").mkdir()
        replicas.append(Replica(f"unix@{tmp_path / f'r{i}' / 'grpc.sock'}", listen_port(),
                                listen_port()))
    balancer = Balancer(pki, tmp_path / "haproxy", replicas)
    public = f"https://localhost:{balancer.http_port}"
    ca_section = write_ca_files(pki, tmp_path / "ca", public)
    pay_section = payments_section(pki, tmp_path, interval=0.1)
    # One documents configuration for every replica: the same token, agency key and certificate.
    doc_section = documents_section(doc_pki, softhsm, tmp_path / "documents")
    processes: list[ServerProcess] = []
    for i, replica in enumerate(replicas):
        config = server_config_dict(
            pki, tmp_path / f"r{i}", url, grpc_port=listen_port(), http_port=replica.http_port,
            grace=10, extra={
                "server": {"balancer_listen": f"unix:{tmp_path / f'r{i}' / 'grpc.sock'}",
                           "admin_port": replica.admin_port, "public_url": public,
                           "trusted_proxies": ["127.0.0.1"]},
                "auth": {"callers": CALLERS, "plaintext_caller": "000.00.00.G22"},
                "ca": ca_section, "payments": pay_section, "documents": doc_section,
                "identity": {
                    "issuer": public + "/id", "argon2_time_cost": 1, "argon2_memory_kib": 1024,
                    "argon2_parallelism": 1, "worker_interval_seconds": 0.2,
                    "clients": [CLASSIC_CLIENT]}})
        processes.append(ServerProcess(config, tmp_path / f"r{i}"))
    load = Load()
    try:
        # The first replica alone: it creates the CA's first-use rows (replicas starting at once
        # on an empty database race for them until those are created race-free, issue 14 item 1).
        await asyncio.to_thread(processes[0].start, 60)
        await asyncio.to_thread(_create_citizen, processes[0])
        await asyncio.gather(*(asyncio.to_thread(p.start, 60) for p in processes[1:]))
        balancer.start()
        balancer.wait_up(3)
        await _run(balancer, processes, load)
    finally:
        load.stop.set()
        await balancer.close_channels()
        balancer.stop()
        for process in processes:
            process.kill()
    print(f"rolling restart: {dict(load.ok)} calls and steps OK, {len(load.failed)} failed")
    assert load.failed == [], load.failed[:10]
    assert min(load.ok[k] for k in ("read", "payment", "certificate", "login", "sign")) >= 10, \
        load.ok
    _check_database(url, load)
    postgres_templates.drop(url)


async def _run(balancer: Balancer, processes: list[ServerProcess], load: Load) -> None:
    pki = balancer.pki
    options = channel_options()
    hcm = balancer.channel(pki.hcm, options)
    portal = balancer.channel(pki.portal, options)
    admin = admin_pb2_grpc.AdminServiceStub(hcm)
    payments = pay_grpc.PaymentsServiceStub(hcm)
    authority = ca_grpc.CertificateAuthorityServiceStub(portal)
    signing = doc_grpc.SigningServiceStub(hcm)
    platform = PlatformSimulator(PARTNER, SECRET)
    context = ssl.create_default_context(cadata=pem(pki.root.cert).decode())
    http = httpx.AsyncClient(base_url=f"https://localhost:{balancer.http_port}", verify=context,
                             timeout=30)

    async def read() -> None:
        caller = await admin.GetCaller(admin_pb2.GetCallerRequest(), timeout=30)
        assert caller.agency_code == "000.00.00.H29"

    async def payment() -> None:
        created = await payments.CreatePayment(pay.CreatePaymentRequest(
            request_id=uuid.uuid4().hex, procedure_code="2.000815", province_code="79",
            dossier_code=f"H29-RR-{uuid.uuid4().hex[:12]}", payer=pay.Payer(name="Lê Văn C"),
            channel="platform"), timeout=30)
        load.payments.append(created.name)
        platform.payments[created.reference] = _PlatformPayment(
            {"MaThamChieu": created.reference, "SoTien": created.amount_due})
        callback = platform.pay(created.reference, now=dt.datetime.now(dt.UTC))
        # The platform delivers a callback until it gets an answer (as the real one does).
        for _attempt in range(20):
            try:
                answer = await http.post("/payments/platform/callback", json=callback)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if answer.status_code == 200:
                assert platform.check_answer(answer.json()) in {"00", "02"}
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"callback for {created.name} never answered")

    issuer = f"https://localhost:{balancer.http_port}/id"

    async def login() -> None:
        """A citizen signs in at the provider (authorization code with PKCE): the pages, the
        password check and the code, through the balancer, on whichever replicas."""
        verifier, challenge = pkce()
        state = uuid.uuid4().hex
        async with httpx.AsyncClient(verify=context, follow_redirects=False,
                                     timeout=30) as browser:
            async def follow(response: httpx.Response) -> httpx.Response:
                while response.status_code in (302, 303) and \
                        response.headers["location"].startswith(issuer):
                    response = await browser.get(response.headers["location"])
                return response

            async def post(path: str, data: dict[str, str], page: str) -> httpx.Response:
                csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                assert csrf, page[:300]
                return await follow(await browser.post(issuer + path,
                                                       data={"csrf": csrf.group(1), **data}))

            page = await follow(await browser.get(issuer + "/authorize", params={
                "client_id": "classic", "response_type": "code", "scope": "openid",
                "redirect_uri": "http://127.0.0.1:9/cb", "state": state,
                "code_challenge": challenge, "code_challenge_method": "S256"}))
            page = await post("/login", {"identifier": CITIZEN, "password": PASSWORD},
                              page.text)
            if 'id="consent-allow"' in page.text:
                page = await post("/consent", {"decision": "allow"}, page.text)
        assert page.status_code in (302, 303), (page.status_code, page.text[:300])
        params = dict(parse_qsl(urlsplit(page.headers["location"]).query))
        assert params.get("state") == state and params.get("code"), params
        del verifier

    async def certificate() -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        request = await authority.CreateCertificateRequest(ca.CreateCertificateRequestRequest(
            request_id=uuid.uuid4().hex, profile="individual",
            subject=ca.CertificateSubject(**SUBJECT_HCM), csr=csr_for(key),
            managing_body="000.00.00.H29"), timeout=30)
        load.certificate_requests.append(request.name)

    pades = doc.SignDocumentHeader(format=doc.PDF, level=doc.B_T, agency_signer="ubnd-hcm",
                                   reason="Ban hành")
    documents = [
        # 17 KiB: fits in one of HAProxy's buffers (32 KiB), so HAProxy may re-send it itself
        (pades, decision_pdf(), doc.PDF),
        # 51 KiB: only the client's retry repeats it (grpc's retry buffer holds 256 KiB)
        (pades, decision_pdf(3), doc.PDF),
        (doc.SignDocumentHeader(format=doc.XML, agency_signer="ubnd-hcm", xml=doc.XmlOptions(
            reference_id="DLBLai", signature_id="NBan", signature_parent="DSCKS/NBan")),
         XML, doc.XML)]
    started = iter(range(1 << 30))

    async def sign_document() -> None:
        """The agency's seal on a document, then the signed document verified; the request id
        ties the call to its audit event (a repeated attempt carries the same one)."""
        header, data, fmt = documents[next(started) % len(documents)]
        request_id = f"rr-sign-{uuid.uuid4().hex}"
        signed, result = await sign(signing, header, data,
                                    metadata=(("x-request-id", request_id),))
        report = await verify(signing, doc.VerifyDocumentHeader(format=fmt), signed)
        assert report.indication == doc.TOTAL_PASSED, report.report_text[:500]
        [signature] = report.signatures
        assert signature.signer.agency_code == AGENCY_CODE
        load.signed[request_id] = result.sha256

    workers = [asyncio.create_task(load.loop(kind, step)) for kind, step in (
        ("read", read), ("read", read), ("payment", payment), ("payment", payment),
        ("certificate", certificate), ("login", login), ("sign", sign_document))]

    async def signing_in_flight(i: int) -> None:
        """Documents being signed on every replica (the balancer spreads them) when replica
        ``i`` gets its signal: a stopping replica finishes its own, a killed one's are repeated
        on the others. Waits (a few seconds at most) until that replica is serving some."""
        workers.extend(asyncio.create_task(load.once("sign", sign_document)) for _ in range(9))
        for _ in range(60):
            if await asyncio.to_thread(balancer.in_flight, f"r{i + 1}") >= 2:
                return
            await asyncio.sleep(0.05)

    try:
        await asyncio.sleep(2)
        for i, process in enumerate(processes):  # every replica in turn, gracefully
            load.phase = f"SIGTERM r{i}"
            await signing_in_flight(i)
            process.signal(signal.SIGTERM)
            assert await process.wait(30) == 0, process.logs()[-2000:]
            process.kill()  # closes its log
            load.phase = f"restart r{i}"
            await asyncio.to_thread(process.start, 60)
            await asyncio.to_thread(balancer.wait_up, 3, 20)
        load.phase = "SIGKILL r1"
        victim = processes[1]  # and one dies
        assert victim.proc is not None
        await signing_in_flight(1)
        victim.proc.kill()
        victim.proc.wait()
        victim.kill()
        await asyncio.sleep(1)
        load.phase = "restart r1 after SIGKILL"
        await asyncio.to_thread(victim.start, 60)
        await asyncio.to_thread(balancer.wait_up, 3, 20)
        load.phase = "all up again"
        await asyncio.sleep(2)
    finally:
        load.stop.set()
        await asyncio.gather(*workers)
        # Every payment created was paid (its receipt is issued by the outbox, on any replica).
        for name in load.payments:
            for _ in range(100):
                got = await payments.GetPayment(pay.GetPaymentRequest(name=name), timeout=30)
                receipts = await payments.ListReceipts(pay.ListReceiptsRequest(parent=name))
                if got.state == "paid" and len(receipts.receipts) >= 1:
                    break
                await asyncio.sleep(0.1)
            assert got.state == "paid" and got.collected == got.amount_due, got
            assert len(receipts.receipts) == 1, (name, receipts)
        await http.aclose()


def _check_database(url: str, load: Load) -> None:
    db = Database(url)
    try:
        report = verify_chain(db)
        assert report.ok, report
        with db.read() as s:
            paid = s.execute(select(func.count()).select_from(TransitionRow)
                             .where(TransitionRow.to_state == "paid")).scalar_one()
            assert paid == len(load.payments)  # each paid exactly once
            rows = s.execute(select(PaymentRow.collected, PaymentRow.amount_due)).all()
            assert len(rows) == len(load.payments)  # no payment created twice
            assert all(collected == due for collected, due in rows)
            numbers: dict[Any, list[int]] = {}
            for series, year, number in s.execute(
                    select(ReceiptRow.series, ReceiptRow.year, ReceiptRow.number)):
                numbers.setdefault((series, year), []).append(number)
            assert sum(len(v) for v in numbers.values()) == len(load.payments)
            for key, issued in numbers.items():  # gap-free, no number twice
                assert sorted(issued) == list(range(1, len(issued) + 1)), (key, sorted(issued))
            # Every signed document received is in the audit log, under its call's request id,
            # with its own SHA-256. More than one event for a request id: an attempt that signed
            # and whose answer was lost, then repeated (safe: see vnegov_client).
            events: dict[str, list[str]] = {}
            for request_id, details in s.execute(
                    select(AuditEventRow.request_id, AuditEventRow.details).where(
                        AuditEventRow.action == SIGN_DOCUMENT, AuditEventRow.outcome == "OK")):
                events.setdefault(request_id, []).append(json.loads(details)["result_sha256"])
    finally:
        db.dispose()
    for request_id, sha256 in load.signed.items():
        assert sha256 in events.get(request_id, []), (request_id, events.get(request_id))
    repeated = sum(len(v) - 1 for k, v in events.items() if k in load.signed)
    print(f"rolling restart: {len(load.signed)} documents signed, {repeated} signed again by a "
          "repeated attempt")
    assert len(set(load.certificate_requests)) == len(load.certificate_requests)
