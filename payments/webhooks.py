"""Outgoing webhooks to portals, signed in the Standard Webhooks format.

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``) under a secret shared as
``whsec_<base64>``; receivers verify with any Standard Webhooks library.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from payments.errors import InvalidInput

__all__ = ["event_body", "sign_webhook"]


def _secret_bytes(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        raise InvalidInput("a webhook secret has the form whsec_<base64>")
    try:
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    except ValueError:
        raise InvalidInput("a webhook secret has the form whsec_<base64>") from None


def sign_webhook(secret: str, message_id: str, at: dt.datetime, body: bytes) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    mac = hmac.new(_secret_bytes(secret), f"{message_id}.{timestamp}.".encode() + body,
                   hashlib.sha256).digest()
    return {"webhook-id": message_id, "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
            "content-type": "application/json"}


def event_body(event_type: str, at: dt.datetime, data: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type,
                       "timestamp": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                       "data": dict(data)}, ensure_ascii=False, separators=(",", ":")).encode()
