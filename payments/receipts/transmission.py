"""Sending receipts to the tax authority: the ``TDiep`` envelope of Decision 1271/QĐ-CT, the
technical acknowledgement, the transport port and a simulator of the receiving side.

::

    TDiep
      TTChung  PBan MNGui MNNhan MLTDiep MTDiep MTDTChieu MST SLuong
      DLieu    the documents (signed receipt XML, one or more)

``MTDiep`` is the sender code followed by 32 upper-case hex digits of a UUIDv4; a message is at
most 2 MB. Every message is answered by a technical acknowledgement (``MLTDiep`` 999) whose
``MTDTChieu`` names the message and whose ``DLieu/TBao/TTTNhan`` is 0 (received) or 1 (refused,
with ``DSLDo/LDo/MTa`` reasons). The message type code for receipts is configurable
(:data:`RECEIPT_MESSAGE_TYPE`; unconfirmed, no public list names one for receipts).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from payments.errors import InvalidInput, TransmissionError

__all__ = [
    "ACK_MESSAGE_TYPE",
    "MAX_MESSAGE_BYTES",
    "RECEIPT_MESSAGE_TYPE",
    "Acknowledgement",
    "TaxAuthoritySimulator",
    "TaxAuthorityTransport",
    "build_envelope",
    "new_message_id",
    "parse_acknowledgement",
]

MAX_MESSAGE_BYTES = 2 * 1024 * 1024
RECEIPT_MESSAGE_TYPE = "206"
ACK_MESSAGE_TYPE = "999"
ENVELOPE_VERSION = "2.1.0"
TAX_AUTHORITY_CODE = "TCT"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def new_message_id(sender: str, *, make_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A new message id: the sender's code followed by a random UUID in upper-case hex."""
    return sender + make_uuid().hex.upper()


def build_envelope(documents: Sequence[bytes], *, sender: str, tax_code: str, message_id: str,
                   message_type: str = RECEIPT_MESSAGE_TYPE, refers_to: str = "",
                   receiver: str = TAX_AUTHORITY_CODE) -> bytes:
    """The XML message (``TDiep``) carrying signed receipt ``documents`` to the tax authority."""
    if not documents:
        raise InvalidInput("a message carries at least one document")
    root = etree.Element("TDiep")
    head = etree.SubElement(root, "TTChung")
    for tag, text in (("PBan", ENVELOPE_VERSION), ("MNGui", sender), ("MNNhan", receiver),
                      ("MLTDiep", message_type), ("MTDiep", message_id),
                      ("MTDTChieu", refers_to), ("MST", tax_code),
                      ("SLuong", str(len(documents)))):
        etree.SubElement(head, tag).text = text
    data = etree.SubElement(root, "DLieu")
    for document in documents:
        data.append(etree.fromstring(document, parser=_PARSER))
    out = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    if len(out) > MAX_MESSAGE_BYTES:
        raise InvalidInput("the message exceeds 2 MB: send fewer documents per message")
    return out


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The tax authority's technical acknowledgement of a message: accepted or not, and why."""
    message_id: str  # the acknowledgement's own id
    refers_to: str  # the message acknowledged
    accepted: bool
    reasons: tuple[str, ...] = ()


def parse_acknowledgement(data: bytes) -> Acknowledgement:
    """Read the tax authority's technical acknowledgement; :class:`TransmissionError` if
    ``data`` is not one."""
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError:
        raise TransmissionError("the acknowledgement is not XML") from None
    if root.tag != "TDiep" or root.findtext("TTChung/MLTDiep") != ACK_MESSAGE_TYPE:
        raise TransmissionError("not a technical acknowledgement")
    status = root.findtext("DLieu/TBao/TTTNhan")
    if status not in ("0", "1"):
        raise TransmissionError("the acknowledgement has no status")
    reasons = tuple(r.text or "" for r in root.iterfind("DLieu/TBao/DSLDo/LDo/MTa"))
    return Acknowledgement(root.findtext("TTChung/MTDiep") or "",
                           root.findtext("TTChung/MTDTChieu") or "", status == "0", reasons)


class TaxAuthorityTransport(Protocol):
    """Sends one envelope and returns the acknowledgement's bytes (raises on transport failure)."""

    def send(self, message: bytes) -> bytes: ...


@dataclass
class TaxAuthoritySimulator:
    """The receiving side: checks the envelope and answers with a technical acknowledgement.

    ``fail_next`` makes the next calls raise (a network failure), to exercise retries."""

    code: str = TAX_AUTHORITY_CODE
    fail_next: int = 0
    received: list[bytes] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)

    def send(self, message: bytes) -> bytes:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("simulated network failure")
        reasons: list[str] = []
        refers = ""
        try:
            root = etree.fromstring(message, parser=_PARSER)
            refers = root.findtext("TTChung/MTDiep") or ""
            sender = root.findtext("TTChung/MNGui") or ""
            if root.tag != "TDiep":
                reasons.append("Không phải thông điệp TDiep")
            if len(message) > MAX_MESSAGE_BYTES:
                reasons.append("Thông điệp vượt quá 2 MB")
            if not (refers.startswith(sender) and len(refers) == len(sender) + 32
                    and all(c in "0123456789ABCDEF" for c in refers[len(sender):])):
                reasons.append("MTDiep không đúng định dạng")
            count = root.findtext("TTChung/SLuong") or ""
            data = root.find("DLieu")
            if data is None or not count.isdigit() or int(count) != len(data):
                reasons.append("SLuong không khớp DLieu")
            if refers in self.message_ids:
                reasons.append("MTDiep đã được tiếp nhận")
        except etree.XMLSyntaxError:
            reasons.append("Không đúng định dạng XML")
        if not reasons:
            self.received.append(message)
            self.message_ids.append(refers)
        ack = etree.Element("TDiep")
        head = etree.SubElement(ack, "TTChung")
        for tag, text in (("PBan", ENVELOPE_VERSION), ("MNGui", self.code), ("MNNhan", ""),
                          ("MLTDiep", ACK_MESSAGE_TYPE),
                          ("MTDiep", new_message_id(self.code)), ("MTDTChieu", refers),
                          ("MST", ""), ("SLuong", "1")):
            etree.SubElement(head, tag).text = text
        tbao = etree.SubElement(etree.SubElement(ack, "DLieu"), "TBao")
        etree.SubElement(tbao, "MTDiep").text = refers
        etree.SubElement(tbao, "TTTNhan").text = "1" if reasons else "0"
        if reasons:
            ds = etree.SubElement(tbao, "DSLDo")
            for reason in reasons:
                etree.SubElement(etree.SubElement(ds, "LDo"), "MTa").text = reason
        return bytes(etree.tostring(ack, xml_declaration=True, encoding="UTF-8"))
