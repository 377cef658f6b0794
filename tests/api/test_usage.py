"""Usage reports on a real server, both backends: runs and spend summed in SQL by day, model,
agent, user and tier, over a span of days, a page at a time or as CSV — a user's own only,
everyone's for administrators."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import text

from netra.models.base import ToolCallRequest
from netra.models.scripted import ScriptedModel, ScriptedTurn
from tests.conftest import ServerFactory
from tests.security.principals import fresh_token
from tests.support import LiveServer, User, grant_admin, make_user, open_socket

RUNS = [  # (who, day, model, agent, input, output, cost)
    ("ann", date(2026, 11, 1), "openai:gpt-4o", "assistant", 1000, 100, 0.0035),
    ("ann", date(2026, 11, 1), "offline", "assistant", 10, 10, 0.0),
    ("ann", date(2026, 11, 2), "openai:gpt-4o", "optimizer", 2000, 200, 0.007),
    ("bob", date(2026, 11, 2), "offline", "assistant", 30, 30, 0.0001),
    ("bob", date(2026, 12, 1), "openai:gpt-4o", "assistant", 5, 5, 0.5),  # past the span
]
SPAN = {"from": "2026-11-01", "to": "2026-11-30"}


async def store_runs(server: LiveServer, users: dict[str, User]) -> None:
    """One run of one model call each, as the calls' records hold them."""

    async def write() -> None:
        async with server.netra.db.write() as conn:
            for n, (who, day, model, agent, tokens_in, tokens_out, cost) in enumerate(RUNS):
                await conn.execute(
                    text(
                        "INSERT INTO model_calls (id, user_id, run_id, attempt, agent, model,"
                        " input_tokens, output_tokens, cached_input_tokens, cost_usd,"
                        " created_at) VALUES (:id, :u, :run, 1, :agent, :model, :i, :o, 0, :c,"
                        " :at)"
                    ),
                    {
                        "id": f"mc_usage{n}",
                        "u": users[who].id,
                        "run": f"run_usage{n}",
                        "agent": agent,
                        "model": model,
                        "i": tokens_in,
                        "o": tokens_out,
                        "c": cost,
                        "at": datetime(day.year, day.month, day.day, 12, n, tzinfo=UTC),
                    },
                )

    await server.call(write)


def priced(input_per_mtok: float, output_per_mtok: float) -> list[dict[str, Any]]:
    return [
        {
            "model": "scripted",
            "input_per_mtok": input_per_mtok,
            "output_per_mtok": output_per_mtok,
        }
    ]


