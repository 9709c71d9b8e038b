"""Reconciliation for finance units: statements (camt.053, bank CSV), channel lists, matching,
continuity, and reports."""

from payments.reconcile.camt053 import (
    CAMT053_NAMESPACE,
    Statement,
    StatementLine,
    parse_camt053,
    write_camt053,
)
from payments.reconcile.csvfiles import (
    BankCsvProfile,
    ChannelRecord,
    parse_bank_csv,
    parse_channel_list,
)
from payments.reconcile.matching import (
    ChannelComparison,
    ExpectedPayment,
    MatchMethod,
    Outcome,
    ReconciliationItem,
    ReconciliationResult,
    check_continuity,
    compare_channel_list,
    reconcile,
)
from payments.reconcile.reports import (
    ReportBounds,
    report_csv,
    report_pdf,
    report_xlsx,
    summarise,
)

__all__ = [
    "CAMT053_NAMESPACE",
    "BankCsvProfile",
    "ChannelComparison",
    "ChannelRecord",
    "ExpectedPayment",
    "MatchMethod",
    "Outcome",
    "ReconciliationItem",
    "ReconciliationResult",
    "ReportBounds",
    "Statement",
    "StatementLine",
    "check_continuity",
    "compare_channel_list",
    "parse_bank_csv",
    "parse_camt053",
    "parse_channel_list",
    "reconcile",
    "report_csv",
    "report_pdf",
    "report_xlsx",
    "summarise",
    "write_camt053",
]
