"""Each library package's public API is a curated ``__all__``, pinned here (a change to it is a
change to the library's contract: update this list, the docs and CHANGELOG.md together), and
every public class and function is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_API = {
    "vnid.icao9303": [
        "ChipError", "ChipEvidence", "CscaTrustList", "Dg13", "Genuineness", "InvalidMrz",
        "SodVerification", "Td1", "check_consistency", "check_digit", "parse_dg1", "parse_dg13",
        "parse_dg15", "parse_td1", "verify_active_authentication", "verify_chip", "verify_sod",
    ],
    "vnid.proofing": [
        "ChipPolicy", "ChipProofing", "Reverification", "STATEMENT_TYPE",
    ],
    "vnid": [
        "Account", "AccountKind", "AccountStatus", "AcrNames", "AgencyCodeForm", "Amr",
        "AssuranceLevel", "FORMER_PROVINCES", "PROVINCES", "PersonalId", "PersonalIdRules",
        "ProofingRecord", "Province", "Sex", "VnidError", "agency_code_form", "check_eligibility",
        "check_personal_id", "login_level", "new_account", "parse_personal_id",
        "successor_province", "validate_agency_code", "validate_province_code",
        "validate_tax_code",
    ],
    "vnid.rp": [
        "BackchannelLogoutReceiver", "DpopKey", "HttpResponse", "HttpTransport",
        "IdTokenValidator", "JwksCache", "LoginFailed", "LogoutRequest", "PendingLogin",
        "ProviderError", "RelyingParty", "RpSettings", "TokenInvalid", "TokenSet",
        "ValidatedIdToken", "jwk_thumbprint",
    ],
    "signing": [
        "AuthenticationFailed", "Conflict", "FailedPrecondition", "InvalidInput", "NotFound",
        "NotPermitted", "RateLimited", "SigningError",
    ],
    "signing.ca": [
        "AuthorityUrls", "CA_KEY_USAGES", "CertificateFacts", "CertificateProfile",
        "CertificateSpec", "CertificateState", "CertificateStatus", "CrlChange",
        "EKU_DOCUMENT_SIGNING", "InvalidCsr", "IssuingAuthority", "KeyAlgorithm", "KeySource",
        "KeyUsages", "NotManagingBody", "OID_VNEGOV", "OID_VNEGOV_SUBJECT_INFO", "OcspAnswer",
        "OcspResponder", "OcspResponseStatus", "PlanAction", "PlannedChange", "ProfileRegistry",
        "RenewalRules", "Reorganisation", "RequestKind", "RequestState", "ResponderIdentity",
        "ResponseCache", "RevocationEntry", "RevocationReason", "StatusIndex", "SubjectData",
        "SubjectField", "SubjectInfo", "SubjectNotAllowed", "SubscriberKind", "TSA_POLICY",
        "Timeline", "UnitChange", "Validity", "WeakKey", "build_delta_crl", "build_full_crl",
        "build_subject", "check_public_key", "default_profiles", "dump_encrypted_private_key",
        "generate_private_key", "is_parent_or_same", "issue_certificate", "key_identifier",
        "load_csr", "load_private_key", "load_profiles", "load_reorganisation",
        "new_serial_number", "new_validity", "next_status", "plan", "read_subject_info",
        "renewal_validity", "require_managing_body", "working_days_between",
    ],
    "signing.sign": [
        "CadesLevel", "DocMdp", "ExpectedSigner", "KeySigner", "PadesLevel", "PadesOptions",
        "RemoteSigner", "RemoteSigningService", "SecondFactor", "SignedElement", "SignedPdf",
        "Signer", "SigningCredential", "TimeStampTransport", "TokenSigner", "TotpAuthoriser",
        "TrustSettings", "VerifiedXmlSignature", "VisibleSignature", "XmlDsigSigner",
        "parse_signing_time", "sign_detached", "sign_digest", "sign_pdf", "verify_xml",
    ],
    "signing.validate": [
        "Indication", "SignatureResult", "SignerIdentity", "TimeSource", "TrustSettings",
        "ValidationReport", "validate_cms", "validate_pdf", "validate_xml",
    ],
    "signing.tsa": [
        "FailureInfo", "SerialSource", "TimeCounterSerials", "TimeStampAnswer",
        "TimeStampAuthority", "TsaSettings",
    ],
    "signing.stamp": [
        "AUTHORITY_PREFIXES", "EmbeddedFont", "MM", "PersonLayout", "agency_seal",
        "authority_title", "electronic_copy", "electronic_copy_box", "page_box", "person_layout",
        "person_signature", "seal_box", "title_lines",
    ],
    "signing.pkcs11": [
        "Token", "TokenConfig", "TokenEcKey", "TokenError", "TokenKeySource", "TokenRsaKey",
    ],
    "payments": [
        "Account", "AccountKind", "CollectionAccount", "FeeCatalogue", "FeeKind",
        "LedgerTransaction", "Payer", "Payment", "PaymentState", "PaymentsError", "Quote",
        "ReceiptData", "XmlSigner", "amount_in_words", "check_amount", "format_vnd",
        "load_catalogue_csv", "load_catalogue_yaml", "parse_camt053", "quote", "reconcile",
        "transliterate", "trial_balance",
    ],
    "payments.channels": [
        "NAPAS_GUID", "BankNotification", "BankSimulator", "BankTransfer", "GatewaySimulator",
        "PlatformSimulator", "VietQr", "build_vietqr", "corrections", "crc16_ccitt_false",
        "create_reference", "find_references", "is_valid_reference", "parse_bank_notification",
        "parse_vietqr", "qr_png", "qr_svg", "sign_bank_notification", "valid_neighbours",
        "validate_reference", "vietqr_for_payment",
    ],
    "payments.fees": [
        "ALL_PROVINCES", "CSV_COLUMNS", "FeeCatalogue", "FeeItem", "FeeKind", "FeeLevel",
        "Procedure", "ProcedureCode", "Quote", "QuoteLine", "Reduction", "load_catalogue_csv",
        "load_catalogue_yaml", "quote",
    ],
    "payments.ledger": [
        "ACCOUNT_KINDS", "Account", "LedgerTransaction", "Posting", "TrialBalance", "reverse",
        "transaction", "trial_balance",
    ],
    "payments.payments": [
        "FINAL_STATES", "OPEN_STATES", "PAID_STATES", "TRANSITIONS", "ChannelStatus", "Effects",
        "Payer", "Payment", "PaymentChannel", "PaymentLine", "PaymentState", "StatementMoney",
        "StatusQuery", "StoredOutcome", "Transition", "Unsettled", "apply_credit",
        "apply_statement_money", "cancel_payment", "check_request_id", "check_transition",
        "expire_payment", "new_payment", "open_payment", "refund_payment", "replay",
        "request_hash",
    ],
    "payments.receipts": [
        "Acknowledgement", "MAX_NUMBER", "Organisation", "QR_FORMAT", "QrClaims", "QrSeal",
        "ReceiptData", "ReceiptKind", "ReceiptLine", "RelatedReceipt", "TaxAuthoritySimulator",
        "TaxAuthorityTransport", "UsageLine", "UsageReport", "VerifiedQr", "XmlSigner",
        "build_cancellation_xml", "build_envelope", "build_receipt_xml", "check_gapless",
        "claims_for", "document_digest", "format_number", "group_lines", "new_message_id",
        "next_number", "parse_acknowledgement", "parse_receipt_xml", "qr_text", "series_for",
        "sign_document", "token_from_text", "usage_report", "validate_template", "verify_qr",
    ],
    "payments.reconcile": [
        "CAMT053_NAMESPACE", "BankCsvProfile", "ChannelComparison", "ChannelRecord",
        "ExpectedPayment", "MatchMethod", "Outcome", "ReconciliationItem", "ReconciliationResult",
        "ReportBounds", "Statement", "StatementLine", "check_continuity", "compare_channel_list",
        "parse_bank_csv", "parse_camt053", "parse_channel_list", "reconcile", "report_csv",
        "report_pdf", "report_xlsx", "summarise", "write_camt053",
    ],
    "vnegov": [
        "__version__",
    ],
}


@pytest.mark.parametrize("name", sorted(PUBLIC_API))
def test_public_api_is_the_pinned_list(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PUBLIC_API[name]), (
        f"{name}.__all__ changed: update PUBLIC_API, the docs and CHANGELOG.md")
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.{member} is exported but missing"


def _documented(obj: object) -> bool:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        own = obj.__dict__.get("__doc__") or ""
        # A dataclass without a docstring gets its signature as one: that documents nothing.
        return bool(own.strip()) and not own.startswith(f"{obj.__name__}(")
    return bool(doc.strip())


@pytest.mark.parametrize("name", sorted(PUBLIC_API))
def test_every_public_class_and_function_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert _documented(module), f"{name} has no module docstring"
    missing = [member for member in module.__all__
               if (inspect.isclass(getattr(module, member))
                   or inspect.isfunction(getattr(module, member)))
               and not _documented(getattr(module, member))]
    assert not missing, f"{name}: no docstring for {', '.join(missing)}"
