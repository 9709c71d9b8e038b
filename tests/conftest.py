"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.storage.db import Database
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from tests.support.softhsm import SoftHsm

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_templates() -> Iterator[PostgresTemplates]:
    templates = PostgresTemplates()
    yield templates
    templates.close()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, postgres_templates: PostgresTemplates,
       tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated database; every test using it runs on SQLite and on PostgreSQL."""
    with fresh_database(request.param, postgres_templates, tmp_path) as database:
        yield database


@pytest.fixture
def sqlite_db(postgres_templates: PostgresTemplates, tmp_path: Path) -> Iterator[Database]:
    with fresh_database("sqlite", postgres_templates, tmp_path) as database:
        yield database


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return TestPki()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """The session's SoftHSM2 tokens; tests keep apart with ``unique_label()`` key labels."""
    return SoftHsm(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def probe_service() -> Iterator[None]:
    """Adds the test-only ProbeService to servers started while the fixture is active."""
    from server.modules import MODULES
    from tests.support.probe import probe_module

    MODULES.append(probe_module)
    yield
    MODULES.remove(probe_module)
