"""Public-service digital signatures: the certificate authority (``signing.ca``), RFC 3161 time
stamps (``signing.tsa``), signing PDF, CMS and XML documents (``signing.sign``), Decree 30/2020
appearances (``signing.stamp``) and verification with EN 319 102-1 reports (``signing.validate``)."""

from signing.errors import SigningError

__all__ = ["SigningError"]
