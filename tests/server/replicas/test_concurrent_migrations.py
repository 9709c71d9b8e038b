"""Replicas started together all migrate the same empty PostgreSQL database, and all succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import text

from server.storage import migrate
from server.storage.db import Database
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki
from tests.support.server import ROOT, server_config_dict

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}


def test_several_migrate_commands_at_once_on_an_empty_database_all_succeed(
        pki: TestPki, tmp_path: Path, postgres_templates: PostgresTemplates) -> None:
    url = postgres_templates.new_empty_database()
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps(server_config_dict(pki, tmp_path, url)), encoding="utf-8")
    # Started together: each process spends ~1 s importing before it reaches the database, so they
    # arrive at the (empty) alembic_version within milliseconds of each other.
    procs = [subprocess.Popen([sys.executable, "-m", "server", "--config", str(config), "migrate"],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, out + err
        assert "database is at" in out
    db = Database(url)
    try:
        assert migrate.pending(db) == set()
        with db.read() as s:  # one row per branch head, nothing twice
            versions = [r[0] for r in s.execute(text("SELECT version_num FROM alembic_version"))]
        assert sorted(versions) == sorted(set(versions)) and versions
    finally:
        db.dispose()
