"""Remote signing with Cloud Signature Consortium API v2 semantics (CSC "API specification 2.0":
``credentials/list``, ``credentials/info``, ``credentials/authorize``, ``signatures/signHash``).

The signing keys stay in a PKCS#11 token on the server; an official reaches theirs through a
*credential*. Signing is authorised per document: ``authorize`` checks the official's second
factor and returns a *signature activation data* (SAD) bound to the exact hashes to be signed,
single-use and short-lived (sole control, SCAL2); ``sign_hash`` then signs only those hashes.

Ports (implemented by the server on its database and token):

* :class:`CredentialStore` — credentials by id and by owner;
* :class:`SadStore` — issued SADs, consumed atomically (a SAD signs once);
* :class:`Authoriser` — checks the second factor: a TOTP code (:class:`TotpAuthoriser`) or an
  approval in the citizen app by the official's level-2 electronic identity
  (:class:`ApprovalAuthoriser`, over the ports :class:`ApprovalRequestStore` and
  :class:`IdentityApprovals`); :class:`FactorAuthorisers` picks one by the factor's kind;
* :class:`KeyResolver` — the :class:`DigestSigner` of a credential's key.

:class:`RemoteSigner` is the client side: a :class:`~signing.sign.signers.Signer` whose
signatures come from a service speaking these semantics (:class:`CscClient`), so PAdES, CAdES and
XML signing work unchanged with a remote key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pyotp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing.errors import FailedPrecondition, InvalidInput
from signing.sign.errors import (
    ApprovalPending,
    AuthorisationFailed,
    CredentialNotPermitted,
    SigningRefused,
)
from signing.sign.signers import hash_for

__all__ = [
    "ApprovalAuthoriser",
    "ApprovalRequest",
    "ApprovalRequestStore",
    "ApprovalStart",
    "ApprovalState",
    "ApprovingCscClient",
    "Authoriser",
    "CredentialInfo",
    "CredentialStore",
    "CscClient",
    "DigestSigner",
    "FactorAuthorisers",
    "IdentityApprovals",
    "InMemorySadStore",
    "KeyResolver",
    "LocalCscClient",
    "RemoteSigner",
    "RemoteSigningService",
    "SadRecord",
    "SadStore",
    "SecondFactor",
    "SigningCredential",
    "TotpAuthoriser",
    "UsedCodeStore",
    "approval_code",
    "binding_message",
]

MAX_HASHES = 50


@dataclass(frozen=True, slots=True)
class SigningCredential:
    """A signing key of one official, with its certificate chain (signer first)."""

    credential_id: str
    owner: str  # who may use it: the official's subject (e.g. personal ID number)
    key_label: str  # the key's label in the PKCS#11 token
    certificates: tuple[x509.Certificate, ...]
    enabled: bool = True
    description: str = ""
    multisign: int = 1  # hashes one authorisation may cover
    identity_account: str = ""  # the owner's account at the identity provider (approvals)

    @property
    def certificate(self) -> x509.Certificate:
        return self.certificates[0]


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What ``credentials/info`` returns (CSC v2 §11.5): status, certificates, key, policy."""

    credential_id: str
    description: str
    enabled: bool
    certificates: tuple[x509.Certificate, ...]
    key_algorithm: str  # "rsa" / "ec"
    key_length: int
    auth_mode: str = "explicit"
    scal: str = "2"
    multisign: int = 1


@dataclass(frozen=True, slots=True)
class SecondFactor:
    """The official's second factor: ``totp`` (a 6-digit code) or ``approval`` (the handle of an
    approval started with :meth:`RemoteSigningService.start_approval`)."""

    kind: str
    value: str

    def __repr__(self) -> str:  # never print the code
        return f"SecondFactor(kind={self.kind!r})"


@dataclass(frozen=True, slots=True)
class SadRecord:
    sad_sha256: bytes  # only the SAD's hash is stored
    credential_id: str
    owner: str
    hashes: frozenset[bytes]
    hash_algorithm: str
    expires_at: dt.datetime


class CredentialStore(Protocol):
    def credentials_of(self, owner: str) -> Sequence[SigningCredential]: ...

    def credential(self, credential_id: str) -> SigningCredential | None: ...


