"""An OCSP responder (RFC 6960) with a delegated responder certificate, and its response cache.

Requests are parsed with asn1crypto, because a request may name several certificates and
cryptography's parser refuses those. Each named certificate is answered ``good``, ``revoked``
(with time and reason; a certificate on hold is ``revoked`` with ``certificateHold``) or
``unknown`` (not issued by an issuer this responder serves). A nonce (RFC 9654: 1 to 128 octets)
is echoed; anything unparsable is answered ``malformedRequest``, a request for issuers this
responder does not serve ``unauthorized``.

Responses are encoded directly in DER (:mod:`signing.ca.der`) and signed by the responder key
through cryptography's key interface, so a key in a PKCS#11 token works unchanged. Requests without
a nonce get identical answers until the status changes, so :class:`ResponseCache` keeps them: the
server invalidates the entries of a certificate whenever its status changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from asn1crypto import core
from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.ca import der
from signing.ca.oids import OID_OCSP_NONCE
from signing.ca.signatures import sign_bytes, signature_algorithm_der
from signing.ca.status import CertificateState
from signing.errors import InvalidInput

__all__ = [
    "MAX_CERTIFICATES_PER_REQUEST",
    "OcspAnswer",
    "OcspResponder",
    "OcspResponseStatus",
    "ParsedRequest",
    "RequestedCertificate",
    "ResponderIdentity",
    "ResponseCache",
    "StatusLookup",
    "error_response",
    "parse_request",
    "public_key_bits",
]

MAX_CERTIFICATES_PER_REQUEST = 20
MAX_NONCE_OCTETS = 128  # RFC 9654
_OCSP_BASIC = der.oid("1.3.6.1.5.5.7.48.1.1")
_NONCE_OID = der.oid(OID_OCSP_NONCE.dotted_string)
_HASHES = ("sha1", "sha256", "sha384", "sha512")
# Request extensions understood here; others are ignored unless critical (RFC 6960 4.4).
_KNOWN_EXTENSIONS = {"nonce", "acceptable_responses", "preferred_signature_algorithms",
                     "service_locator"}

# (issuer key id, serial) -> state, or None when the certificate is not ours.
StatusLookup = Callable[[bytes, int], CertificateState | None]


class OcspResponseStatus(IntEnum):
    """The status of an OCSP response (RFC 6960)."""
    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6


def error_response(status: OcspResponseStatus) -> bytes:
    """An unsigned OCSPResponse carrying only a non-successful status."""
    return der.sequence(der.enumerated(int(status)))


class MalformedOcspRequest(InvalidInput):
    reason = "MALFORMED_OCSP_REQUEST"


@dataclass(frozen=True, slots=True)
class RequestedCertificate:
    cert_id_der: bytes  # echoed in the answer exactly as the client sent it
    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    certificates: tuple[RequestedCertificate, ...]
    nonce_extn_value: bytes | None  # the extnValue octets, echoed unchanged


def parse_request(data: bytes) -> ParsedRequest:
    """Parse a DER OCSPRequest; raises :class:`MalformedOcspRequest` for anything unusable."""
    try:
        request = asn1_ocsp.OCSPRequest.load(data, strict=True)
        tbs = request["tbs_request"]
        if tbs["version"].native != "v1":
            raise MalformedOcspRequest("unsupported OCSP request version")
        certificates = []
        for item in tbs["request_list"]:
            cid = item["req_cert"]
            single = item["single_request_extensions"]
            if not isinstance(single, core.Void):
                for ext in single:
                    if ext["critical"].native:
                        raise MalformedOcspRequest("unsupported critical single-request "
                                                   "extension")
            certificates.append(RequestedCertificate(
                cert_id_der=cid.dump(),
                hash_algorithm=cid["hash_algorithm"]["algorithm"].native,
                issuer_name_hash=cid["issuer_name_hash"].contents,
                issuer_key_hash=cid["issuer_key_hash"].contents,
                serial_number=cid["serial_number"].native,
            ))
        nonce: bytes | None = None
        extensions = tbs["request_extensions"]
        for ext in () if isinstance(extensions, core.Void) else extensions:
            name = ext["extn_id"].native
            if name == "nonce":
                value = bytes(ext["extn_value"].contents)
                inner = core.OctetString.load(value, strict=True).contents
                if not 1 <= len(inner) <= MAX_NONCE_OCTETS:
                    raise MalformedOcspRequest("the nonce must have 1 to 128 octets")
                nonce = value
            elif name not in _KNOWN_EXTENSIONS and ext["critical"].native:
                raise MalformedOcspRequest("unsupported critical request extension")
    except MalformedOcspRequest:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise MalformedOcspRequest("the OCSP request could not be parsed") from exc
    if not certificates:
        raise MalformedOcspRequest("the OCSP request names no certificate")
    if len(certificates) > MAX_CERTIFICATES_PER_REQUEST:
        raise MalformedOcspRequest(f"at most {MAX_CERTIFICATES_PER_REQUEST} certificates per "
                                   "request")
    return ParsedRequest(tuple(certificates), nonce)


def public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (what OCSP key hashes are computed over)."""
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return bytes(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:])


