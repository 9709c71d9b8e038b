"""Claim profiles: which claims a scope releases, under which names.

* ``standard`` — OpenID Connect Core §5.1 names: ``name``, ``birthdate`` (YYYY-MM-DD), ``gender``;
  and, for the ``national_id`` scope, ``vn_personal_id`` and ``vn_account_type``.
* ``national_portal`` — the names the national public-service portal passes to provincial systems:
  ``SoDinhDanh`` (the 12-digit personal ID or an organisation's tax code), ``HoVaTen`` (full name),
  ``NgayThangNamSinh`` (YYYYMMDD) and ``LoaiTaiKhoan`` (account type). Provincial integrations ask
  only for ``scope=openid`` and receive these, so under this profile ``openid`` releases them; the
  citizen still consents to them per client.

The ``LoaiTaiKhoan`` codes are observed as "1" for citizens; the codes for organisations and
foreign residents are not confirmed and are configurable (:class:`AccountTypeCodes`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vnid.accounts import Account, AccountKind
from vnid.errors import InvalidInput
from vnid.oauth2.clients import ClaimProfileName

__all__ = [
    "AccountTypeCodes",
    "CLAIM_LABELS",
    "ClaimProfile",
    "PROFILES",
    "ChipClaims",
    "release_claims",
]


@dataclass(frozen=True, slots=True)
class AccountTypeCodes:
    codes: Mapping[AccountKind, str] = field(default_factory=lambda: MappingProxyType({
        AccountKind.CITIZEN: "1", AccountKind.ORGANISATION: "2",
        AccountKind.FOREIGN_RESIDENT: "3"}))

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> AccountTypeCodes:
        codes = dict(cls().codes)
        for key, value in data.items():
            try:
                codes[AccountKind(key)] = str(value)
            except ValueError:
                raise InvalidInput(f"unknown account kind {key!r} in account_type_codes",
                                   reason="INVALID_SETTING") from None
        return cls(MappingProxyType(codes))


Extractor = Callable[[Account, AccountTypeCodes], Any]


def _name(a: Account, _c: AccountTypeCodes) -> str:
    return a.full_name


def _birthdate(a: Account, _c: AccountTypeCodes) -> str | None:
    return a.date_of_birth.isoformat() if a.date_of_birth else None


def _yyyymmdd(a: Account, _c: AccountTypeCodes) -> str | None:
    return a.date_of_birth.strftime("%Y%m%d") if a.date_of_birth else None


def _gender(a: Account, _c: AccountTypeCodes) -> str | None:
    return a.sex.value if a.sex else None


def _identifier(a: Account, _c: AccountTypeCodes) -> str:
    return a.identifier


def _kind_code(a: Account, c: AccountTypeCodes) -> str:
    return c.codes[a.kind]


@dataclass(frozen=True, slots=True)
class ClaimProfile:
    name: ClaimProfileName
    scopes: Mapping[str, tuple[str, ...]]  # scope -> claim names it releases
    claims: Mapping[str, Extractor]

    def claims_for(self, scopes: frozenset[str]) -> list[str]:
        out: list[str] = []
        for scope in sorted(scopes):
            for claim in self.scopes.get(scope, ()):
                if claim not in out:
                    out.append(claim)
        return out

    def consentable_scopes(self, scopes: frozenset[str]) -> frozenset[str]:
        """The requested scopes that release personal data (and so need consent)."""
        return frozenset(s for s in scopes if self.scopes.get(s))


PROFILES: Mapping[ClaimProfileName, ClaimProfile] = MappingProxyType({
    ClaimProfileName.STANDARD: ClaimProfile(
        ClaimProfileName.STANDARD,
        MappingProxyType({
            "profile": ("name", "birthdate", "gender"),
            "national_id": ("vn_personal_id", "vn_account_type"),
            "address": ("address",),
        }),
        MappingProxyType({
            "name": _name, "birthdate": _birthdate, "gender": _gender,
            "vn_personal_id": _identifier, "vn_account_type": _kind_code,
        }),
    ),
    ClaimProfileName.NATIONAL_PORTAL: ClaimProfile(
        ClaimProfileName.NATIONAL_PORTAL,
        MappingProxyType({
            "openid": ("SoDinhDanh", "HoVaTen", "NgayThangNamSinh", "LoaiTaiKhoan"),
            "profile": ("HoVaTen", "NgayThangNamSinh"),
            "national_id": ("SoDinhDanh", "LoaiTaiKhoan"),
        }),
        MappingProxyType({
            "SoDinhDanh": _identifier, "HoVaTen": _name, "NgayThangNamSinh": _yyyymmdd,
            "LoaiTaiKhoan": _kind_code,
        }),
    ),
})

# What the consent page says each claim is (Vietnamese first, then English).
CLAIM_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "name": ("Họ và tên", "Full name"),
    "HoVaTen": ("Họ và tên", "Full name"),
    "birthdate": ("Ngày sinh", "Date of birth"),
    "NgayThangNamSinh": ("Ngày sinh", "Date of birth"),
    "gender": ("Giới tính", "Sex"),
    "vn_personal_id": ("Số định danh cá nhân / mã số thuế", "Personal ID number / tax code"),
    "SoDinhDanh": ("Số định danh cá nhân / mã số thuế", "Personal ID number / tax code"),
    "vn_account_type": ("Loại tài khoản", "Account type"),
    "LoaiTaiKhoan": ("Loại tài khoản", "Account type"),
    "address": ("Nơi thường trú (từ thẻ căn cước)", "Place of residence (from the ID card)"),
})

# The trust framework named in verified_claims: level-2 electronic identification under Decree
# 69/2024/ND-CP, proven from the chip ID card.
TRUST_FRAMEWORK = "vn_decree_69_2024"
# Claims whose values the chip confirmed (the account was checked against DG13 when it was
# proven from the chip), per profile.
_CHIP_BACKED = frozenset({"name", "birthdate", "gender", "vn_personal_id", "SoDinhDanh", "HoVaTen",
                          "NgayThangNamSinh", "address"})


@dataclass(frozen=True, slots=True)
class ChipClaims:
    """What the chip ID card proved about the account (its latest valid chip evidence)."""

    claims: Mapping[str, str]  # as read from DG13 (vnid.icao9303.Dg13.claims)
    verified_at: dt.datetime
    document_expires: dt.date | None
    genuineness: str


def release_claims(account: Account, profile: ClaimProfileName, scopes: frozenset[str],
                   codes: AccountTypeCodes, chip: ChipClaims | None = None) -> dict[str, Any]:
    """The claims ``scopes`` release about ``account`` under ``profile`` (absent values omitted).

    With ``chip`` (the account's chip evidence), the released claims the chip confirmed are also
    given in ``verified_claims`` (OpenID Connect for Identity Assurance 1.0: the trust framework,
    the time, and the evidence: the ID card, checked by its cryptographic features), and the
    ``address`` scope releases the place of residence read from the chip. Nothing is released
    that the consented scopes do not cover."""
    chosen = PROFILES[profile]
    out: dict[str, Any] = {}
    for claim in chosen.claims_for(scopes):
        if claim == "address":
            residence = chip.claims.get("place_of_residence") if chip else None
            if residence:
                out[claim] = {"formatted": residence, "country": "VN"}
            continue
        value = chosen.claims[claim](account, codes)
        if value is not None:
            out[claim] = value
    if chip is not None:
        verified = {k: v for k, v in out.items() if k in _CHIP_BACKED}
        if verified:
            document: dict[str, Any] = {"type": "idcard", "issuer": {"country_code": "VNM"}}
            if chip.document_expires is not None:
                document["date_of_expiry"] = chip.document_expires.isoformat()
            when = chip.verified_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out["verified_claims"] = {
                "verification": {
                    "trust_framework": TRUST_FRAMEWORK, "time": when,
                    "evidence": [{"type": "document", "time": when,
                                  "check_details": [{"check_method": "vcrypt"}],
                                  "document_details": document}]},
                "claims": verified,
            }
    return out
