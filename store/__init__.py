"""Persistence shared by every layer: one schema on SQLite (default) or PostgreSQL (Supabase), behind `Database`."""

from store.database import Database, Dialect, IntegrityConflict
from store.engines import open_database

__all__ = ["Database", "Dialect", "IntegrityConflict", "open_database"]
