"""Password hashes: a wrong password and an unknown user fail alike, at the same cost."""

from __future__ import annotations

from argon2 import extract_parameters

from netra.auth.passwords import PasswordHasher

COST = {"time_cost": 1, "memory_kib": 8192}


async def test_a_password_matches_only_its_own_hash() -> None:
    hasher = PasswordHasher(**COST)
    stored = await hasher.hash("correct horse")
    assert await hasher.verify(stored, "correct horse")
    assert not await hasher.verify(stored, "wrong horse")
    assert not await hasher.verify("not a hash", "correct horse")


async def test_an_unknown_user_is_checked_against_a_hash_of_the_same_cost() -> None:
    """The stand-in for a missing user's hash is written, not computed (a hash would hold up
    the start), and has the real hashes' parameters, so verifying it takes as long."""
    hasher = PasswordHasher(**COST)
    stored = await hasher.hash("correct horse")
    assert extract_parameters(hasher.unknown_user_hash) == extract_parameters(stored)
    assert not await hasher.verify(None, "correct horse")
    assert not await hasher.verify(None, "")
