"""What the documents module needs at run time, built once from its configuration: trust
anchors, the TSA transport, the appearance font, the PKCS#11 token and the agencies' signers."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.documents.config import DocumentsConfig
from server.documents.transport import HttpTimeStampTransport
from signing.ca.keys import load_private_key
from signing.errors import FailedPrecondition, NotFound
from signing.pkcs11 import Token, TokenConfig, TokenError
from signing.sign.errors import SignerMismatch
from signing.sign.remote import SigningCredential
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner, Signer, TokenSigner

log = logging.getLogger("server")

__all__ = ["AgencySigner", "DocumentsRuntime", "DocumentsSetupError", "TokenKeys", "open_token"]


class DocumentsSetupError(ValueError):
    """The documents configuration points at something unusable (the message says what)."""


@dataclass(frozen=True, slots=True)
class AgencySigner:
    name: str
    agency_code: str
    signer: Signer
    certify_first: int = 0  # DocMDP P of a certification when it signs a document first


class TokenKeys:
    """:class:`signing.sign.remote.KeyResolver` on the token; signers are made once per key."""

    def __init__(self, token: Token | None, *, unavailable: str = "") -> None:
        self._token = token
        self._unavailable = unavailable  # why the configured token could not be opened
        self._cache: dict[str, TokenSigner] = {}
        self._lock = threading.Lock()

    def signer_for(self, credential: SigningCredential) -> TokenSigner:
        """The credential's signer; a missing token, key or a key that is not the certificate's
        is FAILED_PRECONDITION (the server's set-up, not the caller's request, is at fault)."""
        if self._token is None and self._unavailable:
            raise FailedPrecondition(f"remote signing is unavailable: {self._unavailable}",
                                     reason="TOKEN_UNAVAILABLE")
        if self._token is None:
            raise FailedPrecondition("remote signing is not set up on this server: no token is "
                                     "configured (documents.token_module)",
                                     reason="TOKEN_NOT_CONFIGURED")
        with self._lock:
            signer = self._cache.get(credential.credential_id)
            if signer is None or signer.certificate != credential.certificate:
                try:
                    signer = TokenSigner(self._token, credential.key_label,
                                         credential.certificate, credential.certificates[1:])
                except (NotFound, SignerMismatch) as exc:
                    raise FailedPrecondition(
                        f"the credential's key is not usable in the token: {exc}",
                        reason="CREDENTIAL_KEY_UNAVAILABLE") from None
                self._cache[credential.credential_id] = signer
            return signer


def open_token(config: DocumentsConfig) -> Token | None:
    """The configured token, or ``None`` when there is none (documents.token_module unset)."""
    if not config.token_module:
        return None
    if config.softhsm2_conf:
        # SoftHSM2 reads it when the library is initialised, once per process; a SOFTHSM2_CONF
        # already in the environment wins (SoftHSM's own convention).
        if not Path(config.softhsm2_conf).is_file():
            raise DocumentsSetupError(f"cannot read SoftHSM2 configuration {config.softhsm2_conf}")
        os.environ.setdefault("SOFTHSM2_CONF", config.softhsm2_conf)
    pin = _read(config.token_pin_file, "token PIN file").decode().strip() \
        if config.token_pin_file else ""
    return Token(TokenConfig(config.token_module, config.token_label, pin))


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DocumentsSetupError(f"cannot read {what} {path}: {exc.strerror}") from None


@dataclass
class DocumentsRuntime:
    config: DocumentsConfig
    trust: TrustSettings
    tsa: HttpTimeStampTransport | None
    token: Token | None
    signers: dict[str, AgencySigner] = field(default_factory=dict)
    keys: TokenKeys = field(default_factory=lambda: TokenKeys(None))
    _font: bytes | None = None

    @classmethod
    def build(cls, config: DocumentsConfig) -> DocumentsRuntime:
        roots: list[x509.Certificate] = []
        for path in config.trust_roots:
            try:
                roots.extend(x509.load_pem_x509_certificates(_read(path, "trust anchor file")))
            except ValueError:
                raise DocumentsSetupError(f"{path} holds no PEM certificate") from None
        unavailable = ""
        try:
            token = open_token(config)
        except TokenError as exc:
            # The server still serves (agencies' file keys, verification); remote signing says
            # why it cannot work, as FAILED_PRECONDITION, instead of the server not starting.
            if any(entry.key_label for entry in config.signers):
                raise DocumentsSetupError(f"the token cannot be opened: {exc}") from None
            log.warning("documents: the token cannot be opened, remote signing is unavailable: %s",
                        exc)
            token, unavailable = None, str(exc)
        runtime = cls(config=config, trust=TrustSettings(trust_roots=roots,
                                                         allow_fetching=config.allow_fetching),
                      tsa=HttpTimeStampTransport(config.tsa_url)
                      if config.tsa_url else None, token=token,
                      keys=TokenKeys(token, unavailable=unavailable))
        for entry in config.signers:
            try:
                chain = x509.load_pem_x509_certificates(
                    _read(entry.certificate_file, "certificate file"))
            except ValueError:
                raise DocumentsSetupError(f"{entry.certificate_file} holds no PEM certificate") from None
            signer: Signer
            if entry.key_label:
                if token is None:
                    raise DocumentsSetupError(f"signer {entry.name} names a token key but no "
                                        "documents.token_module is configured")
                signer = TokenSigner(token, entry.key_label, chain[0], chain[1:])
            else:
                passphrase = _read(entry.key_passphrase_file, "passphrase file").strip() \
                    if entry.key_passphrase_file else None
                key = load_private_key(_read(entry.key_file, "key file"), passphrase)
                if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                    raise DocumentsSetupError(f"signer {entry.name}: only RSA and ECDSA keys")
                signer = KeySigner(key, chain[0], chain[1:])  # parsed once, here
            runtime.signers[entry.name] = AgencySigner(entry.name, entry.agency_code, signer,
                                                       entry.certify_first)
        return runtime

    @property
    def font(self) -> bytes:
        """The appearance font, read when an appearance first needs it."""
        if self._font is None:
            try:
                self._font = Path(self.config.font_file).read_bytes()
            except OSError:
                raise FailedPrecondition("the appearance font is not available on the server",
                                         reason="FONT_UNAVAILABLE") from None
        return self._font

    def close(self) -> None:
        if self.tsa is not None:
            self.tsa.close()
        if self.token is not None:
            self.token.close()
