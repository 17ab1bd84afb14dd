"""The one DuckDB resource: its path from CLAIMSCRUB_DB, else the working folder's database."""

from pathlib import Path

from dagster_duckdb import DuckDBResource

from .settings import database_path

# DuckDB spills to disk past this; it keeps a scrub of millions of lines within a laptop's memory.
CONNECTION_CONFIG = {"memory_limit": "1GB", "preserve_insertion_order": False}


def duckdb_resource(path: str | None = None) -> DuckDBResource:
    database = path or database_path()
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=database, connection_config=CONNECTION_CONFIG)
