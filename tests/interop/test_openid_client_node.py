"""node openid-client (a certified FAPI 2.0 relying party) logs in against our provider with PAR,
PKCE, DPoP and private_key_jwt, reads userinfo, refreshes and reads userinfo again."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.identity.harness import (
    Browser,
    Citizen,
    IdentityServer,
    callback_params,
    private_pem,
)
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki

NODE_DIR = Path(__file__).parent / "node"

pytestmark = pytest.mark.slow


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail("node and the npm packages are required (scripts/dev.sh installs them)")
    return node


@pytest.fixture(scope="module")
def idp(pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-node")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False)) as server:
            yield server


def test_openid_client_completes_fapi2_login(idp: IdentityServer, tmp_path: Path) -> None:
    citizen: Citizen = idp.citizen("079084000321")
    c = idp.registered["dvc-hcm"]
    key_file = tmp_path / "client-key.pem"
    key_file.write_bytes(private_pem(c.key))
    proc = subprocess.Popen(
        [_node(), str(NODE_DIR / "openid_client_fapi.mjs"), idp.issuer, c.client_id, c.kid,
         str(key_file), c.redirect_uri],
        cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    browser = Browser(idp.issuer)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = json.loads(proc.stdout.readline() or "{}")
        assert "authorize" in first, (first, proc.stderr.read() if proc.stderr else "")
        browser.go(first["authorize"])
        response = browser.login(citizen)
        params = callback_params(response)
        assert params["iss"] == idp.issuer
        proc.stdin.write(json.dumps({"callback": response.headers["location"]}) + "\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline() or "{}")
    finally:
        browser.close()
        proc.wait(30)
        if proc.stdin:
            proc.stdin.close()
        if proc.stdout:
            proc.stdout.close()
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert result.get("ok"), (result, stderr)
    assert result["token_type"].lower() == "dpop"
    assert result["refreshed_token_type"].lower() == "dpop"
    claims = result["claims"]
    assert claims["iss"] == idp.issuer and claims["aud"] == c.client_id
    assert claims["acr"] == "LoA2" and "mfa" in claims["amr"] and "auth_time" in claims
    assert result["userinfo"]["SoDinhDanh"] == "079084000321"
    assert result["userinfo_after_refresh"]["sub"] == claims["sub"]
    assert result["refresh_rotated"] is True
