"""Malformed signature dictionaries are TOTAL-FAILED / FORMAT_FAILURE signatures in a readable
report (the rest of the document is still validated), not "not a readable PDF"; chain failures
name the certificate and the reason; passed signatures carry no internal notes."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable

import pytest

from signing.sign.pades import PadesOptions, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, validate_pdf
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf


def two_signatures(pki: DocumentPki) -> bytes:
    data = decision_pdf()
    for label in ("official", "agency"):
        cred = pki.credential(label)
        out = io.BytesIO()
        sign_pdf(io.BytesIO(data), out, KeySigner(cred.key, cred.cert, cred.chain),
                 at=dt.datetime.now(dt.UTC), options=PadesOptions())
        data = out.getvalue()
    return data


def _last_contents(data: bytes) -> re.Match[bytes]:
    *_, match = re.finditer(rb"/Contents\s*<([0-9a-fA-F]+)>", data)
    return match


def empty_contents(data: bytes) -> bytes:
    m = _last_contents(data)
    return data[:m.start(1)] + b"0" * (m.end(1) - m.start(1)) + data[m.end(1):]


def missing_contents(data: bytes) -> bytes:
    m = _last_contents(data)
    return data[:m.start()] + b"/Contentz" + data[m.start() + 9:]


def not_cms(data: bytes) -> bytes:
    m = _last_contents(data)
    return data[:m.start(1)] + b"41" * ((m.end(1) - m.start(1)) // 2) + data[m.end(1):]


def impossible_byte_range(data: bytes) -> bytes:
    *_, m = re.finditer(rb"/ByteRange\s*\[\s*0\s+(\d+)\s+(\d+)\s+(\d+)", data)
    return data[:m.start(3)] + b"9" * (m.end(3) - m.start(3)) + data[m.end(3):]


@pytest.mark.parametrize(("damage", "says"), [
    (empty_contents, "/Contents is empty"),
    (missing_contents, "no /Contents"),
    (not_cms, "malformed"),
    (impossible_byte_range, "/ByteRange"),
], ids=["empty-contents", "missing-contents", "not-cms", "impossible-byterange"])
def test_a_malformed_signature_dictionary_is_a_failed_signature_in_a_report(
        doc_pki: DocumentPki, trust: TrustSettings, damage: Callable[[bytes], bytes],
        says: str) -> None:
    report = validate_pdf(io.BytesIO(damage(two_signatures(doc_pki))), trust=trust,
                          at=dt.datetime.now(dt.UTC))
    by_id = {s.id: s for s in report.signatures}
    assert set(by_id) == {"Signature1", "Signature2"}
    broken = by_id["Signature2"]
    assert (broken.indication, broken.sub_indication) == (Indication.TOTAL_FAILED,
                                                          "FORMAT_FAILURE")
    assert any(says in m for m in broken.messages), broken.messages
    assert report.indication is Indication.TOTAL_FAILED
    assert says in report.to_text()
    # the intact first signature is still validated on its own revision
    assert by_id["Signature1"].signer is not None


def test_chain_failure_names_the_certificate_and_passed_signatures_have_no_notes(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    data = two_signatures(doc_pki)
    text = validate_pdf(io.BytesIO(data), trust=trust, at=dt.datetime.now(dt.UTC)).to_text()
    assert "TOTAL-PASSED" in text and "Note:" not in text
    elsewhere = TrustSettings(trust_roots=[doc_pki.untrusted_root])
    report = validate_pdf(io.BytesIO(data), trust=elsewhere, at=dt.datetime.now(dt.UTC))
    first = report.signatures[0]
    assert first.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    assert any("Nguyễn Văn An" in m for m in first.messages), first.messages
