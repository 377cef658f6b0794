"""The OpenAI-compatible API across real processes: a Responses stream whose instance is
killed (SIGKILL) mid-run resumes on another with ``starting_after``, and the client gets the
whole answer exactly once."""

from __future__ import annotations

import contextlib
import uuid
from contextlib import AsyncExitStack

import httpx
import openai
import pytest

from tests.cluster import Cluster, expected_answer, record_request
from tests.support import CanaryWatch, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
FAST_LEASES = {"lease_s": 1.0, "heartbeat_s": 0.2}


async def test_a_responses_stream_resumes_on_another_instance_when_its_own_is_killed(
    netra_cluster: Cluster, canaries: CanaryWatch
) -> None:
    a, b = (netra_cluster.serve(name, cluster=FAST_LEASES) for name in ("a", "b"))
    await netra_cluster.start(a, b)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=b.url, timeout=10))
        user = await make_user(http)
        made = await http.post(
            "/me/api-keys",
            json={"name": "sdk", "scopes": ["runs:write", "threads:read"]},
            headers=user.auth,
        )
        secret = made.json()["secret"]
        canaries.plant(secret)
        on_a, on_b = [
            await stack.enter_async_context(
                openai.AsyncOpenAI(base_url=f"{p.url}/v1", api_key=secret, max_retries=0)
            )
            for p in (a, b)
        ]
        token = f"oai-{uuid.uuid4().hex[:8]}"
        stream = await on_a.responses.create(
            model="assistant", input=record_request(token, 60), stream=True
        )
        first = []
        async for event in stream:
            first.append(event)
            if sum(e.type == "response.output_text.delta" for e in first) == 5:
                break
        a.kill()  # A executes the run and serves the stream: both die mid-answer
        with contextlib.suppress(Exception):
            await stream.close()

        rest = [
            event
            async for event in await on_b.responses.retrieve(
                first[0].response.id, stream=True, starting_after=first[-1].sequence_number
            )
        ]
        events = first + rest
        numbers = [e.sequence_number for e in events]
        assert numbers == sorted(set(numbers)), numbers
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == expected_answer(token, 60)
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == text
        assert netra_cluster.record_counts()[token] == 1
        logged = await http.get(f"/runs/{first[0].response.id}/events", headers=user.auth)
        notes = [e["data"]["resumed"] for e in logged.json()["items"] if "resumed" in e["data"]]
        assert [note["reason"] for note in notes] == ["takeover"], notes  # B finished it
