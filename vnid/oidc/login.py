"""The authorization endpoint's browser side: reuse a live session, or run a login interaction
(password, then a second factor when level 2 is asked; or QR approval in the citizen app), step up
a session that is below the requested level, ask for consent, and answer the client with a code.

``acr_values`` and ``max_age`` are enforced here, on the server: a session below the requested level
is stepped up (never silently accepted), and one older than ``max_age`` logs in again. With
``prompt=none`` nothing is shown: the answer is a code or ``login_required`` /
``interaction_required`` / ``consent_required``.

Pages are named, not rendered: the server renders ``login``, ``second_factor``, ``consent``. Messages
are keys (``invalid_credentials``, ...) that the server translates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from vnid.accounts import Account, ensure_can_log_in
from vnid.assurance import Amr, login_level
from vnid.authn.throttle import ThrottlePolicy, ThrottleState, TooManyAttempts
from vnid.authn.totp import verify_totp
from vnid.errors import FailedPrecondition
from vnid.oauth2.errors import (
    AccessDenied,
    ConsentRequired,
    InteractionRequired,
    InvalidRequest,
    LoginRequired,
    OAuthError,
    UnmetAuthenticationRequirements,
)
from vnid.oidc.approvals import new_approval
from vnid.oidc.authorization import RedirectableError, error_redirect, resolve_request
from vnid.oidc.core import Outcome, ProviderCore
from vnid.oidc.ports import IdentityEvent, StoreTransaction
from vnid.oidc.records import (
    Approval,
    ApprovalKind,
    ApprovalStatus,
    AuthorizationRequest,
    Interaction,
    ProviderSession,
    handle_hash,
    new_handle,
)
from vnid.oidc.sessions import current_session, establish_session, issue_code, needs_consent

__all__ = ["LoginFlow"]


def _pair_key(kind: str, remote: str, who: str) -> str:
    """A throttle key for one (address, account) pair, short enough for any store."""
    digest = hashlib.sha256(f"{remote}|{who}".encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


def normalize_identifier(text: str) -> str:
    return "".join(ch for ch in text.strip().upper() if ch not in " -.")[:32]


class LoginFlow:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core

    # ------------------------------------------------------------------ authorization endpoint
    def authorize(self, params: Mapping[str, str], session_cookie: str, now: dt.datetime,
                  request_id: str = "") -> Outcome:
        core = self.core
        try:
            with core.store.transaction(request_id=request_id) as tx:
                client, request = resolve_request(core, tx, params, now)
                session = current_session(core, tx, session_cookie, now)
                return self._decide(tx, request, session, now)
        except RedirectableError as exc:
            return error_redirect(core, exc)
        except OAuthError as exc:
            return Outcome(error=exc)

    def _decide(self, tx: StoreTransaction, request: AuthorizationRequest,
                session: ProviderSession | None, now: dt.datetime) -> Outcome:
        core = self.core
        client = core.client(request.client_id)
        assert client is not None
        required = request.min_level
        force_login = "login" in request.prompt
        if session is not None:
            if request.max_age is not None and \
                    (now - session.auth_time).total_seconds() > request.max_age:
                force_login = True
            if request.id_token_hint_sub and \
                    core.subject(client, session.account_id) != request.id_token_hint_sub:
                force_login = True
        silent = "none" in request.prompt
        usable = session is not None and not force_login and session.level >= required
        if usable:
            assert session is not None
            tx.touch_session(session.key_hash, now)
            missing = needs_consent(core, tx, client, session.account_id, request.scope)
            if not missing and "consent" not in request.prompt:
                return issue_code(core, tx, client, request, session, now)
            if silent:
                raise RedirectableError(ConsentRequired("consent is required"),
                                        request.redirect_uri, request.state)
        elif silent:
            error: OAuthError = LoginRequired("no session") if session is None or force_login \
                else InteractionRequired("the session is below the requested level")
            raise RedirectableError(error, request.redirect_uri, request.state)
        handle = new_handle()
        interaction = Interaction(
            interaction_id=handle_hash(handle), request=request, created_at=now,
            expires_at=now + core.settings.interaction_lifetime, csrf=secrets.token_urlsafe(24),
            required_level=required, force_login=force_login,
            account_id=session.account_id if session is not None and not force_login else "",
            methods=session.methods if session is not None and not force_login else (),
            session_key=session.key_hash if session is not None else "",
            from_session=session is not None and not force_login)
        if usable:  # logged in well enough: only consent is missing
            tx.put_interaction(dataclasses.replace(interaction, methods=()))
            return Outcome(redirect=core.issuer + "/consent", set_interaction=handle)
        tx.put_interaction(interaction)
        return Outcome(redirect=core.issuer + "/login", set_interaction=handle)

    # ------------------------------------------------------------------ pages
    def _interaction(self, tx: StoreTransaction, cookie: str, now: dt.datetime,
                     csrf: str | None = None) -> Interaction:
        interaction = tx.interaction(handle_hash(cookie)) if cookie and len(cookie) < 100 \
            else None
        if interaction is None or interaction.expires_at <= now:
            raise InvalidRequest("the login has expired; start again from the service")
        if csrf is not None and not secrets.compare_digest(csrf, interaction.csrf):
            raise InvalidRequest("the form is stale; start again from the service")
        return interaction

    def _context(self, tx: StoreTransaction, interaction: Interaction, **extra: object) -> dict[
            str, object]:
        client = self.core.client(interaction.request.client_id)
        ctx: dict[str, object] = {
            "client_name": client.client_name if client else interaction.request.client_id,
            "csrf": interaction.csrf,
            "required_level": interaction.required_level.acr,
            "login_hint": interaction.request.login_hint,
            "ui_locales": interaction.request.ui_locales,
            # Forms on these pages end in a redirect to the client (CSP form-action).
            "form_target": _origin(interaction.request.redirect_uri),
        }
        ctx.update(extra)
        return ctx

    def view(self, cookie: str, now: dt.datetime, *, want: str = "") -> Outcome:
        """The page the interaction is at (``want`` names the page the browser asked for)."""
        try:
            with self.core.store.transaction() as tx:
                interaction = self._interaction(tx, cookie, now)
                return self._page_for(tx, interaction, now, want=want)
        except OAuthError as exc:
            return Outcome(error=exc, clear_interaction=True)

    def _page_for(self, tx: StoreTransaction, interaction: Interaction, now: dt.datetime, *,
                  want: str = "", message: str = "") -> Outcome:
        if interaction.account_id and interaction.methods:
            account = tx.account(interaction.account_id)
            assert account is not None
            if login_level(interaction.methods, account.level) < interaction.required_level:
                return self._second_factor_page(tx, interaction, account, now, message)
        if interaction.account_id and not interaction.methods and interaction.session_key:
            return self._consent_page(tx, interaction)
        approval = self._fresh_approval(tx, interaction, ApprovalKind.QR_LOGIN, "", now)
        interaction = dataclasses.replace(interaction, approval_id=approval.approval_id)
        tx.put_interaction(interaction)
        return Outcome(page="login", context=self._context(
            tx, interaction, qr=self._qr(approval), message=message))

    def _qr(self, approval: Approval) -> dict[str, object]:
        return {"approval_id": approval.approval_id, "code": approval.binding_message,
                "payload": f"vnid://approve?iss={self.core.issuer}&id={approval.approval_id}",
                "expires_at": approval.expires_at.isoformat()}

    def _fresh_approval(self, tx: StoreTransaction, interaction: Interaction, kind: ApprovalKind,
                        account_id: str, now: dt.datetime) -> Approval:
        if interaction.approval_id:
            existing = tx.approval(interaction.approval_id)
            if existing is not None and existing.kind is kind and existing.expires_at > now \
                    and existing.status is ApprovalStatus.PENDING:
                return existing
        approval = new_approval(kind, client_id=interaction.request.client_id,
                                account_id=account_id, now=now,
                                lifetime=self.core.settings.qr_lifetime,
                                min_level=interaction.required_level,
                                binding_message=f"{secrets.randbelow(90) + 10}")
        tx.put_approval(approval)
        return approval

    def _second_factor_page(self, tx: StoreTransaction, interaction: Interaction,
                            account: Account, now: dt.datetime, message: str) -> Outcome:
        has_totp = tx.totp(account.account_id) is not None
        has_device = tx.active_device(account.account_id) is not None
        if account.level < interaction.required_level or not (has_totp or has_device):
            raise RedirectableError(
                UnmetAuthenticationRequirements("the account cannot reach the requested level"),
                interaction.request.redirect_uri, interaction.request.state)
        qr = None
        if has_device:
            approval = self._fresh_approval(tx, interaction, ApprovalKind.STEP_UP,
                                            account.account_id, now)
            interaction = dataclasses.replace(interaction, approval_id=approval.approval_id)
            tx.put_interaction(interaction)
            qr = self._qr(approval)
        return Outcome(page="second_factor", context=self._context(
            tx, interaction, has_totp=has_totp, qr=qr, message=message))

    def _consent_page(self, tx: StoreTransaction, interaction: Interaction) -> Outcome:
        from vnid.oidc.claims import CLAIM_LABELS, PROFILES

        client = self.core.client(interaction.request.client_id)
        assert client is not None
        profile = PROFILES[client.claim_profile]
        scopes = profile.consentable_scopes(interaction.request.scope)
        claims = profile.claims_for(scopes)
        return Outcome(page="consent", context=self._context(
            tx, interaction, claims=[{"name": c, "label_vi": CLAIM_LABELS[c][0],
                                      "label_en": CLAIM_LABELS[c][1]} for c in claims],
            scopes=sorted(scopes)))

    # ------------------------------------------------------------------ steps
    def _run(self, cookie: str, csrf: str, now: dt.datetime,
             step: Callable[[StoreTransaction, Interaction], Outcome]) -> Outcome:
        failure: Outcome | None = None
        try:
            with self.core.store.transaction() as tx:
                interaction = self._interaction(tx, cookie, now, csrf)
                try:
                    return step(tx, interaction)
                except _StepFailed as exc:
                    # The failure's bookkeeping (throttle counters, audit) must be committed.
                    failure = self._page_for(tx, exc.interaction or interaction, now,
                                             message=exc.message)
        except RedirectableError as exc:
            outcome = error_redirect(self.core, exc)
            outcome.clear_interaction = True
            return outcome
        except OAuthError as exc:
            return Outcome(error=exc, clear_interaction=True)
        assert failure is not None
        return failure

    def submit_password(self, cookie: str, csrf: str, identifier: str, password: str,
                        remote: str, now: dt.datetime, *, device_cookie: str = "") -> Outcome:
        """Check the password. ``device_cookie`` (the browser's device cookie) marks a known
        device, to which the per-address limit does not apply; the outcome of a successful login
        carries the device cookie to set."""
        core = self.core

        def step(tx: StoreTransaction, interaction: Interaction) -> Outcome:
            ident = normalize_identifier(identifier)
            account = tx.account_by_identifier(ident) if ident else None
            who = account.account_id if account else ident
            known = account is not None and core.device_cookies.recognises(
                device_cookie, account.account_id, now)
            keys, policies = self._limits(who, remote, known)
            self._check_throttle(tx, keys, policies, account, interaction, now, remote,
                                 "login.password")
            encoded = tx.password_hash(account.account_id) if account else None
            if encoded is None:
                core.hasher.dummy_verify(password)
                ok = False
            else:
                ok = core.hasher.verify(encoded, password)
            if not ok:
                self._failure(tx, keys, policies, account, now, remote, "login.password",
                              who=who)
                raise _StepFailed("invalid_credentials")
            assert account is not None
            tx.set_throttle(keys[0], ThrottleState())
            self._address_success(tx, who, remote, now)
            if encoded is not None and core.hasher.needs_rehash(encoded):
                tx.set_password_hash(account.account_id, core.hasher.hash(password), now)
            if interaction.account_id and interaction.account_id != account.account_id \
                    and not interaction.force_login and interaction.methods:
                raise _StepFailed("different_account")
            tx.record(IdentityEvent(action="login.password", account_id=account.account_id,
                                    client_id=interaction.request.client_id,
                                    details={"remote": remote, "known_device": known}))
            outcome = self._progress(tx, dataclasses.replace(
                interaction, account_id=account.account_id, from_session=False,
                methods=(Amr.PWD,) if interaction.account_id != account.account_id
                or interaction.force_login else tuple(set(interaction.methods) | {Amr.PWD})),
                now, fresh_login=True)
            outcome.set_device = core.device_cookies.add(device_cookie, account.account_id, now)
            return outcome

        return self._run(cookie, csrf, now, step)

    def _limits(self, who: str, remote: str, known_device: bool
                ) -> tuple[list[str], list[ThrottlePolicy]]:
        """The throttle keys an attempt counts against: its account always, its source address
        only from an unknown device."""
        settings = self.core.settings
        if known_device:
            return [f"account:{who}"], [settings.throttle_account]
        return [f"account:{who}", f"address:{remote}"], [settings.throttle_account,
                                                         settings.throttle_address]

    @staticmethod
    def _check_throttle(tx: StoreTransaction, keys: list[str], policies: list[ThrottlePolicy],
                        account: Account | None, interaction: Interaction, now: dt.datetime,
                        remote: str, action: str) -> None:
        """Refuse (and audit) an attempt while its account or source address is blocked."""
        for key, policy in zip(keys, policies, strict=True):
            try:
                policy.check(tx.throttle(key), now)
            except TooManyAttempts as exc:
                tx.record(IdentityEvent(action=action, outcome="THROTTLED",
                                        account_id=account.account_id if account else "",
                                        client_id=interaction.request.client_id,
                                        details={"key": key.split(":", 1)[0], "remote": remote,
                                                 "retry_after": exc.retry_after}))
                raise _StepFailed("too_many_attempts", retry_after=exc.retry_after) from None

    def _failure(self, tx: StoreTransaction, keys: list[str], policies: list[ThrottlePolicy],
                 account: Account | None, now: dt.datetime, remote: str, action: str, *,
                 who: str) -> None:
        for key, policy in zip(keys, policies, strict=True):
            if key.startswith("address:"):
                # An address counts accounts, not typos: only this account's first failure from
                # it (within the address's memory) adds to its counter.
                marker = _pair_key("address-failed", remote, who)
                seen = policy.current(tx.throttle(marker), now)
                tx.set_throttle(marker, ThrottleState(seen.failures + 1, now, None))
                if seen.failures:
                    continue
            state, locked = policy.failure(tx.throttle(key), now)
            tx.set_throttle(key, state)
            if locked:
                tx.record(IdentityEvent(action="login.lockout", outcome="LOCKED_OUT",
                                        account_id=account.account_id if account else "",
                                        details={"key": key.split(":", 1)[0], "remote": remote,
                                                 "failures": state.failures}))
        tx.record(IdentityEvent(action=action, outcome="INVALID_CREDENTIALS",
                                account_id=account.account_id if account else "",
                                details={"remote": remote}))

    def _address_success(self, tx: StoreTransaction, who: str, remote: str,
                         now: dt.datetime) -> None:
        """A successful login takes ``success_credit`` failures off its source address, once per
        account (within the address's memory), so an attacker with one account of their own
        cannot wash the counter clean by logging in again and again."""
        policy = self.core.settings.throttle_address
        if not policy.success_credit:
            return
        marker = _pair_key("address-ok", remote, who)
        if policy.current(tx.throttle(marker), now).failures:
            return
        tx.set_throttle(marker, ThrottleState(1, now, None))
        key = f"address:{remote}"
        state = policy.current(tx.throttle(key), now)
        if state.failures:
            tx.set_throttle(key, policy.success(state, now))

    def submit_totp(self, cookie: str, csrf: str, code: str, remote: str,
                    now: dt.datetime, *, device_cookie: str = "") -> Outcome:
        core = self.core

        def step(tx: StoreTransaction, interaction: Interaction) -> Outcome:
            if not interaction.account_id or not interaction.methods:
                raise _StepFailed("login_first")
            account = tx.account(interaction.account_id)
            assert account is not None
            known = core.device_cookies.recognises(device_cookie, account.account_id, now)
            keys, policies = self._limits(account.account_id, remote, known)
            self._check_throttle(tx, keys, policies, account, interaction, now, remote,
                                 "login.totp")
            stored = tx.totp(account.account_id)
            step_ok = verify_totp(stored[0], code, now=now, last_step=stored[1],
                                  settings=core.settings.totp) if stored else None
            if step_ok is None:
                self._failure(tx, keys, policies, account, now, remote, "login.totp",
                              who=account.account_id)
                raise _StepFailed("invalid_code")
            tx.set_totp_step(account.account_id, step_ok)
            tx.set_throttle(keys[0], ThrottleState())
            tx.record(IdentityEvent(action="login.totp", account_id=account.account_id,
                                    client_id=interaction.request.client_id))
            return self._progress(tx, dataclasses.replace(
                interaction, methods=tuple(set(interaction.methods) | {Amr.OTP})), now)

        return self._run(cookie, csrf, now, step)

    def qr_status(self, cookie: str, now: dt.datetime) -> str:
        """``pending``, ``approved``, ``denied`` or ``expired`` for the QR the page shows."""
        with self.core.store.reader() as tx:
            interaction = tx.interaction(handle_hash(cookie)) if cookie else None
            if interaction is None or interaction.expires_at <= now or \
                    not interaction.approval_id:
                return "expired"
            approval = tx.approval(interaction.approval_id)
            if approval is None or (approval.status is ApprovalStatus.PENDING
                                    and approval.expires_at <= now):
                return "expired"
            return approval.status.value

    def complete_qr(self, cookie: str, csrf: str, now: dt.datetime) -> Outcome:
        """The page saw the QR approved: continue the login with the device's methods."""

        def step(tx: StoreTransaction, interaction: Interaction) -> Outcome:
            approval = tx.approval(interaction.approval_id) if interaction.approval_id else None
            if approval is None or approval.status is not ApprovalStatus.APPROVED:
                raise _StepFailed("qr_not_approved")
            tx.put_approval(dataclasses.replace(approval, status=ApprovalStatus.CONSUMED))
            if interaction.account_id and interaction.account_id != approval.account_id:
                raise _StepFailed("different_account")
            fresh = approval.kind is ApprovalKind.QR_LOGIN
            if fresh:
                methods = approval.methods
            else:
                methods = tuple(set(interaction.methods) | set(approval.methods))
            return self._progress(tx, dataclasses.replace(
                interaction, account_id=approval.account_id, methods=methods, approval_id="",
                from_session=interaction.from_session and not fresh), now, fresh_login=fresh)

        return self._run(cookie, csrf, now, step)

    def decide_consent(self, cookie: str, csrf: str, approve: bool, now: dt.datetime) -> Outcome:
        core = self.core

        def step(tx: StoreTransaction, interaction: Interaction) -> Outcome:
            request = interaction.request
            session = tx.session(interaction.session_key) if interaction.session_key else None
            if session is None or not session.alive(now, max_age=core.settings.session_max_age,
                                                    idle=core.settings.session_idle):
                raise InvalidRequest("the session has ended; start again from the service")
            client = core.client(request.client_id)
            assert client is not None
            tx.delete_interaction(interaction.interaction_id)
            if not approve:
                tx.record(IdentityEvent(action="consent.deny", account_id=session.account_id,
                                        client_id=client.client_id))
                raise RedirectableError(AccessDenied("the person declined"),
                                        request.redirect_uri, request.state)
            from vnid.oidc.claims import PROFILES

            scopes = PROFILES[client.claim_profile].consentable_scopes(request.scope)
            granted = tx.consent(session.account_id, client.client_id) | scopes
            tx.put_consent(session.account_id, client.client_id, granted, now)
            tx.record(IdentityEvent(action="consent.grant", account_id=session.account_id,
                                    client_id=client.client_id,
                                    details={"scopes": " ".join(sorted(granted))}))
            outcome = issue_code(core, tx, client, request, session, now)
            outcome.clear_interaction = True
            return outcome

        return self._run(cookie, csrf, now, step)

    def cancel(self, cookie: str, csrf: str, now: dt.datetime) -> Outcome:
        def step(tx: StoreTransaction, interaction: Interaction) -> Outcome:
            tx.delete_interaction(interaction.interaction_id)
            raise RedirectableError(AccessDenied("the person cancelled the login"),
                                    interaction.request.redirect_uri, interaction.request.state)

        return self._run(cookie, csrf, now, step)

    # ------------------------------------------------------------------ finishing
    def _progress(self, tx: StoreTransaction, interaction: Interaction, now: dt.datetime, *,
                  fresh_login: bool = False) -> Outcome:
        core = self.core
        account = tx.account(interaction.account_id)
        assert account is not None
        try:
            ensure_can_log_in(account, now)
        except FailedPrecondition as exc:
            tx.record(IdentityEvent(action="login.refused", outcome=exc.reason,
                                    account_id=account.account_id))
            raise _StepFailed(exc.reason.lower(), interaction=dataclasses.replace(
                interaction, account_id="", methods=())) from None
        level = login_level(interaction.methods, account.level)
        if level < interaction.required_level:
            tx.put_interaction(interaction)
            return self._second_factor_page(tx, interaction, account, now, "")
        previous = tx.session(interaction.session_key) if interaction.session_key else None
        if interaction.from_session and (previous is None or not previous.alive(
                now, max_age=core.settings.session_max_age, idle=core.settings.session_idle)):
            # The session whose factors this step-up builds on ended (logout, 1 h idle, 24 h)
            # while the page was open: those factors count no more; log in again.
            tx.record(IdentityEvent(action="login.refused", outcome="SESSION_ENDED",
                                    account_id=account.account_id))
            raise _StepFailed("session_ended", interaction=dataclasses.replace(
                interaction, account_id="", methods=(), from_session=False, session_key=""))
        session, cookie = establish_session(
            core, tx, account, interaction.methods, now, previous=previous,
            reauthenticated=fresh_login and (interaction.force_login or previous is None
                                             or previous.account_id != account.account_id))
        request = interaction.request
        client = core.client(request.client_id)
        assert client is not None
        missing = needs_consent(core, tx, client, account.account_id, request.scope)
        if missing or "consent" in request.prompt:
            consenting = dataclasses.replace(interaction, session_key=session.key_hash,
                                             methods=(), approval_id="")
            tx.put_interaction(consenting)
            outcome = self._consent_page(tx, consenting)
            outcome.page, outcome.redirect = "", core.issuer + "/consent"
            outcome.set_session = cookie
            return outcome
        tx.delete_interaction(interaction.interaction_id)
        outcome = issue_code(core, tx, client, request, session, now)
        outcome.set_session = cookie
        outcome.clear_interaction = True
        return outcome


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _StepFailed(Exception):
    def __init__(self, message: str, *, retry_after: int = 0,
                 interaction: Interaction | None = None) -> None:
        super().__init__(message)
        self.message = message if not retry_after else f"{message}:{retry_after}"
        self.interaction = interaction

