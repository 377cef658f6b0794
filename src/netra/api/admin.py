"""Administration: list users, change a user's roles, tier or disabled flag; a user's API
keys (list, revoke); the cluster's instances. Signed-in admins only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from netra.api.api_keys import key_page
from netra.api.deps import AdminUser, AppState, PathId
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.views.accounts import AdminUserDetail, AdminUserView, ApiKeyPage, UserPage
from netra.api.views.system import InstancePage
from netra.auth.permissions import ROLE_PERMISSIONS
from netra.db.records import UserRecord, utcnow
from netra.errors import InvalidRequest
from netra.instance import Netra
from netra.settings import TierSettings

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


class LimitChange(TierSettings):
    """The limits to set for the user (a value) or to give back to its tier (null)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"max_steps": 8, "tokens_per_day": None}]}
    )


def _fields(user: UserRecord) -> dict[str, Any]:
    return {**user.public(), "disabled": user.disabled, "limit_overrides": user.limits}


def _view(user: UserRecord) -> AdminUserView:
    return AdminUserView.model_validate(_fields(user))


def _detail(netra: Netra, user: UserRecord) -> AdminUserDetail:
    limits = netra.config.limits_for(user.tier, user.limits)
    return AdminUserDetail.model_validate({**_fields(user), "limits": limits})


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


@router.get("/users/{user_id}")
async def get_user(user_id: PathId, _: AdminUser, netra: AppState) -> AdminUserDetail:
    """A user, its own limit overrides and the limits in force for it."""
    return _detail(netra, await netra.accounts.get_user(user_id))


@router.put("/users/{user_id}/limits", responses=error_responses(404))
async def set_user_limits(
    user_id: PathId, body: LimitChange, _: AdminUser, netra: AppState
) -> AdminUserDetail:
    """Set the user's own value of each limit given, over its tier's; ``null`` removes the
    user's own value (the tier's applies again); a limit not given stays as it is. Stored
    with the account: every instance applies it to the user's next message, over HTTP at
    once, on a socket it already holds once it hears of the change."""
    changes = body.model_dump(mode="json", include=body.model_fields_set)
    if not changes:
        raise InvalidRequest("name at least one limit to set or clear")
    return _detail(netra, await netra.accounts.set_limits(user_id, changes))


@router.get("/users/{user_id}/api-keys")
async def list_user_api_keys(user_id: PathId, _: AdminUser, netra: AppState) -> ApiKeyPage:
    """A user's API keys not revoked, newest first; never a secret."""
    await netra.accounts.get_user(user_id)
    return key_page(await netra.api_keys.list(user_id))


@router.delete("/users/{user_id}/api-keys/{key_id}", status_code=204)
async def revoke_user_api_key(
    user_id: PathId, key_id: PathId, _: AdminUser, netra: AppState
) -> Response:
    """Revoke a user's key at once, as its owner would: its sockets close with 1008."""
    await netra.api_keys.revoke(user_id, key_id)
    return Response(status_code=204)


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
