"""The two key sources behind :class:`signing.ca.KeySource`: encrypted PKCS#8 files (the
embedded demo) and a PKCS#11 token (production, SoftHSM2 in tests and CI)."""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from server.ca.settings import CaSettings
from signing.ca import KeySource, load_private_key
from signing.errors import FailedPrecondition, NotFound
from signing.pkcs11 import Token, TokenConfig, TokenKeySource

__all__ = ["FileKeySource", "KeyUnavailable", "open_key_source"]

_ISSUER_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)


class KeyUnavailable(FailedPrecondition):
    reason = "CA_KEY_UNAVAILABLE"


class FileKeySource:
    """Keys in encrypted PKCS#8 PEM files; the label is the file's path."""

    def __init__(self, passphrase: bytes | None) -> None:
        self._passphrase = passphrase
        self._keys: dict[str, CertificateIssuerPrivateKeyTypes] = {}
        self._lock = threading.Lock()

    def signing_key(self, label: str) -> CertificateIssuerPrivateKeyTypes:
        with self._lock:
            key = self._keys.get(label)
            if key is None:
                try:
                    data = Path(label).read_bytes()
                except FileNotFoundError:
                    raise NotFound(f"no key file {label}", reason="KEY_NOT_FOUND") from None
                except OSError as exc:
                    raise KeyUnavailable(f"cannot read key file {label}: {exc.strerror}") \
                        from None
                loaded = load_private_key(data, self._passphrase)
                if not isinstance(loaded, _ISSUER_KEYS):
                    raise KeyUnavailable(f"{label} holds a key that cannot sign certificates")
                self._keys[label] = loaded
                return loaded
            return key


def open_key_source(settings: CaSettings) -> tuple[KeySource, Token | None]:
    """The key source the settings name (and the token, to close at shutdown)."""
    if settings.key_source == "pkcs11":
        pin_file = settings.pkcs11.pin_file
        if not pin_file:
            raise KeyUnavailable("ca.pkcs11.pin_file must name the file holding the token PIN")
        try:
            pin = Path(pin_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KeyUnavailable(f"cannot read the token PIN file: {exc.strerror}") from None
        token = Token(TokenConfig(settings.pkcs11.module, settings.pkcs11.token_label, pin))
        return TokenKeySource(token), token
    passphrase = None
    if settings.key_passphrase_file:
        try:
            passphrase = Path(settings.key_passphrase_file).read_bytes().strip()
        except OSError as exc:
            raise KeyUnavailable(f"cannot read the key passphrase file: {exc.strerror}") \
                from None
    return FileKeySource(passphrase), None
