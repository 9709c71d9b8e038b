"""Our VietQR payloads, read by decoders nobody here wrote: napas-qr-python, npm vietnam-qr-pay,
and zxing-cpp for the QR image."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import qr_pay
import zxingcpp
from PIL import Image

from payments.accounts import AccountKind, CollectionAccount
from payments.channels import (
    crc16_ccitt_false,
    create_reference,
    parse_vietqr,
    qr_png,
    vietqr_for_payment,
)
from payments.errors import InvalidQrPayload

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"
ACCOUNT = CollectionAccount("000.00.00.H29", "970415", "113000012345", "UBND TP Hồ Chí Minh")
TREASURY = CollectionAccount("000.00.00.H29", "970436", "0071001234567", "Kho bạc Nhà nước",
                             AccountKind.STATE_TREASURY, "0111", "1051234")


def payloads() -> list[str]:
    ref = create_reference("P8K3M2Q9X7AB")
    return [
        vietqr_for_payment(ACCOUNT, amount=150000, reference=ref,
                           description="Lệ phí cấp giấy phép xây dựng — hồ sơ H29-0001"),
        vietqr_for_payment(TREASURY, amount=8000, reference=create_reference("Z1"),
                           description="Đăng ký hộ kinh doanh, Phường Bến Thành"),
        vietqr_for_payment(ACCOUNT, amount=9_999_999_999_999, reference=ref, description="x"),
    ]


def node_decode(payload: str) -> dict[str, object]:
    script = ("import {QRPay} from 'vietnam-qr-pay'; const q = new QRPay(process.argv[1]);"
              "console.log(JSON.stringify({valid: q.isValid, bin: q.consumer.bankBin,"
              "number: q.consumer.bankNumber, amount: q.amount, purpose: q.additionalData.purpose,"
              "bill: q.additionalData.billNumber, provider: q.provider.name,"
              "service: q.provider.service, crc: q.crc}))")
    done = subprocess.run(["node", "--input-type=module", "-e", script, payload], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def node() -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "vietnam-qr-pay").exists():
        pytest.fail("node and tests/interop/node/node_modules are required (scripts/dev.sh "
                    "installs them with npm ci)")


@pytest.mark.parametrize("payload", payloads())
def test_napas_qr_python_decodes_the_same_fields(payload: str) -> None:
    ours = parse_vietqr(payload)
    theirs = qr_pay.decode(payload)  # verifies the CRC
    assert theirs["glocal_uuid"] == "A000000727"
    assert theirs["service_code"] == "QRIBFTTA"
    assert (theirs["bin_id"], theirs["consumer_id"]) == (ours.bank_bin, ours.account)
    assert theirs["transaction_amount"] == str(ours.amount)
    assert theirs["transaction_currency"] == "704" and theirs["country_code"] == "VN"
    assert theirs["bill_number"] == ours.bill_number
    assert theirs["purpose_of_transaction"] == ours.purpose
    assert theirs["purpose_of_transaction"].startswith(ours.bill_number)
    assert payload.isascii()


@pytest.mark.parametrize("payload", payloads())
def test_vietnam_qr_pay_decodes_the_same_fields(node: None, payload: str) -> None:
    ours = parse_vietqr(payload)
    theirs = node_decode(payload)
    assert theirs["valid"] is True and theirs["provider"] == "VIETQR"
    assert (theirs["bin"], theirs["number"]) == (ours.bank_bin, ours.account)
    assert theirs["amount"] == str(ours.amount)
    assert theirs["purpose"] == ours.purpose and theirs["bill"] == ours.bill_number
    assert theirs["crc"] == payload[-4:]


def test_one_changed_digit_fails_every_crc_check(node: None) -> None:
    payload = payloads()[0]
    amount_at = payload.index("54061500005802") + 4
    tampered = payload[:amount_at] + "2" + payload[amount_at + 1:]
    assert tampered != payload
    assert not qr_pay.verify_checksum(tampered)
    with pytest.raises(qr_pay.QRDecodeError):
        qr_pay.decode(tampered)
    assert node_decode(tampered)["valid"] is False
    with pytest.raises(InvalidQrPayload):
        parse_vietqr(tampered)


def test_crc_is_zero_padded_and_matches_the_worked_example() -> None:
    example = ("00020101021238540010A00000072701240006970436011010319334300208QRIBFTTA53037045802VN"
               "62220818Thanh toan hoa don6304E8A4")
    assert f"{crc16_ccitt_false(example[:-4].encode()):04X}" == "E8A4"
    # Search for a payload whose CRC has a leading zero: it must still be 4 digits.
    for n in range(1, 5000):
        p = vietqr_for_payment(ACCOUNT, amount=n, reference=create_reference("Z9"),
                               description="")
        if p[-4] == "0":
            assert qr_pay.verify_checksum(p) and len(p.split("6304")[-1]) == 4
            break
    else:
        pytest.fail("no payload with a leading-zero CRC found")


@pytest.mark.parametrize("payload", payloads())
def test_zxing_reads_the_qr_image(payload: str) -> None:
    image = Image.open(io.BytesIO(qr_png(payload)))
    results = zxingcpp.read_barcodes(image)
    assert [r.text for r in results] == [payload]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
