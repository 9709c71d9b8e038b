"""Level-2 electronic identity: accounts and assurance, authenticators, an OpenID provider core and
a relying-party library, plus the administrative reference data (provinces, agency codes) that the
other packages share."""

from vnid.accounts import (
    Account,
    AccountKind,
    AccountStatus,
    ProofingRecord,
    check_eligibility,
    new_account,
)
from vnid.agency import AgencyCodeForm, agency_code_form, validate_agency_code
from vnid.assurance import AcrNames, Amr, AssuranceLevel, login_level
from vnid.errors import VnidError
from vnid.personal_id import (
    PersonalId,
    PersonalIdRules,
    Sex,
    check_personal_id,
    parse_personal_id,
    validate_tax_code,
)
from vnid.units import (
    FORMER_PROVINCES,
    PROVINCES,
    Province,
    successor_province,
    validate_province_code,
)

__all__ = [
    "Account",
    "AccountKind",
    "AccountStatus",
    "AcrNames",
    "AgencyCodeForm",
    "Amr",
    "AssuranceLevel",
    "FORMER_PROVINCES",
    "PROVINCES",
    "PersonalId",
    "PersonalIdRules",
    "ProofingRecord",
    "Province",
    "Sex",
    "VnidError",
    "agency_code_form",
    "check_eligibility",
    "check_personal_id",
    "login_level",
    "new_account",
    "parse_personal_id",
    "successor_province",
    "validate_agency_code",
    "validate_province_code",
    "validate_tax_code",
]
