"""The server as a real process: start-up from the CLI, graceful SIGTERM, audit verification."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from sqlalchemy import update

from server.storage.audit import AuditEventRow
from server.storage.db import Database
from tests.support.pki import TestPki, pem
from tests.support.probe import probe_pb2, probe_pb2_grpc
from tests.support.server import ROOT, ServerProcess, free_port, server_config_dict
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}


def vnegov(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd or ROOT, timeout=120)


def channel(pki: TestPki, port: int) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem, pki.hcm.chain_pem)
    return grpc.aio.secure_channel(f"localhost:{port}", creds)


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_sigterm_lets_inflight_calls_finish_refuses_new_ones_and_exits_zero(
        pki: TestPki, tmp_path: Path, sqlite_db: Database, event_loop: str) -> None:
    config = server_config_dict(pki, tmp_path, sqlite_db.url.render_as_string(False),
                                grpc_port=free_port(), http_port=free_port(), grace=20,
                                extra={"logging": {"level": "INFO"},
                                       "server": {"event_loop": event_loop}})
    proc = ServerProcess(config, tmp_path, module="tests.support.probe")
    proc.start()
    try:
        async with channel(pki, proc.grpc_port) as ch:
            probe = probe_pb2_grpc.ProbeServiceStub(ch)
            await probe.Sleep(probe_pb2.SleepRequest(seconds=0))  # connection is up
            slow = asyncio.ensure_future(probe.Sleep(
                probe_pb2.SleepRequest(seconds=3),
                metadata=(("x-request-id", "slow-call-during-sigterm"),)))
            await asyncio.sleep(0.5)
            proc.signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            # New calls, on this connection or a new one, are refused...
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await probe.Sleep(probe_pb2.SleepRequest(seconds=0), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            async with channel(pki, proc.grpc_port) as fresh:
                with pytest.raises(grpc.aio.AioRpcError) as refused_new:
                    await probe_pb2_grpc.ProbeServiceStub(fresh).Sleep(
                        probe_pb2.SleepRequest(seconds=0), timeout=5)
                assert refused_new.value.code() == grpc.StatusCode.UNAVAILABLE
            # ...while the call in flight completes normally.
            result = await slow
            assert result.slept == 3
        assert await proc.wait(30) == 0
        logs = proc.logs()
        assert '"shutting down"' in logs and '"server stopped"' in logs
        # Structured logs: every line is one JSON object; each call's line has its request id.
        entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
        assert [e["event_loop"] for e in entries if e["message"] == "server started"] == [
            event_loop]
        calls = [e for e in entries if e["message"] == "rpc"
                 and e["method"] == "/vnegov_probe.v1.ProbeService/Sleep"]
        assert len(calls) == 2 and all(len(e["request_id"]) >= 8 for e in calls)
        assert [(e["request_id"], e["code"], e["caller"]) for e in calls
                if e["request_id"] == "slow-call-during-sigterm"] == [
            ("slow-call-during-sigterm", "OK", "000.00.00.H29/dvc-hcm")]
    finally:
        proc.kill()
    # The call that completed during shutdown was audited before the process exited.
    with sqlite_db.read() as s:
        outcomes = [(r.action, r.outcome) for r in s.query(AuditEventRow).all()]
    assert outcomes.count(("/vnegov_probe.v1.ProbeService/Sleep", "OK")) == 2


async def test_sigterm_behind_a_balancer_waits_for_calls_in_flight_before_stopping(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    """With a balancer listener: after the drain, the gRPC servers keep serving until the calls
    in flight have ended (so that their answers are not cut by the connections' closing), and
    only then stop: new calls are refused, the process exits 0."""
    config = server_config_dict(pki, tmp_path, sqlite_db.url.render_as_string(False),
                                grpc_port=free_port(), http_port=free_port(), grace=20, extra={
                                    "server": {"balancer_listen": f"unix:{tmp_path / 'b.sock'}",
                                               "admin_port": free_port()}})
    proc = ServerProcess(config, tmp_path, module="tests.support.probe")
    proc.start()
    try:
        async with channel(pki, proc.grpc_port) as ch:
            probe = probe_pb2_grpc.ProbeServiceStub(ch)
            await probe.Sleep(probe_pb2.SleepRequest(seconds=0))  # connection is up
            slow = asyncio.ensure_future(probe.Sleep(probe_pb2.SleepRequest(seconds=5)))
            await asyncio.sleep(0.5)
            proc.signal(signal.SIGTERM)
            await asyncio.sleep(2.5)  # past the drain (1.5 s): the slow call is still running
            assert not slow.done()
            served = await probe.Sleep(probe_pb2.SleepRequest(seconds=0), timeout=5)
            assert served.slept == 0  # the servers have not stopped yet
            assert (await slow).slept == 5
            await asyncio.sleep(1)  # the servers stop once it has ended
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await probe.Sleep(probe_pb2.SleepRequest(seconds=0), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await proc.wait(30) == 0
    finally:
        proc.kill()


async def test_audit_verify_names_the_edited_record(pki: TestPki, tmp_path: Path,
                                                    db: Database) -> None:
    """On SQLite and on PostgreSQL (the db fixture runs both)."""
    config = server_config_dict(pki, tmp_path, db.url.render_as_string(False),
                                grpc_port=free_port(), http_port=free_port())
    proc = ServerProcess(config, tmp_path)
    proc.start()
    try:
        async with channel(pki, proc.grpc_port) as ch:
            stub = admin_pb2_grpc.AdminServiceStub(ch)
            for _ in range(5):
                await stub.GetCaller(admin_pb2.GetCallerRequest())
        proc.signal()
        assert await proc.wait() == 0
    finally:
        proc.kill()
    ok = vnegov("--config", str(proc.config_path), "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "audit chain OK: 5 events verified" in ok.stdout
    with db.write() as s:  # an administrator with database access "fixes" a record
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 3)
                  .values(outcome="PERMISSION_DENIED"))
    broken = vnegov("--config", str(proc.config_path), "audit", "verify")
    assert broken.returncode == 1
    assert "audit chain BROKEN at event 3" in broken.stdout
    assert "2 events before it verified" in broken.stdout


def test_init_then_serve_from_the_command_line(tmp_path: Path) -> None:
    """What the README's serve command does: init a data directory, serve, answer over mTLS."""
    data = tmp_path / "data"
    grpc_port, http_port = free_port(), free_port()
    done = vnegov("--data-dir", str(data), "init", "--grpc-port", str(grpc_port),
                  "--http-port", str(http_port))
    assert done.returncode == 0, done.stderr
    assert (data / "vnegov.toml").exists() and (data / "vnegov.db").exists()
    key = (data / "pki" / "root-ca.key.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key
    assert oct((data / "secrets" / "pki-passphrase").stat().st_mode & 0o777) == "0o600"
    again = vnegov("--data-dir", str(data), "init")
    assert "already initialised" in again.stdout

    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "server", "--data-dir", str(data), "serve"],
                            env=ENV, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while b'"server started"' not in (tmp_path / "serve.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        example = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "get_caller.py"), "--data-dir", str(data),
             "--target", f"localhost:{grpc_port}", "--client", "dvc-hcm"],
            capture_output=True, text=True, env=ENV, timeout=60)
        assert example.returncode == 0, example.stdout + example.stderr
        assert "health: SERVING" in example.stdout
        assert "agency_code: 000.00.00.H29" in example.stdout
        assert "province_code: 79" in example.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()


def test_configuration_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "vnegov.toml"
    config.write_text('data_dir = "."\n[server]\ngrpc_prot = 1\n')
    done = vnegov("--config", str(config), "migrate")
    assert done.returncode == 2
    assert "unknown configuration key 'server.grpc_prot'" in done.stderr
    config.write_text('data_dir = "."\n')
    env_done = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(config), "migrate"], capture_output=True,
        text=True, env={**ENV, "VNEGOV__STORAGE__URLL": "x"}, cwd=ROOT)
    assert env_done.returncode == 2
    assert "VNEGOV__STORAGE__URLL" in env_done.stderr
