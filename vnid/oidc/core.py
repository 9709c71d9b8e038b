"""What every endpoint of the provider shares: settings, ports, keys, and the checks that several
endpoints perform the same way (client authentication, DPoP proofs, subjects, outcomes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from vnid.authn.device_cookies import DeviceCookies
from vnid.authn.passwords import BreachedPasswords, PasswordHasher
from vnid.jose.keys import KeyRing
from vnid.oauth2.clients import Client
from vnid.oauth2.errors import InvalidClient, InvalidDpopProof, OAuthError
from vnid.oauth2.http import Request
from vnid.oauth2.rfc7523_client_auth import authenticate_client
from vnid.oauth2.rfc9449_dpop import DpopNonces, DpopProof, verify_dpop_proof
from vnid.oidc.ports import ClientRegistry, IdentityEvent, ProviderStore, StoreTransaction
from vnid.oidc.settings import ProviderSettings
from vnid.oidc.subject import subject_for

__all__ = ["Checks", "Outcome", "ProviderCore"]


@dataclass(slots=True)
class Outcome:
    """What a browser-facing step leads to; the server turns it into HTTP (cookies, pages)."""

    redirect: str = ""  # send the browser here (a relying party, or the next page)
    page: str = ""  # or render this page ("login", "second_factor", "consent", ...)
    context: dict[str, Any] = field(default_factory=dict)
    error: OAuthError | None = None  # or show this error (no redirect URI can be trusted)
    set_session: str = ""  # new session cookie value
    clear_session: bool = False
    set_interaction: str = ""  # new interaction cookie value
    clear_interaction: bool = False
    set_device: str = ""  # new device cookie value (vnid/authn/device_cookies.py)


class ProviderCore:
    def __init__(self, settings: ProviderSettings, store: ProviderStore, clients: ClientRegistry,
                 keyring: Callable[[], KeyRing], *, pairwise_salt: bytes, nonce_secret: bytes,
                 breached: BreachedPasswords | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clients = clients
        self._keyring = keyring
        self.pairwise_salt = pairwise_salt
        self.nonces = DpopNonces(nonce_secret)
        self.device_cookies = DeviceCookies(nonce_secret)
        self.hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                                     memory_cost_kib=settings.argon2_memory_kib,
                                     parallelism=settings.argon2_parallelism)
        self.breached = breached

    @property
    def keyring(self) -> KeyRing:
        return self._keyring()

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id) if client_id else None

    def authenticate_client(self, tx: StoreTransaction, request: Request,
                            now: dt.datetime) -> Client:
        try:
            return authenticate_client(request, lookup=self.client, issuer=self.issuer, now=now,
                                       replay=tx)
        except InvalidClient as exc:
            tx.record(IdentityEvent(action="client.authenticate", outcome="INVALID_CLIENT",
                                    details={"endpoint": request.url.rsplit("/", 1)[-1],
                                             "cause": exc.metadata.get("detail", "")}))
            raise

    def dpop(self, tx: StoreTransaction, request: Request, now: dt.datetime, *,
             access_token: str | None = None, required: bool = False) -> DpopProof | None:
        """Verify the request's DPoP proof (if any, or ``required``) and consume its ``jti``."""
        header = request.header("dpop")
        if header is None:
            if required:
                raise InvalidDpopProof("a DPoP proof is required")
            return None
        if "," in header:
            raise InvalidDpopProof("exactly one DPoP proof is allowed")
        nonces = self.nonces if self.settings.dpop_require_nonce else None
        proof = verify_dpop_proof(header, method=request.method, url=request.url, now=now,
                                  nonces=nonces, access_token=access_token)
        expires = proof.issued_at + dt.timedelta(seconds=70)
        if not tx.first_use("dpop", f"{proof.jkt}\x00{proof.jti}", expires):
            tx.record(IdentityEvent(action="dpop.replay", outcome="INVALID_DPOP_PROOF",
                                    details={"jkt": proof.jkt}))
            raise InvalidDpopProof("the DPoP proof was already used")
        return proof

    def checked(self, request: Request, now: dt.datetime) -> AbstractContextManager[Checks]:
        """Verifications (signatures) to do *before* the write transaction, whose one-time values
        the transaction then spends with :meth:`Checks.spend`. If the request fails before that,
        the values are spent anyway and the failures recorded."""
        return _checked(self, request, now)

    def nonce_header(self, now: dt.datetime) -> list[tuple[str, str]]:
        if not self.settings.dpop_require_nonce:
            return []
        return [("dpop-nonce", self.nonces.current(now))]

    def subject(self, client: Client, account_id: str) -> str:
        return subject_for(client, account_id, self.pairwise_salt)

    def transaction(self, request: Request | None = None, actor: str = "") -> Any:
        request_id = request.headers.get("x-request-id", "") if request is not None else ""
        return self.store.transaction(request_id=request_id, actor=actor)


