"""Execution: the process-wide ExecutionEngine and one UserExecutionEngine per user."""
