"""The HTTP API: routes, dependencies and the one error mapping."""
