"""Every table, imported in one place so that migrations and checks see the whole schema.

A domain adding tables adds its module to the import list below.
"""

from server.storage import audit  # noqa: F401
from server.storage import payments as payments_tables  # noqa: F401
from server.storage.base import Base

metadata = Base.metadata

__all__ = ["metadata"]
