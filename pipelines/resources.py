"""The one DuckDB resource (pipelines/database.py has the database's path and how a connection waits)."""

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from .database import (
    CONNECTION_CONFIG,
    DATABASE_TAG,  # noqa: F401  (the nightly job and its tests import it from here)
    connect,
)
from .settings import database_path, lock_timeout


class ClaimsDatabase(DuckDBResource):
    """DuckDBResource that creates the database's folder when a run starts, not when code is imported, and
    whose connections wait for another process's write lock instead of failing."""

    lock_timeout: float = 60.0

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def get_connection(self):
        con = connect(self.database, self.lock_timeout, config=self.connection_config)
        try:
            yield con
        finally:
            con.close()


def duckdb_resource(path: str | None = None) -> ClaimsDatabase:
    return ClaimsDatabase(database=path or database_path(), connection_config=CONNECTION_CONFIG,
                          lock_timeout=lock_timeout())


def run_resources(path: str | None = None, staged_exports=None) -> dict:
    """The resources of a run of the claim assets: the database, and the exports the command staged ahead of
    the run (none for the nightly job and the UI, whose read stage stages each file itself)."""
    from assets.readers import NothingStaged

    return {"duckdb": duckdb_resource(path), "staged_exports": staged_exports or NothingStaged()}
