"""Verification of the chip ID card (căn cước) read by the citizen app: ICAO 9303 parts 10, 11
and 12 (the logical data structure, passive and active authentication, the CSCA trust)."""

from vnid.icao9303.aa import verify_active_authentication
from vnid.icao9303.chip import ChipEvidence, Genuineness, check_consistency, verify_chip
from vnid.icao9303.errors import ChipError
from vnid.icao9303.lds import Dg13, parse_dg1, parse_dg13, parse_dg15
from vnid.icao9303.mrz import InvalidMrz, Td1, check_digit, parse_td1
from vnid.icao9303.sod import CscaTrustList, SodVerification, verify_sod

__all__ = [
    "ChipError",
    "ChipEvidence",
    "CscaTrustList",
    "Dg13",
    "Genuineness",
    "InvalidMrz",
    "SodVerification",
    "Td1",
    "check_consistency",
    "check_digit",
    "parse_dg1",
    "parse_dg13",
    "parse_dg15",
    "parse_td1",
    "verify_active_authentication",
    "verify_chip",
    "verify_sod",
]
