"""An RFC 3161 time-stamping authority (with the ESSCertIDv2 signer identification of RFC 5816).

:meth:`TimeStampAuthority.respond` takes a DER ``TimeStampReq`` and returns a DER ``TimeStampResp``:
either ``granted`` with a token — CMS SignedData over a ``TSTInfo`` carrying the TSA's policy, the
message imprint, a unique serial number, the time, the stated accuracy and the request's nonce — or
``rejection`` with the RFC 3161 failure bit (bad algorithm, bad data format, unaccepted policy,
unaccepted extension). The signing key is used through cryptography's key interface, so it may
live in a PKCS#11 token.

Serial numbers come from a :class:`SerialSource`. The default, :class:`TimeCounterSerials`,
combines the time in microseconds, a random 32-bit instance number drawn when the process starts
and a per-process counter, so numbers never repeat within a process and two processes would have
to draw the same instance number and issue in the same microsecond to collide.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.ca import der
from signing.ca.oids import TSA_POLICY
from signing.ca.signatures import sign_bytes, signature_algorithm
from signing.errors import InvalidInput

__all__ = [
    "FailureInfo",
    "SerialSource",
    "TimeCounterSerials",
    "TimeStampAnswer",
    "TimeStampAuthority",
    "TsaSettings",
]

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64, "sha1": 20, "sha3_256": 32,
                 "sha3_384": 48, "sha3_512": 64}


class FailureInfo(IntEnum):
    """PKIFailureInfo bits (RFC 3161 section 2.4.2)."""

    BAD_ALG = 0
    BAD_REQUEST = 2
    BAD_DATA_FORMAT = 5
    TIME_NOT_AVAILABLE = 14
    UNACCEPTED_POLICY = 15
    UNACCEPTED_EXTENSION = 16
    SYSTEM_FAILURE = 25


_FAILURE_NAMES = {
    FailureInfo.BAD_ALG: "bad_alg", FailureInfo.BAD_REQUEST: "bad_request",
    FailureInfo.BAD_DATA_FORMAT: "bad_data_format",
    FailureInfo.TIME_NOT_AVAILABLE: "time_not_available",
    FailureInfo.UNACCEPTED_POLICY: "unaccepted_policy",
    FailureInfo.UNACCEPTED_EXTENSION: "unaccepted_extensions",
    FailureInfo.SYSTEM_FAILURE: "system_failure",
}


class SerialSource(Protocol):
    """Where a time-stamping unit gets unique serial numbers."""
    def next_serial(self) -> int: ...


class TimeCounterSerials:
    """Unique positive serial numbers: microseconds since 1970 | instance | counter."""

    def __init__(self, instance: int | None = None) -> None:
        self._instance = secrets.randbits(32) if instance is None else instance & 0xFFFFFFFF
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next_serial(self) -> int:
        with self._lock:
            count = next(self._counter) & 0xFFFFFFFF
            micros = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
        return (micros << 64) | (self._instance << 32) | count


@dataclass(frozen=True, slots=True)
class TsaSettings:
    """A time-stamping unit's policy, accuracy and accepted hash algorithms."""
    policy_oid: str = TSA_POLICY.dotted_string
    accuracy_seconds: int = 1
    accuracy_millis: int = 0
    hash_algorithms: tuple[str, ...] = ("sha256", "sha384", "sha512")
    include_tsa_name: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.hash_algorithms) - set(_DIGEST_SIZES)
        if unknown:
            raise InvalidInput(f"unknown hash algorithm {sorted(unknown)[0]!r}",
                               reason="INVALID_TSA_SETTINGS")
        if self.accuracy_seconds < 0 or not 0 <= self.accuracy_millis <= 999:
            raise InvalidInput("accuracy must be non-negative (millis 0-999)",
                               reason="INVALID_TSA_SETTINGS")


@dataclass(frozen=True, slots=True)
class TimeStampAnswer:
    """A time-stamping unit's answer: the DER response, and whether a token was granted."""
    body: bytes
    granted: bool
    serial_number: int | None = None
    failure: FailureInfo | None = None


class _Rejected(Exception):
    def __init__(self, failure: FailureInfo, text: str) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text


