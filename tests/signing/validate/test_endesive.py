"""endesive 3.0.1 as an independent party (docs/decisions/endesive.md): its CMS signer (which
imports) produces detached signatures our validator and OpenSSL must accept; its verifier does
not import on this platform's OpenSSL, which is checked so that the decision is revisited when it
does."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from endesive import signer as endesive_signer

from signing.sign.revocation import TrustSettings
from signing.validate import Indication, validate_cms
from tests.signing.sign.docpki import DocumentPki

CONTENT = "Biên bản họp Hội đồng nhân dân".encode() * 500


def endesive_detached(pki: DocumentPki, label: str) -> bytes:
    cred = pki.credential(label)
    signed = endesive_signer.sign(CONTENT, cred.key, cred.cert, [pki.interm], "sha256",
                                  attrs=True)
    return bytes(signed)


def test_endesive_rsa_signature_passes_our_validator_and_openssl(
        doc_pki: DocumentPki, trust: TrustSettings, tmp_path: Path) -> None:
    p7s = endesive_detached(doc_pki, "official")  # an RSA key
    report = validate_cms(p7s, io.BytesIO(CONTENT), trust=trust, at=dt.datetime.now(dt.UTC))
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    assert report.signatures[0].signer is not None
    assert report.signatures[0].signer.name == "Nguyễn Văn An"
    (tmp_path / "s.p7s").write_bytes(p7s)
    (tmp_path / "c.bin").write_bytes(CONTENT)
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(tmp_path / "s.p7s"), "-content", str(tmp_path / "c.bin"),
                           "-CAfile", str(tmp_path / "root.pem"), "-purpose", "any",
                           "-out", "/dev/null"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_endesive_signature_over_other_content_fails(doc_pki: DocumentPki,
                                                     trust: TrustSettings) -> None:
    p7s = endesive_detached(doc_pki, "official")
    report = validate_cms(p7s, io.BytesIO(CONTENT[:-1]), trust=trust, at=dt.datetime.now(dt.UTC))
    assert (report.indication, report.signatures[0].sub_indication) == \
        (Indication.TOTAL_FAILED, "HASH_FAILURE")


def test_endesive_mislabels_ecdsa_and_we_do_not_pass_it(doc_pki: DocumentPki,
                                                        trust: TrustSettings) -> None:
    # endesive 3.0.1 writes rsassa_pkcs1v15 as the signature algorithm of an ECDSA signature:
    # such a CMS is malformed, and must not come out as passed.
    p7s = endesive_detached(doc_pki, "agency")  # an EC P-256 key
    report = validate_cms(p7s, io.BytesIO(CONTENT), trust=trust, at=dt.datetime.now(dt.UTC))
    assert report.indication is not Indication.TOTAL_PASSED


@pytest.mark.parametrize("module", ["endesive.verifier", "endesive.pdf.verify"])
def test_endesive_verifiers_still_do_not_import_here(module: str) -> None:
    # oscrypto 1.3.0 cannot parse OpenSSL's two-digit patch version ("3.0.19"). When this
    # starts to pass, endesive can become the second verifier: update the decision record.
    from oscrypto.errors import LibraryNotFoundError

    with pytest.raises(LibraryNotFoundError):
        importlib.import_module(module)


def test_key_is_not_needed_in_pem(doc_pki: DocumentPki) -> None:
    # endesive takes cryptography key objects, so token keys could sign through it too
    key = doc_pki.key("agency")
    assert not isinstance(key, bytes)
    assert key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
