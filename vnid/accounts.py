"""Electronic identity accounts: citizens, foreign residents and organisations (Decree 69/2024/NĐ-CP).

An account starts at level 1 (self-registered, basic data). It reaches level 2 only with a
:class:`ProofingRecord`: the identity was proven in person with the chip ID card (or a foreigner's
residence card, or an organisation's registration documents and its representative's card) and the
face. A level-2 account of a person expires with the card that proved it; renewing the card and
recording the new validity reactivates it.

Who may hold which level (Decree 69/2024, Art. 12-13):

* citizens aged 14 or more: levels 1 and 2;
* citizens aged 6 to 14: levels 1 and 2, on the request of the parent or guardian;
* citizens under 6: level 1 only (registered through the parent or guardian);
* foreigners aged 6 or more holding a residence card: levels 1 and 2;
* organisations: levels 1 and 2 (level 2 after the representative is proofed).

Everything here is a pure function of its inputs; "today" is the date in Asia/Ho_Chi_Minh of the
``now`` instant the caller passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from vnid.assurance import AssuranceLevel
from vnid.errors import FailedPrecondition, InvalidInput
from vnid.personal_id import (
    DEFAULT_RULES,
    PersonalIdRules,
    Sex,
    check_personal_id,
    validate_tax_code,
)
from vnid.units import validate_province_code

__all__ = [
    "Account",
    "AccountExpired",
    "AccountKind",
    "AccountLocked",
    "AccountStatus",
    "DEFAULT_RENEWAL_AGES",
    "EvidenceType",
    "NotEligible",
    "ProofingMethod",
    "ProofingRecord",
    "VIETNAM_TZ",
    "age_on",
    "card_valid_until",
    "check_eligibility",
    "ensure_can_log_in",
    "lock",
    "new_account",
    "raise_to_level2",
    "renew_card",
    "unlock",
    "vietnam_date",
]


class NotEligible(FailedPrecondition):
    """The person may not hold an account of this kind or level (age, residence card, proofing)."""

    reason = "NOT_ELIGIBLE"


class AccountLocked(FailedPrecondition):
    """The account is locked (by an official or after repeated failures)."""

    reason = "ACCOUNT_LOCKED"


class AccountExpired(FailedPrecondition):
    """The identity card behind this level-2 account has expired."""

    reason = "ACCOUNT_EXPIRED"


VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

# Ages at which the chip ID card must be renewed (Law on Identification 2023, Art. 21). Cards issued
# before the 2023 law had 25, 40 and 60 only; the ages are configurable where this is used.
DEFAULT_RENEWAL_AGES: tuple[int, ...] = (14, 25, 40, 60)

_FOREIGN_ID = re.compile(r"^[A-Z0-9]{8,20}$")


class AccountKind(StrEnum):
    CITIZEN = "citizen"
    FOREIGN_RESIDENT = "foreign_resident"
    ORGANISATION = "organisation"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"
    EXPIRED = "expired"  # derived: a level-2 person whose card validity has passed


class EvidenceType(StrEnum):
    CHIP_ID_CARD = "chip_id_card"  # căn cước / căn cước công dân gắn chip
    RESIDENCE_CARD = "residence_card"  # thẻ thường trú / tạm trú of a foreigner
    ORGANISATION_REGISTRATION = "organisation_registration"  # plus the representative's card


class ProofingMethod(StrEnum):
    IN_PERSON_CHIP_AND_FACE = "in_person_chip_and_face"  # chip read (NFC) + face match at the police
    IN_PERSON_CHIP_FACE_AND_FINGERPRINT = "in_person_chip_face_and_fingerprint"
    # The chip read over NFC by the citizen app, verified by the server (passive and active
    # authentication), the submission signed with the app's registered device key.
    REMOTE_CHIP_NFC = "remote_chip_nfc"


@dataclass(frozen=True, slots=True)
class ProofingRecord:
    """How a level-2 identity was proven: evidence, method, place, officer, time."""

    evidence_type: EvidenceType
    method: ProofingMethod
    place: str  # the proofing office (agency code or name of the police unit)
    officer: str  # the officer's identifier, never their personal data
    proofed_at: dt.datetime
    evidence_valid_until: dt.date | None  # the card's validity; None: valid for life

    def __post_init__(self) -> None:
        if self.proofed_at.tzinfo is None:
            raise InvalidInput("proofed_at must be an aware instant", reason="NAIVE_DATETIME")
        if not self.place.strip() or not self.officer.strip():
            raise InvalidInput("a proofing record names its place and officer",
                               reason="INCOMPLETE_PROOFING")


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str  # internal, stable; never shown to relying parties (they get a ``sub``)
    kind: AccountKind
    identifier: str  # personal ID number, foreigner's ID number, or tax code
    full_name: str
    level: AssuranceLevel
    created_at: dt.datetime
    date_of_birth: dt.date | None = None  # persons only
    sex: Sex | None = None
    nationality: str = "VN"
    status: AccountStatus = AccountStatus.ACTIVE
    locked_reason: str = ""
    proofing: ProofingRecord | None = None
    card_valid_until: dt.date | None = None
    province_code: str = ""  # where the account is managed (2-digit code); "" for national

    def status_at(self, now: dt.datetime) -> AccountStatus:
        if self.status is AccountStatus.LOCKED:
            return AccountStatus.LOCKED
        if (self.level >= AssuranceLevel.LOA2 and self.card_valid_until is not None
                and vietnam_date(now) > self.card_valid_until):
            return AccountStatus.EXPIRED
        return AccountStatus.ACTIVE

    @property
    def is_person(self) -> bool:
        return self.kind is not AccountKind.ORGANISATION


def vietnam_date(now: dt.datetime) -> dt.date:
    if now.tzinfo is None:
        raise InvalidInput("now must be an aware instant", reason="NAIVE_DATETIME")
    return now.astimezone(VIETNAM_TZ).date()


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    years = day.year - date_of_birth.year
    if (day.month, day.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def _birthday(date_of_birth: dt.date, age: int) -> dt.date:
    year = date_of_birth.year + age
    try:
        return date_of_birth.replace(year=year)
    except ValueError:  # 29 February in a common year: the birthday falls on 1 March
        return dt.date(year, 3, 1)


def card_valid_until(date_of_birth: dt.date, issued_on: dt.date,
                     renewal_ages: Sequence[int] = DEFAULT_RENEWAL_AGES) -> dt.date | None:
    """Last day a chip card issued on ``issued_on`` is valid; ``None`` when valid for life.

    The card must be renewed at each renewal age; a card issued within the two years before a
    renewal age stays valid until the next one (Law on Identification 2023, Art. 21(2)).
    """
    for age in sorted(renewal_ages):
        due = _birthday(date_of_birth, age)
        if due <= issued_on:
            continue
        if _birthday(date_of_birth, age - 2) <= issued_on:
            continue  # issued within two years before this age: valid until the next one
        return due - dt.timedelta(days=1)
    return None


def check_eligibility(kind: AccountKind, level: AssuranceLevel, *, date_of_birth: dt.date | None,
                      today: dt.date, guardian_request: bool = False,
                      residence_card: bool = False) -> None:
    """Raise :class:`NotEligible` unless someone of this kind and age may hold ``level``."""
    if kind is AccountKind.ORGANISATION:
        return
    if date_of_birth is None:
        raise InvalidInput("a person's account needs a date of birth", reason="MISSING_BIRTH_DATE")
    age = age_on(date_of_birth, today)
    if age < 0:
        raise InvalidInput("the date of birth is in the future", reason="INVALID_BIRTH_DATE")
    if kind is AccountKind.FOREIGN_RESIDENT:
        if age < 6 or not residence_card:
            raise NotEligible("foreigners need to be 6 or older and hold a residence card")
        return
    if level >= AssuranceLevel.LOA2:
        if age < 6:
            raise NotEligible("citizens under 6 may hold a level-1 account only")
        if age < 14 and not guardian_request:
            raise NotEligible("citizens aged 6 to 14 reach level 2 on their guardian's request")


def new_account(*, account_id: str, kind: AccountKind, identifier: str, full_name: str,
                now: dt.datetime, date_of_birth: dt.date | None = None, sex: Sex | None = None,
                nationality: str = "VN", guardian_request: bool = False,
                residence_card: bool = False, province_code: str = "",
                rules: PersonalIdRules = DEFAULT_RULES) -> Account:
    """A new level-1 account, after checking the identifier against the person's data."""
    name = " ".join(full_name.split())
    if not name or len(name) > 200:
        raise InvalidInput("the full name is empty or too long", reason="INVALID_NAME")
    if kind is AccountKind.CITIZEN:
        if date_of_birth is None or sex is None:
            raise InvalidInput("a citizen's account needs the date of birth and sex",
                               reason="MISSING_PERSON_DATA")
        check_personal_id(identifier, date_of_birth=date_of_birth, sex=sex, rules=rules)
        nationality = "VN"
    elif kind is AccountKind.FOREIGN_RESIDENT:
        if date_of_birth is None or sex is None:
            raise InvalidInput("a foreign resident's account needs the date of birth and sex",
                               reason="MISSING_PERSON_DATA")
        if not _FOREIGN_ID.fullmatch(identifier):
            raise InvalidInput("a foreigner's identification number has 8-20 letters or digits",
                               reason="INVALID_FOREIGN_ID")
        if not re.fullmatch(r"[A-Z]{2}", nationality) or nationality == "VN":
            raise InvalidInput("nationality must be a two-letter country code other than VN",
                               reason="INVALID_NATIONALITY")
    else:
        identifier = validate_tax_code(identifier)
        date_of_birth, sex, nationality = None, None, "VN"
    check_eligibility(kind, AssuranceLevel.LOA1, date_of_birth=date_of_birth,
                      today=vietnam_date(now), guardian_request=guardian_request,
                      residence_card=residence_card)
    if province_code:
        validate_province_code(province_code)
    return Account(account_id=account_id, kind=kind, identifier=identifier, full_name=name,
                   level=AssuranceLevel.LOA1, created_at=now, date_of_birth=date_of_birth, sex=sex,
                   nationality=nationality, province_code=province_code)


