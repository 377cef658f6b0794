"""Password hashing with argon2id."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """argon2id hashes; hashing runs in a thread so it never stalls the event loop."""

    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._argon = _Argon2(time_cost=time_cost, memory_cost=memory_kib)
        self._dummy = self._argon.hash("netra-timing-equaliser")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; an unknown user costs the same time as a wrong
        password (pass ``None``)."""
        target = stored_hash or self._dummy
        try:
            ok = await asyncio.to_thread(self._argon.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and stored_hash is not None
