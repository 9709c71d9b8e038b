"""The authenticated caller of a gRPC method, and the permissions table that grants it scopes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from server.config import CallerPermission
from server.errors import PermissionDenied

__all__ = ["ALL_PROVINCES", "AuthMethod", "Caller", "PermissionTable"]

ALL_PROVINCES = "*"


class AuthMethod(StrEnum):
    MUTUAL_TLS = "mtls"
    BEARER_TOKEN = "bearer"
    PLAINTEXT_DEVELOPMENT = "plaintext-dev"


@dataclass(frozen=True, slots=True)
class Caller:
    display_name: str
    agency_code: str
    province_code: str
    scopes: frozenset[str]
    provinces: frozenset[str]
    method: AuthMethod
    certificate_subject: str = ""
    certificate_sha256: str = ""
    certificate_not_after: dt.datetime | None = None

    @property
    def audit_name(self) -> str:
        return f"{self.agency_code}/{self.display_name}"

    def has_scopes(self, required: Iterable[str]) -> bool:
        return all(s in self.scopes for s in required)

    def may_act_in(self, province_code: str) -> bool:
        return ALL_PROVINCES in self.provinces or province_code in self.provinces

    def require_province(self, province_code: str) -> None:
        """Raise PERMISSION_DENIED unless the caller may act in ``province_code``."""
        if not self.may_act_in(province_code):
            raise PermissionDenied(
                "the caller may not act in this province",
                reason="OUT_OF_JURISDICTION",
                metadata={"province_code": province_code},
            )


class PermissionTable:
    """Maps (agency code, system name) to scopes and provinces, from ``[[auth.callers]]``.

    A row with a ``name`` is more specific than one without; the most specific matching row wins.
    A caller that matches no row is still authenticated but holds no scope and no province.
    """

    def __init__(self, rows: Iterable[CallerPermission]) -> None:
        self._exact: dict[tuple[str, str], CallerPermission] = {}
        self._agency: dict[str, CallerPermission] = {}
        for row in rows:
            key = (row.agency_code, row.name)
            if row.name:
                if key in self._exact:
                    raise ValueError(f"duplicate permissions row for {row.agency_code}/{row.name}")
                self._exact[key] = row
            else:
                if row.agency_code in self._agency:
                    raise ValueError(f"duplicate permissions row for agency {row.agency_code}")
                self._agency[row.agency_code] = row

    def lookup(self, agency_code: str, name: str) -> tuple[frozenset[str], frozenset[str]]:
        row = self._exact.get((agency_code, name)) or self._agency.get(agency_code)
        if row is None:
            return frozenset(), frozenset()
        return frozenset(row.scopes), frozenset(row.provinces)

    def row_for_agency(self, agency_code: str) -> CallerPermission | None:
        return self._agency.get(agency_code) or next(
            (r for (a, _), r in self._exact.items() if a == agency_code), None
        )
