"""VerifyDocument for XML over real mutual TLS: the signed element and signed data in the result,
wrapping and an unexpected signer failing with their own sub-indications, a malformed expected
signer refused before anything is verified."""

from __future__ import annotations

import grpc
import pytest
from lxml import etree

from tests.server.documents.test_signing_service import (  # noqa: F401 - the srv fixture
    sign,
    srv,
    stub,
    verify,
)
from tests.signing.sign.docpki import AGENCY_CODE
from tests.support.server import RunningServer
from vnegov.signing.v1 import documents_pb2 as pb

XML = b'<BLai><DLBLai Id="DLBLai"><TgTien>50000</TgTien></DLBLai><DSCKS><NBan/></DSCKS></BLai>'


async def signed_receipt(srv: RunningServer) -> bytes:  # noqa: F811
    signed, _ = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.XML, agency_signer="ubnd-hcm", xml=pb.XmlOptions(
            reference_id="DLBLai", signature_id="NBan", signature_parent="DSCKS/NBan")), XML)
    return signed


async def test_xml_result_names_the_signed_element_and_checks_the_signer(
        srv: RunningServer) -> None:  # noqa: F811
    signed = await signed_receipt(srv)
    report = await verify(stub(srv), pb.VerifyDocumentHeader(
        format=pb.XML, expected_signer=pb.ExpectedSigner(agency_code=AGENCY_CODE),
        include_signed_data=True), signed)
    assert report.indication == pb.TOTAL_PASSED, report.report_text
    [sig] = report.signatures
    [element] = sig.signed_elements
    assert (element.path, element.id, element.uri) == ("/BLai/DLBLai", "DLBLai", "#DLBLai")
    assert etree.fromstring(sig.signed_data).findtext("TgTien") == "50000"
    assert "Signed element: /BLai/DLBLai (Id DLBLai)" in report.report_text

    other = await verify(stub(srv), pb.VerifyDocumentHeader(
        format=pb.XML, expected_signer=pb.ExpectedSigner(agency_code="000.00.00.H26")), signed)
    assert (other.indication, other.signatures[0].sub_indication) == \
        (pb.TOTAL_FAILED, "SIGNER_NOT_EXPECTED")
    assert other.signatures[0].signed_data == b""  # only when asked for

    root = etree.fromstring(signed)
    original = root.find("DLBLai")
    assert original is not None
    forged = etree.fromstring(b"<DLBLai><TgTien>500</TgTien></DLBLai>")
    root.replace(original, forged)
    etree.SubElement(root, "PhanMoRong").append(original)
    wrapped = await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.XML),
                           etree.tostring(root))
    [sig] = wrapped.signatures
    assert (wrapped.indication, sig.sub_indication) == (pb.TOTAL_FAILED, "SIGNATURE_WRAPPING")
    assert sig.signed_elements[0].path == "/BLai/PhanMoRong/DLBLai"


@pytest.mark.parametrize("expected", [
    pb.ExpectedSigner(),  # names nobody
    pb.ExpectedSigner(tax_code="123"),
    pb.ExpectedSigner(subject=[pb.SubjectAttribute(type="XX", value="1")]),
])
async def test_malformed_expected_signer_is_invalid_argument(
        srv: RunningServer, expected: pb.ExpectedSigner) -> None:  # noqa: F811
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.XML, expected_signer=expected),
                     XML)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
