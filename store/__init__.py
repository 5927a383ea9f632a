"""Persistence shared by every layer: one schema, SQLite (embedded default) or PostgreSQL (Supabase) behind `Database`."""

from store.database import Database, Dialect, IntegrityConflict, open_database

__all__ = ["Database", "Dialect", "IntegrityConflict", "open_database"]
