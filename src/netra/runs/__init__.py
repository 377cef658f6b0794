"""Runs: admission of user messages into runs, and cancellation."""