@dataclass(frozen=True)
class TimeStampAuthority:
    """A TSA: its certificate (critical EKU id-kp-timeStamping only), key, and the chain up to (not
    including) the trust anchor, sent when a request asks for certificates."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    chain: Sequence[x509.Certificate] = ()
    settings: TsaSettings = field(default_factory=TsaSettings)
    serials: SerialSource = field(default_factory=TimeCounterSerials)

    def __post_init__(self) -> None:
        if self.key.public_key() != self.certificate.public_key():
            raise InvalidInput("the TSA key does not match its certificate", reason="KEY_MISMATCH")
        try:
            eku = self.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or not eku.critical or list(eku.value) != [
                ExtendedKeyUsageOID.TIME_STAMPING]:
            raise InvalidInput("a TSA certificate needs a critical extendedKeyUsage with only "
                               "id-kp-timeStamping (RFC 3161 section 2.3)",
                               reason="NOT_A_TSA_CERTIFICATE")

    # ---------------------------------------------------------------- request handling
    def respond(self, data: bytes, now: dt.datetime) -> TimeStampAnswer:
        try:
            request = self._check(data)
        except _Rejected as exc:
            return TimeStampAnswer(self._rejection(exc.failure, exc.text), False,
                                   failure=exc.failure)
        serial = self.serials.next_serial()
        token = self._token(request, serial, now)
        body = tsp.TimeStampResp({
            "status": {"status": "granted"},
            "time_stamp_token": token,
        }).dump()
        return TimeStampAnswer(body, True, serial_number=serial)

    def _check(self, data: bytes) -> tsp.TimeStampReq:
        try:
            request = tsp.TimeStampReq.load(data, strict=True)
            version = request["version"].native
            algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].native
            digest = request["message_imprint"]["hashed_message"].native
            policy = request["req_policy"].native
            extensions = request["extensions"].native
            request["nonce"].native  # noqa: B018 - parse now, not while signing
        except (ValueError, TypeError, KeyError) as exc:
            raise _Rejected(FailureInfo.BAD_DATA_FORMAT, "the request could not be parsed") \
                from exc
        if version != "v1":
            raise _Rejected(FailureInfo.BAD_REQUEST, "unsupported request version")
        if algorithm not in self.settings.hash_algorithms:
            raise _Rejected(FailureInfo.BAD_ALG, f"hash algorithm {algorithm} is not accepted")
        if len(digest) != _DIGEST_SIZES[algorithm]:
            raise _Rejected(FailureInfo.BAD_DATA_FORMAT, "the hash has the wrong length")
        if policy is not None and policy != self.settings.policy_oid:
            raise _Rejected(FailureInfo.UNACCEPTED_POLICY, "the requested policy is not offered")
        if extensions:
            raise _Rejected(FailureInfo.UNACCEPTED_EXTENSION, "no request extension is supported")
        return request

    def _rejection(self, failure: FailureInfo, text: str) -> bytes:
        # asn1crypto's TimeStampResp makes the token mandatory; a rejection has none.
        status = tsp.PKIStatusInfo({"status": "rejection", "status_string": [text],
                                    "fail_info": {_FAILURE_NAMES[failure]}})
        return der.sequence(bytes(status.dump()))

    # ---------------------------------------------------------------- the token
    def _tst_info(self, request: tsp.TimeStampReq, serial: int, now: dt.datetime) -> bytes:
        accuracy = {}
        if self.settings.accuracy_seconds:
            accuracy["seconds"] = self.settings.accuracy_seconds
        if self.settings.accuracy_millis:
            accuracy["millis"] = self.settings.accuracy_millis
        info = {
            "version": "v1",
            "policy": self.settings.policy_oid,
            "message_imprint": request["message_imprint"],
            "serial_number": serial,
            "gen_time": now.astimezone(dt.UTC).replace(microsecond=0),
        }
        if accuracy:
            info["accuracy"] = accuracy
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"].native
        if self.settings.include_tsa_name:
            info["tsa"] = asn1_x509.GeneralName(
                name="directory_name",
                value=asn1_x509.Name.load(self.certificate.subject.public_bytes()))
        return bytes(tsp.TSTInfo(info).dump())

    def _token(self, request: tsp.TimeStampReq, serial: int, now: dt.datetime) -> cms.ContentInfo:
        tst_der = self._tst_info(request, serial, now)
        cert_der = self.certificate.public_bytes(serialization.Encoding.DER)
        signer_cert = asn1_x509.Certificate.load(cert_der)
        _, digest_name = signature_algorithm(self.key)
        digest_name = digest_name or "sha512"  # Ed25519 (RFC 8419) pairs with SHA-512
        ess = tsp.SigningCertificateV2({"certs": [{
            "hash_algorithm": {"algorithm": "sha256"},
            "cert_hash": hashlib.sha256(cert_der).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName(name="directory_name",
                                                 value=signer_cert.issuer)],
                "serial_number": signer_cert.serial_number,
            },
        }]})
        signed_attrs = cms.CMSAttributes([
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest",
                              "values": [hashlib.new(digest_name, tst_der).digest()]}),
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}),
        ])
        signature = sign_bytes(self.key, signed_attrs.dump())
        signer = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
                "issuer": signer_cert.issuer, "serial_number": signer_cert.serial_number}),
            "digest_algorithm": {"algorithm": digest_name},
            "signed_attrs": signed_attrs,
            "signature_algorithm": _signer_algorithm(self.key, digest_name),
            "signature": signature,
        })
        signed_data = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": digest_name}],
            "encap_content_info": {"content_type": "tst_info",
                                   "content": core.ParsableOctetString(tst_der)},
            "signer_infos": [signer],
        }
        if request["cert_req"].native:
            signed_data["certificates"] = [signer_cert] + [
                asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                for c in self.chain]
        return cms.ContentInfo({"content_type": "signed_data",
                                "content": cms.SignedData(signed_data)})


def _signer_algorithm(key: CertificateIssuerPrivateKeyTypes, digest: str) -> algos.SignedDigestAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
    if isinstance(key, rsa.RSAPrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_rsa"})
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": "ed25519"})
    raise InvalidInput("unsupported TSA key", reason="UNSUPPORTED_KEY")
