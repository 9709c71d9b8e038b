"""Documents' resource budgets on the server: the structure checks of :mod:`signing.budget` before
the library parses a document, and its work guarded on the worker thread by the budget's processor
time, the call's deadline and the caller's presence (a call the client cancelled or abandoned stops
its worker too, instead of running to the end for nobody)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

import grpc

from server.modules import AppContext
from signing.budget import (
    BudgetExceeded,
    DocumentBudget,
    check_pdf,
    check_xml,
    guarded,
    release_memory,
)
from vnegov.signing.v1 import documents_pb2 as pb

__all__ = ["run_budgeted"]

T = TypeVar("T")

# Past this size the heap is trimmed after the work: freed memory goes back to the system.
_LARGE = 8 << 20


def _checked(budget: DocumentBudget, fmt: int, source: IO[bytes]) -> int:
    """The document's size, once it is known to be within its structure budgets."""
    size = source.seek(0, 2)
    source.seek(0)
    if size > budget.max_bytes:
        raise BudgetExceeded("max_bytes", budget.max_bytes)
    if fmt == pb.PDF:
        check_pdf(source, budget)
    elif fmt == pb.XML:
        if size > budget.xml_max_bytes:  # refused before it is read
            raise BudgetExceeded("xml_max_bytes", budget.xml_max_bytes)
        check_xml(source.read(), budget)
    source.seek(0)
    return size


async def run_budgeted(ctx: AppContext, context: grpc.aio.ServicerContext,
                       budget: DocumentBudget, fmt: int, source: IO[bytes],
                       fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread, after the document in ``source`` passed its structure
    budgets, stopped when it overruns its processor time, when the call's deadline passes or when
    the call is cancelled (the caller went away)."""
    cancelled = threading.Event()
    remaining = context.time_remaining()
    deadline = time.monotonic() + remaining if remaining is not None else None

    def work() -> T:
        size = 0
        try:
            with guarded(budget, deadline=deadline, cancelled=cancelled):
                size = _checked(budget, fmt, source)
                return fn(*args)
        finally:
            if size > _LARGE:
                release_memory()

    try:
        return await ctx.run(work)
    except asyncio.CancelledError:
        cancelled.set()
        raise
