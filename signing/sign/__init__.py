"""Signing documents: PAdES (ETSI EN 319 142) through pyHanko, detached CMS/CAdES (RFC 5652, ETSI EN
319 122) and enveloped XML signatures (W3C XMLDSig) in the Vietnamese e-document convention; the
:class:`Signer` port with in-memory, PKCS#11 and remote implementations."""

from signing.sign.xmldsig import VerifiedXmlSignature, XmlDsigSigner, parse_signing_time, verify_xml

__all__ = ["VerifiedXmlSignature", "XmlDsigSigner", "parse_signing_time", "verify_xml"]
