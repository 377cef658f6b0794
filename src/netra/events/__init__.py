"""Events: the envelope, the group-commit event log writer, the bus and the bridge."""
