"""Remote signing with Cloud Signature Consortium API v2 semantics (CSC "API specification 2.0":
``credentials/list``, ``credentials/info``, ``credentials/authorize``, ``signatures/signHash``).

The signing keys stay in a PKCS#11 token on the server; an official reaches theirs through a
*credential*. Signing is authorised per document: ``authorize`` checks the official's second
factor and returns a *signature activation data* (SAD) bound to the exact hashes to be signed,
single-use and short-lived (sole control, SCAL2); ``sign_hash`` then signs only those hashes.

Ports (implemented by the server on its database and token):

* :class:`CredentialStore` — credentials by id and by owner;
* :class:`SadStore` — issued SADs, consumed atomically (a SAD signs once);
* :class:`Authoriser` — checks the second factor. Today a TOTP code (:class:`TotpAuthoriser`);
  an approval by the official's level-2 electronic identity replaces it without touching this
  module (another ``Authoriser`` accepting ``SecondFactor(kind="approval", ...)``);
* :class:`KeyResolver` — the :class:`DigestSigner` of a credential's key.

:class:`RemoteSigner` is the client side: a :class:`~signing.sign.signers.Signer` whose
signatures come from a service speaking these semantics (:class:`CscClient`), so PAdES, CAdES and
XML signing work unchanged with a remote key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pyotp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing.errors import InvalidInput
from signing.sign.errors import AuthorisationFailed, CredentialNotPermitted, SigningRefused
from signing.sign.signers import hash_for

__all__ = [
    "Authoriser",
    "CredentialInfo",
    "CredentialStore",
    "CscClient",
    "DigestSigner",
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
    """The official's second factor: ``totp`` (a 6-digit code) now; ``approval`` (a level-2
    identity approval reference) once that authoriser exists."""

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
                  at: dt.datetime) -> bool: ...


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
                  at: dt.datetime) -> bool:
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
        if not self.authoriser.authorise(owner, credential, factor, at=at):
            raise AuthorisationFailed("the second factor was not accepted")
        sad = secrets.token_urlsafe(32)
        expires = at + self.sad_lifetime
        self.sads.put(SadRecord(hashlib.sha256(sad.encode()).digest(), credential_id, owner,
                                bound, hash_algorithm, expires))
        return sad, expires

    def sign_hash(self, owner: str, credential_id: str, sad: str, hashes: Sequence[bytes],
                  hash_algorithm: str, *, at: dt.datetime) -> list[bytes]:
        """Sign ``hashes`` if ``sad`` was issued for exactly these, to this owner, and is fresh.
        The SAD is used up whatever the outcome."""
        credential = self._own(owner, credential_id)
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


class RemoteSigner:
    """A :class:`~signing.sign.signers.Signer` backed by a remote credential: each signature is
    authorised with a fresh second factor for exactly the hash being signed."""

    def __init__(self, client: CscClient, credential_id: str,
                 second_factor: Callable[[], SecondFactor]) -> None:
        self._client = client
        self._credential_id = credential_id
        self._second_factor = second_factor
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

    def sign(self, data: bytes, hash_algorithm: str) -> bytes:
        h = hashlib.new(hash_algorithm, data).digest()
        sad = self._client.authorize(self._credential_id, [h], hash_algorithm,
                                     self._second_factor())
        [signature] = self._client.sign_hash(self._credential_id, sad, [h], hash_algorithm)
        return signature
