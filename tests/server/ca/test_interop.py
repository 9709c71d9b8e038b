"""Tools nobody here wrote, against the running server: openssl verify with the CRLs it serves,
openssl ocsp against its responder, openssl ts against its TSA, and pyHanko's certificate
validator fetching revocation from the live OCSP and CRL endpoints."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from server.storage.db import Database
from signing.ca import default_profiles, new_validity
from tests.server.ca.conftest import (
    CaServer,
    CaServerFactory,
    database_url,
    issue,
)
from tests.signing.ca.hierarchy import SUBJECTS, Hierarchy, make_hierarchy, pem
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.signing.v1 import certificate_authority_pb2 as pb


@pytest.fixture
async def live(pki: TestPki, tmp_path: Path, sqlite_db: Database
               ) -> AsyncIterator[tuple[CaServer, Hierarchy]]:
    """A server whose CA is a hierarchy with CRL distribution points on every certificate."""
    factory = CaServerFactory(pki, tmp_path, database_url(sqlite_db))
    from tests.support.server import free_port

    port = free_port()
    hierarchy = make_hierarchy(base_url=f"http://127.0.0.1:{port}")
    port, extra = factory.config(hierarchy, port=port)
    async with running_server(pki, tmp_path, database_url(sqlite_db), http_port=port,
                              extra=extra) as srv:
        hierarchy.write(tmp_path / "trust")
        yield CaServer(srv, pki, tmp_path), hierarchy


async def _issued(ca: CaServer, **kwargs: object) -> tuple[x509.Certificate, str]:
    req, _ = await issue(ca, **kwargs)  # type: ignore[arg-type]
    msg = await ca.stub().GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
    return x509.load_der_x509_certificate(msg.der), req.result_certificate


async def _fetch_crls(ca: CaServer, directory: Path) -> Path:
    async with httpx.AsyncClient() as client:
        parts = []
        for name in ("root-ca", "issuing-ca"):
            r = await client.get(f"{ca.http}/pki/crl/{name}.crl")
            assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-crl"
            parts.append(x509.load_der_x509_crl(r.content).public_bytes(
                serialization.Encoding.PEM))
    path = directory / "crls.pem"
    path.write_bytes(b"".join(parts))
    return path


def _openssl_verify(h: Hierarchy, crls: Path, leaf: Path) -> str:
    trust = h.files
    done = subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check_all", "-CAfile",
                           trust["root"], "-untrusted", trust["issuing"], "-CRLfile", crls, leaf],
                          capture_output=True, text=True)
    return done.stdout + done.stderr


async def test_openssl_verify_with_served_crls(live: tuple[CaServer, Hierarchy],
                                               tmp_path: Path) -> None:
    ca, h = live
    cert, name = await _issued(ca)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem(cert))
    assert f"{leaf}: OK" in _openssl_verify(h, await _fetch_crls(ca, tmp_path), leaf)
    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=name, reason=pb.RevocationReason.KEY_COMPROMISE))
    out = _openssl_verify(h, await _fetch_crls(ca, tmp_path), leaf)
    assert "error 23 at 0 depth lookup: certificate revoked" in out, out


async def test_openssl_ocsp_against_the_running_responder(live: tuple[CaServer, Hierarchy],
                                                          tmp_path: Path) -> None:
    ca, h = live
    good, _ = await _issued(ca)
    revoked, revoked_name = await _issued(ca, profile="organisation", subject={
        "agency_name": "Sở Tư pháp", "parent_body": "UBND Thành phố Hồ Chí Minh",
        "agency_code": "000.00.12.H29", "province_code": "79"}, managing_body="000.00.00.H29")
    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=revoked_name, reason=pb.RevocationReason.AFFILIATION_CHANGED))
    # Signed by the CA's key but never recorded: the responder does not know it.
    profile = default_profiles().get("device")
    stranger = h.authority.issue(
        profile, SUBJECTS["device"], ec.generate_private_key(ec.SECP256R1()).public_key(),
        new_validity(profile, now=h.now, days=None,
                     issuer_not_after=h.issuing.not_valid_after_utc))
    for label, cert in (("good", good), ("revoked", revoked), ("unknown", stranger)):
        (tmp_path / f"{label}.pem").write_bytes(pem(cert))

    async def ocsp(*labels: str) -> tuple[str, Path, Path]:
        req, resp = tmp_path / "req.der", tmp_path / "resp.der"
        args = [a for label in labels for a in ("-cert", str(tmp_path / f"{label}.pem"))]
        # In a thread: the server answering runs on this test's event loop.
        done = await asyncio.to_thread(
            subprocess.run, ["openssl", "ocsp", "-issuer", h.files["issuing"], *args,
                             "-url", f"{ca.http}/pki/ocsp", "-CAfile", h.files["chain"],
                             "-reqout", req, "-respout", resp],
            capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr, req, resp

    out, req, resp = await ocsp("good")
    assert "Response verify OK" in out and f"{tmp_path}/good.pem: good" in out, out
    assert "WARNING" not in out  # e.g. "no nonce in response"
    request_nonce = asn1_ocsp.OCSPRequest.load(req.read_bytes())["tbs_request"][
        "request_extensions"][0]["extn_value"].native
    basic = asn1_ocsp.OCSPResponse.load(resp.read_bytes()).basic_ocsp_response
    response_nonce = basic["tbs_response_data"]["response_extensions"][0]["extn_value"].native
    assert response_nonce == request_nonce and len(request_nonce) >= 16

    out, _, _ = await ocsp("revoked")
    assert "Response verify OK" in out and f"{tmp_path}/revoked.pem: revoked" in out, out
    assert "Reason: affiliationChanged" in out and "Revocation Time:" in out

    out, _, _ = await ocsp("unknown")
    assert "Response verify OK" in out and f"{tmp_path}/unknown.pem: unknown" in out, out

    # Two certificates in one request (cryptography's parser refuses these): both answered.
    out, req, _ = await ocsp("good", "revoked")
    assert len(asn1_ocsp.OCSPRequest.load(req.read_bytes())["tbs_request"]["request_list"]) == 2
    assert "Response verify OK" in out
    assert f"{tmp_path}/good.pem: good" in out and f"{tmp_path}/revoked.pem: revoked" in out


async def test_openssl_ts_verifies_tokens_from_the_running_tsa(
        live: tuple[CaServer, Hierarchy], tmp_path: Path) -> None:
    ca, h = live
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.7 Quyet dinh so 1/QD-UBND")
    subprocess.run(["openssl", "ts", "-query", "-data", tmp_path / "doc.pdf", "-sha256",
                    "-cert", "-out", tmp_path / "q.tsq"], check=True, capture_output=True)
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{ca.http}/pki/tsa", content=(tmp_path / "q.tsq").read_bytes(),
                              headers={"content-type": "application/timestamp-query"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/timestamp-reply"
    (tmp_path / "r.tsr").write_bytes(r.content)
    ok = subprocess.run(["openssl", "ts", "-verify", "-in", tmp_path / "r.tsr", "-queryfile",
                         tmp_path / "q.tsq", "-CAfile", h.files["root"]],
                        capture_output=True, text=True)
    assert "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "other.pdf").write_bytes(b"%PDF-1.7 Quyet dinh so 2/QD-UBND")
    bad = subprocess.run(["openssl", "ts", "-verify", "-in", tmp_path / "r.tsr", "-data",
                          tmp_path / "other.pdf", "-CAfile", h.files["root"]],
                         capture_output=True, text=True)
    assert "Verification: FAILED" in bad.stdout


async def test_pyhanko_certvalidator_fetches_live_ocsp_and_crls(
        live: tuple[CaServer, Hierarchy]) -> None:
    ca, h = live
    cert, name = await _issued(ca)

    def load(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    async def validate() -> ValidationContext:
        context = ValidationContext(trust_roots=[load(h.root)], allow_fetching=True,
                                    revocation_mode="require")
        validator = CertificateValidator(load(cert), intermediate_certs=[load(h.issuing)],
                                         validation_context=context)
        try:
            await validator.async_validate_usage({"digital_signature", "non_repudiation"})
        finally:
            await context.aclose()  # the fetchers' HTTP sessions
        return context

    context = await validate()
    # Revocation data came from this server: an OCSP response for the leaf, CRLs for the CA.
    assert context.ocsps and context.crls
    served = {c["tbs_cert_list"]["issuer"].human_friendly for c in context.crls}
    assert any("Issuing CA" in s for s in served) or any("Root CA" in s for s in served)
    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=name, reason=pb.RevocationReason.KEY_COMPROMISE))
    with pytest.raises(RevokedError):
        await validate()


async def test_pyhanko_certvalidator_with_crls_alone_uses_our_delta_crls(
        live: tuple[CaServer, Hierarchy]) -> None:
    """A relying party that checks CRLs only: full CRLs point at delta CRLs (freshestCRL), and
    pyhanko-certvalidator fetches deltas from the certificate's own freshestCRL extension, so the
    certificates must name them too or validation stops at "Delta CRL ... not available"."""
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )

    ca, h = live
    cert, name = await _issued(ca)
    assert cert.extensions.get_extension_for_class(x509.FreshestCRL)

    def load(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    crl_only = CertRevTrustPolicy(RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED))

    async def validate() -> ValidationContext:
        context = ValidationContext(trust_roots=[load(h.root)], allow_fetching=True,
                                    revinfo_policy=crl_only)
        validator = CertificateValidator(load(cert), intermediate_certs=[load(h.issuing)],
                                         validation_context=context)
        try:
            await validator.async_validate_usage({"digital_signature"})
        finally:
            await context.aclose()
        return context

    context = await validate()
    assert not context.ocsps and context.crls
    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=name, reason=pb.RevocationReason.KEY_COMPROMISE))
    with pytest.raises(RevokedError):
        await validate()


async def test_openssl_sees_a_held_renewal_suspend_the_certificate_it_renewed(
        live: tuple[CaServer, Hierarchy], tmp_path: Path) -> None:
    """The renewed-from certificate (same key, same subject) is held with its renewal: openssl's
    OCSP client and its CRL check both refuse it, and accept it again once the hold is released."""
    ca, h = live
    stub = ca.stub()
    old, first = await _issued(ca, validity_days=365)
    renewal = await stub.RenewCertificate(pb.RenewCertificateRequest(name=first,
                                                                     extension_days=30))
    assert renewal.state == pb.CertificateRequest.COMPLETED, renewal.rejection_message
    leaf = tmp_path / "renewed.pem"
    leaf.write_bytes(pem(old))

    async def ocsp() -> str:
        done = await asyncio.to_thread(
            subprocess.run, ["openssl", "ocsp", "-issuer", h.files["issuing"], "-cert", leaf,
                             "-url", f"{ca.http}/pki/ocsp", "-CAfile", h.files["chain"]],
            capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr

    assert f"{leaf}: good" in await ocsp()
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=renewal.result_certificate, reason=pb.RevocationReason.CERTIFICATE_HOLD))
    out = await ocsp()
    assert "Response verify OK" in out and f"{leaf}: revoked" in out, out
    assert "Reason: certificateHold" in out
    out = _openssl_verify(h, await _fetch_crls(ca, tmp_path), leaf)
    assert "certificate revoked" in out, out

    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(
        name=renewal.result_certificate))
    out = await ocsp()
    assert "Response verify OK" in out and f"{leaf}: good" in out, out
    assert f"{leaf}: OK" in _openssl_verify(h, await _fetch_crls(ca, tmp_path), leaf)