class Checks:
    """Client authentication and DPoP proofs verified outside the write transaction (so that the
    database's single writer is not held during signature checks). Implements ``ReplayGuard`` by
    deferring: ``first_use`` only remembers, and :meth:`spend` consumes in the transaction."""

    def __init__(self, core: ProviderCore, request: Request, now: dt.datetime) -> None:
        self.core = core
        self.request = request
        self.now = now
        self.replays: list[tuple[str, str, dt.datetime]] = []
        self.events: list[IdentityEvent] = []
        self.spent = False

    def first_use(self, kind: str, value: str, expires_at: dt.datetime) -> bool:
        self.replays.append((kind, value, expires_at))
        return True

    def client(self) -> Client:
        try:
            return authenticate_client(self.request, lookup=self.core.client,
                                       issuer=self.core.issuer, now=self.now, replay=self)
        except InvalidClient as exc:
            self.events.append(IdentityEvent(
                action="client.authenticate", outcome="INVALID_CLIENT",
                details={"endpoint": self.request.url.rsplit("/", 1)[-1],
                         "cause": exc.metadata.get("detail", "")}))
            raise

    def dpop(self, *, access_token: str | None = None,
             required: bool = False) -> DpopProof | None:
        header = self.request.header("dpop")
        if header is None:
            if required:
                raise InvalidDpopProof("a DPoP proof is required")
            return None
        if "," in header:
            raise InvalidDpopProof("exactly one DPoP proof is allowed")
        nonces = self.core.nonces if self.core.settings.dpop_require_nonce else None
        proof = verify_dpop_proof(header, method=self.request.method, url=self.request.url,
                                  now=self.now, nonces=nonces, access_token=access_token)
        self.replays.append(("dpop", f"{proof.jkt}\x00{proof.jti}",
                             proof.issued_at + dt.timedelta(seconds=70)))
        return proof

    def spend(self, tx: StoreTransaction) -> None:
        """Consume the one-time values in ``tx``; a value seen before fails the request."""
        self.spent = True
        for event in self.events:
            tx.record(event)
        for kind, value, expires in self.replays:
            if not tx.first_use(kind, value, expires):
                raise self.replay_error(tx, kind)

    def replay_error(self, tx: StoreTransaction, kind: str) -> OAuthError:
        """Record and return the error for a one-time value seen before."""
        if kind == "dpop":
            tx.record(IdentityEvent(action="dpop.replay", outcome="INVALID_DPOP_PROOF"))
            return InvalidDpopProof("the DPoP proof was already used")
        failure = InvalidClient("client authentication failed")
        failure.metadata["detail"] = "assertion replayed"
        tx.record(IdentityEvent(action="client.authenticate", outcome="INVALID_CLIENT",
                                details={"endpoint": self.request.url.rsplit("/", 1)[-1],
                                         "cause": "assertion replayed"}))
        return failure


@contextmanager
def _checked(core: ProviderCore, request: Request, now: dt.datetime) -> Iterator[Checks]:
    checks = Checks(core, request, now)
    try:
        yield checks
    except BaseException:
        if checks.spent or not (checks.replays or checks.events):
            raise
        # The request failed before its one-time values were spent: spend them now, and if one
        # had been used before, that (not the later failure) is the answer.
        replayed: OAuthError | None = None
        with core.transaction(request) as tx:
            for event in checks.events:
                tx.record(event)
            for kind, value, expires in checks.replays:
                if not tx.first_use(kind, value, expires) and replayed is None:
                    replayed = checks.replay_error(tx, kind)
        if replayed is not None:
            raise replayed from None
        raise


def epoch(instant: dt.datetime) -> int:
    return int(instant.timestamp())


def scope_text(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


def json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != ""}
