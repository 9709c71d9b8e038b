"""``vnegov identity ...`` against a real database."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import tomli_w

from server.cli import main
from server.storage.db import Database
from tests.support.pki import TestPki
from tests.support.server import server_config_dict


@pytest.fixture
def config(pki: TestPki, tmp_path: Path, sqlite_db: Database) -> Path:
    data = server_config_dict(pki, tmp_path, sqlite_db.url.render_as_string(False), extra={
        "identity": {"argon2_time_cost": 1, "argon2_memory_kib": 1024,
                     "argon2_parallelism": 1}})
    path = tmp_path / "vnegov.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["--config", str(config), "identity", *argv], environ={})
    out = capsys.readouterr()
    return code, out.out + out.err


def test_account_lifecycle_keys_and_clients(config: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Mot-mat-khau-du-dai-2025\n"))
    code, out = run(config, capsys, "account", "create", "--kind", "citizen", "--identifier",
                    "079084000123", "--name", "Nguyễn Văn An", "--born", "1984-05-17",
                    "--sex", "male", "--province", "79", "--password-stdin")
    assert code == 0, out
    account = out.strip()
    code, out = run(config, capsys, "account", "proof", account, "--place", "CA phường 1",
                    "--officer", "CA-1", "--valid-until", "2040-05-16")
    assert code == 0 and "LoA2" in out
    code, out = run(config, capsys, "account", "totp", account)
    assert out.startswith("otpauth://totp/") and "issuer=VNeGov" in out
    code, out = run(config, capsys, "account", "enrol-device", account)
    assert code == 0 and len(out.strip().split("-")) == 4
    code, out = run(config, capsys, "account", "lock", account, "--reason", "mất thẻ")
    assert code == 0
    code, out = run(config, capsys, "account", "create", "--kind", "citizen", "--identifier",
                    "079184000124", "--name", "X", "--born", "1984-01-01", "--sex", "male")
    assert code == 2 and "INVALID_PERSONAL_ID" in out  # invalid input
    code, out = run(config, capsys, "keys", "list")
    assert sorted(line.split("\t")[1] for line in out.splitlines()) == ["ES256", "EdDSA", "PS256"]
    key_out = tmp_path / "demo.key.pem"
    code, out = run(config, capsys, "client", "add-example", "--client-id", "dvc-demo",
                    "--redirect-uri", "http://127.0.0.1:8001/callback", "--key-out", str(key_out))
    assert code == 0 and b"PRIVATE KEY" in key_out.read_bytes()
    code, out = run(config, capsys, "client", "list")
    assert "dvc-demo\tfapi2" in out
    meta = tmp_path / "svc.json"
    meta.write_text(json.dumps({"client_id": "svc", "profile": "service",
                                "agency_code": "000.00.00.H29", "jwks": {"keys": [json.loads(
                                    '{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHM'
                                    'zV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyS'
                                    'tikYjKIWI5a0"}')]}}))
    assert run(config, capsys, "client", "add", str(meta))[0] == 0
    assert run(config, capsys, "client", "disable", "svc")[0] == 0


def test_breached_passwords_are_imported_and_refused(config: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    breached = "Hoa-sen-no-thang-bay-2025"
    corpus = tmp_path / "pwned.txt"
    corpus.write_text(hashlib.sha1(breached.encode()).hexdigest().upper() + ":17\n"
                      + hashlib.sha1(b"another").hexdigest().upper() + ":3\n")
    code, out = run(config, capsys, "passwords", "import-breached", str(corpus))
    assert code == 0 and out.startswith("2 ")
    assert run(config, capsys, "passwords", "import-breached", str(corpus))[1].startswith("0 ")
    monkeypatch.setattr("sys.stdin", io.StringIO(breached + "\n"))
    code, out = run(config, capsys, "account", "create", "--kind", "citizen", "--identifier",
                    "079084000321", "--name", "Trần Văn Bảo", "--born", "1984-05-17",
                    "--sex", "male", "--password-stdin")
    assert code == 2 and "WEAK_PASSWORD" in out  # invalid input
