"""Level-2 electronic identity: accounts and assurance, authenticators, an OpenID provider core and
a relying-party library, plus the administrative reference data (provinces, agency codes) that the
other packages share."""

from vnid.agency import AgencyCodeForm, agency_code_form, validate_agency_code
from vnid.errors import VnidError
from vnid.units import (
    FORMER_PROVINCES,
    PROVINCES,
    Province,
    successor_province,
    validate_province_code,
)

__all__ = [
    "AgencyCodeForm",
    "FORMER_PROVINCES",
    "PROVINCES",
    "Province",
    "VnidError",
    "agency_code_form",
    "successor_province",
    "validate_agency_code",
    "validate_province_code",
]
