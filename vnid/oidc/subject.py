"""Subject identifiers (OpenID Connect Core §8): public or pairwise per client.

A *public* ``sub`` is the account's internal identifier (random, carrying no personal data) and is
the same for every client. A *pairwise* ``sub`` is different for every sector, so two provincial
systems cannot join their records through it (§8.1):
``base64url(SHA-256(sector ‖ 0x00 ‖ account_id ‖ 0x00 ‖ salt))``.
"""

from __future__ import annotations

import base64
import hashlib

from vnid.oauth2.clients import Client, SubjectType

__all__ = ["subject_for"]


def subject_for(client: Client, account_id: str, salt: bytes) -> str:
    if client.subject_type is SubjectType.PUBLIC:
        return account_id
    digest = hashlib.sha256(client.sector.encode() + b"\x00" + account_id.encode() + b"\x00"
                            + salt).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
