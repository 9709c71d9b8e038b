"""Collection accounts: where an agency's fees are paid to.

Every collecting agency registers one account. Usually it is an account at a commercial bank
identified on NAPAS 247 by the bank's 6-digit BIN (970436 Vietcombank, 970415 VietinBank, ...);
for revenue that goes straight to the state budget it is the State Treasury (Kho bạc Nhà nước)
collection account held at a bank, and the agency is further identified by its budget-relationship
unit code (mã ĐVQHNS, 7 digits) and the treasury office code (4 digits), which the remittance text
must carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from payments.errors import InvalidAccount
from payments.money import transliterate

__all__ = ["AccountKind", "CollectionAccount"]

_BIN = re.compile(r"^9\d{5}$")
_ACCOUNT = re.compile(r"^[0-9A-Z]{1,19}$")
_AGENCY = re.compile(r"^(?:\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}|[A-Z0-9]+(?:\.[A-Z0-9]+)*)$")


class AccountKind(StrEnum):
    """Where a collection account is held: a commercial bank or the State Treasury (Kho bạc Nhà nước)."""
    BANK = "bank"
    STATE_TREASURY = "state_treasury"


@dataclass(frozen=True, slots=True)
class CollectionAccount:
    """An agency's account that receives fees and charges: the bank's BIN (NAPAS) and account number, or a
    State Treasury account with its office code."""
    agency_code: str
    bank_bin: str
    account_number: str
    account_name: str
    kind: AccountKind = AccountKind.BANK
    treasury_office_code: str = ""  # mã KBNN (State Treasury case)
    budget_unit_code: str = ""  # mã ĐVQHNS (State Treasury case)

    def __post_init__(self) -> None:
        if not _AGENCY.fullmatch(self.agency_code) or len(self.agency_code) > 35:
            raise InvalidAccount("agency code is malformed", metadata={"field": "agency_code"})
        if not _BIN.fullmatch(self.bank_bin):
            raise InvalidAccount("bank BIN must be 6 digits starting with 9",
                                 metadata={"field": "bank_bin"})
        if not _ACCOUNT.fullmatch(self.account_number):
            raise InvalidAccount("account number must be 1-19 digits or capital letters",
                                 metadata={"field": "account_number"})
        if not self.account_name.strip() or len(self.account_name) > 200:
            raise InvalidAccount("account name is required", metadata={"field": "account_name"})
        if self.kind is AccountKind.STATE_TREASURY:
            if not re.fullmatch(r"\d{4}", self.treasury_office_code):
                raise InvalidAccount("a State Treasury account needs the 4-digit treasury "
                                     "office code", metadata={"field": "treasury_office_code"})
            if not re.fullmatch(r"\d{7}", self.budget_unit_code):
                raise InvalidAccount("a State Treasury account needs the 7-digit budget unit "
                                     "code", metadata={"field": "budget_unit_code"})
        elif self.treasury_office_code or self.budget_unit_code:
            raise InvalidAccount("treasury codes belong to State Treasury accounts only")

    @property
    def ascii_name(self) -> str:
        """The account name as banks show it: upper-case ASCII."""
        return transliterate(self.account_name).upper()

    def remittance_prefix(self) -> str:
        """What the transfer text must start with so the treasury can route the money:
        ``KBNN<office> DVQHNS<unit>`` for a treasury account, nothing for a bank account."""
        if self.kind is AccountKind.STATE_TREASURY:
            return f"KBNN{self.treasury_office_code} DVQHNS{self.budget_unit_code}"
        return ""
