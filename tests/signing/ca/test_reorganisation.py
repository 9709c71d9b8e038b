"""Planning the re-issuance of certificates after a reorganisation of units."""

from __future__ import annotations

import datetime as dt

import pytest

from signing.ca import (
    CertificateFacts,
    PlanAction,
    Reorganisation,
    default_profiles,
    load_reorganisation,
    plan,
)
from signing.ca.reorganisation import InvalidReorganisation
from tests.signing.ca.hierarchy import SUBJECTS

MAPPING = b"""
reference: "Nghi quyet 1685/NQ-UBTVQH15"
effective_date: 2025-07-01
changes:
  - old_agency_code: "000.31.01.H29"
    new_agency_code: "000.40.01.H29"
    new_name: "Phong Van hoa - Xa hoi"
    new_parent_body: "UBND Phuong Ben Thanh"
  - old_agency_code: "000.00.12.H29"
    new_agency_code: "000.00.13.H29"
    new_name: "So Tu phap TP.HCM"
  - old_agency_code: "000.00.00.H74"
    new_agency_code: "000.00.00.H29"
    new_province_code: "79"
"""


def facts(cid: int, pid: str, body: str, usable: bool = True, **subject: str) -> CertificateFacts:
    return CertificateFacts(cid, default_profiles().get(pid),
                            SUBJECTS[pid].replace(**subject), body, usable)


def test_plan_lists_every_change_and_how() -> None:
    reorg = load_reorganisation(MAPPING)
    assert reorg.effective_date == dt.date(2025, 7, 1)
    certs = [
        facts(1, "individual", "000.00.00.H29"),                       # unit renamed + recoded
        facts(2, "organisation", "000.00.00.H29"),                     # agency recoded
        facts(3, "device", "000.00.00.H74"),                          # only the managing body
        facts(4, "individual", "000.00.00.H29", usable=False),          # revoked: left alone
        facts(5, "device", "000.00.00.H29"),                          # unaffected
        facts(6, "device", "000.00.00.H74", agency_code="000.00.00.H74",
              province_code="74", parent_body="UBND tinh Binh Duong"),  # merged province
    ]
    changes = {c.certificate_id: c for c in plan(reorg, certs)}
    assert set(changes) == {1, 2, 3, 6}
    one = changes[1]
    assert one.action is PlanAction.REISSUE
    assert one.new_subject.agency_code == "000.40.01.H29"
    assert one.new_subject.unit == "Phong Van hoa - Xa hoi"
    assert one.new_subject.parent_body == "UBND Phuong Ben Thanh"
    assert one.new_subject.full_name == SUBJECTS["individual"].full_name
    assert one.new_managing_body == "000.00.00.H29"
    assert set(one.changed_fields()) == {"agency_code", "unit", "parent_body"}
    two = changes[2]
    assert two.new_subject.agency_name == "So Tu phap TP.HCM"
    three = changes[3]
    assert three.action is PlanAction.REASSIGN and three.new_subject == three.old_subject
    assert three.new_managing_body == "000.00.00.H29"
    six = changes[6]
    assert six.action is PlanAction.REISSUE
    assert (six.new_subject.agency_code, six.new_subject.province_code) == ("000.00.00.H29", "79")
    assert six.new_managing_body == "000.00.00.H29"


def test_the_digest_names_the_mapping() -> None:
    a = load_reorganisation(MAPPING)
    b = Reorganisation.from_config(a.to_dict())
    assert a == b and a.digest() == b.digest()
    assert a.digest() != Reorganisation.from_config({**a.to_dict(), "reference": "x"}).digest()


@pytest.mark.parametrize("doc, message", [
    ({"effective_date": "2025-07-01", "changes": []}, "at least one"),
    ({"effective_date": "1 July", "changes": [{}]}, "YYYY-MM-DD"),
    ({"effective_date": "2025-07-01", "changes": [{"old_agency_code": "bad code",
                                                   "new_agency_code": "H29"}]}, "agency code"),
    ({"effective_date": "2025-07-01", "changes": [
        {"old_agency_code": "H1", "new_agency_code": "H2"},
        {"old_agency_code": "H1", "new_agency_code": "H3"}]}, "mapped twice"),
    ({"effective_date": "2025-07-01", "changes": [
        {"old_agency_code": "H1", "new_agency_code": "H2"},
        {"old_agency_code": "H2", "new_agency_code": "H3"}]}, "chains"),
    ({"effective_date": "2025-07-01", "changes": [
        {"old_agency_code": "H1", "new_agency_code": "H2", "new_province_code": "02"}]},
     "province"),
    ({"effective_date": "2025-07-01", "changes": [
        {"old_agency_code": "H1", "new_agency_code": "H2", "colour": "red"}]}, "colour"),
])
def test_bad_mappings_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(InvalidReorganisation, match=message):
        Reorganisation.from_config(doc)


def test_a_renewed_certificate_is_planned_through_its_renewal() -> None:
    reorg = load_reorganisation(MAPPING)
    renewed = CertificateFacts(1, default_profiles().get("individual"), SUBJECTS["individual"],
                               "000.00.00.H29", True, replaced=True)
    changes = plan(reorg, [renewed, facts(2, "individual", "000.00.00.H29")])
    assert [c.certificate_id for c in changes] == [2]


def test_a_certificate_on_hold_is_planned_and_marked_so() -> None:
    reorg = load_reorganisation(MAPPING)
    individual = default_profiles().get("individual")
    held = CertificateFacts(1, individual, SUBJECTS["individual"], "000.00.00.H29", False,
                            on_hold=True)
    held_renewed = CertificateFacts(2, individual, SUBJECTS["individual"], "000.00.00.H29",
                                    False, replaced=True, on_hold=True)
    changes = plan(reorg, [held, held_renewed, facts(3, "individual", "000.00.00.H29"),
                           facts(4, "individual", "000.00.00.H29", usable=False)])
    assert [(c.certificate_id, c.on_hold) for c in changes] == [(1, True), (3, False)]
