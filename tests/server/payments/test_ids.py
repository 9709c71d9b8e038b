"""Payment, refund and receipt ids: random lower-case letters and digits, uniformly drawn."""

from __future__ import annotations

import collections

import pytest

from server.payments import common
from server.payments.common import new_id


def test_ids_have_the_length_and_alphabet() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(len(i) == 20 and set(i) <= set(common._ALPHABET) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len(new_id(300)) == 300 and new_id(0) == ""


def test_every_character_is_named_by_as_many_accepted_bytes() -> None:
    """Uniformity is exact: each of the 36 characters stands for 7 of the 252 accepted byte
    values; the 4 others are rejected, never mapped."""
    accepted = [b for b in range(256) if b not in common._REJECTED]
    counts = collections.Counter(common._CHARS[b] for b in accepted)
    assert len(accepted) == 252 and set(counts.values()) == {7}
    assert {chr(c) for c in counts} == set(common._ALPHABET)


def test_rejected_bytes_are_dropped_and_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([bytes([255, 0, 253, 35]) + bytes([252] * 24), bytes(28)])
    monkeypatch.setattr(common.os, "urandom", lambda n: next(draws)[:n])
    assert new_id(3) == "a9a"
