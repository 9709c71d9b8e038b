"""Fees and charges: the fee catalogue, payments over VietQR, the national payment platform and
gateways, a double-entry ledger, signed e-receipts and reconciliation.

Subpackages: :mod:`payments.fees`, :mod:`payments.payments`, :mod:`payments.channels`,
:mod:`payments.ledger`, :mod:`payments.receipts`, :mod:`payments.reconcile`; money and time
helpers in :mod:`payments.money`, collection accounts in :mod:`payments.accounts`, outgoing
webhooks in :mod:`payments.webhooks`. The names below are the most used of them.
"""

from payments.accounts import AccountKind, CollectionAccount
from payments.errors import PaymentsError
from payments.fees import FeeCatalogue, FeeKind, Quote, load_catalogue_csv, load_catalogue_yaml, quote
from payments.ledger import Account, LedgerTransaction, trial_balance
from payments.money import amount_in_words, check_amount, format_vnd, transliterate
from payments.payments import Payer, Payment, PaymentState
from payments.receipts import ReceiptData, XmlSigner
from payments.reconcile import parse_camt053, reconcile

__all__ = [
    "Account",
    "AccountKind",
    "CollectionAccount",
    "FeeCatalogue",
    "FeeKind",
    "LedgerTransaction",
    "Payer",
    "Payment",
    "PaymentState",
    "PaymentsError",
    "Quote",
    "ReceiptData",
    "XmlSigner",
    "amount_in_words",
    "check_amount",
    "format_vnd",
    "load_catalogue_csv",
    "load_catalogue_yaml",
    "parse_camt053",
    "quote",
    "reconcile",
    "transliterate",
    "trial_balance",
]
