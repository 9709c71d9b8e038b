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
  CreateChipChallenge, SignDocument, ExtendDocument), likewise.

Every other method (SignHash and AuthorizeCredential with their single-use activation data,
approvals, cancellations, ...) is not retried by policy; grpc still retries transparently a call
that never left the client or was refused by a server before any of it was processed (GOAWAY
during a rolling restart). A test (tests/test_client_service_config.py) keeps this table
complete: each method of each service is named exactly once, and no mutation without a
request_id is retried unless listed as idempotent.

Signing a document (SignDocument, ExtendDocument) is repeated, after these checks of what one
call changes on the server:

- With an agency's key (``agency_signer``), a call stores nothing: no counter, no archive
  record, no approval is used; the time-stamp and revocation data come from outside services
  that keep nothing for the server. What a call leaves is its audit event. A repeat after an
  attempt that had signed but whose answer was lost (the replica died between the audit commit
  and the answer) signs the same document again: the audit log then holds two SignDocument
  events under the call's ``x-request-id`` (each with ``result_sha256``, the SHA-256 of the
  document it made; the caller's ``result.sha256`` names the one it received). Two valid seals
  over the same content, one of which never left the server, are harmless. ExtendDocument
  likewise (a new archive time-stamp over a document the caller sends again).
- With an official's credential and a one-time code (``credential``), the code is claimed in the
  database before the key is used, so a repeat can never make a second signature with the
  official's key: it signs only if the first attempt failed before the claim, and otherwise is
  refused (UNAUTHENTICATED, "the second factor was not accepted"); the official then gives a
  fresh code. SignHash is not repeated: the first attempt uses up its activation data (SAD)
  whatever its outcome, so a repeat would in most cases answer that refusal and hide the lost
  answer; the caller asks for a new authorisation instead (AuthorizeCredential, not repeated
  either: its one-time code is used).
- grpc repeats a streamed call from its retry buffer, and only while the client has received no
  part of the answer and everything sent fits in that buffer (``grpc.per_rpc_retry_buffer_size``,
  256 KiB by default). A larger document commits the call once the buffer is full: it is not
  repeated, and a failure then reaches the caller, who sends it again. The answer's first
  message commits it too: a signed document of more than one chunk (1 MiB) is never repeated
  once it started to arrive. When a replica dies holding a call, HAProxy (deploy/haproxy/
  vnegov.cfg) resets the call's stream (REFUSED_STREAM), which the retry policy repeats; HAProxy
  itself may re-send a request only while all of it fits in one of its buffers (32 KiB).

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
# repeat issues another challenge; the one whose answer was lost expires unused. SignDocument and
# ExtendDocument: a repeat signs or time-stamps the document again and the caller receives one;
# with an official's one-time code a repeat never signs twice, see above.)
IDEMPOTENT_MUTATIONS = frozenset({
    "vnegov.payments.v1.PaymentsService/SetCollectionAccount",
    "vnegov.payments.v1.PaymentsService/ImportStatement",
    "vnegov.identity.v1.IdentityService/CreateChipChallenge",
    "vnegov.signing.v1.SigningService/SignDocument",
    "vnegov.signing.v1.SigningService/ExtendDocument",
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
