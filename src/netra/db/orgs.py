"""Organisations: their rows, their members, and what their members' model calls cost.

Not user-scoped: administrators manage organisations, and an organisation's budgets and
reports span its members. A member's own data stays the member's: nothing here reads a
thread, a message or an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from netra.db.records import utcnow
from netra.db.sql import IntegrityViolation, Row, Statement, Tx, execute, first, rowcount, rows
from netra.errors import Conflict
from netra.ids import new_id

ORG_INSERT = Statement(
    "org: a new one",
    "INSERT INTO orgs (id, name, usd_per_day, usd_per_month, created_at)"
    " VALUES (:id, :name, :usd_per_day, :usd_per_month, :created_at)",
)
ORG_GET = Statement(
    "org: one, with its members' count",
    "SELECT o.*, (SELECT count(*) FROM users u WHERE u.org_id = o.id) AS members"
    " FROM orgs o WHERE o.id = :id",
)
ORG_PAGE = Statement(
    "orgs: by name, a page after a name",
    "SELECT o.*, (SELECT count(*) FROM users u WHERE u.org_id = o.id) AS members"
    " FROM orgs o WHERE o.name > :after ORDER BY o.name LIMIT :limit",
)
ORG_UPDATE = Statement(
    "org: its name and budgets",
    "UPDATE orgs SET name = :name, usd_per_day = :usd_per_day, usd_per_month = :usd_per_month"
    " WHERE id = :id",
)
ORG_DELETE = Statement("org: gone", "DELETE FROM orgs WHERE id = :id")
ORG_DAYS_DELETE = Statement(
    "org: its days' spend gone with it", "DELETE FROM org_spend_days WHERE org_id = :org_id"
)
ORG_RELEASE = Statement(
    "org: its members left without one",
    "UPDATE users SET org_id = NULL, org_role = NULL WHERE org_id = :org_id",
)
ORG_MEMBERS = Statement(
    "org: its members, by email",
    "SELECT id, email, org_role FROM users WHERE org_id = :org_id ORDER BY email",
)
MEMBER_SET = Statement(
    "org: a user joins it, or changes role in it",
    "UPDATE users SET org_id = :org_id, org_role = :role WHERE id = :user_id",
)
MEMBER_REMOVE = Statement(
    "org: a member leaves it",
    "UPDATE users SET org_id = NULL, org_role = NULL WHERE id = :user_id AND org_id = :org_id",
)
ORG_BUDGETED = Statement(
    "org: whether it has a dollar budget",
    "SELECT usd_per_day > 0 OR usd_per_month > 0 AS budgeted FROM orgs WHERE id = :id",
)
ORG_SPENT = Statement(
    "spend: an org's budgets, and its members' calls today and this month",
    "SELECT o.usd_per_day, o.usd_per_month, spend.today, spend.month FROM orgs o,"
    " (SELECT coalesce(sum(CASE WHEN starts_at >= :day_start THEN cost_usd ELSE 0 END), 0.0)"
    " AS today, coalesce(sum(cost_usd), 0.0) AS month FROM org_spend_days"
    " WHERE org_id = :id AND starts_at >= :month_start) AS spend"
    " WHERE o.id = :id",
)


@dataclass(frozen=True, slots=True)
class OrgRecord:
    id: str
    name: str
    usd_per_day: float
    """US dollars the members' model calls may cost per UTC day; 0: no limit."""
    usd_per_month: float
    """Per UTC calendar month; 0: no limit."""
    created_at: datetime
    members: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "usd_per_day": self.usd_per_day,
            "usd_per_month": self.usd_per_month,
            "members": self.members,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class OrgSpend:
    """An organisation's budgets and what its members' calls cost against them."""

    usd_per_day: float
    usd_per_month: float
    today: float
    month: float


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    email: str
    role: str


def _org(row: Row) -> OrgRecord:
    return OrgRecord(
        id=row["id"],
        name=row["name"],
        usd_per_day=float(row["usd_per_day"]),
        usd_per_month=float(row["usd_per_month"]),
        created_at=row["created_at"],
        members=int(row.get("members") or 0),
    )


