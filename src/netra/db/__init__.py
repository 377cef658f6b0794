"""Persistence: tables, the DatabaseManager, migrations and user-scoped repositories."""
