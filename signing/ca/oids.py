"""Object identifiers this certificate authority defines or uses.

The CA's own identifiers live under one arc (see :mod:`signing.ca.extensions` for why this one and
what a production CA puts there)::

    id-vnegov              ::= { 1 3 6 1 4 1 32473 704 }
    id-vnegov-ce           ::= { id-vnegov 1 }      -- certificate extensions (subjectInfo = 1)
    id-vnegov-cp           ::= { id-vnegov 2 }      -- certificate policies, one per profile kind
    id-vnegov-tsa-policy   ::= { id-vnegov 3 1 }    -- the RFC 3161 time-stamping policy
"""

from __future__ import annotations

from cryptography import x509

from signing.ca.extensions import OID_VNEGOV

__all__ = [
    "EKU_DOCUMENT_SIGNING",
    "OID_OCSP_NONCE",
    "POLICY_DEVICE",
    "POLICY_INDIVIDUAL",
    "POLICY_ORGANISATION",
    "POLICY_OIDS",
    "TSA_POLICY",
]

POLICY_INDIVIDUAL = x509.ObjectIdentifier(OID_VNEGOV + ".2.1")
POLICY_ORGANISATION = x509.ObjectIdentifier(OID_VNEGOV + ".2.2")
POLICY_DEVICE = x509.ObjectIdentifier(OID_VNEGOV + ".2.3")
POLICY_OIDS = {
    "individual": POLICY_INDIVIDUAL,
    "organisation": POLICY_ORGANISATION,
    "device": POLICY_DEVICE,
}
TSA_POLICY = x509.ObjectIdentifier(OID_VNEGOV + ".3.1")

# RFC 9336 id-kp-documentSigning.
EKU_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# RFC 6960 / RFC 8954 id-pkix-ocsp-nonce.
OID_OCSP_NONCE = x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2")
