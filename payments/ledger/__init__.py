"""Double-entry, append-only ledger in integer đồng."""

from payments.ledger.core import (
    ACCOUNT_KINDS,
    Account,
    LedgerTransaction,
    Posting,
    TrialBalance,
    reverse,
    transaction,
    trial_balance,
)

__all__ = [
    "ACCOUNT_KINDS",
    "Account",
    "LedgerTransaction",
    "Posting",
    "TrialBalance",
    "reverse",
    "transaction",
    "trial_balance",
]
