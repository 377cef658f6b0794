"""The clock tool: the current date and time in any IANA time zone."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field

from netra.errors import ToolError
from netra.tools.tool import tool


@tool(description="Current date and time in an IANA time zone such as 'Europe/Paris' or 'UTC'.")
def clock(timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC") -> dict[str, str]:
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown time zone {timezone!r}") from exc
    now = datetime.now(UTC).astimezone(zone)
    return {
        "timezone": timezone,
        "iso": now.isoformat(timespec="seconds"),
        "date": now.strftime("%d %B %Y"),
        "time": now.strftime("%H:%M"),
        "weekday": now.strftime("%A"),
        "utc_offset": now.strftime("%z"),
    }
