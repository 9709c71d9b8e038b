"""Resource budgets for documents: what one PDF or XML document may cost before it is refused.

A document is checked against its budget before the parsers see it, cheaply and without building
anything (a scan of the raw bytes for PDF, a streaming count for XML):

* ``max_bytes``: the document's size;
* ``pdf_objects`` / ``xml_elements``: how many indirect objects (counting those packed in object
  streams) or elements it holds;
* ``max_depth``: how deeply PDF dictionaries and arrays, or XML elements, nest;
* ``cpu_seconds``: the processor time the worker thread may spend on it.

Over budget is :class:`BudgetExceeded` (an :class:`~signing.errors.InvalidInput`) naming the budget
and its limit. The work itself runs under :func:`guarded`: a watchdog thread stops it (by raising
in the worker thread at its next Python instruction) once it has used its processor time, once the
caller's deadline has passed, or once the caller has gone away (``cancelled`` is set), so that
abandoned work does not occupy a worker. :func:`release_memory` hands freed memory back to the
operating system after a large document.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import mmap
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from lxml import etree

from signing.errors import InvalidInput, SigningError

__all__ = [
    "BudgetExceeded",
    "DocumentBudget",
    "WorkStopped",
    "check_pdf",
    "check_xml",
    "guarded",
    "release_memory",
]


@dataclass(frozen=True, slots=True)
class DocumentBudget:
    """Limits for one document. The defaults let a 100 MB scanned PDF through and stop hostile
    structures long before they cost a worker more than its processor budget."""

    max_bytes: int = 256 << 20
    xml_max_bytes: int = 16 << 20
    pdf_objects: int = 500_000
    xml_elements: int = 200_000
    max_depth: int = 64
    cpu_seconds: float = 60.0


class BudgetExceeded(InvalidInput):
    """The document is over one of its budgets; the same document fails again."""

    reason = "DOCUMENT_BUDGET_EXCEEDED"

    def __init__(self, budget: str, limit: float) -> None:
        shown = f"{limit:g}"
        super().__init__(f"the document exceeds its {budget} budget ({shown})",
                         metadata={"budget": budget, "limit": shown})
        self.budget = budget


class WorkStopped(SigningError):
    """The work was stopped because its caller's deadline passed or the caller went away."""

    reason = "WORK_STOPPED"


# ---------------------------------------------------------------------------------- PDF

# Tokens that matter for the structure outside streams (a stream's contents are jumped over to
# its ``endstream``).
_PDF_TOKENS = re.compile(rb"(?<!end)stream\r?\n|<<|>>|\[|\]|\sobj\b")
_ENDSTREAM = re.compile(rb"endstream")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm\b")
_OBJSTM_COUNT = re.compile(rb"/N\s+(\d{1,9})\b")


def _buffer(source: IO[bytes]) -> tuple[bytes | memoryview | mmap.mmap, object]:
    """The document's bytes without copying them (a view or a map), and what to close."""
    if isinstance(source, io.BytesIO):
        view = source.getbuffer()
        return view, view
    try:
        fileno = source.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        position = source.tell()
        data = source.read()
        source.seek(position)
        return data, None
    source.flush()
    mapped = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
    return mapped, mapped


def _size(source: IO[bytes]) -> int:
    position = source.tell()
    size = source.seek(0, io.SEEK_END)
    source.seek(position)
    return size


def check_pdf(source: IO[bytes], budget: DocumentBudget) -> None:
    """Refuse a PDF over its size, object or nesting budget (one pass over the bytes; stream
    contents are skipped, objects packed in object streams are counted by their ``/N``)."""
    size = _size(source)
    if size > budget.max_bytes:
        raise BudgetExceeded("max_bytes", budget.max_bytes)
    if size == 0:
        return
    data, closing = _buffer(source)
    try:
        objects = 0
        for match in _OBJSTM.finditer(data):  # objects packed in object streams
            around = bytes(data[max(0, match.start() - 400):match.end() + 400])
            count = _OBJSTM_COUNT.search(around)
            objects += int(count.group(1)) if count else 0
        if objects > budget.pdf_objects:
            raise BudgetExceeded("pdf_objects", budget.pdf_objects)
        depth = position = 0
        search = _PDF_TOKENS.search
        while (found := search(data, position)) is not None:
            token = found.group()
            position = found.end()
            first = token[:1]
            if first == b"<" or first == b"[":
                depth += 1
                if depth > budget.max_depth:
                    raise BudgetExceeded("max_depth", budget.max_depth)
            elif first == b">" or first == b"]":
                depth = max(0, depth - 1)
            elif first == b"s":  # a stream's contents are skipped whole
                end = _ENDSTREAM.search(data, position)
                position = end.end() if end is not None else len(data)
                depth = 0  # its dictionary is closed by now, whatever came before
            else:
                depth = 0  # a new object: nothing of the last one is open
                objects += 1
                if objects > budget.pdf_objects:
                    raise BudgetExceeded("pdf_objects", budget.pdf_objects)
    finally:
        if isinstance(closing, memoryview):
            closing.release()
        elif isinstance(closing, mmap.mmap):
            closing.close()


# ---------------------------------------------------------------------------------- XML