class SadStore(Protocol):
    def put(self, record: SadRecord) -> None: ...

    def take(self, sad_sha256: bytes) -> SadRecord | None:
        """Remove and return the record (atomically: a SAD can be taken once)."""
        ...


class Authoriser(Protocol):
    def authorise(self, owner: str, credential: SigningCredential, factor: SecondFactor, *,
                  at: dt.datetime, hashes: frozenset[bytes] = frozenset(),
                  hash_algorithm: str = "") -> bool:
        """``True`` if ``factor`` authorises ``owner`` to sign ``hashes`` with ``credential``
        now; ``False``, or an :class:`AuthorisationFailed` naming the reason, otherwise."""
        ...


@runtime_checkable
class DigestSigner(Protocol):
    @property
    def certificate(self) -> x509.Certificate: ...

    def sign_digest(self, digest: bytes, hash_algorithm: str) -> bytes: ...


class KeyResolver(Protocol):
    def signer_for(self, credential: SigningCredential) -> DigestSigner: ...


class UsedCodeStore(Protocol):
    def claim(self, owner: str, step: int) -> bool:
        """Record that ``owner`` used the TOTP code of time step ``step``; ``False`` if a code of
        that step or a later one was used already (replay)."""
        ...


class _InMemoryUsedCodes:
    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def claim(self, owner: str, step: int) -> bool:
        with self._lock:
            if self._last.get(owner, -1) >= step:
                return False
            self._last[owner] = step
            return True


class TotpAuthoriser:
    """Second factor by TOTP (RFC 6238: SHA-1, 6 digits, 30 s), one step of clock drift either
    way, each code usable once."""

    def __init__(self, secret_of: Callable[[str], str | None],
                 used: UsedCodeStore | None = None) -> None:
        self._secret_of = secret_of  # owner -> base32 secret
        self._used = used or _InMemoryUsedCodes()

    def authorise(self, owner: str, credential: SigningCredential, factor: SecondFactor, *,
                  at: dt.datetime, hashes: frozenset[bytes] = frozenset(),
                  hash_algorithm: str = "") -> bool:
        if factor.kind != "totp" or not factor.value.isdigit() or len(factor.value) != 6:
            return False
        secret = self._secret_of(owner)
        if not secret:
            return False
        totp = pyotp.TOTP(secret)
        now = int(at.timestamp())
        for drift in (0, -1, 1):
            step = now // totp.interval + drift
            expected = totp.generate_otp(step)
            if hmac.compare_digest(expected, factor.value):
                return self._used.claim(owner, step)
        return False


class FactorAuthorisers:
    """An :class:`Authoriser` that hands each factor to the authoriser of its kind; a kind
    without one is not accepted."""

    def __init__(self, by_kind: dict[str, Authoriser]) -> None:
        self._by_kind = dict(by_kind)

    def authorise(self, owner: str, credential: SigningCredential, factor: SecondFactor, *,
                  at: dt.datetime, hashes: frozenset[bytes] = frozenset(),
                  hash_algorithm: str = "") -> bool:
        authoriser = self._by_kind.get(factor.kind)
        if authoriser is None:
            return False
        return authoriser.authorise(owner, credential, factor, at=at, hashes=hashes,
                                    hash_algorithm=hash_algorithm)


# ------------------------------------------------------------------ approval in the citizen app

APPROVAL_LEVEL = 2  # LoA2: level-2 account, device key unlocked by PIN or biometrics


def approval_code(hashes: Sequence[bytes], hash_algorithm: str) -> str:
    """A short digest of a hash list, shown to the official in the app and by the signature
    creation application beside the document: ``XXXX-XXXX-XXXX`` (60 bits of SHA-256 over the
    algorithm and the sorted hashes, in base32)."""
    digest = hashlib.sha256(b"vnegov remote signing approval\x00" + hash_algorithm.encode()
                            + b"\x00" + b"".join(sorted(hashes))).digest()
    text = base64.b32encode(digest).decode()[:12]
    return "-".join(text[i:i + 4] for i in range(0, 12, 4))


def binding_message(hashes: Sequence[bytes], hash_algorithm: str) -> str:
    """What the app shows for an approval of ``hashes`` (Vietnamese, at most 120 characters)."""
    count = len(frozenset(hashes))
    return f"Ký số {count} tài liệu, mã đối chiếu {approval_code(hashes, hash_algorithm)}"