@dataclass(frozen=True)
class ResponderIdentity:
    """Who answers for ``issuer``: a delegated responder certificate issued by it (id-kp-OCSPSigning)
    and that certificate's key."""

    issuer: x509.Certificate
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    # Precomputed parts of every response.
    issuer_key_id: bytes = field(init=False)
    _match: frozenset[tuple[str, bytes, bytes]] = field(init=False)
    _responder_id: bytes = field(init=False)
    _signature_algorithm: bytes = field(init=False)
    _certs: bytes = field(init=False)

    def __post_init__(self) -> None:
        if self.key.public_key() != self.certificate.public_key():
            raise InvalidInput("the responder key does not match its certificate",
                               reason="KEY_MISMATCH")
        if self.certificate != self.issuer:
            try:
                self.certificate.verify_directly_issued_by(self.issuer)
            except (ValueError, TypeError, InvalidSignature):
                raise InvalidInput("the responder certificate is not issued by the CA it answers "
                                   "for", reason="RESPONDER_NOT_DELEGATED") from None
            try:
                eku = self.certificate.extensions.get_extension_for_class(
                    x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                eku = x509.ExtendedKeyUsage([])
            if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise InvalidInput("the responder certificate lacks id-kp-OCSPSigning",
                                   reason="RESPONDER_NOT_DELEGATED")
        issuer_bits = public_key_bits(self.issuer)
        name = self.issuer.subject.public_bytes()
        match = frozenset((h, hashlib.new(h, name).digest(), hashlib.new(h, issuer_bits).digest())
                          for h in _HASHES)
        object.__setattr__(self, "issuer_key_id", hashlib.sha1(issuer_bits).digest())
        object.__setattr__(self, "_match", match)
        responder_hash = hashlib.sha1(public_key_bits(self.certificate)).digest()
        object.__setattr__(self, "_responder_id", der.context(2, der.octet_string(responder_hash)))
        object.__setattr__(self, "_signature_algorithm", signature_algorithm_der(self.key))
        cert_der = self.certificate.public_bytes(serialization.Encoding.DER)
        object.__setattr__(self, "_certs", der.context(0, der.sequence(cert_der)))

    def serves(self, cert: RequestedCertificate) -> bool:
        return (cert.hash_algorithm, cert.issuer_name_hash, cert.issuer_key_hash) in self._match


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """A DER OCSPResponse and what a cache needs to know about it."""

    body: bytes
    status: OcspResponseStatus
    cacheable: bool = False
    keys: tuple[tuple[bytes, int], ...] = ()  # (issuer key id, serial) of every answered cert
    produced_at: dt.datetime | None = None
    next_update: dt.datetime | None = None
    cert_statuses: tuple[str, ...] = ()  # "good" / "revoked" / "unknown", for metrics and logs


_GOOD = b"\x80\x00"
_UNKNOWN = b"\x82\x00"


class OcspResponder:
    """Answers OCSP requests for the issuers of ``identities`` from ``lookup``."""

    def __init__(self, identities: Sequence[ResponderIdentity], lookup: StatusLookup, *,
                 validity: dt.timedelta = dt.timedelta(hours=4)) -> None:
        if validity <= dt.timedelta(0):
            raise InvalidInput("OCSP response validity must be positive", reason="INVALID_VALIDITY")
        self.identities = list(identities)
        self._lookup = lookup
        self._validity = validity

    def respond(self, data: bytes, now: dt.datetime) -> OcspAnswer:
        try:
            request = parse_request(data)
        except MalformedOcspRequest:
            return OcspAnswer(error_response(OcspResponseStatus.MALFORMED_REQUEST),
                              OcspResponseStatus.MALFORMED_REQUEST)
        return self.respond_parsed(request, now)

    def respond_parsed(self, request: ParsedRequest, now: dt.datetime) -> OcspAnswer:
        identity = next((i for i in self.identities for c in request.certificates
                         if i.serves(c)), None)
        if identity is None:
            return OcspAnswer(error_response(OcspResponseStatus.UNAUTHORIZED),
                              OcspResponseStatus.UNAUTHORIZED)
        now = now.replace(microsecond=0)
        produced = der.generalized_time(now)
        next_update = now + self._validity
        tail = produced + der.context(0, der.generalized_time(next_update))
        singles = []
        keys = []
        statuses = []
        for cert in request.certificates:
            state = (self._lookup(identity.issuer_key_id, cert.serial_number)
                     if identity.serves(cert) else None)
            if state is None:
                status, word = _UNKNOWN, "unknown"
            elif state.revocation is None:
                status, word = _GOOD, "good"
            else:
                entry = state.revocation
                info = der.generalized_time(entry.revoked_at)
                info += der.context(0, der.enumerated(entry.reason.code))
                status, word = der.context(1, info), "revoked"
            singles.append(der.sequence(cert.cert_id_der, status, tail))
            keys.append((identity.issuer_key_id, cert.serial_number))
            statuses.append(word)
        parts = [identity._responder_id, produced, der.sequence(*singles)]
        if request.nonce_extn_value is not None:
            nonce = der.sequence(_NONCE_OID, der.octet_string(request.nonce_extn_value))
            parts.append(der.context(1, der.sequence(nonce)))
        tbs = der.sequence(*parts)
        signature = sign_bytes(identity.key, tbs)
        basic = der.sequence(tbs, identity._signature_algorithm, der.bit_string(signature),
                             identity._certs)
        body = der.sequence(der.enumerated(0), der.context(0, der.sequence(
            _OCSP_BASIC, der.octet_string(basic))))
        return OcspAnswer(body, OcspResponseStatus.SUCCESSFUL,
                          cacheable=request.nonce_extn_value is None, keys=tuple(keys),
                          produced_at=now, next_update=next_update, cert_statuses=tuple(statuses))


@dataclass(slots=True)
class _Entry:
    answer: OcspAnswer
    refresh_at: dt.datetime


class ResponseCache:
    """Signed answers to nonce-free requests, keyed by the request's DER.

    An entry is used until ``refresh_fraction`` of its validity has passed (so a relying party never
    receives a response close to its nextUpdate), and dropped as soon as the status of one of its
    certificates changes (:meth:`invalidate`). :meth:`put` refuses an answer computed before the
    latest invalidation began, so a response built from the old status can never be stored after
    the change.
    """

    def __init__(self, *, max_entries: int = 100_000, refresh_fraction: float = 0.5) -> None:
        self._entries: dict[bytes, _Entry] = {}
        self._by_cert: dict[tuple[bytes, int], set[bytes]] = {}
        self._max = max_entries
        self._fraction = refresh_fraction
        self._lock = threading.Lock()
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def get(self, request: bytes, now: dt.datetime) -> OcspAnswer | None:
        entry = self._entries.get(request)
        if entry is None or now >= entry.refresh_at:
            self.misses += 1
            return None
        self.hits += 1
        return entry.answer

    def put(self, request: bytes, answer: OcspAnswer, epoch: int) -> bool:
        """Store ``answer`` if it is cacheable and no invalidation happened since ``epoch``."""
        if not answer.cacheable or answer.produced_at is None or answer.next_update is None:
            return False
        span = answer.next_update - answer.produced_at
        entry = _Entry(answer, answer.produced_at + span * self._fraction)
        with self._lock:
            if epoch != self.epoch:
                return False
            if request not in self._entries and len(self._entries) >= self._max:
                self._evict_oldest()
            self._entries[request] = entry
            for key in answer.keys:
                self._by_cert.setdefault(key, set()).add(request)
        return True

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._entries))
        entry = self._entries.pop(oldest)
        for key in entry.answer.keys:
            requests = self._by_cert.get(key)
            if requests is not None:
                requests.discard(oldest)
                if not requests:
                    del self._by_cert[key]

    def invalidate(self, key_id: bytes, serial: int) -> None:
        with self._lock:
            self.epoch += 1
            for request in self._by_cert.pop((key_id, serial), ()):
                self._entries.pop(request, None)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._entries.clear()
            self._by_cert.clear()

    def __len__(self) -> int:
        return len(self._entries)
