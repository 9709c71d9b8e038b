"""Signature appearances for official documents (Decree 30/2020/NĐ-CP, Appendix I)."""

from signing.stamp.decree30 import (
    AUTHORITY_PREFIXES,
    MM,
    PersonLayout,
    agency_seal,
    authority_title,
    electronic_copy,
    electronic_copy_box,
    page_box,
    person_layout,
    person_signature,
    seal_box,
    title_lines,
)
from signing.stamp.fonts import EmbeddedFont

__all__ = [
    "AUTHORITY_PREFIXES",
    "MM",
    "EmbeddedFont",
    "PersonLayout",
    "agency_seal",
    "authority_title",
    "electronic_copy",
    "electronic_copy_box",
    "page_box",
    "person_layout",
    "person_signature",
    "seal_box",
    "title_lines",
]
