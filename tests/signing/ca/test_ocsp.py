"""The OCSP responder (RFC 6960) at the library level: openssl verifies what it signs, several
certificates per request, nonces, malformed input, and the cache's invalidation."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from signing.ca import (
    OcspResponder,
    OcspResponseStatus,
    ResponderIdentity,
    ResponseCache,
    RevocationEntry,
    RevocationReason,
    StatusIndex,
)
from signing.ca.ocsp import parse_request
from tests.signing.ca.hierarchy import Hierarchy, make_hierarchy, pem


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


def _setup(h: Hierarchy) -> tuple[StatusIndex, OcspResponder]:
    index = StatusIndex()
    index.add_issuer(h.authority.key_id, h.issuing.subject)
    responder = OcspResponder([ResponderIdentity(h.issuing, h.ocsp, h.ocsp_key)], index.lookup)
    return index, responder


def _request(h: Hierarchy, *certs: x509.Certificate, nonce: bytes | None = None,
             algorithm: hashes.HashAlgorithm | None = None,
             issuer: x509.Certificate | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certs[0], issuer or h.issuing,
                                                        algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    from cryptography.hazmat.primitives import serialization
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_good_revoked_unknown_and_hold_through_openssl(h: Hierarchy, tmp_path: Path) -> None:
    index, responder = _setup(h)
    good, _ = h.issue("individual")
    revoked, _ = h.issue("organisation")
    held, _ = h.issue("device")
    other = make_hierarchy()  # another CA with the same name but another key
    stranger, _ = other.issue("device")
    unknown, _ = h.issue("device")
    index.set_good(h.authority.key_id, good.serial_number)
    index.set_revoked(h.authority.key_id, RevocationEntry(
        revoked.serial_number, h.now, RevocationReason.KEY_COMPROMISE))
    index.set_revoked(h.authority.key_id, RevocationEntry(
        held.serial_number, h.now, RevocationReason.CERTIFICATE_HOLD))
    h.write(tmp_path)
    for name, cert in (("good", good), ("revoked", revoked), ("held", held),
                       ("unknown", unknown)):
        (tmp_path / f"{name}.pem").write_bytes(pem(cert))
    subprocess.run(["openssl", "ocsp", "-issuer", tmp_path / "issuing.pem",
                    *[a for n in ("good", "revoked", "held", "unknown")
                      for a in ("-cert", str(tmp_path / f"{n}.pem"))],
                    "-reqout", tmp_path / "req.der"], check=True, capture_output=True)
    answer = responder.respond((tmp_path / "req.der").read_bytes(), h.now)
    assert answer.status is OcspResponseStatus.SUCCESSFUL
    assert answer.cert_statuses == ("good", "revoked", "revoked", "unknown")
    assert not answer.cacheable  # openssl sends a nonce
    (tmp_path / "resp.der").write_bytes(answer.body)
    done = subprocess.run(["openssl", "ocsp", "-respin", tmp_path / "resp.der", "-reqin",
                           tmp_path / "req.der", "-issuer", tmp_path / "issuing.pem", "-CAfile",
                           tmp_path / "chain.pem", "-resp_text"], capture_output=True, text=True)
    out = done.stdout + done.stderr
    assert "Response verify OK" in out, out
    assert "Revocation Reason: keyCompromise (0x1)" in out
    assert "Revocation Reason: certificateHold (0x6)" in out
    assert out.count("Cert Status: good") == 1 and out.count("Cert Status: unknown") == 1
    # A certificate of another CA: the responder does not serve it.
    assert responder.respond(_request(h, stranger, issuer=other.issuing), h.now).status is \
        OcspResponseStatus.UNAUTHORIZED


def test_response_echoes_nonce_and_certid(h: Hierarchy) -> None:
    index, responder = _setup(h)
    cert, _ = h.issue("device")
    index.set_good(h.authority.key_id, cert.serial_number)
    for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        request = _request(h, cert, nonce=b"\x01" * 32, algorithm=algorithm)
        parsed = ocsp.load_der_ocsp_response(responder.respond(request, h.now).body)
        assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert parsed.serial_number == cert.serial_number
        assert parsed.hash_algorithm.name == algorithm.name
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == \
            b"\x01" * 32
        assert parsed.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
            h.ocsp.public_key()).digest
        assert parsed.certificates == [h.ocsp]
        h.ocsp.public_key().verify(  # type: ignore[union-attr, call-arg]
            parsed.signature, parsed.tbs_response_bytes,
            __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ECDSA"]).ECDSA(
                hashes.SHA256()))
        assert parsed.next_update_utc - parsed.this_update_utc == dt.timedelta(hours=4)


@pytest.mark.parametrize("data", [
    b"", b"\x30\x00", b"not der at all", b"\x30\x03\x0a\x01\x00",
])
def test_garbage_gets_malformed_request(h: Hierarchy, data: bytes) -> None:
    _, responder = _setup(h)
    answer = responder.respond(data, h.now)
    assert answer.status is OcspResponseStatus.MALFORMED_REQUEST
    assert ocsp.load_der_ocsp_response(answer.body).response_status == \
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _with_nonce(h: Hierarchy, cert: x509.Certificate, nonce_value: bytes) -> bytes:
    req = asn1_ocsp.OCSPRequest.load(_request(h, cert))
    req["tbs_request"]["request_extensions"] = [{
        "extn_id": "nonce", "critical": False, "extn_value": nonce_value}]
    return bytes(req.dump(force=True))


def test_nonce_length_limits_of_rfc_9654(h: Hierarchy) -> None:
    _, responder = _setup(h)
    cert, _ = h.issue("device")
    assert responder.respond(_with_nonce(h, cert, b""), h.now).status is \
        OcspResponseStatus.MALFORMED_REQUEST
    assert responder.respond(_with_nonce(h, cert, b"x" * 129), h.now).status is \
        OcspResponseStatus.MALFORMED_REQUEST
    assert responder.respond(_with_nonce(h, cert, b"x" * 128), h.now).status is \
        OcspResponseStatus.SUCCESSFUL


def test_unknown_critical_extension_is_malformed_and_too_many_certificates_too(h: Hierarchy
                                                                               ) -> None:
    _, responder = _setup(h)
    cert, _ = h.issue("device")
    req = asn1_ocsp.OCSPRequest.load(_request(h, cert))
    req["tbs_request"]["request_extensions"] = [{
        "extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}]
    assert responder.respond(req.dump(force=True), h.now).status is \
        OcspResponseStatus.MALFORMED_REQUEST
    many = asn1_ocsp.OCSPRequest.load(_request(h, cert))
    one = many["tbs_request"]["request_list"][0]
    many["tbs_request"]["request_list"] = [one] * 21
    assert responder.respond(many.dump(force=True), h.now).status is \
        OcspResponseStatus.MALFORMED_REQUEST
    parsed = parse_request(_request(h, cert))
    assert parsed.certificates[0].serial_number == cert.serial_number


def test_cache_serves_until_the_status_changes(h: Hierarchy) -> None:
    index, responder = _setup(h)
    cache = ResponseCache()
    index.on_change(cache.invalidate)
    cert, _ = h.issue("individual")
    index.set_good(h.authority.key_id, cert.serial_number)
    request = _request(h, cert)
    assert cache.get(request, h.now) is None
    epoch = cache.epoch
    answer = responder.respond(request, h.now)
    assert answer.cacheable and cache.put(request, answer, epoch)
    assert cache.get(request, h.now + dt.timedelta(minutes=5)) == answer
    # Past half the validity the entry is refreshed.
    assert cache.get(request, h.now + dt.timedelta(hours=2)) is None
    # A revocation drops the entry at once ...
    index.set_revoked(h.authority.key_id, RevocationEntry(
        cert.serial_number, h.now, RevocationReason.KEY_COMPROMISE))
    assert cache.get(request, h.now) is None
    # ... and an answer computed before the revocation can no longer be stored.
    assert not cache.put(request, answer, epoch)
    fresh = responder.respond(request, h.now)
    assert fresh.cert_statuses == ("revoked",)
    assert cache.put(request, fresh, cache.epoch)


def test_cache_is_bounded(h: Hierarchy) -> None:
    index, responder = _setup(h)
    cache = ResponseCache(max_entries=3)
    certs = [h.issue("device")[0] for _ in range(5)]
    for c in certs:
        index.set_good(h.authority.key_id, c.serial_number)
        req = _request(h, c)
        assert cache.put(req, responder.respond(req, h.now), cache.epoch)
    assert len(cache) == 3
    assert cache.get(_request(h, certs[0]), h.now) is None
    assert cache.get(_request(h, certs[4]), h.now) is not None


def test_responder_must_be_delegated_by_the_issuer(h: Hierarchy) -> None:
    other = make_hierarchy()
    with pytest.raises(Exception, match="not issued by the CA"):
        ResponderIdentity(h.issuing, other.ocsp, other.ocsp_key)
    device, key = h.issue("device")
    with pytest.raises(Exception, match="OCSPSigning"):
        ResponderIdentity(h.issuing, device, key)
