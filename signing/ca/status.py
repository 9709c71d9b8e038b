"""The status of every certificate a CA has issued, held in memory for OCSP and for the mutual-TLS
revocation check (both ask on hot paths and must not wait for a database).

The server loads the index from its store at start and keeps it current: immediately for changes
it makes itself, and by polling the store for changes made by other processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from signing.ca.revocation import RevocationEntry

__all__ = ["CertificateState", "StatusIndex"]


@dataclass(frozen=True, slots=True)
class CertificateState:
    """A known certificate: good (``revocation`` is None), on hold, or revoked."""

    revocation: RevocationEntry | None = None


_GOOD = CertificateState()


class StatusIndex:
    """(issuer key id, serial) -> :class:`CertificateState`. Reads take no lock."""

    def __init__(self) -> None:
        self._serials: dict[bytes, dict[int, CertificateState]] = {}
        self._by_name: dict[x509.Name, bytes] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bytes, int], None]] = []

    def add_issuer(self, key_id: bytes, name: x509.Name) -> None:
        with self._lock:
            self._serials.setdefault(key_id, {})
            self._by_name[name] = key_id

    def on_change(self, listener: Callable[[bytes, int], None]) -> None:
        """Call ``listener(key_id, serial)`` after every change (cache invalidation)."""
        self._listeners.append(listener)

    def _set(self, key_id: bytes, serial: int, state: CertificateState) -> None:
        serials = self._serials.get(key_id)
        if serials is None:
            return  # not one of our issuers
        if serials.get(serial) == state:
            return
        serials[serial] = state
        for listener in self._listeners:
            listener(key_id, serial)

    def set_good(self, key_id: bytes, serial: int) -> None:
        self._set(key_id, serial, _GOOD)

    def set_revoked(self, key_id: bytes, entry: RevocationEntry) -> None:
        self._set(key_id, entry.serial_number, CertificateState(entry))

    def lookup(self, key_id: bytes, serial: int) -> CertificateState | None:
        """The state of a certificate, or None if this CA did not issue it (OCSP "unknown")."""
        serials = self._serials.get(key_id)
        return None if serials is None else serials.get(serial)

    def is_revoked(self, issuer: x509.Name, serial_number: int) -> bool:
        """The mutual-TLS revocation check: revoked or on hold."""
        key_id = self._by_name.get(issuer)
        if key_id is None:
            return False
        state = self._serials[key_id].get(serial_number)
        return state is not None and state.revocation is not None

    def state_of(self, issuer: x509.Name, serial_number: int) -> CertificateState | None:
        """The state of a certificate named by its issuer's name and serial, or None if none
        of this CA's issuers issued it (then it says nothing about the certificate)."""
        key_id = self._by_name.get(issuer)
        return None if key_id is None else self.lookup(key_id, serial_number)

    def __len__(self) -> int:
        return sum(len(s) for s in self._serials.values())
