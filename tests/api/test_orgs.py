"""Organisations on a real server, both backends: administrators create them and set their
members; an organisation's admins see its members' usage figures and nothing of what they
said, never another organisation's; an organisation's dollar budgets hold its members
together, at admission and inside a run."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx

from tests.conftest import ServerFactory
from tests.security.principals import fresh_token
from tests.support import LiveServer, User, answer_text, grant_admin, make_user, open_socket

PRICED_OFFLINE = {"prices": [{"model": "offline", "input_per_mtok": 0, "output_per_mtok": 1000}]}
"""Each word the offline model writes costs about a tenth of a cent."""


async def _admin(server: LiveServer, http: httpx.AsyncClient) -> dict[str, str]:
    admin = await make_user(http, "boss")
    grant_admin(server, admin.email)
    return {"Authorization": f"Bearer {await fresh_token(http, admin)}"}


async def _ask(server: LiveServer, user: User, content: str) -> list[dict[str, Any]]:
    socket = await open_socket(server, user.token)
    ack = await socket.send_message(content)
    assert ack["type"] == "ack", ack
    events = await socket.run_to_end(ack["run_id"])
    await socket.close()
    return events


async def test_organisations_members_and_what_an_org_admin_may_see(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(models=PRICED_OFFLINE)
    canary = f"canary-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        boss = await _admin(server, http)
        ann, bob, cat = [await make_user(http, who) for who in ("ann", "bob", "cat")]
        acme = await http.post("/admin/orgs", json={"name": " Acme "}, headers=boss)
        assert acme.status_code == 201, acme.text
        assert acme.json()["name"] == "Acme" and acme.json()["members"] == 0
        acme_id = acme.json()["id"]
        taken = await http.post("/admin/orgs", json={"name": "Acme"}, headers=boss)
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
        blank = await http.post("/admin/orgs", json={"name": "   "}, headers=boss)
        assert blank.status_code == 422
        globex_id = (await http.post("/admin/orgs", json={"name": "Globex"}, headers=boss)).json()[
            "id"
        ]

        for org_id, user, role in ((acme_id, ann, "admin"), (acme_id, bob, "member")):
            joined = await http.put(
                f"/admin/orgs/{org_id}/members/{user.id}", json={"role": role}, headers=boss
            )
            assert joined.status_code == 200, joined.text
        await http.put(f"/admin/orgs/{globex_id}/members/{cat.id}", json={}, headers=boss)
        detail = (await http.get(f"/admin/orgs/{acme_id}", headers=boss)).json()
        assert detail["members"] == 2
        assert sorted((m["email"], m["role"]) for m in detail["member_list"]) == sorted(
            [(ann.email, "admin"), (bob.email, "member")]
        )
        nobody = await http.put(f"/admin/orgs/{acme_id}/members/usr_missing", json={}, headers=boss)
        assert nobody.status_code == 404
        no_org = await http.put(f"/admin/orgs/org_missing/members/{bob.id}", json={}, headers=boss)
        assert no_org.status_code == 404
        me = (await http.get("/me", headers=ann.auth)).json()
        assert me["org"] == {"id": acme_id, "name": "Acme", "role": "admin"}

        await _ask(server, ann, "count to 5")
        await _ask(server, bob, f"count to 7 {canary}")
        await _ask(server, cat, "count to 9")

        # An org admin: its organisation's members and their figures, nobody else's.
        by_user = (await http.get("/org/usage", headers=ann.auth)).json()
        assert sorted(item["key"] for item in by_user["items"]) == sorted([ann.email, bob.email])
        assert by_user["totals"]["runs"] == 2 and by_user["totals"]["cost_usd"] > 0
        exported = await http.get("/org/usage", params={"format": "csv"}, headers=ann.auth)
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert [row[0] for row in rows[1:]] == [item["key"] for item in by_user["items"]]
        members = (await http.get("/org/members", headers=ann.auth)).json()["items"]
        assert [m["email"] for m in members] == sorted([ann.email, bob.email])
        for refused in (bob, cat):  # a member, another organisation's member
            for path in ("/org/usage", "/org/members"):
                response = await http.get(path, headers=refused.auth)
                assert response.status_code == 403, (path, response.text)
                assert response.json()["error"]["code"] == "permission_denied"

        # Everyone's, by organisation: each call under the one it was made in.
        by_org = (await http.get("/admin/usage", params={"group_by": "org"}, headers=boss)).json()
        assert [(item["key"], item["runs"]) for item in by_org["items"]] == [
            ("Acme", 2),
            ("Globex", 1),
        ]

        # What a member said never reaches a report, whoever reads it, however grouped.
        reports = [
            await http.get("/org/usage", params={"group_by": g}, headers=ann.auth)
            for g in ("user", "agent", "model", "day")
        ]
        reports.append(await http.get("/org/usage", params={"format": "csv"}, headers=ann.auth))
        for group in ("user", "tier", "org", "agent", "model", "day"):
            for fmt in ("json", "csv"):
                reports.append(
                    await http.get(
                        "/admin/usage", params={"group_by": group, "format": fmt}, headers=boss
                    )
                )
        reports.append(await http.get("/me/usage", headers=bob.auth))
        assert all(r.status_code == 200 for r in reports)
        assert not [r.url for r in reports if canary in r.text]

        # Pages of organisations, by name, each once.
        seen, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/admin/orgs", params=params, headers=boss)).json()
            seen += [org["name"] for org in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["Acme", "Globex"]

        renamed = await http.patch(
            f"/admin/orgs/{acme_id}", json={"name": "Acme Ltd"}, headers=boss
        )
        assert renamed.json()["name"] == "Acme Ltd"
        assert (
            await http.patch(f"/admin/orgs/{acme_id}", json={}, headers=boss)
        ).status_code == 422
        left = await http.delete(f"/admin/orgs/{acme_id}/members/{bob.id}", headers=boss)
        assert left.status_code == 204
        assert (await http.get("/me", headers=bob.auth)).json()["org"] is None
        again = await http.delete(f"/admin/orgs/{acme_id}/members/{bob.id}", headers=boss)
        assert again.status_code == 404
        gone = await http.delete(f"/admin/orgs/{globex_id}", headers=boss)
        assert gone.status_code == 204
        assert (await http.get("/me", headers=cat.auth)).json()["org"] is None
        assert (await http.get(f"/admin/orgs/{globex_id}", headers=boss)).status_code == 404
        still = (await http.get("/admin/usage", headers=boss)).json()
        assert still["totals"]["runs"] == 3, "a deleted organisation's calls still count"


async def test_an_organisations_budget_holds_its_members_together(
    server_factory: ServerFactory,
) -> None:
    """Two members share one daily budget: what one spends, the other cannot; a run that
    crosses it ends ``cost_budget``, and the next message of either member is refused with
    ``Retry-After``."""
    server = server_factory(models=PRICED_OFFLINE)
    async with httpx.AsyncClient(base_url=server.url) as http:
        boss = await _admin(server, http)
        ann, bob = await make_user(http, "ann"), await make_user(http, "bob")
        org_id = (await http.post("/admin/orgs", json={"name": "Shared"}, headers=boss)).json()[
            "id"
        ]
        for user in (ann, bob):
            await http.put(f"/admin/orgs/{org_id}/members/{user.id}", json={}, headers=boss)

        first = await _ask(server, ann, "count to 50")
        spent = first[-1]["data"]["usage"]["cost_usd"]
        assert spent > 0
        budget = round(spent * 1.1, 6)
        changed = await http.patch(
            f"/admin/orgs/{org_id}", json={"usd_per_day": budget}, headers=boss
        )
        assert changed.json()["usd_per_day"] == budget

        socket = await open_socket(server, bob.token)
        ack = await socket.send_message("count to 50")
        assert ack["type"] == "ack"
        warning = await socket.first(lambda f: f["type"] == "quota_warning")
        assert warning["data"] == {"quota": "org_usd_per_day", "used": spent, "limit": budget}
        events = await socket.run_to_end(ack["run_id"])
        ended = events[-1]["data"]
        assert ended["outcome"] == "failed" and ended["error"]["code"] == "cost_budget"
        assert "organisation's daily budget" in ended["error"]["message"]
        assert answer_text(events).startswith("1 2 3"), "what it wrote stays"
        await socket.close()

        for user in (ann, bob):
            refused = await http.post("/threads", json={"title": "more"}, headers=user.auth)
            thread_id = refused.json()["id"]
            response = await http.post(
                f"/threads/{thread_id}/runs", json={"content": "again"}, headers=user.auth
            )
            assert response.status_code == 429, response.text
            error = response.json()["error"]
            assert error["code"] == "budget_exceeded" and "organisation" in error["message"]
            assert 0 < int(response.headers["Retry-After"]) <= 86_400
        me = (await http.get("/me", headers=ann.auth)).json()["usage"]["org"]
        assert me["usd_per_day"] == budget and me["cost_usd_today"] > budget

        # Leaving the organisation leaves its budget behind.
        await http.delete(f"/admin/orgs/{org_id}/members/{ann.id}", headers=boss)
        assert (await _ask(server, ann, "count to 3"))[-1]["data"]["outcome"] == "completed"
