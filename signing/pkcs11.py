"""Keys inside a PKCS#11 token (OASIS PKCS#11 2.40), usable wherever cryptography takes a key.

Keys are generated inside the token as sensitive and non-extractable, and every signature is made by
the token. :class:`TokenKey` objects implement cryptography's ``RSAPrivateKey`` /
``EllipticCurvePrivateKey`` interfaces, so X.509, CRL and OCSP builders, CMS and XML signers accept
them unchanged (cryptography calls back into ``sign`` for keys it does not hold).

Mechanisms are discovered from the token: when it offers hash-and-sign (``CKM_SHA256_RSA_PKCS``,
``CKM_ECDSA_SHA256``, ...) the data goes to the token; otherwise the digest is computed here and the
raw mechanism is used (``CKM_ECDSA`` on the digest; ``CKM_RSA_PKCS`` on the DER DigestInfo;
``CKM_RSA_PKCS_PSS`` on the digest). SoftHSM2, for one, has no hash-and-sign ECDSA.

A PKCS#11 session serves one thread at a time, so each thread gets its own session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pkcs11
from asn1crypto import algos, keys
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.utils import Buffer
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from signing.ca.keys import KeyAlgorithm
from signing.errors import FailedPrecondition, InvalidInput, NotFound

__all__ = [
    "Token",
    "TokenConfig",
    "TokenEcKey",
    "TokenError",
    "TokenKeySource",
    "TokenRsaKey",
]


class TokenError(FailedPrecondition):
    """The token cannot be used (library missing, wrong PIN, no such token, mechanism refused)."""

    reason = "TOKEN_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """How to open a PKCS#11 token: the library, the token's label and the user PIN (never printed)."""
    module: str  # path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str
    pin: str

    def __repr__(self) -> str:  # never print the PIN
        return f"TokenConfig(module={self.module!r}, token_label={self.token_label!r})"


_CURVE_NAMES = {KeyAlgorithm.EC_P256: "secp256r1", KeyAlgorithm.EC_P384: "secp384r1"}
_EC_HASH_MECHS = {"sha256": "ECDSA_SHA256", "sha384": "ECDSA_SHA384", "sha512": "ECDSA_SHA512"}
_RSA_HASH_MECHS = {"sha256": "SHA256_RSA_PKCS", "sha384": "SHA384_RSA_PKCS",
                   "sha512": "SHA512_RSA_PKCS"}
_PSS_HASH_MECHS = {"sha256": "SHA256_RSA_PKCS_PSS", "sha384": "SHA384_RSA_PKCS_PSS",
                   "sha512": "SHA512_RSA_PKCS_PSS"}
_MGF = {"sha256": "SHA256", "sha384": "SHA384", "sha512": "SHA512"}
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}

_libraries: dict[str, Any] = {}
_libraries_lock = threading.Lock()


def _library(path: str) -> Any:
    with _libraries_lock:
        if path not in _libraries:
            try:
                _libraries[path] = pkcs11.lib(path)
            except (RuntimeError, OSError) as exc:
                raise TokenError(f"cannot load the PKCS#11 library {path}") from exc
        return _libraries[path]


