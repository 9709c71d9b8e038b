from __future__ import annotations

from vnid.assurance import AcrNames, Amr, AssuranceLevel, amr_claim, login_level


def test_levels_are_ordered() -> None:
    assert AssuranceLevel.LOA2 > AssuranceLevel.LOA1
    assert AssuranceLevel.LOA2 >= AssuranceLevel.LOA1 and not AssuranceLevel.LOA1 >= AssuranceLevel.LOA2


def test_two_factors_from_two_categories_on_a_level2_account() -> None:
    assert login_level([Amr.PWD], AssuranceLevel.LOA2) is AssuranceLevel.LOA1
    assert login_level([Amr.PWD, Amr.OTP], AssuranceLevel.LOA2) is AssuranceLevel.LOA2
    assert login_level([Amr.SWK, Amr.FACE], AssuranceLevel.LOA2) is AssuranceLevel.LOA2
    assert login_level([Amr.PWD, Amr.PIN], AssuranceLevel.LOA2) is AssuranceLevel.LOA1
    assert login_level([Amr.PWD, Amr.OTP], AssuranceLevel.LOA1) is AssuranceLevel.LOA1


def test_amr_claim_adds_mfa() -> None:
    assert amr_claim([Amr.PWD]) == ["pwd"]
    assert amr_claim([Amr.OTP, Amr.PWD]) == ["otp", "pwd", "mfa"]


def test_acr_values_minimum_and_aliases() -> None:
    names = AcrNames.from_config({"aliases": {"urn:vn:loa:2": "LoA2"}})
    assert names.minimum("LoA2 LoA1") is AssuranceLevel.LOA1
    assert names.minimum("urn:vn:loa:2") is AssuranceLevel.LOA2
    assert names.minimum("unknown") is None
    assert "urn:vn:loa:2" in names.supported()
