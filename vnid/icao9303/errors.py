"""Errors of chip verification: each check that fails has its own reason."""

from __future__ import annotations

from vnid.errors import InvalidInput

__all__ = ["ChipError"]


class ChipError(InvalidInput):
    """The chip's data did not verify. ``reason`` names the check that failed:

    ``CHIP_MALFORMED`` (a data group or the SOD cannot be decoded), ``CHIP_DATA_GROUP_ALTERED``
    (a data group's hash differs from the SOD's), ``CHIP_DATA_GROUP_MISSING``, ``CHIP_SOD_INVALID``
    (the SOD's signature does not verify), ``CHIP_DS_UNTRUSTED`` (the document signer does not chain
    to a trusted CSCA), ``CHIP_DS_EXPIRED``, ``CHIP_DS_REVOKED``, ``CHIP_AA_FAILED`` (the chip's
    answer to the challenge is wrong: a copied chip), ``CHIP_DATA_MISMATCH`` (the MRZ, DG13 and the
    account disagree).
    """

    reason = "CHIP_MALFORMED"
