"""node @grpc/grpc-js (a gRPC implementation nobody here wrote) calls the server over mutual TLS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from server.storage.db import Database
from tests.support.pki import Issued, TestPki, pem
from tests.support.server import ROOT, running_server

NODE_DIR = ROOT / "tests" / "interop" / "node"


def node_call(target: str, pki: TestPki, client: Issued | None, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@grpc").exists():
        pytest.fail("node and the npm packages are required (scripts/dev.sh installs them)")
    root = tmp_path / "root.pem"
    root.write_bytes(pem(pki.root.cert))
    chain = key = "-"
    if client is not None:
        (tmp_path / "client.pem").write_bytes(client.chain_pem)
        (tmp_path / "client.key").write_bytes(client.key_pem)
        chain, key = str(tmp_path / "client.pem"), str(tmp_path / "client.key")
    done = subprocess.run(["node", "grpc_client.mjs", target, str(root), chain, key,
                           str(ROOT / "proto")], cwd=NODE_DIR, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_grpc_js_health_and_get_caller_over_mtls(pki: TestPki, tmp_path: Path,
                                                       sqlite_db: Database) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        out = await _in_thread(node_call, srv.target, pki, pki.hanoi, tmp_path)
    assert out["health"] == {"status": "SERVING"}
    assert out["caller"]["agency_code"] == "000.00.00.H26"
    assert out["caller"]["province_code"] == "01"
    assert out["caller"]["authentication_method"] == "MUTUAL_TLS"
    assert out["caller"]["scopes"] == ["identity.read"]


async def test_grpc_js_without_certificate_is_unauthenticated(pki: TestPki, tmp_path: Path,
                                                              sqlite_db: Database) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        out = await _in_thread(node_call, srv.target, pki, None, tmp_path)
    assert out["health"]["error"]["code"] == "UNAUTHENTICATED"
    assert out["caller"]["error"]["code"] == "UNAUTHENTICATED"


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    import asyncio

    return await asyncio.to_thread(fn, *args)
