"""Accounts: register, log in, who am I."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from netra.api.deps import AppState, CurrentUser, SignedIn, client_address
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.views.accounts import AccountView, TokenPairView, UserView
from netra.runs.quotas import measure
from netra.text import Text

router = APIRouter(tags=["auth"], route_class=DocumentedRoute)


_EMAIL = re.compile(r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")
"""What sign-up takes as an email (spaces around it are dropped); the schema says the same."""
_PERSON: JsonDict = {"email": "ada@example.com", "password": "correct horse battery"}
"""The example of signing up and of signing in: one person."""


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PERSON]})
    email: Annotated[
        Text, Field(min_length=3, max_length=320, json_schema_extra={"pattern": _EMAIL.pattern})
    ]
    password: Annotated[Text, Field(min_length=8, max_length=256)]

    @field_validator("email")
    @classmethod
    def _looks_like_an_email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("enter an email address such as name@example.com")
        return value


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PERSON]})
    email: Annotated[Text, Field(min_length=1, max_length=320)]
    password: Annotated[Text, Field(min_length=1, max_length=256)]


@router.post("/auth/register", status_code=201, responses=error_responses(403, 409))
async def register(body: Credentials, netra: AppState) -> UserView:
    settings = netra.settings.auth
    user = await netra.accounts.register(
        body.email, body.password, allowed=settings.allow_registration
    )
    return UserView.model_validate(user.public())


class RefreshBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"refresh_token": "rt_7hG2kQ9mXb4vNc1Z"}]}
    )
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


@router.post("/auth/login", responses=error_responses(401, 429))
async def login(body: LoginBody, request: Request, netra: AppState) -> TokenPairView:
    pair = await netra.accounts.login(body.email, body.password, address=client_address(request))
    return TokenPairView.model_validate(pair.as_dict())


@router.post("/auth/refresh", responses=error_responses(401))
async def refresh(body: RefreshBody, netra: AppState) -> TokenPairView:
    """Spend a refresh token for a new pair; reusing a spent one ends the session."""
    pair = await netra.sessions.refresh(body.refresh_token)
    return TokenPairView.model_validate(pair.as_dict())


@router.post("/auth/logout", status_code=204)
async def logout(ctx: SignedIn, netra: AppState) -> Response:
    """End the caller's session: its tokens stop working and its sockets close (1008)."""
    await netra.sessions.close(ctx)
    return Response(status_code=204)


@router.get("/me")
async def me(ctx: CurrentUser, netra: AppState) -> AccountView:
    """The caller, with roles, tier, organisation, usage and the limits in force."""
    user = await netra.accounts.user(ctx)
    usage = await netra.db.transact(measure(ctx, runs_today=True))
    limits = netra.config.limits_for(user.tier, user.limits)
    org = None
    if user.org is not None:
        found = await netra.orgs.get(user.org.org_id)
        org = {"id": found.id, "name": found.name, "role": user.org.role}
    return AccountView.model_validate(
        {
            **user.public(),
            "org": org,
            "usage": usage.as_dict(),
            "limits": limits,
            "limit_overrides": user.limits,
        }
    )
