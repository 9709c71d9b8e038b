"""Every table, imported in one place so that migrations and checks see the whole schema.

A domain adding tables adds its module to the import list below.
"""

from server.storage import (  # noqa: F401 - imported for their tables
    audit,
    ca,
    documents,
    identity,
    jobs,
    payments,
)
from server.storage.base import Base

metadata = Base.metadata

__all__ = ["metadata"]