class Token:
    """An opened token: find and generate keys; sessions are per thread and logged in."""

    def __init__(self, config: TokenConfig) -> None:
        self.config = config
        lib = _library(config.module)
        try:
            self._token = lib.get_token(token_label=config.token_label)
        except (pkcs11.exceptions.NoSuchToken, pkcs11.exceptions.MultipleTokensReturned) as exc:
            raise TokenError(f"no single token labelled {config.token_label!r}") from exc
        self.mechanisms = frozenset(m.name for m in self._token.slot.get_mechanisms()
                                    if hasattr(m, "name"))
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._lock = threading.Lock()
        with self.session():
            pass  # fail now, not at the first signature, if the PIN is wrong

    @contextmanager
    def session(self) -> Iterator[Any]:
        session = getattr(self._local, "session", None)
        if session is None:
            try:
                session = self._token.open(user_pin=self.config.pin, rw=True)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # Login state belongs to the process, not the session (PKCS#11 2.40 §5.6): another
                # session of this process has logged in, and this one shares that login.
                session = self._token.open(rw=True)
            except pkcs11.exceptions.PinIncorrect as exc:
                raise TokenError("the token refused the PIN") from exc
            except pkcs11.exceptions.PKCS11Error as exc:
                raise TokenError(f"cannot open a session: {type(exc).__name__}") from exc
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        yield session

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                try:
                    session.close()
                except pkcs11.exceptions.PKCS11Error:
                    pass
            self._sessions.clear()
        self._local = threading.local()

    def generate_key(self, label: str, algorithm: KeyAlgorithm) -> TokenRsaKey | TokenEcKey:
        """Generate a key pair in the token (private half sensitive, never extractable)."""
        if self.has_key(label):
            raise InvalidInput(f"the token already holds a key labelled {label!r}",
                               reason="KEY_LABEL_TAKEN")
        private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                            Attribute.SIGN: True, Attribute.TOKEN: True}
        key_id = label.encode()
        with self.session() as s:
            if algorithm in _CURVE_NAMES:
                params = encode_named_curve_parameters(_CURVE_NAMES[algorithm])
                s.generate_keypair(KeyType.EC, store=True, label=label, id=key_id,
                                   public_template={Attribute.EC_PARAMS: params,
                                                    Attribute.VERIFY: True},
                                   private_template=private_template)
            else:
                bits = int(algorithm.value.split("-")[1])
                s.generate_keypair(KeyType.RSA, bits, store=True, label=label, id=key_id,
                                   public_template={Attribute.VERIFY: True},
                                   private_template=private_template)
        return self.key(label)

    def has_key(self, label: str) -> bool:
        with self.session() as s:
            return any(True for _ in s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                     Attribute.LABEL: label}))

    def key(self, label: str) -> TokenRsaKey | TokenEcKey:
        """The private key labelled ``label`` as a cryptography key object."""
        with self.session() as s:
            try:
                private = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
                public = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            except pkcs11.exceptions.NoSuchKey as exc:
                raise NotFound(f"the token holds no key labelled {label!r}",
                               reason="TOKEN_KEY_NOT_FOUND") from exc
            key_type = private.key_type
            public_key = _public_key(public)
        if key_type == KeyType.EC:
            assert isinstance(public_key, ec.EllipticCurvePublicKey)
            return TokenEcKey(self, label, public_key)
        assert isinstance(public_key, rsa.RSAPublicKey)
        return TokenRsaKey(self, label, public_key)

    def _sign(self, label: str, data: bytes, mechanism: Mechanism, param: Any = None) -> bytes:
        with self.session() as s:
            cache = self._local.__dict__.setdefault("keys", {})
            try:
                private = cache.get(label)
                if private is None:
                    private = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
                    cache[label] = private
                return bytes(private.sign(data, mechanism=mechanism, mechanism_param=param))
            except pkcs11.exceptions.PKCS11Error as exc:  # NoSuchKey too
                # A key that signed before and is gone now (the token was removed or replaced)
                # is the token's failure, not the caller's: the handle is dropped, and the
                # caller may retry once the token is back.
                cache.pop(label, None)
                raise TokenError(f"the token refused to sign ({type(exc).__name__})") from exc


def _public_key(public: Any) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    if public.key_type == KeyType.EC:
        params = keys.ECDomainParameters.load(public[Attribute.EC_PARAMS])
        point = public[Attribute.EC_POINT]
        # EC_POINT is a DER OCTET STRING wrapping the uncompressed point.
        raw = OctetString.load(point).native
        info = keys.PublicKeyInfo({
            "algorithm": {"algorithm": "ec", "parameters": params},
            "public_key": raw,
        })
        key = serialization.load_der_public_key(info.dump())
    else:
        info = keys.PublicKeyInfo({
            "algorithm": {"algorithm": "rsa"},
            "public_key": keys.RSAPublicKey({
                "modulus": int.from_bytes(public[Attribute.MODULUS], "big"),
                "public_exponent": int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            }),
        })
        key = serialization.load_der_public_key(info.dump())
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> tuple[bytes, str]:
    if isinstance(algorithm, utils.Prehashed):
        return data, algorithm._algorithm.name
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm.name


