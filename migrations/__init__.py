"""Alembic environment and versions: the only way finmed's schema changes."""
