"""Run pyHanko's asynchronous APIs from the synchronous functions of this package.

The library's entry points are synchronous (the server calls them on worker threads); pyHanko and
its certificate validator are asynchronous. :func:`run` runs a coroutine to completion on a fresh
event loop, or on a helper thread when the calling thread already runs a loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_helper = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="signing-aio")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _helper.submit(asyncio.run, coro).result()
