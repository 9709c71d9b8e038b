"""A status poll that read the database before a revocation committed must not undo it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from server.storage.db import Database
from tests.server.ca.conftest import CaServer, CaServerFactory, database_url, issue
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.signing.v1 import certificate_authority_pb2 as pb


@pytest.fixture
async def ca(pki: TestPki, tmp_path: Path, sqlite_db: Database):  # type: ignore[no-untyped-def]
    # No background poll during the test: the only poll is the one the test stalls.
    port, extra = CaServerFactory(pki, tmp_path, database_url(sqlite_db)).config(
        status_poll_seconds=3600)
    async with running_server(pki, tmp_path, database_url(sqlite_db), http_port=port,
                              extra=extra) as srv:
        yield CaServer(srv, pki, tmp_path)


async def test_stale_poll_does_not_overwrite_a_revocation(
        ca: CaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    stub = ca.stub()
    request, _ = await issue(ca)
    cert = await stub.GetCertificate(pb.GetCertificateRequest(name=request.result_certificate))
    module = next(m for m in ca.server.app._modules if m.name == "ca")
    refresher = module.parts.refresher  # type: ignore[attr-defined]

    # A poll that treats the certificate as new reads it as VALID, then stalls before applying.
    read, go_on = threading.Event(), threading.Event()
    apply = refresher._apply

    def stalled_apply(rows):  # type: ignore[no-untyped-def]
        if rows:
            read.set()
            go_on.wait(10)
        apply(rows)

    monkeypatch.setattr(refresher, "_apply", stalled_apply)
    refresher._last_id = 0
    poll = threading.Thread(target=refresher.poll)
    poll.start()
    assert await asyncio.to_thread(read.wait, 10)

    # The revocation commits while the poll holds its older view...
    revoking = asyncio.ensure_future(stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=request.result_certificate, reason=pb.RevocationReason.KEY_COMPROMISE)))
    await asyncio.sleep(0.5)
    go_on.set()  # ...and the poll applies that view afterwards.
    await revoking
    await asyncio.to_thread(poll.join, 10)

    status = await stub.GetCertificateStatus(pb.GetCertificateStatusRequest(
        serial_number=cert.serial_number))
    assert status.status == pb.CertificateStatus.REVOKED
    assert status.revocation_reason == pb.RevocationReason.KEY_COMPROMISE
