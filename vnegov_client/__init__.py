"""The published client settings of vnegov's gRPC API: a service config with a deliberate retry
decision for every method, and channels that use it.

    from vnegov_client import secure_channel, aio_secure_channel

    with secure_channel("gateway.example.vn:443", credentials) as channel:
        ...

The service config (``service_config.json`` in this package) retries, with exponential back-off:

- read-only methods (Get*, List*, QuoteFees, VerifyDocument, ...), on UNAVAILABLE and ABORTED;
- mutations that carry a ``request_id`` (AIP-155: the server answers a repeat with the first
  result), on UNAVAILABLE and ABORTED -- **only when the caller sets request_id**: without one,
  a repeat is a new request, so give every such call a fresh random request_id;
- mutations safe to repeat as they are (SetCollectionAccount, ImportStatement,
  CreateChipChallenge), likewise.

Every other method (signing with single-use activation data, approvals, cancellations, ...) is
not retried by policy; grpc still retries transparently a call that never left the client or was
refused by a server before any of it was processed (GOAWAY during a rolling restart). A test
(tests/test_client_service_config.py) keeps this table complete: each method of each service is
named exactly once, and no mutation without a request_id is retried unless listed as idempotent.

UNAVAILABLE and ABORTED are what the servers answer while a replica restarts behind the balancer
or the database fails over (docs/operations.md, "Always on").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import grpc

__all__ = [
    "IDEMPOTENT_MUTATIONS",
    "aio_secure_channel",
    "channel_options",
    "secure_channel",
    "service_config",
]

# Mutations without a request_id that are safe to repeat as they are. (CreateChipChallenge: a
# repeat issues another challenge; the one whose answer was lost expires unused.)
IDEMPOTENT_MUTATIONS = frozenset({
    "vnegov.payments.v1.PaymentsService/SetCollectionAccount",
    "vnegov.payments.v1.PaymentsService/ImportStatement",
    "vnegov.identity.v1.IdentityService/CreateChipChallenge",
})


@cache
def _text() -> str:
    return resources.files(__package__).joinpath("service_config.json").read_text("utf-8")


def service_config() -> dict[str, Any]:
    """The service config as a dict (a fresh copy)."""
    data: dict[str, Any] = json.loads(_text())
    return data


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel arguments that apply the service config (retries enabled)."""
    return [("grpc.service_config", _text()), ("grpc.enable_retries", 1), *extra]


def secure_channel(target: str, credentials: grpc.ChannelCredentials,
                   options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    return grpc.secure_channel(target, credentials, options=channel_options(options))


def aio_secure_channel(target: str, credentials: grpc.ChannelCredentials,
                       options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(target, credentials, options=channel_options(options))
