"""The bodies of the HTTP API's success answers: what ``GET /openapi.json`` documents for
every route, and what the routes answer; one module of views per concept (``accounts``,
``threads``, ``runs``, ``system``), this one their base.

Each view holds exactly the keys the server sends, in the order it sends them. A view of a
stored row is built from the row's ``public()`` (``netra.db.records``), so the row stays
the one place that decides what of it is public, and the view the one that types it: a row
that grows a key the view does not know is refused (``extra="forbid"``), never sent
undocumented. Times are sent as the rows write them (``isoformat()``, ``+00:00``) and are
documented as ``date-time`` strings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""A moment, as ISO 8601 with its UTC offset: ``2026-11-24T10:00:00.123456+00:00``."""
Outcome = Literal["completed", "failed", "cancelled", "timed_out", "interrupted"]
"""How a run ended; set once it is final."""


class View(BaseModel):
    """A success body: exactly these keys, frozen, documented by the field docstrings."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
