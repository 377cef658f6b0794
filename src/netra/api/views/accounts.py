"""Accounts, their organisations and their credentials: what a user, an organisation admin and an
administrator are answered about who is who."""

from __future__ import annotations

from typing import Literal

from netra.api.views import Timestamp, View
from netra.auth.scopes import Scope
from netra.settings import LimitSettings, TierSettings


# ---- accounts ------------------------------------------------------------------------------
class UserView(View):
    """A user, as ``POST /auth/register`` answers it."""

    id: str
    email: str
    roles: list[str]
    """``user``, ``admin``."""
    tier: str
    """One of the configured tiers (``free``, ``pro``, ``enterprise`` ship)."""
    created_at: Timestamp


class AdminUserView(UserView):
    """A user as administrators see it."""

    disabled: bool
    """A disabled user's sessions end and it cannot sign in."""
    limit_overrides: TierSettings
    """The user's own limits, over its tier's (``PUT /admin/users/{id}/limits``); null: the
    tier's applies."""


class AdminUserDetail(AdminUserView):
    """One user as administrators see it, with the limits in force for it."""

    limits: LimitSettings
    """Its own overrides over its tier's over the global ``limits``."""


class UsageToday(View):
    runs: int
    input_tokens: int
    output_tokens: int
    tokens: int
    """``input_tokens + output_tokens``."""
    cost_usd: float


class UsageMonth(View):
    cost_usd: float


class OrgUsageNow(View):
    """What the members of the caller's organisation spent together, against its budgets."""

    cost_usd_today: float
    cost_usd_month: float
    usd_per_day: float
    """0: no limit."""
    usd_per_month: float
    """0: no limit."""


class UsageNow(View):
    """The caller's usage, as the quotas count it."""

    runs_last_minute: int
    active_runs: int
    """Runs queued, running or waiting for approval."""
    today: UsageToday
    """Since midnight UTC."""
    month: UsageMonth
    """Since the 1st of the month, 00:00 UTC."""
    org: OrgUsageNow | None
    """The caller's organisation's spend and budgets; null: no organisation."""


class MembershipView(View):
    """The organisation a user belongs to."""

    id: str
    name: str
    role: Literal["member", "admin"]
    """An organisation's admins see its usage figures (``GET /org/usage``)."""


class AccountView(UserView):
    """The caller (``GET /me``): the user, its usage, and the limits in force for it."""

    org: MembershipView | None
    """The caller's organisation; null: none."""
    usage: UsageNow
    limits: LimitSettings
    """The user's own overrides over its tier over the global ``limits``."""
    limit_overrides: TierSettings
    """The user's own limits, set by an administrator; null: the tier's applies."""


class UserPage(View):
    items: list[AdminUserView]


# ---- organisations -------------------------------------------------------------------------
class OrgView(View):
    """An organisation."""

    id: str
    name: str
    usd_per_day: float
    """US dollars its members' model calls may cost together per UTC day; 0: no limit."""
    usd_per_month: float
    """The same per UTC calendar month; 0: no limit."""
    members: int
    created_at: str


class MemberView(View):
    user_id: str
    email: str
    role: Literal["member", "admin"]


class OrgDetail(OrgView):
    """An organisation with its members, by email."""

    member_list: list[MemberView]


class OrgPage(View):
    items: list[OrgView]
    """By name."""
    next_cursor: str | None
    """Pass it back as ``cursor`` for the next page; null on the last."""


class MemberPage(View):
    items: list[MemberView]
    """By email."""


class TokenPairView(View):
    """An access token and the refresh token that renews it."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    """Seconds the access token lives."""
    refresh_token: str
    """Spent by ``POST /auth/refresh``; presenting it twice ends the session."""
    refresh_expires_in: int
    """Seconds the refresh token lives."""


class ApiKeyView(View):
    """An API key, never its secret."""

    id: str
    name: str
    prefix: str
    """The secret's first characters (``nk_`` and 8 more), to tell keys apart."""
    scopes: list[Scope]
    """What the key may do (``threads:read``, ``threads:write``, ``runs:write``)."""
    created_at: Timestamp
    expires_at: Timestamp | None
    """When it stops working; none: never (until revoked)."""
    last_used_at: Timestamp | None
    """When it last authenticated a request or a socket, to the minute; none: never."""


class NewApiKeyView(ApiKeyView):
    """A new API key, with its secret: shown this once, never again."""

    secret: str
    """``nk_…``: send it as ``Authorization: Bearer <secret>`` or in the ``bearer``
    subprotocol of ``/ws``. Keep it secret; it cannot be shown again."""


class ApiKeyPage(View):
    items: list[ApiKeyView]
    """The keys not revoked (expired ones too), newest first; at most 100."""
