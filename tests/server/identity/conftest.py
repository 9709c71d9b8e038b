"""Fixtures of the identity tests: one provider per test module on SQLite (attacks and flows), and
per test on both databases where storage matters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.identity.harness import Browser, Citizen, IdentityServer
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki


@pytest.fixture(scope="module")
def idp(pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False)) as server:
            yield server


@pytest.fixture(scope="module")
def citizen(idp: IdentityServer) -> Citizen:
    return idp.citizen("079084000123")


@pytest.fixture
def browser(idp: IdentityServer) -> Iterator[Browser]:
    b = Browser(idp.issuer)
    yield b
    b.close()
