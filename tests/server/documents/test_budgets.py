"""Resource budgets for documents over the real SigningService: hostile PDFs and XML refused with
INVALID_ARGUMENT naming the budget, processor time bounded, and work stopped when the caller's
deadline passes or the caller goes away (the worker thread stops too, not only the call)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.storage.db import Database
from tests.server.documents.test_signing_service import (
    CALLERS,
    documents_section,
    sign,
    stub,
    verify,
)
from tests.signing.sign.docpki import DocumentPki
from tests.support.pki import TestPki
from tests.support.server import RunningServer, running_server
from tests.support.softhsm import SoftHsm
from vnegov.signing.v1 import documents_pb2 as pb

BUDGET = {"pdf_objects": 20_000, "xml_elements": 10_000, "xml_max_bytes": 1 << 20,
          "max_depth": 32, "cpu_seconds": 1.0}


@pytest.fixture
async def srv(pki: TestPki, tmp_path: Path, sqlite_db: Database, doc_pki: DocumentPki,
              softhsm: SoftHsm) -> AsyncIterator[RunningServer]:
    section = documents_section(doc_pki, softhsm, tmp_path / "documents")
    extra = {"documents": {**section, "budget": BUDGET}, "auth": {"callers": CALLERS}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra=extra) as running:
        yield running


def budget_of(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.reason == "DOCUMENT_BUDGET_EXCEEDED", info
            return str(info.metadata["budget"])
    raise AssertionError("no ErrorInfo")


def pdf(objects: list[bytes], catalog: bytes = b"") -> bytes:
    """A PDF whose body is ``objects`` (numbered from 3) plus a catalog and an empty page tree,
    with a correct cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    bodies = [b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog, b"<< /Type /Pages /Kids [] /Count 0 >>",
              *objects]
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1))
    out.writelines(b"%010d 00000 n \n" % o for o in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(bodies) + 1, xref))
    return out.getvalue()


HOSTILE_PDFS = {
    "max_depth": pdf([b"[" * 5000 + b"]" * 5000]),
    "pdf_objects": pdf([b"null"] * 30_000),
    "pdf_objects-in-object-streams": pdf(
        [b"<< /Type /ObjStm /N 900000 /First 10 /Length 0 >>\nstream\n\nendstream"]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PDFS))
@pytest.mark.parametrize("method", ["sign", "verify"])
async def test_hostile_pdfs_are_refused_naming_the_budget(srv: RunningServer, name: str,
                                                          method: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        if method == "sign":
            await sign(stub(srv), pb.SignDocumentHeader(format=pb.PDF,
                                                        agency_signer="ubnd-hcm"),
                       HOSTILE_PDFS[name])
        else:
            await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.PDF), HOSTILE_PDFS[name])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert budget_of(err.value) == name.split("-")[0]


HOSTILE_XML = {
    "xml_elements": b"<r>" + b"<e/>" * 20_000 + b"</r>",
    "max_depth": b"<e>" * 100 + b"</e>" * 100,
    "xml_max_bytes": b"<r>" + b"x" * (2 << 20) + b"</r>",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
async def test_hostile_xml_is_refused_naming_the_budget(srv: RunningServer, name: str) -> None:
    for call in (sign(stub(srv), pb.SignDocumentHeader(format=pb.XML, agency_signer="ubnd-hcm"),
                      HOSTILE_XML[name]),
                 verify(stub(srv), pb.VerifyDocumentHeader(format=pb.XML), HOSTILE_XML[name])):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert budget_of(err.value) == name


async def test_a_document_within_budget_still_signs(srv: RunningServer) -> None:
    """The control: the same shapes, smaller, pass their budgets."""
    await sign(stub(srv), pb.SignDocumentHeader(format=pb.XML, agency_signer="ubnd-hcm"),
               b"<r>" + b"<e/>" * 5_000 + b"</r>")
    report = await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.PDF),
                          pdf([b"[" * 20 + b"]" * 20, *[b"null"] * 1000]))
    assert report.indication != pb.TOTAL_PASSED  # no signature, but verified to the end


# A PDF within its structure budgets that costs the parser a lot of processor time: a catalog
# of 600 000 keys, which the pure-Python parser reads token by token (about 10 s of one core).
SLOW_PDF = pdf([], b"".join(b"/K%d %d " % (i, i) for i in range(600_000)))


def _workers_cpu(srv: RunningServer) -> float:
    """Processor time used so far by the server's worker threads (where documents are parsed)."""
    total = 0.0
    for thread in list(srv.app.executor._threads):  # noqa: SLF001 - the pool's own threads
        if thread.ident is not None and thread.is_alive():
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


async def test_processor_time_is_bounded(srv: RunningServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.PDF), SLOW_PDF)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert budget_of(err.value) == "cpu_seconds"


@pytest.fixture
async def patient(pki: TestPki, tmp_path: Path, sqlite_db: Database, doc_pki: DocumentPki,
                  softhsm: SoftHsm) -> AsyncIterator[RunningServer]:
    """A server whose processor budget (60 s) would let the slow document run to its end."""
    section = documents_section(doc_pki, softhsm, tmp_path / "documents")
    extra = {"documents": {**section, "budget": {"cpu_seconds": 60.0}},
             "auth": {"callers": CALLERS}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra=extra) as running:
        yield running


@pytest.mark.parametrize("how", ["deadline", "caller-goes-away"])
async def test_work_stops_when_the_caller_stops_waiting(patient: RunningServer, how: str
                                                        ) -> None:
    """The worker thread stops too: once the call has ended, the server's worker threads use a
    fraction of the processor time they used while the parse ran, where without the stop the
    parse would go on at the same pace for its whole budget."""
    s = stub(patient)

    async def requests() -> AsyncIterator[pb.VerifyDocumentRequest]:
        yield pb.VerifyDocumentRequest(header=pb.VerifyDocumentHeader(format=pb.PDF))
        for i in range(0, len(SLOW_PDF), 1 << 20):
            yield pb.VerifyDocumentRequest(chunk=SLOW_PDF[i:i + (1 << 20)])

    call = s.VerifyDocument(requests(), timeout=2.5 if how == "deadline" else None)
    await asyncio.sleep(1.0)  # the document is spooled and the worker is parsing it
    start = _workers_cpu(patient)
    await asyncio.sleep(1.0)
    busy = _workers_cpu(patient) - start
    if how == "caller-goes-away":
        call.cancel()
    with pytest.raises((grpc.aio.AioRpcError, asyncio.CancelledError)):
        await call
    await asyncio.sleep(0.5)  # the watchdog's tick, and the parser's next instruction
    start = _workers_cpu(patient)
    await asyncio.sleep(1.0)
    idle = _workers_cpu(patient) - start
    # Relative, not absolute: on a loaded machine the parser gets only part of a core.
    assert busy > 0.1 and idle < busy / 5, (busy, idle)
