"""Provider sessions (one per browser, shared by every relying party) and authorization codes.

A session lives at most ``session_max_age`` (24 h) and ends after ``session_idle`` (1 h) without use.
When a session's assurance rises (step-up) or a different person logs in, the browser gets a new
cookie value: a cookie captured before the change is worth nothing afterwards.

Codes are single-use, live at most 60 s, and are bound to the client, the redirect URI, the PKCE
challenge and, when the client pushed a DPoP key, that key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from vnid.accounts import Account
from vnid.assurance import Amr, login_level
from vnid.oauth2.clients import Client
from vnid.oauth2.http import add_query
from vnid.oidc.core import Outcome, ProviderCore
from vnid.oidc.ports import IdentityEvent, StoreTransaction
from vnid.oidc.records import (
    AuthorizationCode,
    AuthorizationRequest,
    ProviderSession,
    handle_hash,
    new_handle,
)

__all__ = [
    "current_session",
    "end_session",
    "establish_session",
    "issue_code",
    "needs_consent",
]


def current_session(core: ProviderCore, tx: StoreTransaction, cookie: str,
                    now: dt.datetime) -> ProviderSession | None:
    if not cookie or len(cookie) > 100:
        return None
    session = tx.session(handle_hash(cookie))
    if session is None:
        return None
    if not session.alive(now, max_age=core.settings.session_max_age,
                         idle=core.settings.session_idle):
        return None
    return session


def establish_session(core: ProviderCore, tx: StoreTransaction, account: Account,
                      methods: tuple[Amr, ...], now: dt.datetime, *,
                      previous: ProviderSession | None, reauthenticated: bool
                      ) -> tuple[ProviderSession, str]:
    """A session for ``account`` after a successful login; returns it and the new cookie value.

    The same person stepping up keeps the session (its ``sid``), with the methods of both logins;
    anyone else gets a new session, and the previous one ends.
    """
    cookie = new_handle()
    if previous is not None and previous.account_id == account.account_id \
            and previous.ended_at is None:
        # The same person: keep the session (its sid), refresh what it proves. A step-up adds the
        # new methods to the earlier ones; a fresh login (prompt=login, max_age) replaces them.
        merged = tuple(sorted(set(methods) if reauthenticated
                              else set(previous.methods) | set(methods)))
        level = login_level(merged, account.level)
        session = dataclasses.replace(previous, key_hash=handle_hash(cookie), last_seen_at=now,
                                      auth_time=now, level=level, methods=merged)
        tx.put_session(session)
        tx.record(IdentityEvent(action="session.reauthenticate" if reauthenticated
                                else "session.step_up", account_id=account.account_id,
                                details={"sid": session.sid, "acr": session.level.acr}))
        return session, cookie
    if previous is not None:
        end_session(core, tx, previous, now, reason="replaced")
    session = ProviderSession(
        key_hash=handle_hash(cookie), sid=new_handle(18), account_id=account.account_id,
        created_at=now, last_seen_at=now, auth_time=now,
        level=login_level(methods, account.level), methods=tuple(sorted(set(methods))))
    tx.put_session(session)
    tx.record(IdentityEvent(action="session.start", account_id=account.account_id,
                            details={"sid": session.sid, "acr": session.level.acr,
                                     "amr": " ".join(m.value for m in session.methods)}))
    return session, cookie


def end_session(core: ProviderCore, tx: StoreTransaction, session: ProviderSession,
                now: dt.datetime, *, reason: str) -> list[str]:
    """End ``session``: revoke its tokens (not offline ones) and queue back-channel logout tokens
    to every relying party it served. Returns the client ids notified."""
    from vnid.oidc.logout import logout_token  # the logout module builds on this one

    if not tx.end_session(session.sid, now):
        return []
    tx.revoke_session_tokens(session.sid, now, keep_offline=True)
    notified = []
    for entry in tx.session_clients(session.sid):
        client = core.client(entry.client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        token = logout_token(core, client, sub=entry.sub, sid=session.sid, now=now)
        tx.enqueue_logout(client.client_id, client.backchannel_logout_uri, token, now)
        notified.append(client.client_id)
    tx.record(IdentityEvent(action="session.end", account_id=session.account_id,
                            details={"sid": session.sid, "reason": reason,
                                     "notified": ",".join(notified)}))
    return notified


def needs_consent(core: ProviderCore, tx: StoreTransaction, client: Client, account_id: str,
                  scopes: frozenset[str]) -> frozenset[str]:
    """The requested scopes that release data and that the person has not consented to yet."""
    from vnid.oidc.claims import PROFILES

    wanted = PROFILES[client.claim_profile].consentable_scopes(scopes)
    if not client.require_consent:
        return frozenset()
    return wanted - tx.consent(account_id, client.client_id)


def issue_code(core: ProviderCore, tx: StoreTransaction, client: Client,
               request: AuthorizationRequest, session: ProviderSession,
               now: dt.datetime) -> Outcome:
    from vnid.oidc.claims import PROFILES

    code = new_handle()
    consented = tx.consent(session.account_id, client.client_id) if client.require_consent \
        else PROFILES[client.claim_profile].consentable_scopes(request.scope)
    record = AuthorizationCode(
        code_hash=handle_hash(code), client_id=client.client_id, account_id=session.account_id,
        sid=session.sid, redirect_uri=request.redirect_uri, scope=request.scope,
        claims_scope=request.scope & consented,
        nonce=request.nonce, code_challenge=request.code_challenge, dpop_jkt=request.dpop_jkt,
        auth_time=session.auth_time, level=session.level, methods=session.methods,
        issued_at=now, expires_at=now + core.settings.code_lifetime, grant_id=new_handle(18))
    tx.put_code(record)
    tx.add_session_client(session.sid, client.client_id,
                          core.subject(client, session.account_id), now)
    params = {"code": code, "iss": core.issuer}
    if request.state:
        params["state"] = request.state
    return Outcome(redirect=add_query(request.redirect_uri, params))
