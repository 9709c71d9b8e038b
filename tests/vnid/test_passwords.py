from __future__ import annotations

import hashlib

import pytest

from vnid.authn.passwords import PasswordHasher, PasswordPolicy, Sha1Blocklist, WeakPassword

POLICY = PasswordPolicy()


@pytest.mark.parametrize("password,rule", [
    ("short1!", "too_short"), ("password123", "common"), ("matkhau@123", "common"),
    ("Matkhau123!", "common"), ("aaaaaaaaaaaa", "pattern"), ("0123456789", "pattern"),
    ("poiuytrewq", "pattern"), ("NguyenVanAn1984", "personal"), ("x079084000123y", "personal"),
])
def test_weak_passwords_are_refused(password: str, rule: str) -> None:
    with pytest.raises(WeakPassword) as err:
        POLICY.check(password, personal_data=["079084000123", "Nguyễn Văn An", "17051984"])
    assert err.value.metadata["rule"] == rule


def test_breached_passwords_are_refused() -> None:
    breached = "Hoa-sen-no-thang-7"
    digest = hashlib.sha1(breached.encode()).hexdigest().upper()
    blocklist = Sha1Blocklist.from_bytes(f"{digest}:42\n".encode())
    assert len(blocklist) == 1
    with pytest.raises(WeakPassword) as err:
        POLICY.check(breached, breached=blocklist)
    assert err.value.metadata["rule"] == "breached"
    POLICY.check("Hoa-sen-no-thang-8", breached=blocklist)


def test_argon2id_hashes_and_verifies() -> None:
    hasher = PasswordHasher(time_cost=1, memory_cost_kib=1024, parallelism=1)
    encoded = hasher.hash("Một mật khẩu đủ dài")
    assert encoded.startswith("$argon2id$")
    assert hasher.verify(encoded, "Một mật khẩu đủ dài")
    assert not hasher.verify(encoded, "Mot mat khau du dai")
    assert not hasher.verify("not-a-hash", "x")
    assert PasswordHasher(time_cost=2, memory_cost_kib=1024, parallelism=1).needs_rehash(encoded)