_EVIDENCE_FOR: dict[AccountKind, EvidenceType] = {
    AccountKind.CITIZEN: EvidenceType.CHIP_ID_CARD,
    AccountKind.FOREIGN_RESIDENT: EvidenceType.RESIDENCE_CARD,
    AccountKind.ORGANISATION: EvidenceType.ORGANISATION_REGISTRATION,
}


def raise_to_level2(account: Account, proofing: ProofingRecord, *, now: dt.datetime,
                    guardian_request: bool = False) -> Account:
    """The account at level 2, proven by ``proofing``."""
    if proofing.evidence_type is not _EVIDENCE_FOR[account.kind]:
        raise NotEligible("this evidence does not prove this kind of account",
                          metadata={"expected": _EVIDENCE_FOR[account.kind].value})
    if proofing.proofed_at > now:
        raise InvalidInput("the proofing happened in the future", reason="INVALID_PROOFING_TIME")
    today = vietnam_date(now)
    if proofing.evidence_valid_until is not None and proofing.evidence_valid_until < today:
        raise NotEligible("the card used for proofing has expired")
    check_eligibility(account.kind, AssuranceLevel.LOA2, date_of_birth=account.date_of_birth,
                      today=today, guardian_request=guardian_request,
                      residence_card=account.kind is AccountKind.FOREIGN_RESIDENT)
    return dataclasses.replace(account, level=AssuranceLevel.LOA2, proofing=proofing,
                               card_valid_until=proofing.evidence_valid_until)


def renew_card(account: Account, valid_until: dt.date | None) -> Account:
    """Record a renewed card's validity (reactivates an expired level-2 account)."""
    if account.level < AssuranceLevel.LOA2:
        raise FailedPrecondition("only level-2 accounts carry a card validity",
                                 reason="NOT_LEVEL2")
    return dataclasses.replace(account, card_valid_until=valid_until)


def lock(account: Account, reason: str) -> Account:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the account is locked", reason="MISSING_REASON")
    return dataclasses.replace(account, status=AccountStatus.LOCKED, locked_reason=reason[:200])


def unlock(account: Account) -> Account:
    return dataclasses.replace(account, status=AccountStatus.ACTIVE, locked_reason="")


def ensure_can_log_in(account: Account, now: dt.datetime) -> None:
    status = account.status_at(now)
    if status is AccountStatus.LOCKED:
        raise AccountLocked("the account is locked")
    if status is AccountStatus.EXPIRED:
        raise AccountExpired("the identity card behind this account has expired; renew it to "
                             "use the account again")
