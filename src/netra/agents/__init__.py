"""Agents: definitions, the AgentRegistry and the built-in assistant."""
