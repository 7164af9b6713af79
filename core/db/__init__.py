"""Database layer: declarative base, engine and sessions, shared tables, Alembic migration commands."""
