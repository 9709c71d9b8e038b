"""Administrative units of Vietnam after the 1 July 2025 reorganisation.

Decision 19/2025/QĐ-TTg lists the units and their codes: provinces have 2 digits, communes 5 digits.
The 34 provinces that exist since 1 July 2025 keep the statistics code of the province they continue.
Pre-merger province codes remain meaningful (ID numbers, certificates and historical dossiers name them),
so every former province is kept with the code of the province it merged into.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from vnid.errors import InvalidInput

__all__ = [
    "FORMER_PROVINCES",
    "PROVINCES",
    "Province",
    "province",
    "successor_province",
    "validate_commune_code",
    "validate_province_code",
]


@dataclass(frozen=True, slots=True)
class Province:
    """A province-level unit: its code and name."""
    code: str
    name: str


PROVINCES: MappingProxyType[str, Province] = MappingProxyType(
    {
        code: Province(code, name)
        for code, name in [
            ("01", "Hà Nội"), ("04", "Cao Bằng"), ("08", "Tuyên Quang"), ("11", "Điện Biên"),
            ("12", "Lai Châu"), ("14", "Sơn La"), ("15", "Lào Cai"), ("19", "Thái Nguyên"),
            ("20", "Lạng Sơn"), ("22", "Quảng Ninh"), ("24", "Bắc Ninh"), ("25", "Phú Thọ"),
            ("31", "Hải Phòng"), ("33", "Hưng Yên"), ("37", "Ninh Bình"), ("38", "Thanh Hóa"),
            ("40", "Nghệ An"), ("42", "Hà Tĩnh"), ("44", "Quảng Trị"), ("46", "Huế"),
            ("48", "Đà Nẵng"), ("51", "Quảng Ngãi"), ("52", "Gia Lai"), ("56", "Khánh Hòa"),
            ("66", "Đắk Lắk"), ("68", "Lâm Đồng"), ("75", "Đồng Nai"), ("79", "TP. Hồ Chí Minh"),
            ("80", "Tây Ninh"), ("82", "Đồng Tháp"), ("86", "Vĩnh Long"), ("91", "An Giang"),
            ("92", "Cần Thơ"), ("96", "Cà Mau"),
        ]
    }
)

# The 63 provinces in force until 30 June 2025: former code -> (former name, code of the province it
# belongs to since 1 July 2025), from Resolution 202/2025/QH15. A former code can equal a current code
# that now names a different, larger province (former 24 Bắc Giang and current 24 Bắc Ninh), so a code
# read from an old document must be looked up here, never in PROVINCES.
FORMER_PROVINCES: MappingProxyType[str, tuple[str, str]] = MappingProxyType(
    {
        "01": ("Hà Nội", "01"), "02": ("Hà Giang", "08"), "04": ("Cao Bằng", "04"),
        "06": ("Bắc Kạn", "19"), "08": ("Tuyên Quang", "08"), "10": ("Lào Cai", "15"),
        "11": ("Điện Biên", "11"), "12": ("Lai Châu", "12"), "14": ("Sơn La", "14"),
        "15": ("Yên Bái", "15"), "17": ("Hòa Bình", "25"), "19": ("Thái Nguyên", "19"),
        "20": ("Lạng Sơn", "20"), "22": ("Quảng Ninh", "22"), "24": ("Bắc Giang", "24"),
        "25": ("Phú Thọ", "25"), "26": ("Vĩnh Phúc", "25"), "27": ("Bắc Ninh", "24"),
        "30": ("Hải Dương", "31"), "31": ("Hải Phòng", "31"), "33": ("Hưng Yên", "33"),
        "34": ("Thái Bình", "33"), "35": ("Hà Nam", "37"), "36": ("Nam Định", "37"),
        "37": ("Ninh Bình", "37"), "38": ("Thanh Hóa", "38"), "40": ("Nghệ An", "40"),
        "42": ("Hà Tĩnh", "42"), "44": ("Quảng Bình", "44"), "45": ("Quảng Trị", "44"),
        "46": ("Thừa Thiên Huế", "46"), "48": ("Đà Nẵng", "48"), "49": ("Quảng Nam", "48"),
        "51": ("Quảng Ngãi", "51"), "52": ("Bình Định", "52"), "54": ("Phú Yên", "66"),
        "56": ("Khánh Hòa", "56"), "58": ("Ninh Thuận", "56"), "60": ("Bình Thuận", "68"),
        "62": ("Kon Tum", "51"), "64": ("Gia Lai", "52"), "66": ("Đắk Lắk", "66"),
        "67": ("Đắk Nông", "68"), "68": ("Lâm Đồng", "68"), "70": ("Bình Phước", "75"),
        "72": ("Tây Ninh", "80"), "74": ("Bình Dương", "79"), "75": ("Đồng Nai", "75"),
        "77": ("Bà Rịa - Vũng Tàu", "79"), "79": ("TP. Hồ Chí Minh", "79"), "80": ("Long An", "80"),
        "82": ("Tiền Giang", "82"), "83": ("Bến Tre", "86"), "84": ("Trà Vinh", "86"),
        "86": ("Vĩnh Long", "86"), "87": ("Đồng Tháp", "82"), "89": ("An Giang", "91"),
        "91": ("Kiên Giang", "91"), "92": ("Cần Thơ", "92"), "93": ("Hậu Giang", "92"),
        "94": ("Sóc Trăng", "92"), "95": ("Bạc Liêu", "96"), "96": ("Cà Mau", "96"),
    }
)

_PROVINCE_RE = re.compile(r"^\d{2}$")
_COMMUNE_RE = re.compile(r"^\d{5}$")


def validate_province_code(code: str) -> str:
    """Return ``code`` if it names a province in force since 1 July 2025, else raise."""
    if not _PROVINCE_RE.fullmatch(code) or code not in PROVINCES:
        raise InvalidInput(
            "province code must be one of the 34 two-digit codes of Decision 19/2025",
            reason="INVALID_PROVINCE_CODE",
            metadata={"province_code": code[:8]},
        )
    return code


def validate_commune_code(code: str) -> str:
    """Return ``code`` if it has the 5-digit commune-code form, else raise."""
    if not _COMMUNE_RE.fullmatch(code):
        raise InvalidInput("commune code must be 5 digits", reason="INVALID_COMMUNE_CODE")
    return code


def province(code: str) -> Province:
    return PROVINCES[validate_province_code(code)]


def successor_province(former_code: str) -> Province:
    """The province in force since 1 July 2025 that a pre-merger province belongs to."""
    former = FORMER_PROVINCES.get(former_code)
    if former is None:
        raise InvalidInput("unknown province code", reason="INVALID_PROVINCE_CODE")
    return PROVINCES[former[1]]
