"""The claims database: its path from CLAIMSCRUB_DB, else the working folder's database, and connections to it.

DuckDB lets one process at a time write a database file. Rather than fail at once when another scrub (or
the nightly job, or someone's DuckDB shell) holds it, a connection waits for the lock up to
CLAIMSCRUB_LOCK_TIMEOUT seconds and then fails with a plain message.
"""

import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .settings import database_path

# DuckDB spills to disk past the memory limit: a scrub of millions of lines fits a laptop's memory. It
# never fetches extensions: a scrub makes no network access.
CONNECTION_CONFIG = {
    "memory_limit": "1GB",
    "preserve_insertion_order": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
RETRY_SECONDS = 0.25

# Runs that share a database file queue behind each other (dagster.yaml limits this tag to one run per value).
DATABASE_TAG = "claimscrub/database"


class DatabaseBusyError(RuntimeError):
    """Another process held the database for longer than the lock timeout. The message is one sentence."""


def connect(database: str, timeout: float, on_wait=None, config: dict = CONNECTION_CONFIG) -> duckdb.DuckDBPyConnection:
    """Open the database for writing, waiting up to `timeout` seconds for another process's lock.

    Connections of one process share one database instance, so a process that already holds the file
    opens further connections at once; `on_wait` is called once if this one has to wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(database, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"database {database} is in use by another process; gave up after {timeout:g} s "
                    "(CLAIMSCRUB_LOCK_TIMEOUT sets how long to wait)"
                ) from None
            if on_wait is not None:
                on_wait()
                on_wait = None
            time.sleep(RETRY_SECONDS)


@contextmanager
def hold_database(database: str, timeout: float, on_wait=None):
    """Hold the database for a whole run, so that two runs never interleave their stages."""
    con = connect(database, timeout, on_wait)
    try:
        yield con
    finally:
        con.close()


def database_for(path: str | None = None) -> str:
    """The database a run writes (--db, else CLAIMSCRUB_DB, else the working folder's), its folder made."""
    database = path or database_path()
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    return database
