"""Concrete errors raised while signing documents (PDF, CMS, XML) and by remote signing.

Each subclasses a category of :mod:`signing.errors`, which the server maps to a transport status.
Verification failures are deliberately one opaque error (:class:`SignatureInvalid`): which check
failed is written into the validation report, never into the exception a caller sees.
"""

from __future__ import annotations

from signing.errors import AuthenticationFailed, FailedPrecondition, InvalidInput, NotPermitted

__all__ = [
    "ApprovalPending",
    "AuthorisationFailed",
    "CredentialNotPermitted",
    "DocumentInvalid",
    "RevocationUnavailable",
    "SignatureInvalid",
    "SignatureWrapped",
    "SignerMismatch",
    "SignerNotExpected",
    "SigningRefused",
    "TimestampUnavailable",
]


class DocumentInvalid(InvalidInput):
    """The document to sign could not be parsed (not a PDF, malformed XML, encrypted PDF...)."""

    reason = "DOCUMENT_INVALID"


class SignatureInvalid(InvalidInput):
    """The signature did not verify. Which check failed is in the validation report only."""

    reason = "SIGNATURE_INVALID"

    def __init__(self, message: str = "the signature could not be verified") -> None:
        super().__init__(message)


class SignatureWrapped(SignatureInvalid):
    """The signature verifies, but data outside what it signs imitates the signed data, or the
    signed element sits where applications do not read it (XML signature wrapping)."""

    reason = "SIGNATURE_WRAPPING"

    def __init__(self, message: str = "data outside the signed element imitates it") -> None:
        InvalidInput.__init__(self, message)


class SignerNotExpected(SignatureInvalid):
    """The signature verifies, but was made by someone other than the expected signer."""

    reason = "SIGNER_NOT_EXPECTED"

    def __init__(self, message: str = "the document was not signed by the expected signer"
                 ) -> None:
        InvalidInput.__init__(self, message)


class SignerMismatch(InvalidInput):
    """The key does not belong to the first certificate of the chain given with it."""

    reason = "SIGNER_KEY_MISMATCH"


class RevocationUnavailable(FailedPrecondition):
    """An LT/LTA signature needs revocation data that could not be obtained (fail closed).

    ``metadata["certificate"]`` names the certificate (subject and serial number) concerned.
    """

    reason = "REVOCATION_DATA_UNAVAILABLE"


class TimestampUnavailable(FailedPrecondition):
    """The time-stamping authority did not answer with a usable token."""

    reason = "TIMESTAMP_UNAVAILABLE"


class SigningRefused(FailedPrecondition):
    """The signing key or service refused to sign (token error, credential disabled...)."""

    reason = "SIGNING_REFUSED"


class AuthorisationFailed(AuthenticationFailed):
    """Remote signing: the second factor or the signature activation data did not verify."""

    reason = "AUTHORISATION_FAILED"


class CredentialNotPermitted(NotPermitted):
    """Remote signing: the credential belongs to someone else."""

    reason = "CREDENTIAL_NOT_PERMITTED"


class ApprovalPending(FailedPrecondition):
    """Remote signing: the official has not yet answered the approval request in the app (ask
    again after the request's interval)."""

    reason = "APPROVAL_PENDING"
