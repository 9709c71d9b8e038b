"""Forms: signing locks the fields that exist (FieldMDP); a change to a locked field fails the
signature; allowed changes are listed with field names and both values; the signed revision
can be extracted to see what the signer saw."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.errors import InvalidInput
from signing.sign.pades import PadesOptions, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, validate_pdf
from signing.validate.changes import DocumentChange, extract_signed_revision
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import fill, form_pdf

FIELDS = {"ho_ten": "Nguyễn Văn A", "so_tien": "100000"}


def signed(pki: DocumentPki, data: bytes, label: str = "official", **options: object) -> bytes:
    cred = pki.credential(label)
    out = io.BytesIO()
    sign_pdf(io.BytesIO(data), out, KeySigner(cred.key, cred.cert, cred.chain),
             at=dt.datetime.now(dt.UTC), options=PadesOptions(**options))  # type: ignore[arg-type]
    return out.getvalue()


def report_of(data: bytes, trust: TrustSettings):  # type: ignore[no-untyped-def]
    return validate_pdf(io.BytesIO(data), trust=trust, at=dt.datetime.now(dt.UTC))


def test_signing_locks_existing_fields_and_a_change_fails(doc_pki: DocumentPki,
                                                         trust: TrustSettings) -> None:
    data = signed(doc_pki, form_pdf(FIELDS))
    reader = PdfFileReader(io.BytesIO(data))
    lock = reader.root["/AcroForm"]["/Fields"][-1].get_object()["/Lock"]
    assert sorted(str(f) for f in lock["/Fields"]) == ["ho_ten", "so_tien"]
    assert report_of(data, trust).indication is Indication.TOTAL_PASSED
    report = report_of(fill(data, "so_tien", "900000"), trust)
    [sig] = report.signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "FORMAT_FAILURE")
    assert DocumentChange("form-field", "so_tien", "100000", "900000") in sig.changes
    assert "form field 'so_tien': '100000' -> '900000'" in report.to_text()


def test_allowed_form_filling_is_listed_with_both_values(doc_pki: DocumentPki,
                                                        trust: TrustSettings) -> None:
    data = fill(signed(doc_pki, form_pdf(FIELDS), lock_fields=False), "so_tien", "900000")
    report = report_of(data, trust)
    [sig] = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, report.to_text()
    assert sig.modifications == "FORM_FILLING"
    assert sig.changes == (DocumentChange("form-field", "so_tien", "100000", "900000"),)
    as_json = report.to_dict()["signatures"][0]["changes"]
    assert as_json == [{"kind": "form-field", "name": "so_tien", "old": "100000",
                        "new": "900000"}]


def test_a_later_signature_is_listed_and_leaves_the_locked_fields_alone(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    data = signed(doc_pki, signed(doc_pki, form_pdf(FIELDS)), "agency")
    report = report_of(data, trust)
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    assert report.signatures[0].changes == (DocumentChange("signature", "Signature2"),)
    assert report.signatures[1].changes == ()


def test_the_signed_revision_shows_what_the_signer_saw(doc_pki: DocumentPki,
                                                       trust: TrustSettings) -> None:
    original = signed(doc_pki, form_pdf(FIELDS), lock_fields=False)
    data = fill(original, "so_tien", "900000")
    out = io.BytesIO()
    assert extract_signed_revision(io.BytesIO(data), out, 1) == "Signature1"
    assert out.getvalue() == original
    fields = PdfFileReader(io.BytesIO(out.getvalue())).root["/AcroForm"]["/Fields"]
    assert {str(f.get_object()["/T"]): str(f.get_object()["/V"])
            for f in fields if "/V" in f.get_object() and str(f.get_object()["/T"])
            in FIELDS} == FIELDS
    assert report_of(out.getvalue(), trust).signatures[0].coverage == "ENTIRE_FILE"
    with pytest.raises(InvalidInput) as caught:
        extract_signed_revision(io.BytesIO(data), io.BytesIO(), 2)
    assert caught.value.reason == "NO_SUCH_SIGNATURE"


def test_a_profile_certifies_only_a_first_signature(doc_pki: DocumentPki,
                                                    trust: TrustSettings) -> None:
    from signing.sign.pades import DocMdp

    first = signed(doc_pki, form_pdf(FIELDS), "agency",
                   certify_if_first=DocMdp.FILL_FORMS_AND_SIGN)
    perms = PdfFileReader(io.BytesIO(first)).root["/Perms"]
    assert "/DocMDP" in perms
    both = signed(doc_pki, first, "official", certify_if_first=DocMdp.FILL_FORMS_AND_SIGN)
    reader = PdfFileReader(io.BytesIO(both))
    assert reader.root["/Perms"]["/DocMDP"].get_object()["/Contents"] == \
        PdfFileReader(io.BytesIO(first)).root["/Perms"]["/DocMDP"].get_object()["/Contents"]
    assert report_of(both, trust).indication is Indication.TOTAL_PASSED
    with pytest.raises(InvalidInput) as caught:
        signed(doc_pki, first, "official", certify=DocMdp.FILL_FORMS_AND_SIGN)
    assert caught.value.reason == "ALREADY_SIGNED"
