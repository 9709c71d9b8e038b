"""Signature appearances for official documents (Decree 30/2020/NĐ-CP, Appendix I)."""

from signing.stamp.decree30 import (
    MM,
    PersonLayout,
    agency_seal,
    electronic_copy,
    electronic_copy_box,
    page_box,
    person_layout,
    person_signature,
    seal_box,
)
from signing.stamp.fonts import EmbeddedFont

__all__ = [
    "MM",
    "EmbeddedFont",
    "PersonLayout",
    "agency_seal",
    "electronic_copy",
    "electronic_copy_box",
    "page_box",
    "person_layout",
    "person_signature",
    "seal_box",
]
