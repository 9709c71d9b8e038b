"""Certificate authority for public-service digital signatures (Decree 68/2024/NĐ-CP).

Certificates (RFC 5280) are built from versioned profiles kept as data (``profiles.yaml``) and
subscriber data checked against them; requests move through submitted / approved / completed or
rejected; revocation follows RFC 5280's reason codes with hold and release. Revocation status is
published as full and delta CRLs (:mod:`signing.ca.crl`) and by an RFC 6960 OCSP responder
(:mod:`signing.ca.ocsp`). Bulk re-issuance after a reorganisation is planned by
:mod:`signing.ca.reorganisation`. Keys are anything with cryptography's private-key interface, so
they can stay in a PKCS#11 token (:mod:`signing.pkcs11`).
"""

from signing.ca.authority import AuthorityUrls, IssuingAuthority, KeySource, key_identifier
from signing.ca.authorization import NotManagingBody, is_parent_or_same, require_managing_body
from signing.ca.builder import (
    CA_KEY_USAGES,
    CertificateSpec,
    InvalidCsr,
    KeyUsages,
    issue_certificate,
    load_csr,
    new_serial_number,
)
from signing.ca.crl import CrlChange, build_delta_crl, build_full_crl
from signing.ca.extensions import (
    OID_VNEGOV,
    OID_VNEGOV_SUBJECT_INFO,
    SubjectInfo,
    read_subject_info,
)
from signing.ca.keys import (
    KeyAlgorithm,
    WeakKey,
    check_public_key,
    dump_encrypted_private_key,
    generate_private_key,
    load_private_key,
)
from signing.ca.ocsp import (
    OcspAnswer,
    OcspResponder,
    OcspResponseStatus,
    ResponderIdentity,
    ResponseCache,
)
from signing.ca.oids import EKU_DOCUMENT_SIGNING, TSA_POLICY
from signing.ca.profiles import (
    CertificateProfile,
    ProfileRegistry,
    RenewalRules,
    SubjectField,
    SubscriberKind,
    default_profiles,
    load_profiles,
)
from signing.ca.reorganisation import (
    CertificateFacts,
    PlanAction,
    PlannedChange,
    Reorganisation,
    UnitChange,
    load_reorganisation,
    plan,
)
from signing.ca.requests import RequestKind, RequestState, Timeline, working_days_between
from signing.ca.revocation import (
    CertificateStatus,
    RevocationEntry,
    RevocationReason,
    next_status,
)
from signing.ca.status import CertificateState, StatusIndex
from signing.ca.subject import SubjectData, SubjectNotAllowed, build_subject
from signing.ca.validity import Validity, new_validity, renewal_validity

__all__ = [
    "AuthorityUrls",
    "CA_KEY_USAGES",
    "CertificateFacts",
    "CertificateProfile",
    "CertificateSpec",
    "CertificateState",
    "CertificateStatus",
    "CrlChange",
    "EKU_DOCUMENT_SIGNING",
    "InvalidCsr",
    "IssuingAuthority",
    "KeyAlgorithm",
    "KeySource",
    "KeyUsages",
    "NotManagingBody",
    "OID_VNEGOV",
    "OID_VNEGOV_SUBJECT_INFO",
    "OcspAnswer",
    "OcspResponder",
    "OcspResponseStatus",
    "PlanAction",
    "PlannedChange",
    "ProfileRegistry",
    "RenewalRules",
    "Reorganisation",
    "RequestKind",
    "RequestState",
    "ResponderIdentity",
    "ResponseCache",
    "RevocationEntry",
    "RevocationReason",
    "StatusIndex",
    "SubjectData",
    "SubjectField",
    "SubjectInfo",
    "SubjectNotAllowed",
    "SubscriberKind",
    "TSA_POLICY",
    "Timeline",
    "UnitChange",
    "Validity",
    "WeakKey",
    "build_delta_crl",
    "build_full_crl",
    "build_subject",
    "check_public_key",
    "default_profiles",
    "dump_encrypted_private_key",
    "generate_private_key",
    "is_parent_or_same",
    "issue_certificate",
    "key_identifier",
    "load_csr",
    "load_private_key",
    "load_profiles",
    "load_reorganisation",
    "new_serial_number",
    "new_validity",
    "next_status",
    "plan",
    "read_subject_info",
    "renewal_validity",
    "require_managing_body",
    "working_days_between",
]
