"""The claims database: its path from CLAIMSCRUB_DB, else the working folder's database, and connections to it.

DuckDB lets one process at a time write a database file. Every writer (each command that writes, and every
run Dagster launches, through the resource) holds the file for its whole run, so that two of them never
interleave. Rather than fail at once when another process holds it, a writer waits for the lock up to
CLAIMSCRUB_LOCK_TIMEOUT seconds, says once that it waits, and then fails with a plain message.
"""

import time
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


def waiting_notice(database: str, timeout: float, waiter: str = "") -> str:
    """What a writer says, once, when another process holds the database: the file, how long it waits, and
    (for a run launched by Dagster, whose log has no command line to go by) what is waiting."""
    notice = f"database {database} is in use by another process; waiting up to {timeout:g} s"
    return f"{notice} before {waiter} starts" if waiter else notice


def connect(database: str, timeout: float, on_wait=None, config: dict = CONNECTION_CONFIG) -> duckdb.DuckDBPyConnection:
    """Open the database for writing, waiting up to `timeout` seconds for another process's lock.

    Connections of one process share one database instance, so a process that already holds the file
    opens further connections at once; `on_wait` is called once if this one has to wait.
    """
    return waiting_for_lock(lambda: duckdb.connect(database, config=config), database, timeout, on_wait)


def waiting_for_lock(open_it, database, timeout: float, on_wait=None):
    """`open_it()` (a connection, an attach), tried again while another process holds `database`'s lock, up to
    `timeout` seconds; `on_wait` is called once if it has to wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_it()
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


def database_for(path: str | None = None) -> str:
    """The database a run writes (--db, else CLAIMSCRUB_DB, else the working folder's), its folder made."""
    database = path or database_path()
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    return database