def check_xml(data: bytes, budget: DocumentBudget) -> None:
    """Refuse an XML document over its size, element or depth budget, counting as it streams
    (nothing is kept). A document that is not well-formed is left for the verifier to report."""
    if len(data) > min(budget.max_bytes, budget.xml_max_bytes):
        raise BudgetExceeded("xml_max_bytes", min(budget.max_bytes, budget.xml_max_bytes))
    elements = depth = 0
    try:
        for event, element in etree.iterparse(
                io.BytesIO(data), events=("start", "end"), resolve_entities=False,
                no_network=True, load_dtd=False, huge_tree=False, remove_comments=True):
            if event == "start":
                elements += 1
                depth += 1
                if elements > budget.xml_elements:
                    raise BudgetExceeded("xml_elements", budget.xml_elements)
                if depth > budget.max_depth:
                    raise BudgetExceeded("max_depth", budget.max_depth)
            else:
                depth -= 1
                element.clear(keep_tail=False)
    except etree.XMLSyntaxError:
        return


# ---------------------------------------------------------------------------------- time


class _Stop(BaseException):
    """Raised asynchronously in a worker thread by the watchdog (a BaseException, so that no
    ``except Exception`` in a library swallows it); turned into the public error by guarded()."""


@dataclass(slots=True)
class _Guard:
    thread_id: int
    clock: int
    cpu_limit: float
    deadline: float | None
    cancelled: threading.Event | None
    why: str = ""
    again_at: float = 0.0  # when to deliver the stop again if the work has not ended
    deliveries: int = 0


_lock = threading.Lock()
_guards: dict[int, _Guard] = {}
_watchdog: threading.Thread | None = None
_TICK = 0.05
# A stop that lands in a finalizer or a weakref callback running in the worker thread is
# swallowed by Python (printed as "Exception ignored in ..."): it is delivered again after this,
# a few times at most (each delivery interrupts whatever the thread is doing, cleanup included).
_AGAIN = 0.2
_DELIVERIES = 4


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None)


def _watch() -> None:
    while True:
        time.sleep(_TICK)
        now = time.monotonic()
        with _lock:
            for guard in _guards.values():
                if guard.why:
                    if now >= guard.again_at and guard.deliveries < _DELIVERIES:
                        guard.again_at = now + _AGAIN
                        guard.deliveries += 1
                        _raise_in(guard.thread_id, _Stop)
                    continue
                if guard.cancelled is not None and guard.cancelled.is_set():
                    guard.why = "cancelled"
                elif guard.deadline is not None and now >= guard.deadline:
                    guard.why = "deadline"
                elif time.clock_gettime(guard.clock) > guard.cpu_limit:
                    guard.why = "cpu_seconds"
                if guard.why:
                    guard.again_at = now + _AGAIN
                    guard.deliveries = 1
                    _raise_in(guard.thread_id, _Stop)


def _quiet_swallowed_stops() -> None:
    """Keep stops swallowed by a finalizer out of the "Exception ignored" reports (the watchdog
    delivers them again); every other unraisable exception goes to the hook as before."""
    previous = sys.unraisablehook
    if getattr(previous, "_vnegov_budget", False):
        return

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not _Stop:
            previous(unraisable)

    hook._vnegov_budget = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _withdraw(guard: _Guard) -> None:
    with _lock:
        if _guards.get(guard.thread_id) is guard:
            del _guards[guard.thread_id]
        if guard.why:
            _raise_in(guard.thread_id, None)  # a stop not delivered yet is withdrawn


@contextmanager
def guarded(budget: DocumentBudget, *, deadline: float | None = None,
            cancelled: threading.Event | None = None) -> Iterator[None]:
    """Run the block within ``budget.cpu_seconds`` of this thread's processor time, until
    ``deadline`` (``time.monotonic()``) and while ``cancelled`` is not set. Over its time the block
    ends with :class:`BudgetExceeded` naming ``cpu_seconds``; past the deadline or once cancelled,
    with :class:`WorkStopped`. The stop takes effect at the block's next Python instruction (a
    long call into C finishes first)."""
    global _watchdog
    thread_id = threading.get_ident()
    clock = time.pthread_getcpuclockid(thread_id)
    guard = _Guard(thread_id, clock, time.clock_gettime(clock) + budget.cpu_seconds, deadline,
                   cancelled)
    with _lock:
        if _watchdog is None or not _watchdog.is_alive():
            _quiet_swallowed_stops()
            _watchdog = threading.Thread(target=_watch, name="document-budget", daemon=True)
            _watchdog.start()
        _guards[thread_id] = guard
    try:
        try:
            yield
        finally:
            _withdraw(guard)
    except _Stop:
        _withdraw(guard)
    else:
        return  # finished before the watchdog's stop was delivered: the result stands
    if guard.why == "cpu_seconds":
        raise BudgetExceeded("cpu_seconds", budget.cpu_seconds)
    if guard.why:
        raise WorkStopped("the work was stopped: " + (
            "the caller's deadline passed" if guard.why == "deadline" else
            "the caller went away"), reason="DEADLINE_EXCEEDED" if guard.why == "deadline"
            else "CANCELLED")


# ---------------------------------------------------------------------------------- memory

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_malloc_trim = getattr(_libc, "malloc_trim", None)


def release_memory() -> None:
    """Give freed heap memory back to the operating system (glibc keeps it otherwise, and the
    process stays as large as its largest document)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
