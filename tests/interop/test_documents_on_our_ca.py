"""The documents stack on this project's own certificate authority, end to end: an official's
certificate issued through the CA's gRPC API signs a decision at PAdES B-LTA with time stamps from
the CA's RFC 3161 service and revocation data from its OCSP responder and CRLs; pdfsig and
pyHanko's validator accept the result, and it still validates offline after the official's
certificate is revoked (the embedded evidence predates the revocation)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from server.documents.transport import HttpTimeStampTransport
from signing.sign.pades import PadesLevel, PadesOptions, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, validate_pdf
from tests.server.ca.conftest import CaServer, issue
from tests.server.ca.test_interop import live  # noqa: F401 - the fixture: a CA with URLs on every
from tests.signing.ca.hierarchy import Hierarchy  # certificate, root included
from tests.signing.sign.pdfs import decision_pdf
from tests.support.pki import pem
from vnegov.signing.v1 import certificate_authority_pb2 as pb

PYHANKO = str(Path(sys.executable).parent / "pyhanko")


async def test_pades_b_lta_on_our_ca(live: tuple[CaServer, Hierarchy],  # noqa: F811
                                     tmp_path: Path) -> None:
    ca, hierarchy = live
    stub = ca.stub()
    request, key = await issue(ca)
    issued = await stub.GetCertificate(pb.GetCertificateRequest(name=request.result_certificate))
    certificate = x509.load_der_x509_certificate(issued.der)
    issuers = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    root = hierarchy.root
    signer = KeySigner(key, certificate, issuers)
    tsa = HttpTimeStampTransport(f"{ca.http}/pki/tsa")
    trust = TrustSettings([root], allow_fetching=True, require_revocation=True)

    signed = tmp_path / "decision-signed.pdf"
    try:
        with signed.open("w+b") as out:  # the signer calls the server running on this loop
            await asyncio.to_thread(sign_pdf, io.BytesIO(decision_pdf()), out, signer,
                                    at=dt.datetime.now(dt.UTC),
                                    options=PadesOptions(level=PadesLevel.B_LTA),
                                    timestamps=tsa, trust=trust)
    finally:
        tsa.close()

    offline = TrustSettings([root], allow_fetching=False, require_revocation=True)
    with signed.open("rb") as f:
        report = await asyncio.to_thread(validate_pdf, f, trust=offline,
                                         at=dt.datetime.now(dt.UTC))
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    assert report.signatures[0].format == "PAdES-B-LTA"

    (tmp_path / "root.pem").write_bytes(pem(root))
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    summary = await asyncio.to_thread(subprocess.run, [
        PYHANKO, "sign", "adesverify", "--validation-time", at, "--trust",
        str(tmp_path / "root.pem"), "--trust-replace", "--executive-summary", str(signed)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert summary.stdout.strip().endswith(":VALID"), summary.stdout + summary.stderr

    nss = tmp_path / "nssdb"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "root", "-t", "CT,C,C", "-a",
                    "-i", str(tmp_path / "root.pem")], check=True)
    checked = await asyncio.to_thread(subprocess.run, ["pdfsig", "-nssdir", f"sql:{nss}",
                                                       str(signed)], capture_output=True,
                                      text=True, timeout=120)
    first = checked.stdout.split("Signature #2:")[0]
    assert "Signature is Valid." in first and "Certificate is Trusted." in first, checked.stdout

    # Revoking the official's certificate later does not undo a signature whose time stamp and
    # revocation evidence predate it.
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=request.result_certificate, reason=pb.RevocationReason.AFFILIATION_CHANGED))
    with signed.open("rb") as f:
        later = await asyncio.to_thread(validate_pdf, f, trust=offline,
                                        at=dt.datetime.now(dt.UTC))
    assert later.indication is Indication.TOTAL_PASSED, later.to_text()
