"""Secrets kept in the database are sealed under a master key kept outside it."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from server.config import Config, ConfigError
from server.documents.stores import SqlSecondFactors, set_totp_secret
from server.identity.state import SECRET_NAMES, load_secrets
from server.sealing import (
    SecretBox,
    SecretUnavailable,
    create_master_key,
    is_sealed,
    load_master_key,
    secret_box,
)
from server.storage.db import Database
from server.storage.documents import SignerFactorRow
from server.storage.identity import SecretRow

NOW = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    create_master_key(tmp_path / "master.key")
    return SecretBox(load_master_key(tmp_path / "master.key"))


def test_sealed_values_open_only_with_their_key_and_context(box: SecretBox,
                                                            tmp_path: Path) -> None:
    sealed = box.seal(b"JBSWY3DPEHPK3PXP", "documents/totp/079084000123")
    assert is_sealed(sealed) and b"JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, "documents/totp/079084000123") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretUnavailable):  # moved to another official's row
        box.open(sealed, "documents/totp/001190000001")
    create_master_key(tmp_path / "other.key")
    with pytest.raises(SecretUnavailable):  # another deployment's key
        SecretBox(load_master_key(tmp_path / "other.key")).open(
            sealed, "documents/totp/079084000123")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecretUnavailable):
        box.open(tampered, "documents/totp/079084000123")


def test_master_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "master.key"
    create_master_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(base64.b64decode(path.read_text())) == 32
    with pytest.raises(FileExistsError):
        create_master_key(path)


def test_a_bad_master_key_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_text(base64.b64encode(b"too short").decode())
    config = Config.from_config({"secrets": {"key_file": str(tmp_path / "short.key")}})
    with pytest.raises(ConfigError, match="secrets.key_file"):
        secret_box(config)
    assert secret_box(Config.from_config({})) is None


def test_identity_secrets_are_sealed_and_unsealed_ones_get_sealed(db: Database,
                                                                  box: SecretBox) -> None:
    plain = load_secrets(db, NOW)  # a deployment that had no master key yet
    with db.read() as s:
        assert not any(is_sealed(bytes(v)) for v in s.execute(select(SecretRow.value)).scalars())
    sealed = load_secrets(db, NOW, box)
    assert sealed == plain  # the same secrets: sessions and keys survive
    with db.read() as s:
        stored = {n: bytes(v) for n, v in s.execute(select(SecretRow.name, SecretRow.value))}
    assert set(stored) == set(SECRET_NAMES)
    assert all(is_sealed(v) and plain[n] not in v for n, v in stored.items())
    assert load_secrets(db, NOW, box) == plain
    with pytest.raises(SecretUnavailable, match="no master key"):
        load_secrets(db, NOW)  # sealed, and the key is gone: an error, not new secrets


def test_remote_signing_totp_secrets_are_sealed(db: Database, box: SecretBox) -> None:
    set_totp_secret(db, "079084000123", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", at=NOW,
                    actor="test", box=box)
    with db.read() as s:
        stored = s.get(SignerFactorRow, "079084000123").totp_secret  # type: ignore[union-attr]
    assert "JBSWY3DPEHPK3PXP" not in stored
    assert SqlSecondFactors(db, box).secret_of("079084000123") == \
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    with pytest.raises(SecretUnavailable):
        SqlSecondFactors(db).secret_of("079084000123")
