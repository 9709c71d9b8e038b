"""Per-call state shared by the interceptors and servicers of one gRPC call."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from server.auth.caller import Caller

__all__ = ["CallState", "current_call", "current_caller"]


@dataclass(slots=True)
class CallState:
    request_id: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    caller: Caller | None = None
    # Set by the error interceptor when the call fails.
    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str = ""
    audit_detail: str = ""
    audit_extra: dict[str, str] = field(default_factory=dict)
    # The call's text metadata (authorization, x-request-id, ...).
    metadata: dict[str, str] = field(default_factory=dict)
    # The call's trace span and its context token, when traces are on (server/telemetry.py).
    span: Any = None
    span_token: Any = None


_CURRENT: contextvars.ContextVar[CallState | None] = contextvars.ContextVar(
    "vnegov_call", default=None
)


def current_call() -> CallState:
    state = _CURRENT.get()
    if state is None:
        raise RuntimeError("not inside a gRPC call")
    return state


def current_caller() -> Caller:
    """The authenticated caller of the current call (set by the authentication interceptor)."""
    caller = current_call().caller
    if caller is None:
        raise RuntimeError("call is not authenticated")
    return caller


def set_current(state: CallState | None) -> contextvars.Token[CallState | None]:
    return _CURRENT.set(state)


def reset_current(token: contextvars.Token[CallState | None]) -> None:
    _CURRENT.reset(token)