class TokenEcKey(ec.EllipticCurvePrivateKey):
    """An ECDSA key held by a token."""

    def __init__(self, token: Token, label: str, public: ec.EllipticCurvePublicKey) -> None:
        self.token, self.label, self._public = token, label, public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise InvalidInput("only ECDSA signatures are supported", reason="UNSUPPORTED")
        algorithm = signature_algorithm.algorithm
        name = (algorithm._algorithm.name if isinstance(algorithm, utils.Prehashed)
                else algorithm.name)
        data = bytes(data)
        mech = _EC_HASH_MECHS.get(name)
        if mech is not None and mech in self.token.mechanisms and not isinstance(
                algorithm, utils.Prehashed):
            raw = self.token._sign(self.label, data, Mechanism[mech])
        else:
            digest, _ = _digest(data, algorithm)
            raw = self.token._sign(self.label, digest, Mechanism.ECDSA)
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                          int.from_bytes(raw[half:], "big"))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise InvalidInput("token keys are for signing only", reason="UNSUPPORTED")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise InvalidInput("a token key cannot be exported", reason="KEY_NOT_EXTRACTABLE")

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        raise InvalidInput("a token key cannot be exported", reason="KEY_NOT_EXTRACTABLE")

    def __copy__(self) -> TokenEcKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenEcKey:
        return self


class TokenRsaKey(rsa.RSAPrivateKey):
    """An RSA key held by a token (PKCS#1 v1.5 and PSS signatures)."""

    def __init__(self, token: Token, label: str, public: rsa.RSAPublicKey) -> None:
        self.token, self.label, self._public = token, label, public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(self, data: Buffer, padding: padding.AsymmetricPadding,
             algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo) -> bytes:
        # The parameters are named as in cryptography's RSAPrivateKey (callers such as signxml
        # pass them by keyword).
        padding_ = padding
        data = bytes(data)
        if isinstance(algorithm, utils.NoDigestInfo):
            # The caller built the DigestInfo (or wants a raw PKCS#1 v1.5 block) itself.
            if not isinstance(padding_, asym_padding.PKCS1v15):
                raise InvalidInput("NoDigestInfo needs PKCS#1 v1.5 padding", reason="UNSUPPORTED")
            return self.token._sign(self.label, data, Mechanism.RSA_PKCS)
        name = algorithm._algorithm.name if isinstance(algorithm, utils.Prehashed) \
            else algorithm.name
        prehashed = isinstance(algorithm, utils.Prehashed)
        if isinstance(padding_, asym_padding.PKCS1v15):
            mech = _RSA_HASH_MECHS.get(name)
            if mech is not None and mech in self.token.mechanisms and not prehashed:
                return self.token._sign(self.label, data, Mechanism[mech])
            digest, _ = _digest(data, algorithm)
            info = algos.DigestInfo({"digest_algorithm": {"algorithm": name}, "digest": digest})
            return self.token._sign(self.label, info.dump(), Mechanism.RSA_PKCS)
        if isinstance(padding_, asym_padding.PSS):
            salt = padding_._salt_length
            if not isinstance(salt, int):  # DIGEST_LENGTH, AUTO, MAX_LENGTH: use the digest length
                salt = _DIGEST_SIZES[name]
            hash_mech = Mechanism[name.upper()]
            param = (hash_mech, getattr(pkcs11.MGF, _MGF[name]), salt)
            mech = _PSS_HASH_MECHS.get(name)
            if mech is not None and mech in self.token.mechanisms and not prehashed:
                return self.token._sign(self.label, data, Mechanism[mech], param)
            digest, _ = _digest(data, algorithm)
            return self.token._sign(self.label, digest, Mechanism.RSA_PKCS_PSS, param)
        raise InvalidInput("unsupported RSA padding", reason="UNSUPPORTED")

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise InvalidInput("token keys are for signing only", reason="UNSUPPORTED")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise InvalidInput("a token key cannot be exported", reason="KEY_NOT_EXTRACTABLE")

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        raise InvalidInput("a token key cannot be exported", reason="KEY_NOT_EXTRACTABLE")

    def __copy__(self) -> TokenRsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenRsaKey:
        return self


class TokenKeySource:
    """The :class:`signing.ca.KeySource` of keys held by a token: ``signing_key(label)``."""

    def __init__(self, token: Token) -> None:
        self.token = token
        self._keys: dict[str, TokenRsaKey | TokenEcKey] = {}
        self._lock = threading.Lock()

    def signing_key(self, label: str) -> TokenRsaKey | TokenEcKey:
        with self._lock:
            key = self._keys.get(label)
            if key is None:
                key = self._keys[label] = self.token.key(label)
            return key
