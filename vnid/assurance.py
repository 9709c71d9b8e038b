"""Assurance levels (Decree 69/2024/NĐ-CP) and authentication method references (RFC 8176).

Level 1 is a self-registered account with basic identity data; level 2 was proven in person with the
chip ID card and face, and a level-2 *login* uses two factors. The levels form an ordered scale: a
request for level 1 is satisfied by a level-2 login, never the reverse.

On the wire the levels are the ``acr`` values the national portal already sends (``acr_values=LoA1``);
deployments may add aliases (URIs, for instance) through :class:`AcrNames`.

The ``amr`` values are those registered by RFC 8176 §2. A login is two-factor when its methods come
from at least two of the categories *knowledge* (password, PIN), *possession* (one-time code generator,
device key) and *inherence* (face, fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

from vnid.errors import InvalidInput

__all__ = [
    "AMR_CATEGORY",
    "AcrNames",
    "Amr",
    "AssuranceLevel",
    "FactorCategory",
    "amr_claim",
    "login_level",
]


class AssuranceLevel(IntEnum):
    """Ordered: ``LOA2 > LOA1``; comparisons express "at least"."""

    LOA1 = 1
    LOA2 = 2

    @property
    def acr(self) -> str:
        return f"LoA{int(self)}"


class Amr(StrEnum):
    """Authentication method reference values from RFC 8176 §2 (the subset this provider uses)."""

    PWD = "pwd"  # password
    OTP = "otp"  # one-time password (TOTP)
    SWK = "swk"  # proof of possession of a software-secured key (the app's device key)
    HWK = "hwk"  # proof of possession of a hardware-secured key (attested device key)
    PIN = "pin"  # PIN entered on the device that holds the key
    FACE = "face"  # facial recognition on the device
    FPT = "fpt"  # fingerprint on the device
    USER = "user"  # user presence on the device
    MFA = "mfa"  # multiple-factor authentication
    SMS = "sms"


class FactorCategory(StrEnum):
    KNOWLEDGE = "knowledge"
    POSSESSION = "possession"
    INHERENCE = "inherence"


AMR_CATEGORY: Mapping[Amr, FactorCategory] = MappingProxyType({
    Amr.PWD: FactorCategory.KNOWLEDGE,
    Amr.PIN: FactorCategory.KNOWLEDGE,
    Amr.OTP: FactorCategory.POSSESSION,
    Amr.SMS: FactorCategory.POSSESSION,
    Amr.SWK: FactorCategory.POSSESSION,
    Amr.HWK: FactorCategory.POSSESSION,
    Amr.FACE: FactorCategory.INHERENCE,
    Amr.FPT: FactorCategory.INHERENCE,
})


def login_level(methods: Iterable[Amr], account_level: AssuranceLevel) -> AssuranceLevel:
    """The level a login reaches: level 2 needs a level-2 account *and* two factor categories."""
    categories = {AMR_CATEGORY[m] for m in methods if m in AMR_CATEGORY}
    if account_level >= AssuranceLevel.LOA2 and len(categories) >= 2:
        return AssuranceLevel.LOA2
    return AssuranceLevel.LOA1


def amr_claim(methods: Iterable[Amr]) -> list[str]:
    """The ``amr`` claim: the methods used, plus ``mfa`` when they span two categories."""
    unique = sorted({Amr(m) for m in methods} - {Amr.MFA})
    categories = {AMR_CATEGORY[m] for m in unique if m in AMR_CATEGORY}
    out = [m.value for m in unique]
    if len(categories) >= 2:
        out.append(Amr.MFA.value)
    return out


@dataclass(frozen=True, slots=True)
class AcrNames:
    """Wire names of the levels. ``LoA1``/``LoA2`` are always understood; ``aliases`` adds more
    names per level (e.g. a URI), and ``emit`` chooses what goes into the ``acr`` claim."""

    aliases: Mapping[str, AssuranceLevel] = field(default_factory=dict)
    emit: Mapping[AssuranceLevel, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> AcrNames:
        unknown = set(data) - {"aliases", "emit"}
        if unknown:
            raise InvalidInput(f"unknown acr setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        aliases = {str(k): cls._level(v) for k, v in dict(data.get("aliases", {})).items()}
        emit = {cls._level(k): str(v) for k, v in dict(data.get("emit", {})).items()}
        return cls(aliases=MappingProxyType(aliases), emit=MappingProxyType(emit))

    @staticmethod
    def _level(value: object) -> AssuranceLevel:
        text = str(value)
        for level in AssuranceLevel:
            if text in (level.acr, str(int(level)), level.name):
                return level
        raise InvalidInput(f"unknown assurance level {text!r}", reason="INVALID_SETTING")

    def parse(self, value: str) -> AssuranceLevel | None:
        """The level an ``acr`` value names, or ``None`` for a value this provider does not know."""
        for level in AssuranceLevel:
            if value == level.acr:
                return level
        return self.aliases.get(value)

    def name(self, level: AssuranceLevel) -> str:
        return self.emit.get(level, level.acr)

    def supported(self) -> list[str]:
        names = {level.acr for level in AssuranceLevel} | set(self.aliases)
        names |= set(self.emit.values())
        return sorted(names)

    def minimum(self, acr_values: str) -> AssuranceLevel | None:
        """The lowest level among the space-separated ``acr_values`` this provider knows.

        ``acr_values`` lists acceptable values in order of preference (OIDC Core §3.1.2.1); every one
        of them is acceptable, so the least demanding known value is what must be met. Unknown values
        are ignored; if none is known the answer is ``None``.
        """
        levels = [lvl for v in acr_values.split() if (lvl := self.parse(v)) is not None]
        return min(levels) if levels else None
