"""The fee catalogue (Law 97/2015/QH13 phí and lệ phí) as data, and quotes."""

from payments.fees.catalogue import (
    ALL_PROVINCES,
    FeeCatalogue,
    FeeItem,
    FeeKind,
    FeeLevel,
    Procedure,
    ProcedureCode,
    Quote,
    QuoteLine,
    Reduction,
    quote,
)
from payments.fees.loader import CSV_COLUMNS, load_catalogue_csv, load_catalogue_yaml

__all__ = [
    "ALL_PROVINCES",
    "CSV_COLUMNS",
    "FeeCatalogue",
    "FeeItem",
    "FeeKind",
    "FeeLevel",
    "Procedure",
    "ProcedureCode",
    "Quote",
    "QuoteLine",
    "Reduction",
    "load_catalogue_csv",
    "load_catalogue_yaml",
    "quote",
]
