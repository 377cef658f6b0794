"""Administration: list users, change a user's roles, tier or disabled flag. Admins only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from netra.api.deps import AdminUser, AppState

router = APIRouter(tags=["admin"], prefix="/admin")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=10)] | None = None
    tier: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    disabled: bool | None = None


def _view(user: Any) -> dict[str, Any]:
    return {**user.public(), "disabled": user.disabled}


@router.get("/users")
async def list_users(
    _: AdminUser,
    netra: AppState,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    users = await netra.accounts.list_users(limit=limit, offset=offset)
    return {"items": [_view(user) for user in users]}


@router.patch("/users/{user_id}")
async def update_user(
    user_id: str, body: UserChange, _: AdminUser, netra: AppState
) -> dict[str, Any]:
    user = await netra.accounts.update_user(
        user_id,
        roles=body.roles,
        tier=body.tier,
        disabled=body.disabled,
        known_tiers=sorted(netra.settings.tiers),
    )
    return _view(user)
