"""Secrets at rest: the deployment's master key, and sealing of secrets kept in the database.

Values such as TOTP seeds and the identity provider's own secrets are stored sealed with
AES-256-GCM under a master key that lives outside the database (``[secrets] key_file``, a file only
the server's user can read; ``vnegov init`` creates one). Each sealed value is bound to a context
string (what it is and whose), so a value copied to another row does not open there. A copy of the
database alone reveals none of them.

Format: ``b"vs1" || nonce (12) || ciphertext+tag``; :func:`is_sealed` tells sealed values from the
plaintext values a deployment without a master key stores.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.config import Config, ConfigError

__all__ = ["SecretBox", "SecretUnavailable", "create_master_key", "is_sealed",
           "load_master_key", "secret_box"]

_MAGIC = b"vs1"
_KEY_BYTES = 32


class SecretUnavailable(Exception):
    """A sealed value could not be opened (wrong master key, wrong context or damaged)."""


def is_sealed(value: bytes) -> bool:
    return value.startswith(_MAGIC)


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, value: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return _MAGIC + nonce + self._aead.encrypt(nonce, value, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if not is_sealed(sealed):
            raise SecretUnavailable("the value is not sealed")
        try:
            return self._aead.decrypt(sealed[3:15], sealed[15:], context.encode())
        except (InvalidTag, ValueError):
            raise SecretUnavailable("the value does not open with this key and context") from None

    def seal_text(self, value: str, context: str) -> str:
        """Seal ``value`` into printable text (for text columns)."""
        return base64.urlsafe_b64encode(self.seal(value.encode(), context)).decode()

    def open_text(self, sealed: str, context: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
        except ValueError:
            raise SecretUnavailable("the value is not sealed") from None
        return self.open(raw, context).decode()

    @staticmethod
    def is_sealed_text(value: str) -> bool:
        return value.startswith(base64.urlsafe_b64encode(_MAGIC).decode())


def load_master_key(path: Path) -> bytes:
    """The 32-byte key in ``path`` (base64 text). Raises ``OSError``/``ValueError`` with the reason."""
    text = path.read_text(encoding="ascii").strip()
    key = base64.b64decode(text, validate=True)
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{path} does not hold a 32-byte key")
    return key


def create_master_key(path: Path) -> None:
    """Write a new random master key to ``path`` (mode 0600); never overwrites a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(os.urandom(_KEY_BYTES)).decode() + "\n")


def secret_box(config: Config) -> SecretBox | None:
    """The deployment's :class:`SecretBox`, or ``None`` when no master key is configured."""
    if not config.secrets.key_file:
        return None
    try:
        return SecretBox(load_master_key(Path(config.secrets.key_file)))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"secrets.key_file: cannot use {config.secrets.key_file}: {exc}",
                          "secrets.key_file") from None
