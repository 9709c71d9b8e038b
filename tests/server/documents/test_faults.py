"""Fault injection for the signing service's dependencies: the time-stamping authority down, the
OCSP responders and CRL repositories down, and the document spool's disk full. Each call answers
UNAVAILABLE with a RetryInfo (never INTERNAL or UNKNOWN), is audited with its reason, and sends the
caller nothing of a document (no signed document is half delivered)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import select
from werkzeug.serving import make_server

from server.audit import verify_chain
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from tests.server.documents.test_signing_service import CALLERS, chunks, documents_section, stub
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.support.pki import TestPki
from tests.support.server import RunningServer, free_port, running_server
from tests.support.softhsm import SoftHsm
from vnegov.signing.v1 import documents_pb2 as pb

SIGN = "/vnegov.signing.v1.SigningService/SignDocument"


@pytest.fixture
def make_server_for(pki: TestPki, tmp_path: Path, sqlite_db: Database, doc_pki: DocumentPki,
                    softhsm: SoftHsm) -> Any:
    def make(**overrides: Any) -> Any:
        section = {**documents_section(doc_pki, softhsm, tmp_path / "documents"), **overrides}
        return running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra={"documents": section, "auth": {"callers": CALLERS}})
    return make


async def sign_chunks(srv: RunningServer, level: pb.SignatureLevel.ValueType,
                      document: bytes) -> tuple[list[pb.SignDocumentResponse], grpc.aio.AioRpcError | None]:
    """Every message the caller received, and the error that ended the call (if any)."""
    async def requests() -> AsyncIterator[pb.SignDocumentRequest]:
        yield pb.SignDocumentRequest(header=pb.SignDocumentHeader(
            format=pb.PDF, agency_signer="ubnd-hcm", level=level))
        for chunk in chunks(document, 1 << 20):
            yield pb.SignDocumentRequest(chunk=chunk)

    received: list[pb.SignDocumentResponse] = []
    try:
        async for message in stub(srv).SignDocument(requests()):
            received.append(message)
    except grpc.aio.AioRpcError as exc:
        return received, exc
    return received, None


def retry_of(err: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    status = rpc_status.from_call(err)
    assert status is not None
    reason, retry = "", None
    for detail in status.details:
        info, wait = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(wait):
            retry = wait.retry_delay.ToMilliseconds() / 1000
    return reason, retry


def audited(db: Database) -> list[tuple[str, str]]:
    with db.read() as session:
        return [(o, r) for o, r in session.execute(
            select(AuditEventRow.outcome, AuditEventRow.reason).where(
                AuditEventRow.action == SIGN).order_by(AuditEventRow.seq)).all()]


def assert_unavailable(received: list[pb.SignDocumentResponse],
                       err: grpc.aio.AioRpcError | None, reason: str) -> None:
    assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, err
    got, retry = retry_of(err)
    assert got == reason and retry is not None and retry > 0
    assert received == []  # not one chunk of a document that was not signed


async def test_the_tsa_down_is_unavailable_and_audited(make_server_for: Any,
                                                       sqlite_db: Database) -> None:
    async with make_server_for(tsa_url=f"http://127.0.0.1:{free_port()}/tsa") as srv:
        received, err = await sign_chunks(srv, pb.B_T, decision_pdf())
        assert_unavailable(received, err, "TIMESTAMP_UNAVAILABLE")
        received, err = await sign_chunks(srv, pb.B_B, decision_pdf())  # needs no TSA: works
        assert err is None and received[-1].HasField("result")
    assert audited(sqlite_db) == [("UNAVAILABLE", "TIMESTAMP_UNAVAILABLE"), ("OK", "")]
    assert verify_chain(sqlite_db).ok


@pytest.fixture
def tsa_only(doc_pki: DocumentPki) -> Iterator[str]:
    """The test PKI's TSA on a port of its own, so that it stays up while the responders named
    in the certificates (OCSP, CRL) are down."""
    server = make_server("127.0.0.1", free_port(), doc_pki._app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield doc_pki.tsa_url.replace(doc_pki.url, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


async def test_the_ocsp_responders_down_are_unavailable_and_audited(
        make_server_for: Any, sqlite_db: Database, doc_pki: DocumentPki, tsa_only: str) -> None:
    with doc_pki.offline():
        async with make_server_for(tsa_url=tsa_only) as srv:
            received, err = await sign_chunks(srv, pb.B_LT, decision_pdf())
            assert_unavailable(received, err, "REVOCATION_DATA_UNAVAILABLE")
            received, err = await sign_chunks(srv, pb.B_T, decision_pdf())  # the TSA is up
            assert err is None and received[-1].HasField("result")
    assert audited(sqlite_db) == [("UNAVAILABLE", "REVOCATION_DATA_UNAVAILABLE"), ("OK", "")]


@pytest.fixture
def full_spool(tmp_path: Path) -> Iterator[Path]:
    """The temporary directory of the server's spools on a 1 MiB tmpfs (full for real: ENOSPC
    from the kernel)."""
    mount = tmp_path / "spool"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.fail("cannot mount a tmpfs here (the fault test needs root)")
    saved = tempfile.tempdir
    tempfile.tempdir = str(mount)
    try:
        yield mount
    finally:
        tempfile.tempdir = saved
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_spool_disk_is_unavailable_and_audited(
        make_server_for: Any, sqlite_db: Database, full_spool: Path) -> None:
    """A 12 MiB document spills its spool to disk past 8 MiB: on a full disk the call is
    UNAVAILABLE / STORAGE_FULL; a small document, spooled in memory, still signs."""
    import os

    large = decision_pdf().replace(b"%%EOF", b"%" + os.urandom(6 << 20).hex().encode()
                                   + b"\n%%EOF")
    async with make_server_for() as srv:
        received, err = await sign_chunks(srv, pb.B_B, large)
        assert_unavailable(received, err, "STORAGE_FULL")
        received, err = await sign_chunks(srv, pb.B_B, decision_pdf())
        assert err is None and received[-1].HasField("result")
    assert audited(sqlite_db) == [("UNAVAILABLE", "STORAGE_FULL"), ("OK", "")]
    assert list(full_spool.iterdir()) == []  # nothing left behind
