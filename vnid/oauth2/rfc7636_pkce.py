"""RFC 7636 Proof Key for Code Exchange, S256 only.

``plain`` is refused (FAPI 2.0 Security Profile §5.3.2.2 and the OAuth 2.0 Security BCP, RFC 9700
§2.1.1: it offers no protection when the authorization request leaks), and so is a missing
``code_challenge_method``, whose RFC 7636 default is ``plain``. The challenge is computed with
authlib's :func:`create_s256_code_challenge` and compared in constant time.
"""

from __future__ import annotations

import hmac
import re

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from vnid.oauth2.errors import InvalidGrant, InvalidRequest

__all__ = ["S256", "check_code_challenge", "verify_code_verifier"]

S256 = "S256"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def check_code_challenge(challenge: str | None, method: str | None) -> str:
    """Validate the authorization request's PKCE parameters; return the challenge."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE with S256)")
    if method != S256:
        raise InvalidRequest("code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 value")
    return challenge


def verify_code_verifier(verifier: str | None, challenge: str | None) -> None:
    """Check the token request's ``code_verifier`` against the stored S256 challenge.

    A verifier for a code issued without a challenge is refused too (RFC 9700 §2.1.1, the PKCE
    downgrade attack), although this provider never issues such codes.
    """
    if not challenge:
        raise InvalidGrant("the authorization request carried no code_challenge")
    if not verifier:
        raise InvalidRequest("code_verifier is required")
    if not _VERIFIER.fullmatch(verifier):
        raise InvalidGrant("code_verifier is malformed")
    computed = create_s256_code_challenge(verifier)
    if not hmac.compare_digest(computed.encode(), challenge.encode()):
        raise InvalidGrant("code_verifier does not match the code_challenge")
