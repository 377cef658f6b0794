"""The caller's API keys: make one (its secret shown once), list them, revoke one. Only a
signed-in session manages keys; a key cannot (``SignedIn``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from netra.api.deps import AppState, PathId, SignedIn
from netra.api.errors import DocumentedRoute, error_responses
from netra.api.views.accounts import ApiKeyPage, ApiKeyView, NewApiKeyView
from netra.auth.scopes import Scope
from netra.db.records import ApiKeyRecord
from netra.text import Text

router = APIRouter(tags=["api keys"], route_class=DocumentedRoute)

_MOMENT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
"""An ISO 8601 moment with its UTC offset, as the schema states what ``AwareDatetime`` takes."""


class NewApiKey(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly report",
                    "scopes": ["threads:read", "runs:write"],
                    "expires_at": "2099-01-01T00:00:00Z",
                }
            ]
        },
    )
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(Scope))]
    expires_at: Annotated[
        AwareDatetime | None,
        Field(
            description="When the key stops working, in the future, with its UTC offset; "
            "null or absent: never (until revoked).",
            json_schema_extra={"pattern": _MOMENT},
        ),
    ] = None


def key_page(keys: list[ApiKeyRecord]) -> ApiKeyPage:
    """The answer listing keys (the caller's, or a user's to an administrator)."""
    return ApiKeyPage(items=[ApiKeyView.model_validate(key.public()) for key in keys])


@router.post("/me/api-keys", status_code=201, responses=error_responses(409))
async def create_api_key(body: NewApiKey, ctx: SignedIn, netra: AppState) -> NewApiKeyView:
    """A new key of the caller's, narrowed to ``scopes``: the answer holds its ``secret``,
    shown this once and never again. At most 100 keys per user (409 `too_many_api_keys`)."""
    issued = await netra.api_keys.create(
        ctx.user_id, name=body.name, scopes=body.scopes, expires_at=body.expires_at
    )
    return NewApiKeyView.model_validate({**issued.key.public(), "secret": issued.secret})


@router.get("/me/api-keys")
async def list_api_keys(ctx: SignedIn, netra: AppState) -> ApiKeyPage:
    """The caller's keys not revoked (expired ones too), newest first; never a secret."""
    return key_page(await netra.api_keys.list(ctx.user_id))


@router.delete("/me/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: PathId, ctx: SignedIn, netra: AppState) -> Response:
    """Revoke one of the caller's keys at once: refused from now on, its sockets closed
    with 1008 on every instance."""
    await netra.api_keys.revoke(ctx.user_id, key_id)
    return Response(status_code=204)
