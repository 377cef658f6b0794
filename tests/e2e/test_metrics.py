"""GET /metrics: Prometheus text with run outcomes, sockets and the event log, and no user
data in it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import LiveServer, make_user, open_socket


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_runs_sockets_and_events(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(http)
    socket = await open_socket(server, user.token)
    for question in ("what is 2+2?", "what is 3*3?"):
        ack = await socket.send_message(question)
        await socket.run_to_end(ack["run_id"])
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    finished = (("agent", "assistant"), ("outcome", "completed"))
    assert samples[("netra_runs_finished_total", finished)] == 2
    assert samples[("netra_run_seconds_count", (("agent", "assistant"),))] == 2
    assert samples[("netra_sockets", ())] == 1 and samples[("netra_socket_users", ())] == 1
    assert samples[("netra_events_written_total", ())] >= len(socket.events())
    assert user.id not in response.text and user.email not in response.text
    await socket.close()
