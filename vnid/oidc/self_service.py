"""What a logged-in person can do at the provider itself: see which systems received which
verified data ("declare once"), and withdraw a consent — which also revokes the tokens that system
holds for them, so the next use asks again."""

from __future__ import annotations

import datetime as dt
import hmac

from vnid.oauth2.errors import InvalidRequest
from vnid.oidc.claims import CLAIM_LABELS, PROFILES
from vnid.oidc.core import Outcome, ProviderCore
from vnid.oidc.ports import IdentityEvent
from vnid.oidc.records import handle_hash
from vnid.oidc.sessions import current_session

__all__ = ["SelfService"]


class SelfService:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core

    @staticmethod
    def form_token(session_cookie: str) -> str:
        return handle_hash("account\x00" + session_cookie)

    def consents(self, session_cookie: str, now: dt.datetime) -> Outcome:
        with self.core.store.reader() as tx:
            session = current_session(self.core, tx, session_cookie, now)
            if session is None:
                return Outcome(page="account", context={"logged_in": False})
            account = tx.account(session.account_id)
            rows = tx.consents(session.account_id)
        entries = []
        for client_id, scopes, granted_at in rows:
            client = self.core.client(client_id)
            if client is None:
                continue
            claims = PROFILES[client.claim_profile].claims_for(scopes)
            entries.append({"client_id": client_id, "client_name": client.client_name,
                            "granted_at": granted_at.strftime("%Y-%m-%d"),
                            "claims": [{"label_vi": CLAIM_LABELS[c][0],
                                        "label_en": CLAIM_LABELS[c][1]} for c in claims]})
        return Outcome(page="account", context={
            "logged_in": True, "full_name": account.full_name if account else "",
            "consents": entries, "csrf": self.form_token(session_cookie)})

    def withdraw(self, session_cookie: str, csrf: str, client_id: str,
                 now: dt.datetime) -> Outcome:
        if not session_cookie or not hmac.compare_digest(csrf, self.form_token(session_cookie)):
            return Outcome(error=InvalidRequest("the form is stale"))
        with self.core.store.transaction() as tx:
            session = current_session(self.core, tx, session_cookie, now)
            if session is None:
                return Outcome(error=InvalidRequest("the session has ended"))
            if tx.withdraw_consent(session.account_id, client_id, now):
                revoked = tx.revoke_client_tokens(client_id, session.account_id, now)
                tx.record(IdentityEvent(action="consent.withdraw", account_id=session.account_id,
                                        client_id=client_id,
                                        details={"tokens_revoked": revoked, "by": "self"}))
        return Outcome(redirect=self.core.issuer + "/account")
