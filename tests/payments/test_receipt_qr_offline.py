"""A printed receipt's QR, photographed (scaled, rotated a little, blurred, unevenly lit), verified
offline: by ``vnegov receipts verify --qr`` and by the static page in headless Chromium (Debian's)
with networking disabled. Tampered fields and another body's seal fail in both."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from payments.receipts import build_receipt_xml, sign_document
from payments.receipts.pdf import Fonts, render_receipt_pdf
from payments.receipts.qr_jws import QrSeal, qr_text
from payments.receipts.qr_page import verifier_page
from signing.sign.xmldsig import XmlDsigSigner
from tests.payments.receipt_qr_support import QrPki, printed_receipt_photo
from tests.payments.support import HCM, WARD
from tests.payments.test_receipts_xmlsec import RECEIPT
from tests.support.pki import pem

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FONTS = Path("/usr/share/fonts/truetype/dejavu")
PAGE_URL = "https://dvc.example.vn/payments/receipts/check"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qpki() -> QrPki:
    return QrPki.create()


def printed(seal: QrSeal, qpki: QrPki, directory: Path) -> tuple[Path, bytes, str]:
    """(photo of the printed receipt, its signed XML, its QR token)."""
    signer = XmlDsigSigner(seal.key, [seal.certificate, qpki.issuing.cert])
    xml = sign_document(signer, build_receipt_xml(RECEIPT), signing_time=RECEIPT.issued_at)
    token = seal.sign_receipt(RECEIPT, xml)
    fonts = Fonts((FONTS / "DejaVuSans.ttf").read_bytes(),
                  (FONTS / "DejaVuSans-Bold.ttf").read_bytes())
    pdf = render_receipt_pdf(RECEIPT, xml, fonts=fonts, verify_url=PAGE_URL, qr_token=token)
    directory.mkdir(parents=True, exist_ok=True)
    return printed_receipt_photo(pdf, directory), xml, token


def tampered(token: str, **change: object) -> str:
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(change)
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{head}.{base64.urlsafe_b64encode(data).rstrip(b'=').decode()}.{sig}"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "receipts", "verify", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_cli_verifies_a_photo_of_a_printed_receipt(qpki: QrPki, tmp_path: Path, kind: str) -> None:
    seal = qpki.seal(kind=kind)
    photo, xml, _ = printed(seal, qpki, tmp_path)
    (tmp_path / "root.pem").write_bytes(pem(qpki.root.cert))
    (tmp_path / "seals.pem").write_bytes(pem(*qpki.bundle(seal)))
    (tmp_path / "receipt.xml").write_bytes(xml)
    trust = ["--root", str(tmp_path / "root.pem"), "--certs", str(tmp_path / "seals.pem")]
    done = cli("--qr", str(photo), *trust, "--xml", str(tmp_path / "receipt.xml"))
    assert done.returncode == 0, done.stderr
    assert "VALID" in done.stdout and "EBL01-25T-0000001" in done.stdout
    assert "100.000" in done.stdout and HCM in done.stdout
    assert ("ES256" if kind == "ec" else "PS256") in done.stdout
    # Another document than the one the QR names
    (tmp_path / "other.xml").write_bytes(xml.replace(b"100000", b"900000"))
    done = cli("--qr", str(photo), *trust, "--xml", str(tmp_path / "other.xml"))
    assert done.returncode == 1 and "XML" in done.stderr
    # Trusting another root only
    (tmp_path / "foreign.pem").write_bytes(pem(qpki.foreign_root.cert))
    done = cli("--qr", str(photo), "--root", str(tmp_path / "foreign.pem"), "--certs",
               str(tmp_path / "seals.pem"))
    assert done.returncode == 1 and "SEAL_NOT_TRUSTED" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_refuses_a_picture_without_a_qr(qpki: QrPki, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")
    (tmp_path / "root.pem").write_bytes(pem(qpki.root.cert))
    done = cli("--qr", str(tmp_path / "blank.png"), "--root", str(tmp_path / "root.pem"))
    assert done.returncode == 1 and "no QR code" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def offline_page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required (scripts/dev.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(locale="vi-VN", offline=True)
        requests: list[str] = []

        def refuse(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            if not url.startswith("file://"):
                requests.append(url)
                route.abort()  # type: ignore[attr-defined]
            else:
                route.continue_()  # type: ignore[attr-defined]
        context.route("**/*", refuse)
        page = context.new_page()
        yield page
        assert requests == []  # the page asked the network for nothing
        context.close()
        browser.close()


def outcome(page: Page) -> str:
    page.wait_for_function(
        "document.getElementById('result').getAttribute('data-status') !== 'none'",
        timeout=30000)
    return str(page.get_attribute("#result", "data-status"))


def test_browser_page_verifies_the_photo_offline(qpki: QrPki, tmp_path: Path,
                                                 offline_page: Page) -> None:
    hcm, ward, rsa_seal = qpki.seal(HCM), qpki.seal(WARD), qpki.seal(HCM, kind="rsa")
    photo, xml, token = printed(hcm, qpki, tmp_path / "ec")
    page_file = tmp_path / "verify.html"
    page_file.write_bytes(verifier_page([qpki.root.cert], qpki.bundle(hcm, ward, rsa_seal)))
    page = offline_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    page.set_input_files("#photo", str(photo))
    assert outcome(page) == "valid", page.text_content("#result")
    assert page.text_content("#f-label") == "EBL01 – 25T – 0000001"
    assert page.text_content("#f-total") == "100.000 đồng"
    assert page.text_content("#f-agency") == HCM
    assert page.text_content("#f-tax") == "0301234567"
    assert page.text_content("#f-alg") == "ES256"
    import hashlib
    assert page.text_content("#f-sha256") == hashlib.sha256(xml).hexdigest()
    assert "Root CA" in (page.text_content("#f-chain") or "")

    def check(text: str) -> tuple[str, str]:
        page.evaluate("document.getElementById('result').setAttribute('data-status', 'none')")
        page.fill("#text", text)
        page.click("#check")
        return outcome(page), str(page.text_content("#result"))

    for change in ({"t": 1000000}, {"n": "0000002"}, {"b": WARD}, {"m": "0309876543"},
                   {"h": "A" * 43}, {"d": "2025-08-02T09:00:00"}):
        status, text = check(qr_text(tampered(token, **change), PAGE_URL))
        assert status == "invalid" and "BAD_SIGNATURE" in text, change
    # The ward's valid seal from the same CA over a receipt naming the city's body
    status, text = check(qr_text(ward.sign_receipt(RECEIPT, xml), PAGE_URL))
    assert status == "invalid" and "SEAL_OF_ANOTHER_BODY" in text
    # A seal chaining to a root the page does not trust
    foreign = qpki.seal(HCM, issuer=qpki.foreign_root)
    page_file.write_bytes(verifier_page([qpki.root.cert], [*qpki.bundle(hcm),
                                                           foreign.certificate,
                                                           qpki.foreign_root.cert]))
    page.goto(page_file.as_uri())
    status, text = check(foreign.sign_receipt(RECEIPT, xml))
    assert status == "invalid" and "SEAL_NOT_TRUSTED" in text
    # An RSA seal (PS256), and the token in the URL's fragment as a phone camera opens it
    rsa_page = tmp_path / "verify-rsa.html"
    rsa_page.write_bytes(verifier_page([qpki.root.cert], qpki.bundle(hcm, rsa_seal)))
    page.goto(rsa_page.as_uri() + "#" + rsa_seal.sign_receipt(RECEIPT, xml))
    assert outcome(page) == "valid", page.text_content("#result")
    assert page.text_content("#f-alg") == "PS256"
    assert errors == []
