"""The FAPI 2.0 login through the pages, with the relying-party library on the other side."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.server.identity.harness import Browser, Citizen, IdentityServer, callback_params
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgres)])
def idp(request: pytest.FixtureRequest, pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityServer]:
    """This module's flows run on both databases."""
    directory = tmp_path_factory.mktemp("idp-flow")
    with fresh_database(request.param, postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False)) as server:
            yield server


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_level2_login_with_password_and_totp(idp: IdentityServer, citizen: Citizen,
                                             browser: Browser) -> None:
    rp = idp.rp("dvc-hcm", acr_values="LoA2")
    url, pending = rp.start_login(now=now())
    browser.go(url)
    assert "Đăng nhập" in browser.page
    r = browser.login(citizen)
    tokens = rp.finish_login(callback_params(r), pending, now=now())
    assert tokens.id_claims["acr"] == "LoA2"
    assert tokens.id_claims["amr"] == ["otp", "pwd", "mfa"]
    info = rp.userinfo(tokens, now=now())
    assert info["SoDinhDanh"] == "079084000123"
    assert info["NgayThangNamSinh"] == "19840517"
    assert info["HoVaTen"] == citizen.name
    assert info["LoaiTaiKhoan"] == "1"
    refreshed = rp.refresh(tokens, now=now())
    assert refreshed.access_token != tokens.access_token
    assert rp.userinfo(refreshed, now=now())["sub"] == tokens.id_claims["sub"]
