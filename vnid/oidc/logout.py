"""Logout: OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.

A relying party sends the browser to the end-session endpoint with ``id_token_hint`` (and
optionally ``post_logout_redirect_uri``, registered exactly, and ``state``). When the hint names the
browser's current session, the session ends at once; otherwise the person confirms on a page. Ending
a session revokes its tokens (not offline ones) and queues a *logout token* for every relying party
the session served (§2.4: ``typ: logout+jwt``, ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``sub``,
``sid``, and the back-channel logout event; never a ``nonce``), delivered by the server's worker.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping

from vnid.jose.verify import BadJws, verify_compact_jws
from vnid.oauth2.clients import Client
from vnid.oauth2.errors import InvalidRequest, OAuthError
from vnid.oauth2.http import add_query
from vnid.oidc.core import Outcome, ProviderCore, epoch
from vnid.oidc.id_token import sign_jwt
from vnid.oidc.records import handle_hash, new_handle
from vnid.oidc.sessions import current_session, end_session

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "LogoutFlow", "logout_token"]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_token(core: ProviderCore, client: Client, *, sub: str, sid: str,
                 now: dt.datetime) -> str:
    claims = {
        "iss": core.issuer, "aud": client.client_id, "iat": epoch(now),
        "exp": epoch(now + core.settings.logout_token_lifetime), "jti": new_handle(16),
        "sub": sub, "sid": sid, "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    return sign_jwt(claims, core.keyring, client.id_token_signed_response_alg, typ="logout+jwt")


class LogoutFlow:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core

    def _hint(self, hint: str) -> dict[str, object]:
        try:
            _, claims = verify_compact_jws(hint, self.core.keyring.public_keys(),
                                           ("ES256", "PS256", "EdDSA"))
        except BadJws:
            raise InvalidRequest("id_token_hint was not issued by this provider") from None
        if claims.get("iss") != self.core.issuer:
            raise InvalidRequest("id_token_hint was not issued by this provider")
        return claims

    @staticmethod
    def confirmation_token(session_cookie: str) -> str:
        return handle_hash("logout\x00" + session_cookie)

    def request(self, params: Mapping[str, str], session_cookie: str, now: dt.datetime) -> Outcome:
        """Handle the end-session request; may ask for confirmation (page ``logout_confirm``)."""
        core = self.core
        try:
            hint = self._hint(params["id_token_hint"]) if params.get("id_token_hint") else {}
            aud = hint.get("aud")
            client_id = params.get("client_id", "") or (aud if isinstance(aud, str) else "")
            if hint and aud != client_id and not (isinstance(aud, list) and client_id in aud):
                raise InvalidRequest("client_id does not match id_token_hint")
            client = core.client(client_id) if client_id else None
            redirect = params.get("post_logout_redirect_uri", "")
            if redirect and (client is None or redirect not in client.post_logout_redirect_uris):
                raise InvalidRequest("post_logout_redirect_uri is not registered for this client")
            with core.store.transaction() as tx:
                session = current_session(core, tx, session_cookie, now)
                if session is not None and hint.get("sid") == session.sid:
                    end_session(core, tx, session, now, reason="rp_logout")
                    return self._done(redirect, params.get("state", ""), client)
            if session is None:
                return self._done(redirect, params.get("state", ""), client)
            return Outcome(page="logout_confirm", context={
                "csrf": self.confirmation_token(session_cookie),
                "client_name": client.client_name if client else "",
                "post_logout_redirect_uri": redirect, "state": params.get("state", ""),
                "form_target": redirect,
                "client_id": client.client_id if client else ""})
        except OAuthError as exc:
            return Outcome(error=exc)

    def confirm(self, params: Mapping[str, str], session_cookie: str, now: dt.datetime) -> Outcome:
        core = self.core
        csrf = params.get("csrf", "")
        if not session_cookie or not hmac.compare_digest(csrf,
                                                         self.confirmation_token(session_cookie)):
            return Outcome(error=InvalidRequest("the form is stale"))
        client = core.client(params.get("client_id", ""))
        redirect = params.get("post_logout_redirect_uri", "")
        if redirect and (client is None or redirect not in client.post_logout_redirect_uris):
            return Outcome(error=InvalidRequest("post_logout_redirect_uri is not registered"))
        with core.store.transaction() as tx:
            session = current_session(core, tx, session_cookie, now)
            if session is not None:
                end_session(core, tx, session, now, reason="user_logout")
        return self._done(redirect, params.get("state", ""), client)

    def _done(self, redirect: str, state: str, client: Client | None) -> Outcome:
        if redirect:
            return Outcome(redirect=add_query(redirect, {"state": state} if state else {}),
                           clear_session=True)
        return Outcome(page="logged_out", context={
            "client_name": client.client_name if client else ""}, clear_session=True)
