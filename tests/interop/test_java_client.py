"""A provincial system in Java (grpc-java and protobuf-java from Debian, stubs generated from the
buf module in proto/, built without Maven by clients/java/build.sh) authenticates with mutual TLS,
introspects a citizen's access token, creates a payment, has the agency's seal sign a PDF and
verifies it."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from reportlab.pdfgen import canvas

from server.storage.db import Database
from tests.payments.support import HCM, signers
from tests.server.identity.harness import Browser, IdentityServer, callback_params
from tests.server.identity.raw import RawClient
from tests.server.payments.test_server import payments_section
from tests.support.pki import TestPki, pem

ROOT = Path(__file__).resolve().parents[2]
JAVA = ROOT / "clients" / "java"
CALLERS = [{"agency_code": HCM, "name": "dvc-hcm", "provinces": ["79"],
            "scopes": ["identity.read", "payments.collect", "documents.sign", "documents.verify"]}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classpath() -> str:
    for tool in ("javac", "protoc", "grpc_java_plugin"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required (scripts/dev.sh installs the Debian packages)")
    done = subprocess.run([str(JAVA / "build.sh")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return (JAVA / "build" / "classpath").read_text().strip()


def pdf() -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out)
    page.drawString(72, 720, "QUYET DINH phe duyet ho so H29-JAVA")
    page.save()
    return out.getvalue()


def sections(pki: TestPki, directory: Path) -> dict[str, object]:
    seal = signers(pki).issued[HCM]
    (directory / "seal.pem").write_bytes(pem(seal.cert, pki.issuing.cert))
    (directory / "seal.key").write_bytes(seal.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "root.pem").write_bytes(pem(pki.root.cert))
    return {"payments": payments_section(pki, directory),
            "documents": {"trust_roots": [str(directory / "root.pem")],
                          "signers": [{"name": "ubnd-hcm", "agency_code": HCM,
                                       "certificate_file": str(directory / "seal.pem"),
                                       "key_file": str(directory / "seal.key")}]}}


def test_java_client_over_mutual_tls(classpath: str, pki: TestPki, tmp_path: Path,
                                     sqlite_db: Database) -> None:
    with IdentityServer(pki, tmp_path, sqlite_db.url.render_as_string(False), callers=CALLERS,
                        sections=sections(pki, tmp_path)) as idp:
        citizen = idp.citizen("079084000777", totp=False, level2=False)
        portal, browser = RawClient(idp, "dvc-hcm"), Browser(idp.issuer)
        try:
            browser.go(portal.authorize_url(portal.par().json()["request_uri"]))
            token = portal.redeem(callback_params(browser.login(citizen))["code"]).json()[
                "access_token"]
        finally:
            browser.close()
            portal.close()
        (tmp_path / "client.pem").write_bytes(pki.hcm.chain_pem)
        (tmp_path / "client.key").write_bytes(pki.hcm.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (tmp_path / "decision.pdf").write_bytes(pdf())
        done = subprocess.run(
            ["java", "-cp", classpath, "vn.vnegov.examples.ProvincialClient", idp.grpc_target,
             str(tmp_path / "root.pem"), str(tmp_path / "client.pem"), str(tmp_path / "client.key"),
             token, str(tmp_path / "decision.pdf"), "ubnd-hcm"],
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        out = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        assert out["token.active"] == "true"
        assert out["token.subject"] and out["token.subject"] != citizen.identifier  # pairwise
        assert out["payment.name"].startswith("payments/")
        assert out["payment.amount_due"] == "220000" and out["payment.state"] == "awaiting_payment"
        assert int(out["signed.size"]) > len(pdf())
        # The signature is intact and by the seal; the test PKI publishes no revocation data, so
        # the validation (EN 319 102-1) cannot conclude better than INDETERMINATE.
        assert out["verify.signatures"] == "1"
        assert out["verify.signer"] == "Ủy ban nhân dân Thành phố Hồ Chí Minh"
        assert out["verify.indication"] == "INDETERMINATE", done.stdout
        assert out["verify.sub_indication"], done.stdout

        # The same client without the right certificate is refused, and says so in one line.
        (tmp_path / "other.pem").write_bytes(pki.hanoi.chain_pem)
        (tmp_path / "other.key").write_bytes(pki.hanoi.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        refused = subprocess.run(
            ["java", "-cp", classpath, "vn.vnegov.examples.ProvincialClient", idp.grpc_target,
             str(tmp_path / "root.pem"), str(tmp_path / "other.pem"), str(tmp_path / "other.key"),
             token, str(tmp_path / "decision.pdf"), "ubnd-hcm"],
            capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error=PERMISSION_DENIED"), refused.stderr
