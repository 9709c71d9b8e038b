"""signing.budget on its own: structure budgets over the raw bytes (size and shape of documents
varied), and the watchdog that stops work by processor time, deadline or cancellation."""

from __future__ import annotations

import io
import tempfile
import threading
import time

import pytest

from signing.budget import (
    BudgetExceeded,
    DocumentBudget,
    WorkStopped,
    check_pdf,
    check_xml,
    guarded,
    release_memory,
)
from tests.signing.sign.pdfs import decision_pdf

SMALL = DocumentBudget(pdf_objects=1000, xml_elements=1000, max_depth=16, cpu_seconds=0.3,
                       max_bytes=1 << 20, xml_max_bytes=1 << 16)


def spin() -> None:
    while True:
        pass


def budget_name(exc: pytest.ExceptionInfo[BudgetExceeded]) -> str:
    assert exc.value.metadata["budget"] == exc.value.budget
    return exc.value.budget


# ------------------------------------------------------------------ PDF shapes


def test_a_real_pdf_passes_in_memory_and_from_a_file() -> None:
    document = decision_pdf()
    check_pdf(io.BytesIO(document), DocumentBudget())
    with tempfile.TemporaryFile() as fh:  # mapped, not read
        fh.write(document)
        fh.seek(0)
        check_pdf(fh, DocumentBudget())


@pytest.mark.parametrize(("body", "budget"), [
    (b"1 0 obj\n" + b"[" * 17 + b"]" * 17 + b"\nendobj\n", "max_depth"),
    (b"1 0 obj\n" + b"<<" * 17 + b">>" * 17 + b"\nendobj\n", "max_depth"),
    (b"".join(b"%d 0 obj\nnull\nendobj\n" % i for i in range(1001)), "pdf_objects"),
    (b"1 0 obj\n<< /Type /ObjStm /N 5000 /First 4 >>\nstream\n\nendstream\nendobj\n",
     "pdf_objects"),
    (b"% " + b"x" * (1 << 20), "max_bytes"),
])
def test_pdf_shapes_over_budget_are_named(body: bytes, budget: str) -> None:
    with pytest.raises(BudgetExceeded) as exc:
        check_pdf(io.BytesIO(b"%PDF-1.7\n" + body), SMALL)
    assert budget_name(exc) == budget


def test_brackets_inside_streams_and_across_objects_do_not_count() -> None:
    binary = b"[[[[[[[[[[<<<<<<<<<<" * 100
    body = b"".join(b"%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n"
                    % (i, len(binary), binary) for i in range(10))
    check_pdf(io.BytesIO(b"%PDF-1.7\n" + body + b"11 0 obj\n[[[[\nendobj\n" * 10), SMALL)


# ------------------------------------------------------------------ XML shapes


@pytest.mark.parametrize(("document", "budget"), [
    (b"<r>" + b"<e/>" * 1000 + b"</r>", "xml_elements"),
    (b"<e>" * 17 + b"</e>" * 17, "max_depth"),
    (b"<r>" + b"x" * (1 << 16) + b"</r>", "xml_max_bytes"),
])
def test_xml_shapes_over_budget_are_named(document: bytes, budget: str) -> None:
    with pytest.raises(BudgetExceeded) as exc:
        check_xml(document, SMALL)
    assert budget_name(exc) == budget


def test_xml_within_budget_and_malformed_xml_pass_to_the_verifier() -> None:
    check_xml(b"<r>" + b"<e/>" * 998 + b"</r>", SMALL)
    check_xml(b"<r><unclosed></r>", SMALL)  # the verifier reports it in its own words
    check_xml(b'<!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;&a;</r>', SMALL)  # not expanded


# ------------------------------------------------------------------ the watchdog


def test_processor_time_stops_a_busy_loop() -> None:
    with pytest.raises(BudgetExceeded) as exc, guarded(SMALL):
        spin()
    assert budget_name(exc) == "cpu_seconds"


def test_a_broad_except_in_the_work_does_not_swallow_the_stop() -> None:
    with pytest.raises(BudgetExceeded), guarded(SMALL):
        while True:
            try:
                spin()
            except Exception:  # noqa: BLE001 - what a careless library might do
                pass


def test_the_deadline_stops_sleeping_work() -> None:
    with pytest.raises(WorkStopped) as exc, guarded(DocumentBudget(),
                                                    deadline=time.monotonic() + 0.2):
        while True:
            time.sleep(0.01)
    assert exc.value.reason == "DEADLINE_EXCEEDED"


def test_cancellation_from_another_thread_stops_the_work() -> None:
    cancelled = threading.Event()
    threading.Timer(0.2, cancelled.set).start()
    with pytest.raises(WorkStopped) as exc, guarded(DocumentBudget(), cancelled=cancelled):
        spin()
    assert exc.value.reason == "CANCELLED"


def test_work_that_ends_in_time_is_left_alone_afterwards() -> None:
    for _ in range(50):
        with guarded(SMALL):
            sum(range(10_000))
    end = time.monotonic() + 0.5  # no stop arrives later, outside any guard
    while time.monotonic() < end:
        sum(range(1000))
    release_memory()


def test_guards_in_several_threads_are_independent() -> None:
    outcomes: dict[str, str] = {}

    def busy() -> None:
        try:
            with guarded(SMALL):
                spin()
        except BudgetExceeded as exc:
            outcomes["busy"] = exc.budget

    def quick() -> None:
        with guarded(DocumentBudget()):
            time.sleep(0.6)
        outcomes["quick"] = "done"

    threads = [threading.Thread(target=busy), threading.Thread(target=quick)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == {"busy": "cpu_seconds", "quick": "done"}
