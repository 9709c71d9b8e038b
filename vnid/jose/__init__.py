"""JOSE for the provider: its signing keys and their rotation, and verification with an explicit
algorithm allow-list."""

from vnid.jose.keys import KeyRing, KeyState, RotationPolicy, SigningKeyRecord
from vnid.jose.verify import BadJws, verify_compact_jws

__all__ = ["BadJws", "KeyRing", "KeyState", "RotationPolicy", "SigningKeyRecord",
           "verify_compact_jws"]