@dataclass(frozen=True, slots=True)
class ApprovalStart:
    """What :meth:`RemoteSigningService.start_approval` returns to the caller."""

    approval_id: str  # secret handle: SecondFactor("approval", approval_id)
    binding_message: str
    approval_code: str
    expires_at: dt.datetime
    interval: int


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """An approval the signing service asked for: the full hash list is bound here, by the
    SHA-256 of the approval's handle (the handle itself is never stored)."""

    approval_sha256: bytes
    credential_id: str
    owner: str
    account_id: str
    hashes: frozenset[bytes]
    hash_algorithm: str
    binding_message: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ApprovalState:
    """What the identity provider knows of an approval."""

    status: str  # "pending", "approved", "denied" or "consumed"
    account_id: str  # whose approval it is
    binding_message: str  # what the app showed
    expires_at: dt.datetime
    decided_at: dt.datetime | None
    level: int  # the level the approval reached (0: the account can no longer be used)
    device_active: bool  # decided with a registered device key of that account, still active


class ApprovalRequestStore(Protocol):
    def put(self, request: ApprovalRequest) -> None: ...

    def get(self, approval_sha256: bytes) -> ApprovalRequest | None: ...

    def take(self, approval_sha256: bytes) -> bool:
        """Remove the request (atomically: ``True`` for one caller only)."""
        ...

    def refused(self, credential_id: str, reason: str) -> None:
        """Record (audit) that an approval was refused for ``reason``."""
        ...


class IdentityApprovals(Protocol):
    def start(self, account_id: str, binding_message: str, *,
              at: dt.datetime) -> tuple[str, dt.datetime, int]:
        """Ask the account's holder to approve ``binding_message`` in the app at level 2;
        returns the handle, the expiry and the polling interval. Raises
        :class:`~signing.errors.FailedPrecondition` when the account cannot approve."""
        ...

    def state(self, handle: str, *, at: dt.datetime) -> ApprovalState | None: ...

    def consume(self, handle: str) -> None:
        """Mark the approval used (it was turned into a SAD)."""
        ...


def _approval_sha256(handle: str) -> bytes:
    return hashlib.sha256(handle.encode("utf-8", errors="surrogatepass")).digest()


