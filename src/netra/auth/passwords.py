"""Password hashing with argon2id."""

from __future__ import annotations

import asyncio
import base64
import os

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """argon2id hashes; hashing runs in a thread so it never stalls the event loop."""

    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._argon = _Argon2(time_cost=time_cost, memory_cost=memory_kib)
        self.unknown_user_hash = _unmatchable(self._argon)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; an unknown user costs the same time as a wrong
        password (pass ``None``)."""
        target = stored_hash or self.unknown_user_hash
        try:
            ok = await asyncio.to_thread(self._argon.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and stored_hash is not None


def _unmatchable(argon: _Argon2) -> str:
    """A hash in ``argon``'s parameters that no password matches (its salt and digest are
    random bytes), written out rather than computed: verifying against it costs what
    verifying a real hash does, and making it costs nothing, where hashing would hold up
    the start for as long as a login takes."""

    def b64(size: int) -> str:
        return base64.b64encode(os.urandom(size)).rstrip(b"=").decode()

    parameters = f"m={argon.memory_cost},t={argon.time_cost},p={argon.parallelism}"
    return f"$argon2id$v=19${parameters}${b64(argon.salt_len)}${b64(argon.hash_len)}"
