"""Receipts verify with xmlsec1 (a verifier nobody here wrote) and fail after any change."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from payments.fees import FeeKind
from payments.payments import Payer
from payments.receipts import (
    ReceiptData,
    ReceiptKind,
    ReceiptLine,
    RelatedReceipt,
    build_cancellation_xml,
    build_receipt_xml,
    parse_receipt_xml,
    sign_document,
)
from tests.payments.support import HCM, ORGANISATIONS, T0, rsa_signer, signers
from tests.support.pki import TestPki, pem

RECEIPT = ReceiptData(
    "r1", ReceiptKind.ORIGINAL, "EBL01", "25T", 1, T0, ORGANISATIONS[HCM],
    Payer("Nguyễn Văn A", id_number="079084000999", address="12 Lý Tự Trọng"),
    (ReceiptLine("LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),),
    "Chuyển khoản (VietQR)", "p1", "1.000494", "H29-0001")


def xmlsec_verify(tmp_path: Path, pki: TestPki, document: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "root.pem").write_bytes(pem(pki.root.cert))
    (tmp_path / "issuing.pem").write_bytes(pem(pki.issuing.cert))
    (tmp_path / "doc.xml").write_bytes(document)
    return subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(tmp_path / "root.pem"),
                           "--untrusted-pem", str(tmp_path / "issuing.pem"),
                           "--id-attr:Id", "DLBLai", str(tmp_path / "doc.xml")],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", params=["ecdsa-p256", "rsa-2048"])
def signed(request: pytest.FixtureRequest, pki: TestPki) -> bytes:
    signer = signers(pki).signer_for(HCM) if request.param == "ecdsa-p256" else rsa_signer(pki)
    return sign_document(signer, build_receipt_xml(RECEIPT), signing_time=T0)


def test_receipt_verifies_with_xmlsec1(tmp_path: Path, pki: TestPki, signed: bytes) -> None:
    done = xmlsec_verify(tmp_path, pki, signed)
    assert done.returncode == 0, done.stderr
    assert "SignedInfo References (ok/all): 2/2" in done.stderr
    text = signed.decode()
    assert "<ds:SigningTime>2025-08-01T09:00:00</ds:SigningTime>" in text
    assert "<ds:X509SubjectName>" in text and "<ds:X509Certificate>" in text
    assert text.index("<DSCKS><TCThu><ds:Signature") > 0
    assert parse_receipt_xml(signed).total == 100000


@pytest.mark.parametrize("change", [
    (b"<STien>100000</STien>", b"<STien>100001</STien>"),
    (b"<SBLai>0000001</SBLai>", b"<SBLai>0000002</SBLai>"),
    (b"Nguy\xe1\xbb\x85n V\xc4\x83n A", b"Nguy\xe1\xbb\x85n V\xc4\x83n B"),
    (b"<ds:SigningTime>2025-08-01T09:00:00", b"<ds:SigningTime>2025-08-01T09:00:01"),
    (b"<DSCKS>", b"<DSCKS><Extra/>"),
])
def test_any_change_breaks_the_signature(tmp_path: Path, pki: TestPki, signed: bytes,
                                         change: tuple[bytes, bytes]) -> None:
    assert change[0] in signed
    done = xmlsec_verify(tmp_path, pki, signed.replace(change[0], change[1], 1))
    assert done.returncode != 0


def test_a_foreign_signer_is_not_trusted(tmp_path: Path, pki: TestPki) -> None:
    other = TestPki()
    doc = sign_document(signers(other).signer_for(HCM), build_receipt_xml(RECEIPT),
                        signing_time=T0)
    assert xmlsec_verify(tmp_path, pki, doc).returncode != 0


def test_corrections_are_new_signed_documents(tmp_path: Path, pki: TestPki) -> None:
    signer = signers(pki).signer_for(HCM)
    replacement = dataclasses.replace(
        RECEIPT, id="r2", kind=ReceiptKind.REPLACEMENT, number=2,
        related=RelatedReceipt("EBL01", "25T", 1, T0.date(), "Sai tên người nộp"))
    doc = sign_document(signer, build_receipt_xml(replacement), signing_time=T0)
    assert xmlsec_verify(tmp_path, pki, doc).returncode == 0
    assert b"<TCBLai>1</TCBLai>" in doc and b"<SBLLQuan>0000001</SBLLQuan>" in doc
    notice = sign_document(signer, build_cancellation_xml(RECEIPT, notice_id="n1", at=T0,
                                                          reason="Thu nhầm"), signing_time=T0)
    (tmp_path / "n.xml").write_bytes(notice)
    done = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(tmp_path / "root.pem"),
                           "--untrusted-pem", str(tmp_path / "issuing.pem"),
                           str(tmp_path / "n.xml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_receipt_signed_as_a_tree_is_the_receipt_signed_as_bytes(tmp_path: Path,
                                                                   pki: TestPki) -> None:
    """The store signs the tree it built (no serialise-and-parse in between): the signed bytes
    are those of signing the serialised document (RSA PKCS#1 v1.5 signs deterministically), for
    a signer that signs trees and for one that only signs bytes, and xmlsec1 verifies them."""
    from payments.receipts.xml1271 import receipt_tree

    signer = rsa_signer(pki)
    as_bytes = sign_document(signer, build_receipt_xml(RECEIPT), signing_time=T0)
    assert sign_document(signer, receipt_tree(RECEIPT), signing_time=T0) == as_bytes

    class BytesOnly:  # a signer without sign_tree (an HSM service's client, say)
        def sign_xml(self, document: bytes, *, signing_time: object) -> bytes:
            return signer.sign_xml(document, signing_time=T0)

    assert sign_document(BytesOnly(), receipt_tree(RECEIPT), signing_time=T0) == as_bytes
    done = xmlsec_verify(tmp_path, pki, as_bytes)
    assert done.returncode == 0, done.stderr
