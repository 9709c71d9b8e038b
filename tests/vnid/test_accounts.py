from __future__ import annotations

import datetime as dt

import pytest

from vnid.accounts import (
    AccountExpired,
    AccountKind,
    AccountLocked,
    AccountStatus,
    EvidenceType,
    NotEligible,
    ProofingMethod,
    ProofingRecord,
    card_valid_until,
    check_eligibility,
    ensure_can_log_in,
    lock,
    new_account,
    raise_to_level2,
    renew_card,
    unlock,
)
from vnid.assurance import AssuranceLevel
from vnid.personal_id import InvalidPersonalId, Sex

NOW = dt.datetime(2025, 7, 1, 3, 0, tzinfo=dt.UTC)
TODAY = dt.date(2025, 7, 1)


def proofing(valid_until: dt.date | None = dt.date(2030, 1, 1),
             evidence: EvidenceType = EvidenceType.CHIP_ID_CARD) -> ProofingRecord:
    return ProofingRecord(evidence, ProofingMethod.IN_PERSON_CHIP_AND_FACE, "CA phường 1",
                          "CA-1", NOW - dt.timedelta(hours=1), valid_until)


def citizen(born: dt.date = dt.date(1984, 5, 17), number: str = "079084000123"):  # type: ignore[no-untyped-def]
    return new_account(account_id="a1", kind=AccountKind.CITIZEN, identifier=number,
                       full_name="  Nguyễn   Văn An ", now=NOW, date_of_birth=born, sex=Sex.MALE)


def test_new_citizen_starts_at_level1_with_a_checked_number() -> None:
    account = citizen()
    assert account.level is AssuranceLevel.LOA1 and account.full_name == "Nguyễn Văn An"
    with pytest.raises(InvalidPersonalId):
        citizen(number="079085000123")


def test_level2_needs_matching_evidence_and_sets_card_validity() -> None:
    account = raise_to_level2(citizen(), proofing(), now=NOW)
    assert account.level is AssuranceLevel.LOA2 and account.card_valid_until == dt.date(2030, 1, 1)
    with pytest.raises(NotEligible):
        raise_to_level2(citizen(), proofing(evidence=EvidenceType.RESIDENCE_CARD), now=NOW)
    with pytest.raises(NotEligible):
        raise_to_level2(citizen(), proofing(valid_until=dt.date(2025, 6, 30)), now=NOW)


@pytest.mark.parametrize("age,level,guardian,ok", [
    (15, AssuranceLevel.LOA2, False, True), (14, AssuranceLevel.LOA2, False, True),
    (10, AssuranceLevel.LOA2, False, False), (10, AssuranceLevel.LOA2, True, True),
    (5, AssuranceLevel.LOA2, True, False), (5, AssuranceLevel.LOA1, False, True),
])
def test_citizen_eligibility_by_age(age: int, level: AssuranceLevel, guardian: bool,
                                    ok: bool) -> None:
    born = dt.date(TODAY.year - age, 1, 1)
    if ok:
        check_eligibility(AccountKind.CITIZEN, level, date_of_birth=born, today=TODAY,
                          guardian_request=guardian)
    else:
        with pytest.raises(NotEligible):
            check_eligibility(AccountKind.CITIZEN, level, date_of_birth=born, today=TODAY,
                              guardian_request=guardian)


def test_foreigners_need_a_residence_card_and_six_years() -> None:
    check_eligibility(AccountKind.FOREIGN_RESIDENT, AssuranceLevel.LOA1,
                      date_of_birth=dt.date(2010, 1, 1), today=TODAY, residence_card=True)
    for born, card in ((dt.date(2022, 1, 1), True), (dt.date(1990, 1, 1), False)):
        with pytest.raises(NotEligible):
            check_eligibility(AccountKind.FOREIGN_RESIDENT, AssuranceLevel.LOA1,
                              date_of_birth=born, today=TODAY, residence_card=card)


@pytest.mark.parametrize("issued,expected", [
    (dt.date(2021, 6, 1), dt.date(2024, 5, 16)),  # at 38 -> valid until the day before 40
    (dt.date(2022, 6, 1), dt.date(2044, 5, 16)),  # within 2 years of 40 -> until 60
    (dt.date(2044, 6, 1), None),  # after 60: for life
])
def test_card_validity_follows_renewal_ages(issued: dt.date, expected: dt.date | None) -> None:
    assert card_valid_until(dt.date(1984, 5, 17), issued) == expected


def test_lock_unlock_and_expiry_with_the_card() -> None:
    account = raise_to_level2(citizen(), proofing(valid_until=dt.date(2025, 7, 31)), now=NOW)
    ensure_can_log_in(account, NOW)
    locked = lock(account, "mất điện thoại")
    assert locked.status_at(NOW) is AccountStatus.LOCKED
    with pytest.raises(AccountLocked):
        ensure_can_log_in(locked, NOW)
    later = dt.datetime(2025, 7, 31, 17, 30, tzinfo=dt.UTC)  # 00:30 on 1 August in Vietnam
    assert unlock(locked).status_at(later) is AccountStatus.EXPIRED
    with pytest.raises(AccountExpired):
        ensure_can_log_in(unlock(locked), later)
    renewed = renew_card(unlock(locked), dt.date(2040, 5, 16))
    ensure_can_log_in(renewed, later)
    with pytest.raises(Exception, match="why"):
        lock(account, "  ")


def test_organisation_identified_by_tax_code() -> None:
    org = new_account(account_id="o1", kind=AccountKind.ORGANISATION, identifier="0100233488",
                      full_name="Công ty TNHH Ví Dụ", now=NOW)
    assert org.identifier == "0100233488" and org.date_of_birth is None
