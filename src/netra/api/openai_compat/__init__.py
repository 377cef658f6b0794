"""The OpenAI-compatible API under ``/v1``: Chat Completions, the Responses API and the
model list, for the OpenAI SDKs and every tool built on them. Each call is a real Netra run —
admitted by ``RunService`` (quotas, the agent's rules), executed by the engine, its events
stored then published, seen live on the user's sockets — read back through the connection
machinery an SSE stream uses (``netra.api.streams``), never a second delivery path.

- ``bodies``: the request bodies and the answers' models;
- ``mapping``: a run's events as Chat Completions chunks and Responses events;
- ``routes``: the routes, and ``RunFeed``, a run's events read from a connection.

docs/protocol.md ("OpenAI-compatible API") says what maps to what.
"""
