"""Administration: list users, change a user's roles, tier or disabled flag; the cluster's
instances. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from netra.api.deps import AdminUser, AppState, PathId
from netra.api.errors import DocumentedRoute
from netra.api.views import AdminUserView, InstancePage, UserPage
from netra.auth.permissions import ROLE_PERMISSIONS
from netra.db.records import UserRecord, utcnow

router = APIRouter(tags=["admin"], prefix="/admin", route_class=DocumentedRoute)


_Role = Annotated[str, Field(max_length=40, json_schema_extra={"enum": sorted(ROLE_PERMISSIONS)})]
"""A role name; an unknown one is refused by ``AccountService.update_user`` (422)."""


class UserChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"roles": ["user"], "tier": "pro"}]}
    )
    roles: Annotated[list[_Role], Field(min_length=1, max_length=10)] | None = None
    tier: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        None,
        description="One of the server's configured tiers (`[tiers]` in the settings; `free`, "
        "`pro` and `enterprise` ship); another name is 422.",
    )
    disabled: bool | None = None


def _view(user: UserRecord) -> AdminUserView:
    return AdminUserView.model_validate({**user.public(), "disabled": user.disabled})


@router.get("/users")
async def list_users(
    _: AdminUser,
    netra: AppState,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UserPage:
    users = await netra.accounts.list_users(limit=limit, offset=offset)
    return UserPage(items=[_view(user) for user in users])


@router.patch("/users/{user_id}")
async def update_user(
    user_id: PathId, body: UserChange, _: AdminUser, netra: AppState
) -> AdminUserView:
    user = await netra.accounts.update_user(
        user_id,
        roles=body.roles,
        tier=body.tier,
        disabled=body.disabled,
        known_tiers=sorted(netra.settings.tiers),
    )
    return _view(user)


@router.get("/instances")
async def list_instances(_: AdminUser, netra: AppState) -> InstancePage:
    """Every instance that beat within the last hour: role, host, pid, version, last
    heartbeat, alive (beat within one lease), runs executing and sockets open."""
    lease_s = netra.settings.cluster.lease_s
    now = utcnow()
    instances = await netra.supervisor.instances()
    return InstancePage.model_validate(
        {
            "instance": netra.instance_id,
            "items": [instance.public(now=now, lease_s=lease_s) for instance in instances],
        }
    )
