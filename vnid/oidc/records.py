"""What the provider remembers between requests: validated authorization requests, login
interactions, sessions, codes, tokens, consents and device approvals.

Each record is a frozen dataclass that turns into plain JSON-compatible data and back
(:func:`to_data` / :func:`from_data`), so a store can keep it in any database. Handles given to
clients (codes, tokens, ``request_uri`` values, session cookies) are stored only as their SHA-256
(:func:`handle_hash`): a copy of the database does not hold usable credentials.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import hashlib
import secrets
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from vnid.assurance import Amr, AssuranceLevel

__all__ = [
    "Approval",
    "ApprovalKind",
    "ApprovalStatus",
    "AuthorizationCode",
    "AuthorizationRequest",
    "Interaction",
    "ProviderSession",
    "TokenKind",
    "TokenRecord",
    "from_data",
    "handle_hash",
    "new_handle",
    "to_data",
]

T = TypeVar("T")


def new_handle(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def handle_hash(handle: str) -> str:
    """How a handle given to a client is stored and looked up."""
    digest = hashlib.sha256(handle.encode("utf-8", errors="surrogatepass")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """An authorization request after validation (OIDC Core §3.1.2.1, RFC 9126, RFC 9449 §10)."""

    client_id: str
    redirect_uri: str
    scope: frozenset[str]
    state: str = ""
    nonce: str = ""
    code_challenge: str = ""
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    acr_values: str = ""
    min_level: AssuranceLevel = AssuranceLevel.LOA1
    login_hint: str = ""
    ui_locales: str = ""
    dpop_jkt: str = ""
    id_token_hint_sub: str = ""
    pushed: bool = False


@dataclass(frozen=True, slots=True)
class Interaction:
    """A login in progress in one browser (bound to it by a cookie)."""

    interaction_id: str
    request: AuthorizationRequest
    created_at: dt.datetime
    expires_at: dt.datetime
    csrf: str
    required_level: AssuranceLevel
    force_login: bool = False
    account_id: str = ""
    methods: tuple[Amr, ...] = ()
    session_key: str = ""  # hash of the session cookie being stepped up, if any
    approval_id: str = ""  # the QR approval shown on the page
    failed_second_factor: int = 0
    # ``methods`` came from that session, not from this interaction: they count only while the
    # session lives.
    from_session: bool = False


@dataclass(frozen=True, slots=True)
class ProviderSession:
    """One login at the provider, shared by every relying party the browser visits."""

    key_hash: str  # SHA-256 of the cookie value
    sid: str  # the public session id (``sid`` claim, logout tokens)
    account_id: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    auth_time: dt.datetime
    level: AssuranceLevel
    methods: tuple[Amr, ...]
    ended_at: dt.datetime | None = None

    def alive(self, now: dt.datetime, *, max_age: dt.timedelta, idle: dt.timedelta) -> bool:
        return (self.ended_at is None and now - self.created_at < max_age
                and now - self.last_seen_at < idle)


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    account_id: str
    sid: str
    redirect_uri: str
    scope: frozenset[str]
    claims_scope: frozenset[str]  # the consented scopes whose claims may be released
    nonce: str
    code_challenge: str
    dpop_jkt: str
    auth_time: dt.datetime
    level: AssuranceLevel
    methods: tuple[Amr, ...]
    issued_at: dt.datetime
    expires_at: dt.datetime
    grant_id: str


class TokenKind(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_hash: str
    kind: TokenKind
    client_id: str
    grant_id: str
    scope: frozenset[str]
    issued_at: dt.datetime
    expires_at: dt.datetime
    account_id: str = ""  # empty for client-credentials tokens
    sid: str = ""
    claims_scope: frozenset[str] = frozenset()
    jkt: str = ""  # DPoP key thumbprint the token is bound to
    auth_time: dt.datetime | None = None
    level: AssuranceLevel = AssuranceLevel.LOA1
    methods: tuple[Amr, ...] = ()
    nonce: str = ""
    revoked_at: dt.datetime | None = None
    used_at: dt.datetime | None = None  # refresh tokens: when rotated

    def active(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class ApprovalKind(enum.StrEnum):
    QR_LOGIN = "qr_login"  # the login page's QR code
    STEP_UP = "step_up"  # QR shown to raise an existing session to level 2
    CIBA = "ciba"  # client-initiated (OpenID CIBA, poll mode), e.g. a remote signature
    ENROLMENT = "enrolment"  # a one-time code to register the app's device key


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CONSUMED = "consumed"


@dataclass(frozen=True, slots=True)
class Approval:
    """Something the citizen approves in the app by signing a challenge with the device key."""

    approval_id: str
    kind: ApprovalKind
    challenge: str
    client_id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    account_id: str = ""  # known up front for CIBA and step-up, set on approval for QR login
    binding_message: str = ""
    scope: frozenset[str] = frozenset()
    min_level: AssuranceLevel = AssuranceLevel.LOA1
    device_id: str = ""
    methods: tuple[Amr, ...] = ()
    decided_at: dt.datetime | None = None
    last_polled_at: dt.datetime | None = None
    interval: int = 5


# --------------------------------------------------------------------------- (de)serialisation


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_data(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(_encode(v) for v in value)
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


_NAMES: dict[type, tuple[str, ...]] = {}


def to_data(record: Any) -> dict[str, Any]:
    names = _NAMES.get(type(record))
    if names is None:
        names = _NAMES[type(record)] = tuple(f.name for f in dataclasses.fields(record))
    return {name: _encode(getattr(record, name)) for name in names}


def _decoder(tp: Any) -> Callable[[Any], Any] | None:
    """How to turn a stored value back into ``tp`` (None: as it is)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        inner = _decoder([a for a in typing.get_args(tp) if a is not type(None)][0])
        if inner is None:
            return None
        decode = inner
        return lambda value: None if value is None else decode(value)
    if dataclasses.is_dataclass(tp):
        return lambda value: from_data(tp, value)  # type: ignore[arg-type]
    if origin is frozenset:
        item = _decoder(typing.get_args(tp)[0])
        if item is None:
            return frozenset
        each = item
        return lambda value: frozenset(each(v) for v in value)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        if item is None:
            return tuple
        one = item
        return lambda value: tuple(one(v) for v in value)
    if tp is dt.datetime:
        return dt.datetime.fromisoformat
    if tp is dt.date:
        return dt.date.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    return None


_FIELDS: dict[type, tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple((f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls))
        _FIELDS[cls] = found
    return found


def from_data(cls: type[T], data: dict[str, Any]) -> T:
    kwargs = {name: value if decode is None else decode(value)
              for name, decode in _fields(cls) if (value := data.get(name, _ABSENT)) is not _ABSENT}
    return cls(**kwargs)


_ABSENT: Any = object()
