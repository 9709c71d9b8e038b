"""Apply the schema migrations to a database: ``alembic upgrade heads`` over every domain branch.

The branches live in ``migrations/versions/<domain>/``; each domain's first revision carries its
branch label and depends on the core branch, so domains evolve without merge revisions between them.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.storage.db import Database

__all__ = ["alembic_config", "current_heads", "pending", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


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