class ApprovalAuthoriser:
    """Second factor by an approval in the citizen app (SCAL2). It is accepted only if the
    official the credential is linked to approved, with the registered device key at level 2,
    exactly the message that commits to these hashes, within the approval's lifetime, and only
    once. Every refusal is recorded with its reason."""

    def __init__(self, requests: ApprovalRequestStore, identity: IdentityApprovals) -> None:
        self._requests = requests
        self._identity = identity

    def start(self, owner: str, credential: SigningCredential, hashes: frozenset[bytes],
              hash_algorithm: str, *, at: dt.datetime) -> ApprovalStart:
        if not credential.identity_account:
            self._requests.refused(credential.credential_id, "APPROVAL_NOT_LINKED")
            raise FailedPrecondition("the credential is not linked to the official's electronic "
                                     "identity", reason="APPROVAL_NOT_LINKED")
        message = binding_message(sorted(hashes), hash_algorithm)
        handle, expires, interval = self._identity.start(credential.identity_account, message,
                                                         at=at)
        self._requests.put(ApprovalRequest(
            _approval_sha256(handle), credential.credential_id, owner,
            credential.identity_account, hashes, hash_algorithm, message, expires))
        return ApprovalStart(handle, message, approval_code(sorted(hashes), hash_algorithm),
                             expires, interval)

    def _refuse(self, credential: SigningCredential, reason: str, message: str) -> AuthorisationFailed:
        self._requests.refused(credential.credential_id, reason)
        return AuthorisationFailed(message, reason=reason)

    def authorise(self, owner: str, credential: SigningCredential, factor: SecondFactor, *,
                  at: dt.datetime, hashes: frozenset[bytes] = frozenset(),
                  hash_algorithm: str = "") -> bool:
        handle = factor.value
        if factor.kind != "approval" or not handle or len(handle) > 200:
            return False
        key = _approval_sha256(handle)
        request = self._requests.get(key)
        if request is None:
            raise self._refuse(credential, "APPROVAL_UNKNOWN",
                               "the approval is unknown or was already used")
        if request.credential_id != credential.credential_id or \
                not hmac.compare_digest(request.owner, owner):
            raise self._refuse(credential, "APPROVAL_MISMATCH",
                               "the approval is for another credential")
        if request.hash_algorithm != hash_algorithm or request.hashes != hashes:
            raise self._refuse(credential, "APPROVAL_MISMATCH",
                               "the approval is for other hashes")
        state = self._identity.state(handle, at=at)
        if state is None:
            raise self._refuse(credential, "APPROVAL_UNKNOWN",
                               "the approval is unknown or was already used")
        if not credential.identity_account or request.account_id != credential.identity_account \
                or state.account_id != request.account_id:
            raise self._refuse(credential, "APPROVAL_WRONG_SIGNER",
                               "the approval is not the credential owner's")
        expected = binding_message(sorted(request.hashes), request.hash_algorithm)
        if state.binding_message != expected or request.binding_message != expected:
            raise self._refuse(credential, "APPROVAL_MISMATCH",
                               "the approval was shown for other hashes")
        expires = min(request.expires_at, state.expires_at)
        if state.status == "pending":
            if at >= expires:
                self._requests.take(key)
                raise self._refuse(credential, "APPROVAL_EXPIRED", "the approval expired")
            raise ApprovalPending("the official has not approved yet")
        if state.status == "denied":
            self._requests.take(key)
            raise self._refuse(credential, "APPROVAL_DENIED", "the official refused")
        if state.status != "approved":
            raise self._refuse(credential, "APPROVAL_UNKNOWN",
                               "the approval is unknown or was already used")
        if at >= expires or state.decided_at is None or state.decided_at >= expires:
            self._requests.take(key)
            raise self._refuse(credential, "APPROVAL_EXPIRED", "the approval expired")
        if not state.device_active:
            raise self._refuse(credential, "APPROVAL_DEVICE_REVOKED",
                               "the device that approved is no longer registered")
        if state.level < APPROVAL_LEVEL:
            self._requests.take(key)
            raise self._refuse(credential, "APPROVAL_BELOW_LEVEL_2",
                               "the approval was not a level-2 authentication")
        if not self._requests.take(key):  # a concurrent use won
            raise self._refuse(credential, "APPROVAL_UNKNOWN",
                               "the approval is unknown or was already used")
        self._identity.consume(handle)
        return True


class InMemorySadStore:
    """A :class:`SadStore` for a single process (the server keeps SADs in its database)."""

    def __init__(self) -> None:
        self._records: dict[bytes, SadRecord] = {}
        self._lock = threading.Lock()

    def put(self, record: SadRecord) -> None:
        with self._lock:
            self._records[record.sad_sha256] = record

    def take(self, sad_sha256: bytes) -> SadRecord | None:
        with self._lock:
            return self._records.pop(sad_sha256, None)


def _check_hashes(hashes: Sequence[bytes], hash_algorithm: str, limit: int) -> frozenset[bytes]:
    size = hash_for(hash_algorithm).digest_size
    if not hashes or len(hashes) > min(limit, MAX_HASHES):
        raise InvalidInput(f"between 1 and {min(limit, MAX_HASHES)} hashes may be signed at once",
                           reason="TOO_MANY_HASHES")
    if any(len(h) != size for h in hashes):
        raise InvalidInput("a hash does not have the length of its algorithm",
                           reason="BAD_DIGEST")
    return frozenset(hashes)


