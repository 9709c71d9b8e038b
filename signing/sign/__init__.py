"""Signing documents: PAdES (ETSI EN 319 142) through pyHanko, detached CMS/CAdES (RFC 5652, ETSI EN
319 122) and enveloped XML signatures (W3C XMLDSig) in the Vietnamese e-document convention; the
:class:`Signer` port with in-memory, PKCS#11 and remote (CSC API v2) implementations."""

from signing.sign.cms import CadesLevel, sign_detached, sign_digest
from signing.sign.expected import ExpectedSigner
from signing.sign.pades import DocMdp, PadesLevel, PadesOptions, SignedPdf, VisibleSignature, sign_pdf
from signing.sign.remote import (
    RemoteSigner,
    RemoteSigningService,
    SecondFactor,
    SigningCredential,
    TotpAuthoriser,
)
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner, Signer, TokenSigner
from signing.sign.timestamps import TimeStampTransport
from signing.sign.xmldsig import (
    SignedElement,
    VerifiedXmlSignature,
    XmlDsigSigner,
    parse_signing_time,
    verify_xml,
)

__all__ = [
    "CadesLevel",
    "DocMdp",
    "ExpectedSigner",
    "KeySigner",
    "PadesLevel",
    "PadesOptions",
    "RemoteSigner",
    "RemoteSigningService",
    "SecondFactor",
    "SignedElement",
    "SignedPdf",
    "Signer",
    "SigningCredential",
    "TimeStampTransport",
    "TokenSigner",
    "TotpAuthoriser",
    "TrustSettings",
    "VerifiedXmlSignature",
    "VisibleSignature",
    "XmlDsigSigner",
    "parse_signing_time",
    "sign_detached",
    "sign_digest",
    "sign_pdf",
    "verify_xml",
]
