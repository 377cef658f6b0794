"""Tools: declarations, the built-in tools and the per-user UnifiedToolDispatcher."""