@dataclass
class RemoteSigningService:
    """The server side of remote signing."""

    credentials: CredentialStore
    sads: SadStore
    authoriser: Authoriser
    keys: KeyResolver
    sad_lifetime: dt.timedelta = field(default=dt.timedelta(minutes=5))
    approvals: ApprovalAuthoriser | None = None

    def _own(self, owner: str, credential_id: str) -> SigningCredential:
        credential = self.credentials.credential(credential_id)
        # Someone else's credential and no credential look the same (no existence oracle).
        if credential is None or not hmac.compare_digest(credential.owner, owner):
            raise CredentialNotPermitted("the credential is not available to this signer")
        return credential

    def list_credentials(self, owner: str) -> list[str]:
        return [c.credential_id for c in self.credentials.credentials_of(owner)]

    def credential_info(self, owner: str, credential_id: str) -> CredentialInfo:
        credential = self._own(owner, credential_id)
        key = credential.certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            algorithm, size = "rsa", key.key_size
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algorithm, size = "ec", key.curve.key_size
        else:
            raise InvalidInput("unsupported credential key", reason="UNSUPPORTED_KEY")
        return CredentialInfo(credential_id=credential.credential_id,
                              description=credential.description, enabled=credential.enabled,
                              certificates=credential.certificates, key_algorithm=algorithm,
                              key_length=size, multisign=credential.multisign)

    def authorize(self, owner: str, credential_id: str, hashes: Sequence[bytes],
                  hash_algorithm: str, factor: SecondFactor, *,
                  at: dt.datetime) -> tuple[str, dt.datetime]:
        """Check the second factor and return a SAD for exactly ``hashes``, with its expiry."""
        credential = self._own(owner, credential_id)
        if not credential.enabled:
            raise SigningRefused("the credential is disabled")
        bound = _check_hashes(hashes, hash_algorithm, credential.multisign)
        if len(bound) != len(hashes):
            raise InvalidInput("a hash is listed twice", reason="BAD_DIGEST")
        self.keys.signer_for(credential)  # before the second factor (or approval) is used up
        if not self.authoriser.authorise(owner, credential, factor, at=at, hashes=bound,
                                         hash_algorithm=hash_algorithm):
            raise AuthorisationFailed("the second factor was not accepted")
        sad = secrets.token_urlsafe(32)
        expires = at + self.sad_lifetime
        self.sads.put(SadRecord(hashlib.sha256(sad.encode()).digest(), credential_id, owner,
                                bound, hash_algorithm, expires))
        return sad, expires

    def start_approval(self, owner: str, credential_id: str, hashes: Sequence[bytes],
                       hash_algorithm: str, *, at: dt.datetime) -> ApprovalStart:
        """Ask the credential's owner to approve signing exactly ``hashes`` in the app."""
        credential = self._own(owner, credential_id)
        if not credential.enabled:
            raise SigningRefused("the credential is disabled")
        if self.approvals is None:
            raise FailedPrecondition("approvals in the app are not available here",
                                     reason="APPROVAL_UNAVAILABLE")
        bound = _check_hashes(hashes, hash_algorithm, credential.multisign)
        if len(bound) != len(hashes):
            raise InvalidInput("a hash is listed twice", reason="BAD_DIGEST")
        self.keys.signer_for(credential)  # no approval for a key the server cannot use
        return self.approvals.start(owner, credential, bound, hash_algorithm, at=at)

    def sign_hash(self, owner: str, credential_id: str, sad: str, hashes: Sequence[bytes],
                  hash_algorithm: str, *, at: dt.datetime) -> list[bytes]:
        """Sign ``hashes`` if ``sad`` was issued for exactly these, to this owner, and is fresh.
        The SAD is used up whatever the outcome."""
        credential = self._own(owner, credential_id)
        if credential.enabled:
            # The server's own set-up (token, key) is checked before the SAD is used up: a
            # refusal the official cannot cause must not cost an authorisation.
            self.keys.signer_for(credential)
        record = self.sads.take(hashlib.sha256(sad.encode()).digest())
        if (record is None or record.credential_id != credential_id or record.owner != owner
                or record.hash_algorithm != hash_algorithm or at >= record.expires_at
                or frozenset(hashes) != record.hashes or len(hashes) != len(record.hashes)):
            raise AuthorisationFailed("the signature activation data is not valid for this request")
        if not credential.enabled:
            raise SigningRefused("the credential is disabled")
        signer = self.keys.signer_for(credential)
        return [signer.sign_digest(h, hash_algorithm) for h in hashes]


