"""Verify what a citizen app read from a chip ID card: the SOD and its data groups (passive
authentication), the chip's genuineness (active authentication over the verifier's challenge, chip
authentication as reported by the app), and the consistency of the MRZ, DG13 and the account."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives.serialization import Encoding

from vnid.icao9303.aa import verify_active_authentication
from vnid.icao9303.errors import ChipError
from vnid.icao9303.lds import Dg13, chip_authentication_key, parse_dg1, parse_dg13, parse_dg15
from vnid.icao9303.mrz import Td1
from vnid.icao9303.sod import CscaTrustList, verify_sod
from vnid.personal_id import InvalidPersonalId, Sex, check_personal_id

__all__ = ["ChipEvidence", "Genuineness", "check_consistency", "verify_chip"]


class Genuineness(StrEnum):
    """How the chip was shown to be the original, not a copy of its data."""

    ACTIVE_AUTHENTICATION = "active_authentication"  # the server checked the chip's answer
    CHIP_AUTHENTICATION_REPORTED = "chip_authentication_reported"  # the app says it ran CA
    NONE = "none"  # no genuineness check: the data could come from a copy


@dataclass(frozen=True, slots=True)
class ChipEvidence:
    """What a chip verification proved, kept as level-2 proofing evidence."""

    mrz: Td1
    personal_data: Dg13
    genuineness: Genuineness
    strength: str  # "strong" (passive + active authentication) or "weak" (passive only)
    ds_certificate: bytes  # DER
    csca_subject: str
    hash_algorithm: str
    data_group_hashes: dict[int, str]  # hex, of what was presented
    verified_at: dt.datetime
    notes: tuple[str, ...] = field(default=())

    @property
    def ds_fingerprint(self) -> str:
        return hashlib.sha256(self.ds_certificate).hexdigest()


def verify_chip(*, sod: bytes, data_groups: Mapping[int, bytes], trust: CscaTrustList,
                at: dt.datetime, challenge: bytes | None = None,
                aa_signature: bytes | None = None,
                chip_authentication_reported: bool = False) -> ChipEvidence:
    """Passive authentication of the data groups, then the chip's genuineness.

    DG1 and DG13 are required. When DG15 is presented, the chip must answer ``challenge`` (the
    server's nonce for this attempt) with ``aa_signature``: a wrong or missing answer is
    ``CHIP_AA_FAILED``. Without DG15 the evidence is weaker: chip authentication reported by the
    app is recorded as the app's statement, and no genuineness check at all is recorded as such.
    """
    verified = verify_sod(sod, trust, data_groups, at=at, required=(1, 13))
    mrz = parse_dg1(data_groups[1])
    personal = parse_dg13(data_groups[13])
    notes: list[str] = []
    if 15 in data_groups:
        if challenge is None or not aa_signature:
            raise ChipError("the chip holds an active-authentication key but no answer to the "
                            "challenge was presented", reason="CHIP_AA_FAILED")
        verify_active_authentication(parse_dg15(data_groups[15]), challenge, aa_signature)
        genuineness, strength = Genuineness.ACTIVE_AUTHENTICATION, "strong"
    elif chip_authentication_reported and 14 in data_groups \
            and chip_authentication_key(data_groups[14]) is not None:
        genuineness, strength = Genuineness.CHIP_AUTHENTICATION_REPORTED, "weak"
        notes.append("chip authentication was run by the app; the server did not check it")
    else:
        genuineness, strength = Genuineness.NONE, "weak"
        notes.append("no genuineness check: the data may come from a copy of the chip")
    return ChipEvidence(
        mrz=mrz, personal_data=personal, genuineness=genuineness, strength=strength,
        ds_certificate=verified.ds_certificate.public_bytes(Encoding.DER),
        csca_subject=verified.csca_certificate.subject.rfc4514_string(),
        hash_algorithm=verified.lds.hash_algorithm,
        data_group_hashes={n: verified.lds.hashes[n].hex() for n in sorted(data_groups)},
        verified_at=at, notes=tuple(notes))


def _fold(name: str) -> str:
    return " ".join(name.replace("<", " ").upper().split())


def _ascii(name: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def check_consistency(evidence: ChipEvidence, *, personal_id: str, full_name: str,
                      date_of_birth: dt.date | None) -> None:
    """The MRZ, DG13 and the account agree on the personal ID number, name and date of birth,
    and the number passes the personal-ID checks. Raises ``CHIP_DATA_MISMATCH``."""
    data, mrz = evidence.personal_data, evidence.mrz

    def mismatch(what: str) -> ChipError:
        return ChipError(f"the chip's {what} does not match", reason="CHIP_DATA_MISMATCH",
                         metadata={"field": what})

    if data.personal_id != personal_id:
        raise mismatch("personal ID number (DG13 and account)")
    if mrz.personal_id is not None and mrz.personal_id != personal_id:
        raise mismatch("personal ID number (MRZ and DG13)")
    if not personal_id.endswith(mrz.document_number):
        raise mismatch("document number (MRZ)")
    if _fold(_ascii(data.full_name)) != _fold(_ascii(full_name)):
        raise mismatch("name (DG13 and account)")
    if _fold(_ascii(data.full_name)).replace(" ", "") != _fold(mrz.name).replace(" ", ""):
        raise mismatch("name (MRZ and DG13)")
    if data.date_of_birth is None or data.date_of_birth != mrz.date_of_birth:
        raise mismatch("date of birth (MRZ and DG13)")
    if date_of_birth is not None and date_of_birth != data.date_of_birth:
        raise mismatch("date of birth (DG13 and account)")
    sex = {"M": Sex.MALE, "F": Sex.FEMALE}.get(mrz.sex)
    if sex is not None:
        try:
            check_personal_id(personal_id, date_of_birth=data.date_of_birth, sex=sex)
        except InvalidPersonalId as exc:
            raise ChipError(f"the personal ID number contradicts the chip: {exc.message}",
                            reason="CHIP_DATA_MISMATCH") from None