class OrgRepository:
    """Organisations and their membership; transaction functions."""

    @staticmethod
    def create(name: str, *, usd_per_day: float, usd_per_month: float) -> Tx[OrgRecord]:
        org = OrgRecord(new_id("org"), name, usd_per_day, usd_per_month, utcnow())
        try:
            yield from execute(
                ORG_INSERT(
                    id=org.id,
                    name=name,
                    usd_per_day=usd_per_day,
                    usd_per_month=usd_per_month,
                    created_at=org.created_at,
                )
            )
        except IntegrityViolation as exc:
            raise Conflict(f"an organisation named {name!r} exists already") from exc
        return org

    @staticmethod
    def get(org_id: str) -> Tx[OrgRecord | None]:
        row = yield from first(ORG_GET(id=org_id))
        return _org(row) if row else None

    @staticmethod
    def page(*, after: str, limit: int) -> Tx[list[OrgRecord]]:
        found = yield from rows(ORG_PAGE(after=after, limit=limit))
        return [_org(row) for row in found]

    @staticmethod
    def update(org_id: str, changes: Mapping[str, Any]) -> Tx[OrgRecord | None]:
        """Change the name or budgets given; the organisation then (None: none such)."""
        org = yield from OrgRepository.get(org_id)
        if org is None:
            return None
        fields = {
            "name": org.name,
            "usd_per_day": org.usd_per_day,
            "usd_per_month": org.usd_per_month,
            **changes,
        }
        try:
            yield from execute(ORG_UPDATE(id=org_id, **fields))
        except IntegrityViolation as exc:
            raise Conflict(f"an organisation named {fields['name']!r} exists already") from exc
        return (yield from OrgRepository.get(org_id))

    @staticmethod
    def delete(org_id: str) -> Tx[list[str]]:
        """Delete an organisation; its members (their ids, returned) keep their accounts and
        data, in no organisation. Its members' past calls keep its id, for the reports."""
        members = yield from OrgRepository.members(org_id)
        yield from execute(ORG_RELEASE(org_id=org_id))
        yield from execute(ORG_DELETE(id=org_id))
        yield from execute(ORG_DAYS_DELETE(org_id=org_id))
        return [member.user_id for member in members]

    @staticmethod
    def members(org_id: str) -> Tx[list[Member]]:
        found = yield from rows(ORG_MEMBERS(org_id=org_id))
        return [Member(row["id"], row["email"], row["org_role"] or "member") for row in found]

    @staticmethod
    def set_member(org_id: str, user_id: str, role: str) -> Tx[bool]:
        """The user joins the organisation (leaving any other) as ``role``, or changes role
        in it; False: no such user."""
        changed = yield from rowcount(MEMBER_SET(org_id=org_id, user_id=user_id, role=role))
        return changed == 1

    @staticmethod
    def remove_member(org_id: str, user_id: str) -> Tx[bool]:
        """False: the user is not a member of it."""
        changed = yield from rowcount(MEMBER_REMOVE(org_id=org_id, user_id=user_id))
        return changed == 1

    @staticmethod
    def budgeted(org_id: str) -> Tx[bool]:
        """Whether the organisation has a daily or monthly budget (False when it is gone)."""
        row = yield from first(ORG_BUDGETED(id=org_id))
        return bool(row and row["budgeted"])

    @staticmethod
    def spent(org_id: str, *, day_start: datetime, month_start: datetime) -> Tx[OrgSpend | None]:
        """The organisation's budgets and its members' spend since ``day_start`` and since
        ``month_start``; None when it is gone."""
        row = yield from first(ORG_SPENT(id=org_id, day_start=day_start, month_start=month_start))
        if row is None:
            return None
        return OrgSpend(
            float(row["usd_per_day"]),
            float(row["usd_per_month"]),
            float(row["today"]),
            float(row["month"]),
        )