class CscClient(Protocol):
    """What :class:`RemoteSigner` needs from a remote signing service (the caller's identity is
    the transport's business: mutual TLS, bearer token...)."""

    def credential_info(self, credential_id: str) -> CredentialInfo: ...

    def authorize(self, credential_id: str, hashes: Sequence[bytes], hash_algorithm: str,
                  factor: SecondFactor) -> str: ...

    def sign_hash(self, credential_id: str, sad: str, hashes: Sequence[bytes],
                  hash_algorithm: str) -> list[bytes]: ...


class ApprovingCscClient(CscClient, Protocol):
    """A :class:`CscClient` that can also ask the official for an approval in the app."""

    def start_approval(self, credential_id: str, hashes: Sequence[bytes],
                       hash_algorithm: str) -> ApprovalStart: ...


class LocalCscClient:
    """A :class:`CscClient` calling a :class:`RemoteSigningService` in the same process as
    ``owner`` (the server uses it when it is itself the signature creation application)."""

    def __init__(self, service: RemoteSigningService, owner: str,
                 clock: Callable[[], dt.datetime]) -> None:
        self._service, self._owner, self._clock = service, owner, clock

    def credential_info(self, credential_id: str) -> CredentialInfo:
        return self._service.credential_info(self._owner, credential_id)

    def authorize(self, credential_id: str, hashes: Sequence[bytes], hash_algorithm: str,
                  factor: SecondFactor) -> str:
        sad, _ = self._service.authorize(self._owner, credential_id, hashes, hash_algorithm,
                                         factor, at=self._clock())
        return sad

    def sign_hash(self, credential_id: str, sad: str, hashes: Sequence[bytes],
                  hash_algorithm: str) -> list[bytes]:
        return self._service.sign_hash(self._owner, credential_id, sad, hashes, hash_algorithm,
                                       at=self._clock())

    def start_approval(self, credential_id: str, hashes: Sequence[bytes],
                       hash_algorithm: str) -> ApprovalStart:
        return self._service.start_approval(self._owner, credential_id, hashes, hash_algorithm,
                                            at=self._clock())


class RemoteSigner:
    """A :class:`~signing.sign.signers.Signer` backed by a remote credential: each signature is
    authorised with a fresh second factor for exactly the hash being signed."""

    def __init__(self, client: CscClient, credential_id: str,
                 second_factor: Callable[[], SecondFactor]) -> None:
        self._client = client
        self._credential_id = credential_id
        self._second_factor = second_factor
        self._approvals: tuple[ApprovingCscClient, Callable[[ApprovalStart], None],
                               Callable[[float], None], Callable[[], float]] | None = None
        info = client.credential_info(credential_id)
        if not info.certificates:
            raise InvalidInput("the credential has no certificate", reason="NO_CERTIFICATE")
        self._certificates = info.certificates

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificates[0]

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        return self._certificates[1:]

    @classmethod
    def with_approval(cls, client: ApprovingCscClient, credential_id: str, *,
                      on_start: Callable[[ApprovalStart], None] = lambda start: None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> RemoteSigner:
        """A signer whose every signature the official approves in the app: the approval is
        started for the hash, ``on_start`` shows its code, and authorisation is retried at the
        server's interval until the official answers or the approval expires."""
        signer = cls(client, credential_id, lambda: SecondFactor("approval", ""))
        signer._approvals = (client, on_start, sleep, clock)
        return signer

    def _approved_sad(self, h: bytes, hash_algorithm: str) -> str:
        assert self._approvals is not None
        client, on_start, sleep, clock = self._approvals
        start = client.start_approval(self._credential_id, [h], hash_algorithm)
        on_start(start)
        factor = SecondFactor("approval", start.approval_id)
        remaining = (start.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
        deadline = clock() + max(remaining, 0) + start.interval
        while True:
            try:
                return client.authorize(self._credential_id, [h], hash_algorithm, factor)
            except ApprovalPending:
                if clock() >= deadline:
                    raise
                sleep(max(start.interval, 1))

    def sign(self, data: bytes, hash_algorithm: str) -> bytes:
        h = hashlib.new(hash_algorithm, data).digest()
        if self._approvals is not None:
            sad = self._approved_sad(h, hash_algorithm)
        else:
            sad = self._client.authorize(self._credential_id, [h], hash_algorithm,
                                         self._second_factor())
        [signature] = self._client.sign_hash(self._credential_id, sad, [h], hash_algorithm)
        return signature
