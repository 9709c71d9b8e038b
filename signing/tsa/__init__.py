"""RFC 3161 time stamps: the time-stamping authority behind the server's ``/pki/tsa`` endpoint."""

from signing.tsa.rfc3161 import (
    FailureInfo,
    SerialSource,
    TimeCounterSerials,
    TimeStampAnswer,
    TimeStampAuthority,
    TsaSettings,
)

__all__ = [
    "FailureInfo",
    "SerialSource",
    "TimeCounterSerials",
    "TimeStampAnswer",
    "TimeStampAuthority",
    "TsaSettings",
]
