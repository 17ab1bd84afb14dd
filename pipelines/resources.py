"""The one DuckDB resource: its path from CLAIMSCRUB_DB, else the working folder's database."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from .settings import database_path

# DuckDB spills to disk past this; it keeps a scrub of millions of lines within a laptop's memory.
CONNECTION_CONFIG = {"memory_limit": "1GB", "preserve_insertion_order": False}


class ClaimsDatabase(DuckDBResource):
    """DuckDBResource that creates the database's folder when a run starts, not when code is imported."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)


def duckdb_resource(path: str | None = None) -> DuckDBResource:
    return ClaimsDatabase(database=path or database_path(), connection_config=CONNECTION_CONFIG)