async def test_real_runs_are_reported_exactly_and_a_price_edit_changes_no_past_figure(
    server_factory: ServerFactory,
) -> None:
    """Runs of the scripted model at known token counts and prices: each call is recorded as
    it is made with the price it was charged at, every report sums them exactly, the CSV
    says what the JSON says, and a later price edit changes none of it."""
    server = server_factory(models={"default": "scripted", "prices": priced(2.0, 10.0)})
    model = server.netra.models.get("scripted")
    assert isinstance(model, ScriptedModel)
    calculate = ToolCallRequest("call_1", "calculator", {"expression": "6*7"})
    model.push(
        ScriptedTurn(tool_calls=(calculate,), tokens=(1000, 20)),  # ann, run 1: $0.0022
        ScriptedTurn(chunks=("42",), tokens=(1500, 100)),  # ann, run 1: $0.004
        ScriptedTurn(chunks=("hello",), tokens=(3000, 300)),  # ann, run 2: $0.009
        ScriptedTurn(chunks=("hi",), tokens=(500, 50)),  # bob, run 1: $0.0015
        ScriptedTurn(chunks=("hi",), tokens=(500, 50)),  # bob, run 2, repriced: $0.003
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        users = {who: await make_user(http, who) for who in ("ann", "bob", "boss")}
        grant_admin(server, users["boss"].email)
        boss = {"Authorization": f"Bearer {await fresh_token(http, users['boss'])}"}

        async def run(who: str, content: str) -> None:
            socket = await open_socket(server, users[who].token)
            ack = await socket.send_message(content)
            events = await socket.run_to_end(ack["run_id"])
            assert events[-1]["data"]["outcome"] == "completed", events[-1]
            await socket.close()

        for who, content in (("ann", "what is 6*7?"), ("ann", "hello"), ("bob", "hi")):
            await run(who, content)
        before = (await http.get("/admin/usage", headers=boss)).json()
        assert lines(before) == sorted(
            [(users["ann"].email, 2, 5500, 420, 0.0152), (users["bob"].email, 1, 500, 50, 0.0015)]
        )
        assert {item["key"]: item["calls"] for item in before["items"]} == {
            users["ann"].email: 3,
            users["bob"].email: 1,
        }
        ann_by_model = (
            await http.get("/me/usage", params={"group_by": "model"}, headers=users["ann"].auth)
        ).json()
        assert lines(ann_by_model) == [("scripted", 2, 5500, 420, 0.0152)]

        async def reprice() -> None:
            server.netra.config.update({"models.prices": priced(4.0, 20.0)})

        await server.call(reprice)
        await run("bob", "hi again")
        after = (await http.get("/admin/usage", headers=boss)).json()
        assert lines(after) == sorted(
            [(users["ann"].email, 2, 5500, 420, 0.0152), (users["bob"].email, 2, 1000, 100, 0.0045)]
        ), "the earlier calls keep the price they were made at"
        exported = await http.get("/admin/usage", params={"format": "csv"}, headers=boss)
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0] == ["user", "runs", "calls", "input_tokens", "output_tokens", "cost_usd"]
        assert rows[1:] == [
            [
                item["key"],
                *(str(item[k]) for k in ("runs", "calls", "input_tokens", "output_tokens")),
                str(item["cost_usd"]),
            ]
            for item in after["items"]
        ], "the CSV says what the JSON says"

    async def snapshots() -> list[tuple[Any, ...]]:
        async with server.netra.db.read() as conn:
            found = await conn.execute(
                text(
                    "SELECT input_tokens, input_per_mtok, output_per_mtok, prices_as_of, cost_usd"
                    " FROM model_calls ORDER BY created_at, id"
                )
            )
            return [tuple(row) for row in found]

    as_of = server.netra.catalog.prices().as_of
    assert await server.call(snapshots) == [
        (1000, 2.0, 10.0, as_of, 0.0022),
        (1500, 2.0, 10.0, as_of, 0.004),
        (3000, 2.0, 10.0, as_of, 0.009),
        (500, 2.0, 10.0, as_of, 0.0015),
        (500, 4.0, 20.0, as_of, 0.003),
    ]


def lines(report: dict[str, Any]) -> list[tuple[str, int, int, int, float]]:
    return [
        (i["key"], i["runs"], i["input_tokens"], i["output_tokens"], i["cost_usd"])
        for i in report["items"]
    ]


