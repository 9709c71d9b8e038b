"""``request_id`` idempotency (AIP-155; Stripe's idempotency keys).

A mutation stores, under (caller, method, request_id), the SHA-256 of the request's canonical
form and its outcome. A retry with the same key and the same request gets the stored outcome, a
success or a failure alike (a failed outcome stays failed: a retry must not turn "refund refused"
into "refund done" because the balance changed meanwhile). The same key with a different request
is :class:`~payments.errors.RequestIdReused`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payments.errors import InvalidInput, PaymentsError, RequestIdReused

__all__ = ["StoredOutcome", "check_request_id", "replay", "request_hash"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def check_request_id(request_id: str) -> str:
    """``request_id`` if it is 8-64 characters of ``A-Z a-z 0-9 . _ : -``;
    :class:`~payments.errors.InvalidInput` otherwise."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidInput("request_id must be 8-64 characters of A-Z a-z 0-9 . _ : -",
                           metadata={"field": "request_id"})
    return request_id


def request_hash(method: str, fields: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the method and the request's fields in canonical JSON (sorted keys)."""
    body = json.dumps({"method": method, "fields": fields}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """The recorded outcome of a mutation under a request id, replayed when the same request comes again (and
    refused for a different request under the same id)."""
    request_hash: str
    ok: bool
    result: str = ""  # the resource name the mutation produced (on success)
    error_class: str = ""  # the failure, replayed as the same error (on failure)
    error_reason: str = ""
    error_message: str = ""


def replay(stored: StoredOutcome, incoming_hash: str,
           errors: Mapping[str, type[PaymentsError]]) -> str:
    """The stored result for a retry, or the stored error raised again."""
    if stored.request_hash != incoming_hash:
        raise RequestIdReused("request_id was already used with a different request",
                              metadata={"field": "request_id"})
    if stored.ok:
        return stored.result
    cls = errors.get(stored.error_class, PaymentsError)
    exc = cls.__new__(cls)
    PaymentsError.__init__(exc, stored.error_message, reason=stored.error_reason)
    raise exc
