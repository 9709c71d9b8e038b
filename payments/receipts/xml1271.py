"""Receipt XML in the conventions of the tax authority's e-document format (Decision
1271/QĐ-CT, replacing 1450/QĐ-TCT): UTF-8, abbreviated Vietnamese tag names, dates ``YYYY-MM-DD``
and date-times ``YYYY-MM-DDThh:mm:ss`` in GMT+7, whole-đồng amounts, no whitespace between tags.

The receipt schema itself is not published; this module is the one place that fixes it::

    BLai
      DLBLai[@Id="DLBLai"]
        TTChung   PBan TBLai KHMSBLai KHBLai SBLai NLap TGLap DVTTe HTTToan MTTHC MHSo MTToan
                  [TTBLLQuan: TCBLai(1 thay thế|2 điều chỉnh) KHMSBLLQuan KHBLLQuan SBLLQuan
                              NLBLLQuan LDo]
        NDBLai    TCThu(Ten MST DChi MDVQHNS MDVi)  NNop(Ten MST DChi SDDanh)
                  DSKhoan/Khoan(STT MKhoan TKhoan LKhoan STien)  TToan(TgTien TgTienBChu)
      DSCKS/TCThu   <- the collecting body's ds:Signature

A cancellation is a signed notice (``TBHuy``, after form 04/SS-HĐĐT) listing the receipt and
the reason; the receipt itself is never changed.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from payments.errors import InvalidInput
from payments.fees.catalogue import FeeKind
from payments.money import VN_TZ, amount_in_words
from payments.payments.model import Payer
from payments.receipts.model import (
    MAX_NUMBER,
    Organisation,
    ReceiptData,
    ReceiptKind,
    ReceiptLine,
    RelatedReceipt,
    format_number,
)

__all__ = [
    "DATA_ID",
    "FORMAT_VERSION",
    "NOTICE_ID",
    "build_cancellation_xml",
    "build_receipt_xml",
    "parse_receipt_xml",
    "receipt_tree",
]

FORMAT_VERSION = "2.1.0"
DATA_ID = "DLBLai"
NOTICE_ID = "DLTBao"
RECEIPT_TITLE = "BIÊN LAI THU PHÍ, LỆ PHÍ"
_KIND_LABEL = {FeeKind.PHI: "Phí", FeeKind.LE_PHI: "Lệ phí"}
_LABEL_KIND = {v: k for k, v in _KIND_LABEL.items()}
_RELATION = {ReceiptKind.REPLACEMENT: "1", ReceiptKind.ADJUSTMENT: "2"}


def _sub(parent: etree._Element, tag: str, text: str | int | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _local(at: dt.datetime) -> dt.datetime:
    return at.astimezone(VN_TZ)


def _org(parent: etree._Element, tag: str, org: Organisation) -> None:
    el = _sub(parent, tag)
    _sub(el, "Ten", org.name)
    _sub(el, "MST", org.tax_code)
    _sub(el, "DChi", org.address)
    if org.budget_unit_code:
        _sub(el, "MDVQHNS", org.budget_unit_code)
    _sub(el, "MDVi", org.agency_code)


def _serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def build_receipt_xml(receipt: ReceiptData) -> bytes:
    """The unsigned receipt document (with an empty ``DSCKS/TCThu`` for the signature)."""
    return _serialize(receipt_tree(receipt))


def receipt_tree(receipt: ReceiptData) -> etree._Element:
    """:func:`build_receipt_xml` as a tree, for signing it without parsing it again
    (:func:`payments.receipts.signing.sign_document` accepts it)."""
    root = etree.Element("BLai")
    data = _sub(root, "DLBLai")
    data.set("Id", DATA_ID)
    head = _sub(data, "TTChung")
    _sub(head, "PBan", FORMAT_VERSION)
    _sub(head, "TBLai", RECEIPT_TITLE)
    _sub(head, "KHMSBLai", receipt.template)
    _sub(head, "KHBLai", receipt.series)
    _sub(head, "SBLai", format_number(receipt.number))
    local = _local(receipt.issued_at)
    _sub(head, "NLap", local.date().isoformat())
    _sub(head, "TGLap", local.replace(tzinfo=None, microsecond=0).isoformat())
    _sub(head, "DVTTe", "VND")
    _sub(head, "HTTToan", receipt.payment_method)
    _sub(head, "MTTHC", receipt.procedure_code)
    _sub(head, "MHSo", receipt.dossier_code)
    _sub(head, "MTToan", receipt.payment_id)
    if receipt.related is not None:
        if receipt.kind is ReceiptKind.ORIGINAL:
            raise InvalidInput("an original receipt refers to no other receipt")
        rel = _sub(head, "TTBLLQuan")
        _sub(rel, "TCBLai", _RELATION[receipt.kind])
        _sub(rel, "KHMSBLLQuan", receipt.related.template)
        _sub(rel, "KHBLLQuan", receipt.related.series)
        _sub(rel, "SBLLQuan", format_number(receipt.related.number))
        _sub(rel, "NLBLLQuan", receipt.related.issued_on.isoformat())
        _sub(rel, "LDo", receipt.related.reason)
    elif receipt.kind is not ReceiptKind.ORIGINAL:
        raise InvalidInput("a replacement or adjustment must refer to the original")
    body = _sub(data, "NDBLai")
    _org(body, "TCThu", receipt.collector)
    payer = _sub(body, "NNop")
    _sub(payer, "Ten", receipt.payer.name)
    if receipt.payer.tax_code:
        _sub(payer, "MST", receipt.payer.tax_code)
    if receipt.payer.address:
        _sub(payer, "DChi", receipt.payer.address)
    if receipt.payer.id_number:
        _sub(payer, "SDDanh", receipt.payer.id_number)
    items = _sub(body, "DSKhoan")
    for index, line in enumerate(receipt.lines, start=1):
        item = _sub(items, "Khoan")
        _sub(item, "STT", index)
        _sub(item, "MKhoan", line.item_code)
        _sub(item, "TKhoan", line.name)
        _sub(item, "LKhoan", _KIND_LABEL[line.kind])
        _sub(item, "STien", line.amount)
    total = _sub(body, "TToan")
    _sub(total, "TgTien", receipt.total)
    _sub(total, "TgTienBChu", amount_in_words(receipt.total))
    _sub(_sub(root, "DSCKS"), "TCThu")
    return root


def build_cancellation_xml(receipt: ReceiptData, *, notice_id: str, at: dt.datetime,
                           reason: str) -> bytes:
    """The signed-to-be notice that cancels ``receipt``."""
    if not reason.strip():
        raise InvalidInput("a cancellation needs a reason", metadata={"field": "reason"})
    root = etree.Element("TBHuy")
    data = _sub(root, "DLTBao")
    data.set("Id", NOTICE_ID)
    _sub(data, "PBan", FORMAT_VERSION)
    _sub(data, "MSo", "04/SS-BLĐT")
    _sub(data, "Ten", "THÔNG BÁO HỦY BIÊN LAI ĐIỆN TỬ")
    _sub(data, "MTBao", notice_id)
    _sub(data, "NLap", _local(at).date().isoformat())
    _org(data, "TCThu", receipt.collector)
    entries = _sub(data, "DSBLai")
    entry = _sub(entries, "BLai")
    _sub(entry, "KHMSBLai", receipt.template)
    _sub(entry, "KHBLai", receipt.series)
    _sub(entry, "SBLai", format_number(receipt.number))
    _sub(entry, "NLap", _local(receipt.issued_at).date().isoformat())
    _sub(entry, "TgTien", receipt.total)
    _sub(entry, "LDo", reason)
    _sub(_sub(root, "DSCKS"), "TCThu")
    return _serialize(root)


def _text(el: etree._Element, path: str, default: str | None = None) -> str:
    found = el.find(path)
    if found is None or found.text is None:
        if default is not None:
            return default
        raise InvalidInput(f"receipt XML lacks {path}")
    return str(found.text)


def parse_receipt_xml(data: bytes, *, receipt_id: str = "") -> ReceiptData:
    """Read a receipt back (signed or not) into :class:`ReceiptData`. Anything it cannot read as
    a receipt (malformed, missing parts, unknown line kinds, numbers or times out of range)
    raises :class:`InvalidInput`."""
    try:
        return _parse_receipt(data, receipt_id)
    except (ValueError, KeyError, OverflowError) as exc:
        raise InvalidInput(f"not a readable receipt: {type(exc).__name__}") from None


def _number(text: str) -> int:
    number = int(text)
    if not 1 <= number <= MAX_NUMBER:  # as printed: 0000001 to 9999999
        raise ValueError("a receipt number has seven digits")
    return number


def _parse_receipt(data: bytes, receipt_id: str) -> ReceiptData:
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False,
                                                             no_network=True))
    except etree.XMLSyntaxError:
        raise InvalidInput("not well-formed XML") from None
    if root.tag != "BLai":
        raise InvalidInput("not a receipt document")
    head = root.find("DLBLai/TTChung")
    body = root.find("DLBLai/NDBLai")
    if head is None or body is None:
        raise InvalidInput("receipt XML lacks its parts")
    tgl = dt.datetime.fromisoformat(_text(head, "TGLap")).replace(tzinfo=VN_TZ)
    related: RelatedReceipt | None = None
    kind = ReceiptKind.ORIGINAL
    rel = head.find("TTBLLQuan")
    if rel is not None:
        kind = ReceiptKind.REPLACEMENT if _text(rel, "TCBLai") == "1" else ReceiptKind.ADJUSTMENT
        related = RelatedReceipt(_text(rel, "KHMSBLLQuan"), _text(rel, "KHBLLQuan"),
                                 _number(_text(rel, "SBLLQuan")),
                                 dt.date.fromisoformat(_text(rel, "NLBLLQuan")),
                                 _text(rel, "LDo", ""))
    col = body.find("TCThu")
    nnop = body.find("NNop")
    if col is None or nnop is None:
        raise InvalidInput("receipt XML lacks its parties")
    collector = Organisation(_text(col, "MDVi", ""), _text(col, "Ten"), _text(col, "MST", ""),
                             _text(col, "DChi", ""), _text(col, "MDVQHNS", ""))
    payer = Payer(_text(nnop, "Ten"), _text(nnop, "MST", ""), _text(nnop, "DChi", ""),
                  _text(nnop, "SDDanh", ""))
    lines = tuple(ReceiptLine(_text(k, "MKhoan", ""), _text(k, "TKhoan"),
                              _LABEL_KIND[_text(k, "LKhoan")], int(_text(k, "STien")))
                  for k in body.iterfind("DSKhoan/Khoan"))
    return ReceiptData(receipt_id, kind, _text(head, "KHMSBLai"), _text(head, "KHBLai"),
                       _number(_text(head, "SBLai")), tgl.astimezone(dt.UTC), collector, payer,
                       lines, _text(head, "HTTToan"), _text(head, "MTToan", ""),
                       _text(head, "MTTHC", ""), _text(head, "MHSo", ""), related)
