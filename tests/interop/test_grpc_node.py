"""node @grpc/grpc-js (a gRPC implementation nobody here wrote) calls the server over mutual TLS."""

from __future__ import annotations

import asyncio
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


async def test_grpc_js_verifies_receipts_with_the_published_contract(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    """A node client reads VerifyReceipt's answers from the .proto files alone: a registered
    receipt is valid with its register and seal status and its registration time, a cancelled
    one is refused with its reason, garbage is an answer, not an error."""
    from tests.server.ca.conftest import CaServerFactory
    from tests.server.payments.conftest import make_world
    from tests.server.payments.test_server import payments_section

    world = make_world(sqlite_db, pki)
    kept, cancelled = (world.receipts.issue_for_payment(
        world.paid_payment(request_id=f"node-receipt-{i}", at=pki.now), now=pki.now)[0]
        for i in range(2))
    world.receipts.cancel(cancelled, reason="nhầm", actor="test", request_id="node-cancel", now=pki.now)
    files = []
    for name, xml in (("kept", world.receipts.get(kept).xml),
                      ("cancelled", world.receipts.get(cancelled).xml),
                      ("garbage", b"\x00 not a receipt")):
        files.append(tmp_path / f"{name}.xml")
        files[-1].write_bytes(xml)
    (tmp_path / "roots.pem").write_bytes(pem(pki.root.cert))
    port, extra = CaServerFactory(pki, tmp_path, sqlite_db.url.render_as_string(False)).config()
    extra["auth"]["callers"] = [
        {"agency_code": "000.00.00.H26", "scopes": ["payments.receipts"], "provinces": ["01"]}]
    extra["payments"] = {**payments_section(pki, tmp_path), "workers_enabled": False,
                         "receipt_qr_roots_file": str(tmp_path / "roots.pem")}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              http_port=port, extra=extra) as server:
        if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@grpc").exists():
            pytest.fail("node and the npm packages are required (scripts/dev.sh installs them)")
        (tmp_path / "root.pem").write_bytes(pem(pki.root.cert))
        (tmp_path / "client.pem").write_bytes(pki.hanoi.chain_pem)
        (tmp_path / "client.key").write_bytes(pki.hanoi.key_pem)
        done = await asyncio.to_thread(
            subprocess.run, ["node", "verify_receipt.mjs", server.target, str(tmp_path / "root.pem"),
             str(tmp_path / "client.pem"), str(tmp_path / "client.key"), str(ROOT / "proto"),
             *map(str, files)], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    valid, refused, garbage = json.loads(done.stdout)
    data = world.receipts.get(kept).data
    assert valid["valid"] is True and valid["register_status"] == "VALID", valid
    assert (valid["number"], valid["total"]) == (f"{data.number:07d}", str(data.total))
    assert valid["seal_status"] == "UNKNOWN"  # the seal was issued outside the CA's database
    assert int(valid["validation_time"]["seconds"]) == int(pki.now.timestamp())
    assert (refused["valid"], refused["reason"]) == (False, "RECEIPT_CANCELLED"), refused
    assert (garbage["valid"], garbage["reason"]) == (False, "NOT_A_RECEIPT"), garbage
