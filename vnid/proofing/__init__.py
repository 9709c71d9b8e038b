"""Level-2 identity proofing from the chip ID card read by the citizen app."""

from vnid.proofing.chip import STATEMENT_TYPE, ChipPolicy, ChipProofing, Reverification

__all__ = ["STATEMENT_TYPE", "ChipPolicy", "ChipProofing", "Reverification"]