async def test_usage_is_summed_by_day_model_agent_user_and_tier(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as http:
        users = {who: await make_user(http, who) for who in ("ann", "bob", "boss")}
        grant_admin(server, users["boss"].email)
        boss = {"Authorization": f"Bearer {await fresh_token(http, users['boss'])}"}
        await store_runs(server, users)
        ann = users["ann"]

        by_day = (await http.get("/me/usage", params=SPAN, headers=ann.auth)).json()
        assert lines(by_day) == [
            ("2026-11-01", 2, 1010, 110, 0.0035),
            ("2026-11-02", 1, 2000, 200, 0.007),
        ]
        assert by_day["totals"] == {
            "runs": 3,
            "calls": 3,
            "input_tokens": 3010,
            "output_tokens": 310,
            "cost_usd": 0.0105,
        }
        assert (by_day["first_day"], by_day["last_day"]) == ("2026-11-01", "2026-11-30")
        by_model = await http.get(
            "/me/usage", params={**SPAN, "group_by": "model"}, headers=ann.auth
        )
        assert lines(by_model.json()) == [
            ("offline", 1, 10, 10, 0.0),
            ("openai:gpt-4o", 2, 3000, 300, 0.0105),
        ]
        by_agent = await http.get(
            "/me/usage", params={**SPAN, "group_by": "agent"}, headers=ann.auth
        )
        assert [line[:2] for line in lines(by_agent.json())] == [
            ("assistant", 2),
            ("optimizer", 1),
        ]
        nobody = await http.get("/me/usage", params=SPAN, headers=users["boss"].auth)
        assert nobody.json()["items"] == [] and nobody.json()["totals"]["runs"] == 0

        by_user = (await http.get("/admin/usage", params=SPAN, headers=boss)).json()
        assert [line[:2] for line in lines(by_user)] == sorted(
            [(ann.email, 3), (users["bob"].email, 1)]
        )
        assert by_user["totals"]["runs"] == 4 and by_user["totals"]["cost_usd"] == 0.0106
        by_tier = await http.get("/admin/usage", params={**SPAN, "group_by": "tier"}, headers=boss)
        assert lines(by_tier.json()) == [("free", 4, 3040, 340, 0.0106)]

        # Pages of one group each, in key order, every group once.
        seen, cursor = [], None
        while True:
            params: dict[str, Any] = {**SPAN, "group_by": "day", "limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/admin/usage", params=params, headers=boss)).json()
            seen += [item["key"] for item in page["items"]]
            assert page["totals"]["runs"] == 4, "totals are the whole span's, on every page"
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["2026-11-01", "2026-11-02"]

        exported = await http.get(
            "/admin/usage", params={**SPAN, "group_by": "model", "format": "csv"}, headers=boss
        )
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert list(csv.reader(io.StringIO(exported.text))) == [
            ["model", "runs", "calls", "input_tokens", "output_tokens", "cost_usd"],
            ["offline", "2", "2", "40", "40", "0.0001"],
            ["openai:gpt-4o", "2", "2", "3000", "300", "0.0105"],
        ]

        # Each day split by model: the parts of a stacked chart, paged one part at a time.
        parts, cursor = [], None
        while True:
            params = {**SPAN, "group_by": "day", "split_by": "model", "limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/admin/usage", params=params, headers=boss)).json()
            assert page["split_by"] == "model"
            parts += [(i["key"], i["split"], i["runs"], i["cost_usd"]) for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert parts == [
            ("2026-11-01", "offline", 1, 0.0),
            ("2026-11-01", "openai:gpt-4o", 1, 0.0035),
            ("2026-11-02", "offline", 1, 0.0001),
            ("2026-11-02", "openai:gpt-4o", 1, 0.007),
        ]
        split_csv = await http.get(
            "/admin/usage",
            params={**SPAN, "group_by": "tier", "split_by": "agent", "format": "csv"},
            headers=boss,
        )
        assert list(csv.reader(io.StringIO(split_csv.text))) == [
            ["tier", "agent", "runs", "calls", "input_tokens", "output_tokens", "cost_usd"],
            ["free", "assistant", "3", "3", "1040", "140", "0.0036"],
            ["free", "optimizer", "1", "1", "2000", "200", "0.007"],
        ]
        same = await http.get(
            "/admin/usage", params={"group_by": "day", "split_by": "day"}, headers=boss
        )
        assert same.status_code == 422 and same.json()["error"]["code"] == "bad_grouping"

        # The spend of every day counts: a span that reaches December sees bob's big run.
        wide = await http.get(
            "/admin/usage", params={"from": "2026-11-01", "to": "2026-12-31"}, headers=boss
        )
        assert wide.json()["totals"]["runs"] == 5

        refused = [
            ("/me/usage", {"group_by": "user"}, ann.auth, 422),  # everyone's: admins only
            ("/me/usage", {"from": "2026-11-02", "to": "2026-11-01"}, ann.auth, 422),
            ("/me/usage", {"from": "2025-01-01", "to": "2026-11-01"}, ann.auth, 422),
            ("/me/usage", {"from": "yesterday"}, ann.auth, 422),
            ("/me/usage", {"cursor": "nonsense"}, ann.auth, 422),
            ("/admin/usage", {}, ann.auth, 403),
        ]
        for path, params, headers, status in refused:
            response = await http.get(path, params=params, headers=headers)
            assert response.status_code == status, (path, params, response.text)
            assert set(response.json()) == {"error"}
