"""Signing receipts: the port to the XML signer, and where its signature goes.

The signer (``signing.sign.xmldsig.XmlDsigSigner`` in production) produces an enveloped XMLDSig
signature (C14N 1.1, a ``SigningTime`` signature property covered by a Reference, KeyInfo with
``X509SubjectName`` and ``X509Certificate``) by the collecting body's organisation certificate.
This module hands it the unsigned document and puts the resulting ``ds:Signature`` in
``DSCKS/TCThu``, where the tax authority's format expects the seller's (here: the collecting
body's) signature (a signer with ``sign_tree``, such as ``XmlDsigSigner``, puts it there
itself; other signers' signatures are moved there). Moving an enveloped signature within the
document does not change what it signs: the enveloped-signature transform removes it wherever
it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Protocol

from lxml import etree

from payments.errors import InvalidInput

__all__ = ["DS_NS", "XmlSigner", "document_digest", "sign_document"]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"


class XmlSigner(Protocol):
    """An enveloped XMLDSig signer holding one organisation key and its certificate chain."""

    def sign_xml(self, document: bytes, *, signing_time: dt.datetime) -> bytes: ...


def sign_document(signer: XmlSigner, document: bytes | etree._Element, *,
                  signing_time: dt.datetime) -> bytes:
    """Sign ``document`` and place the signature under ``DSCKS/TCThu``. ``document`` is the
    unsigned document's bytes or its tree (as :func:`payments.receipts.xml1271.receipt_tree`
    builds it; the tree is signed in place and not to be used again)."""
    sign_tree = getattr(signer, "sign_tree", None)
    if callable(sign_tree):
        # A signer that signs a parsed document where it is told to (the project's
        # signing.sign.xmldsig.XmlDsigSigner): the same bytes as below, without parsing the
        # signed output again (nor the document, when given as a tree).
        root = document if isinstance(document, etree._Element) else _parsed(document)
        if root is not None and not root.getroottree().docinfo.doctype:
            if root.find(f".//{{{DS_NS}}}Signature") is not None:
                raise InvalidInput("the signer must produce exactly one signature")
            if root.find("DSCKS/TCThu") is None:
                raise InvalidInput("the document has no DSCKS/TCThu for the signature")
            signed = sign_tree(root, signing_time=signing_time, signature_parent="DSCKS/TCThu")
            return _serialized(signed)
    if isinstance(document, etree._Element):
        document = _serialized(document)
    signed = signer.sign_xml(document, signing_time=signing_time)
    root = etree.fromstring(signed, parser=_parser())
    signatures = root.findall(f".//{{{DS_NS}}}Signature")
    if len(signatures) != 1:
        raise InvalidInput("the signer must produce exactly one signature")
    slot = root.find("DSCKS/TCThu")
    if slot is None:
        raise InvalidInput("the document has no DSCKS/TCThu for the signature")
    signature = signatures[0]
    if signature.getparent() is not slot:
        parent = signature.getparent()
        assert parent is not None
        tail = signature.tail
        parent.remove(signature)
        signature.tail = None
        if tail and tail.strip():
            raise InvalidInput("unexpected text after the signature")
        slot.append(signature)
    return _serialized(root)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True)


def _parsed(document: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(document, parser=_parser())
    except etree.XMLSyntaxError:
        return None  # the signer says what is wrong with it


def _serialized(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def document_digest(document: bytes) -> str:
    """Hex SHA-256 of the stored signed bytes (printed in the QR of the PDF rendition)."""
    return hashlib.sha256(document).hexdigest()
