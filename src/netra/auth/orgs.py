"""Organisations: administrators create them, set their budgets and their members; a change of
membership is an account change, so every instance reads the member's sessions again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netra.auth.sessions import SessionService
from netra.db.manager import DatabaseManager
from netra.db.orgs import Member, OrgRecord, OrgRepository
from netra.errors import NotFound

ROLES = ("member", "admin")


class OrgService:
    def __init__(self, db: DatabaseManager, sessions: SessionService) -> None:
        self._db = db
        self._sessions = sessions

    async def create(self, name: str, *, usd_per_day: float, usd_per_month: float) -> OrgRecord:
        return await self._db.transact(
            OrgRepository.create(name, usd_per_day=usd_per_day, usd_per_month=usd_per_month)
        )

    async def page(self, *, after: str, limit: int) -> list[OrgRecord]:
        return await self._db.transact(OrgRepository.page(after=after, limit=limit))

    async def get(self, org_id: str) -> OrgRecord:
        org = await self._db.transact(OrgRepository.get(org_id))
        if org is None:
            raise NotFound("organisation not found")
        return org

    async def update(self, org_id: str, changes: Mapping[str, Any]) -> OrgRecord:
        org = await self._db.transact(OrgRepository.update(org_id, changes))
        if org is None:
            raise NotFound("organisation not found")
        return org

    async def delete(self, org_id: str) -> None:
        await self.get(org_id)
        for user_id in await self._db.transact(OrgRepository.delete(org_id)):
            await self._sessions.account_changed(user_id)

    async def members(self, org_id: str) -> list[Member]:
        return await self._db.transact(OrgRepository.members(org_id))

    async def set_member(self, org_id: str, user_id: str, role: str) -> OrgRecord:
        """The user joins the organisation as ``role`` (leaving any other), or changes role
        in it."""
        await self.get(org_id)
        if not await self._db.transact(OrgRepository.set_member(org_id, user_id, role)):
            raise NotFound("user not found")
        await self._sessions.account_changed(user_id)
        return await self.get(org_id)

    async def remove_member(self, org_id: str, user_id: str) -> None:
        if not await self._db.transact(OrgRepository.remove_member(org_id, user_id)):
            raise NotFound("no such member of this organisation")
        await self._sessions.account_changed(user_id)
