"""Apply the schema migrations to a database: ``alembic upgrade heads`` over every domain branch.

The branches live in ``migrations/versions/<domain>/``; each domain's first revision carries its
branch label and depends on the core branch, so domains evolve without merge revisions between them.

Any number of replicas may migrate at once: on PostgreSQL the upgrade runs under a transaction-level
advisory lock (``pg_advisory_xact_lock``), so the first one applies the revisions and the others wait,
then find the schema at its heads and do nothing. Alembic's DDL is transactional on PostgreSQL, so the
lock is released exactly when the revisions are committed (or rolled back). SQLite serialises writers
itself.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from server.storage.db import Database

__all__ = ["MIGRATION_LOCK_KEY", "alembic_config", "current_heads", "pending", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
# The advisory lock that serialises migrations: a fixed 64-bit key (the bytes of "vnegovMG").
MIGRATION_LOCK_KEY = int.from_bytes(b"vnegovMG", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    versions = sorted(p for p in (MIGRATIONS / "versions").iterdir() if p.is_dir()
                      and not p.name.startswith("__"))
    cfg.set_main_option("version_locations", " ".join(str(p) for p in versions))
    cfg.set_main_option("path_separator", "space")
    return cfg


def upgrade(db: Database, target: str = "heads") -> None:
    cfg = alembic_config()
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends: concurrent migrators queue here, and each reads
            # alembic_version only after the one before it has committed.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, target)


def current_heads(db: Database) -> set[str]:
    with db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def pending(db: Database) -> set[str]:
    """Head revisions that the database has not reached yet (empty when up to date)."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    current = current_heads(db)
    reached = set()
    for rev in current:
        reached |= {r.revision for r in script.iterate_revisions(rev, "base")}
    return heads - reached
