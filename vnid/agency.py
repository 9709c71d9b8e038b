"""Agency electronic identification codes.

Two forms are in use and both are accepted, stored as opaque validated strings:

* QCVN 102:2016/BTTTT (document exchange): 13 characters ``LLL.MM.NN.XDD``, level 4 on the left to
  level 1 on the right, e.g. ``000.00.00.H29`` (People's Committee of TP. Hồ Chí Minh; ``H`` for
  provinces, ``G`` for ministries).
* Decision 20/2020/QĐ-TTg (data sharing): up to 35 characters of ``A-Z 0-9 .`` in dot-separated
  groups from level 1 on the left, e.g. ``H55.242``.
"""

from __future__ import annotations

import re
from enum import StrEnum

from vnid.errors import InvalidInput

__all__ = ["AgencyCodeForm", "agency_code_form", "validate_agency_code"]

_QCVN102 = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
_QD20 = re.compile(r"^[A-Z0-9]+(?:\.[A-Z0-9]+)*$")


class AgencyCodeForm(StrEnum):
    """The two forms of agency codes: QCVN 102:2016 (``000.00.00.H29``) and Decision 20/2020 (``H29``)."""
    QCVN102 = "QCVN102"
    QD20 = "QD20"


def agency_code_form(code: str) -> AgencyCodeForm:
    """Which of the two national forms ``code`` is written in; raises if it is neither."""
    if _QCVN102.fullmatch(code):
        return AgencyCodeForm.QCVN102
    if len(code) <= 35 and _QD20.fullmatch(code) and not code.isdigit():
        return AgencyCodeForm.QD20
    raise InvalidInput(
        "agency code must have the QCVN 102 form (e.g. 000.00.00.H29) or the Decision 20/2020 form "
        "(e.g. H55.242)",
        reason="INVALID_AGENCY_CODE",
    )


def validate_agency_code(code: str) -> str:
    """Return ``code`` unchanged if it is a well-formed agency code, else raise ``InvalidInput``."""
    agency_code_form(code)
    return code
