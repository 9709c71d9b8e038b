"""STAND-IN XMLDSig signer for receipts, until ``signing.sign.xmldsig.XmlDsigSigner`` is wired.

It implements :class:`payments.receipts.signing.XmlSigner` with the same conventions as the real
signer (enveloped signature over the whole document, C14N 1.1, a ``SigningTime`` signature
property covered by its own Reference, KeyInfo with ``X509SubjectName`` and ``X509Certificate``)
on a key held in memory. The server uses it only where no other signer is configured; tests and
the benchmark use it directly. Keep it small: it is replaced, not extended.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from payments.money import VN_TZ

__all__ = ["StandInXmlSigner"]

DS = "http://www.w3.org/2000/09/xmldsig#"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def _c14n(el: etree._Element) -> bytes:
    """Inclusive canonical form of ``el`` in its document context. C14N 1.1 and 1.0 agree on
    documents without xml:id / xml:base attributes, as here. The subtree is serialised on its own
    first (which declares the in-scope namespaces on it: these documents use no others), because
    libxml2's subtree canonicalisation mishandles an inherited default namespace."""
    standalone = etree.fromstring(etree.tostring(el), parser=_PARSER)
    return bytes(etree.tostring(standalone, method="c14n", exclusive=False,
                                with_comments=False))


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _ds(parent: etree._Element, tag: str, text: str | None = None, **attrs: str
        ) -> etree._Element:
    el = etree.SubElement(parent, f"{{{DS}}}{tag}", **attrs)
    if text is not None:
        el.text = text
    return el


class StandInXmlSigner:
    """STAND-IN: enveloped XMLDSig with SigningTime, on an in-memory RSA or EC key."""

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 certificate_chain: Sequence[x509.Certificate]) -> None:
        if not certificate_chain:
            raise ValueError("the signer needs its certificate")
        self._key = key
        self._chain = list(certificate_chain)
        self._subject = certificate_chain[0].subject.rfc4514_string()
        self._ders = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                      for c in certificate_chain]

    def sign_xml(self, document: bytes, *, signing_time: dt.datetime) -> bytes:
        root = etree.fromstring(document, parser=_PARSER)
        # The whole document: no inherited namespaces, canonicalised directly.
        content_digest = _digest(bytes(etree.tostring(root, method="c14n", exclusive=False,
                                                      with_comments=False)))
        sid = "sig-" + uuid.uuid4().hex[:16]
        signature = etree.SubElement(root, f"{{{DS}}}Signature", nsmap={None: DS}, Id=sid)
        info = _ds(signature, "SignedInfo")
        _ds(info, "CanonicalizationMethod", Algorithm=C14N11)
        is_rsa = isinstance(self._key, rsa.RSAPrivateKey)
        _ds(info, "SignatureMethod", Algorithm=RSA_SHA256 if is_rsa else ECDSA_SHA256)
        ref = _ds(info, "Reference", URI="")
        transforms = _ds(ref, "Transforms")
        _ds(transforms, "Transform", Algorithm=ENVELOPED)
        _ds(transforms, "Transform", Algorithm=C14N11)
        _ds(ref, "DigestMethod", Algorithm=SHA256)
        _ds(ref, "DigestValue", content_digest)
        prop_ref = _ds(info, "Reference", URI=f"#{sid}-time",
                       Type="http://www.w3.org/2000/09/xmldsig#SignatureProperties")
        _ds(_ds(prop_ref, "Transforms"), "Transform", Algorithm=C14N11)
        _ds(prop_ref, "DigestMethod", Algorithm=SHA256)
        prop_digest = _ds(prop_ref, "DigestValue")
        value = _ds(signature, "SignatureValue")
        key_info = _ds(signature, "KeyInfo")
        data = _ds(key_info, "X509Data")
        _ds(data, "X509SubjectName", self._subject)
        for der in self._ders:
            _ds(data, "X509Certificate", der)
        obj = _ds(signature, "Object")
        props = _ds(obj, "SignatureProperties", Id=f"{sid}-time")
        prop = _ds(props, "SignatureProperty", Target=f"#{sid}")
        local = signing_time.astimezone(VN_TZ).replace(tzinfo=None, microsecond=0)
        _ds(prop, "SigningTime", local.isoformat())
        prop_digest.text = _digest(_c14n(props))
        signed_info = _c14n(info)
        if isinstance(self._key, rsa.RSAPrivateKey):
            raw = self._key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self._key.sign(signed_info, ec.ECDSA(hashes.SHA256())))
            size = (self._key.key_size + 7) // 8
            raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        value.text = base64.b64encode(raw).decode()
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
