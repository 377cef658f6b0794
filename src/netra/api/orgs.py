"""Organisations: administrators create them, set their budgets and members
(``/admin/orgs``); an organisation's admins list its members (``GET /org/members``) and read
its usage (``GET /org/usage``, with the other reports)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from netra.api.deps import AdminUser, AppState, OrgAdmin, PathId
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.paging import Cursor, key_cursor, keys_of
from netra.api.views.accounts import MemberPage, MemberView, OrgDetail, OrgPage, OrgView
from netra.db.orgs import Member, OrgRecord
from netra.instance import Netra
from netra.text import Text

router = APIRouter(tags=["organisations"], route_class=DocumentedRoute)


def _visible(name: str) -> str:
    if not name.strip():
        raise ValueError("a name needs a visible character")
    return name.strip()


_Name = Annotated[
    Text,
    Field(min_length=1, max_length=200, description="Not blank; kept trimmed."),
    AfterValidator(_visible),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"}),
]
_Dollars = Annotated[float, Field(ge=0, le=1_000_000_000)]


class OrgCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Acme", "usd_per_day": 50}]}
    )
    name: _Name
    usd_per_day: _Dollars = 0.0
    """US dollars its members' model calls may cost together per UTC day; 0: no limit."""
    usd_per_month: _Dollars = 0.0
    """The same per UTC calendar month; 0: no limit."""


class OrgChange(BaseModel):
    """What to change: any of the three, at least one (an omitted one stays as it is)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"usd_per_month": 1000}], "minProperties": 1},
    )
    # Omitted, not null: the defaults are never validated, a null sent is refused.
    name: _Name = None  # type: ignore[assignment]
    usd_per_day: _Dollars = None  # type: ignore[assignment]
    usd_per_month: _Dollars = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _something(self) -> OrgChange:
        if not self.model_fields_set:
            raise ValueError("change at least one of name, usd_per_day, usd_per_month")
        return self


class Membership(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "admin"}]})
    role: Literal["member", "admin"] = "member"


def _view(org: OrgRecord) -> OrgView:
    return OrgView.model_validate(org.public())


def _member(member: Member) -> MemberView:
    return MemberView.model_validate(
        {"user_id": member.user_id, "email": member.email, "role": member.role}
    )


async def _detail(netra: Netra, org: OrgRecord) -> OrgDetail:
    members = await netra.orgs.members(org.id)
    return OrgDetail.model_validate(
        {**org.public(), "member_list": [_member(m).model_dump() for m in members]}
    )


@router.post("/admin/orgs", status_code=201, responses=error_responses(409))
async def create_org(body: OrgCreate, _: AdminUser, netra: AppState) -> OrgView:
    """A new organisation, with no members yet; a name taken already is 409."""
    org = await netra.orgs.create(
        body.name, usd_per_day=body.usd_per_day, usd_per_month=body.usd_per_month
    )
    return _view(org)


@router.get("/admin/orgs", responses=error_responses(422))
async def list_orgs(
    _: AdminUser,
    netra: AppState,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> OrgPage:
    """Every organisation, by name, a page at a time."""
    after = keys_of(cursor, 1)[0] if cursor else ""
    found = await netra.orgs.page(after=after, limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return OrgPage(
        items=[_view(org) for org in page],
        next_cursor=key_cursor(page[-1].name) if more else None,
    )


@router.get("/admin/orgs/{org_id}", responses=error_responses(404))
async def get_org(org_id: PathId, _: AdminUser, netra: AppState) -> OrgDetail:
    """An organisation with its members."""
    return await _detail(netra, await netra.orgs.get(org_id))


@router.patch("/admin/orgs/{org_id}", responses=error_responses(404, 409))
async def update_org(org_id: PathId, body: OrgChange, _: AdminUser, netra: AppState) -> OrgView:
    """Rename an organisation or change its budgets (what is given changes; the next
    message of any member is admitted under the new budgets)."""
    return _view(await netra.orgs.update(org_id, body.model_dump(include=body.model_fields_set)))


@router.delete("/admin/orgs/{org_id}", status_code=204, responses=error_responses(404))
async def delete_org(org_id: PathId, _: AdminUser, netra: AppState) -> Response:
    """Delete an organisation: its members keep their accounts and data, in none. Their
    past calls still count in everyone's reports (in no organisation's group)."""
    await netra.orgs.delete(org_id)
    return Response(status_code=204)


@router.put("/admin/orgs/{org_id}/members/{user_id}", responses=error_responses(404))
async def set_member(
    org_id: PathId, user_id: PathId, body: Membership, _: AdminUser, netra: AppState
) -> OrgDetail:
    """The user joins the organisation as ``role`` (leaving any other it was in), or
    changes role in it. Its next request, and its open sockets once their instance hears of
    it, act as a member."""
    return await _detail(netra, await netra.orgs.set_member(org_id, user_id, body.role))


@router.delete(
    "/admin/orgs/{org_id}/members/{user_id}", status_code=204, responses=error_responses(404)
)
async def remove_member(org_id: PathId, user_id: PathId, _: AdminUser, netra: AppState) -> Response:
    """The user leaves the organisation (404 when it is not a member of it)."""
    await netra.orgs.remove_member(org_id, user_id)
    return Response(status_code=204)


@router.get("/org/members")
async def org_members(ctx: OrgAdmin, netra: AppState) -> MemberPage:
    """Organisation admins only: the members of the caller's organisation, by email."""
    assert ctx.org is not None
    return MemberPage(items=[_member(m) for m in await netra.orgs.members(ctx.org.org_id)])
