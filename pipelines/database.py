"""The claims database: its path from CLAIMSCRUB_DB, else the working folder's database, and connections to it.

One writer at a time on a site's files, whoever writes. Every writer (each command that writes, and every run
Dagster launches, through the resource) first takes the site lock, an advisory lock on a file beside the main
database (`NAME.lock`; one for a per-shard site's files too), and holds it for its whole run; then it opens
the main file, which DuckDB lets one process write at a time. The site lock is what keeps another writer out
when no process holds the database itself: between two steps of `claimscrub scrub --workers N`, whose steps'
processes open the files one after another while the command holds the site lock for them. Rather than fail at
once when another process holds either lock, a writer waits up to CLAIMSCRUB_LOCK_TIMEOUT seconds, says once
that it waits, and then fails with a plain message.
"""

import fcntl
import os
import threading
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

# The Dagster concurrency pool of every step that writes the main file (docs/scaling.md): where steps run in
# processes of their own, the pool's limit of 1 makes them take turns instead of each waiting on the file.
MAIN_FILE_POOL = "claimscrub-main-file"
# The same steps carry this tag, which the multiprocess executor of `scrub --workers` limits to one step at a
# time itself: a step blocked on a pool's slot is looked at again only after a second or more (Dagster backs
# off up to 15 s), so the executor never launches two of them and the pool's slot is always free.
MAIN_FILE_TAG = {"claimscrub/file": "main"}

# Set by a command for the step processes it starts: the site lock it holds for them. A step whose site lock
# is this one neither takes it nor waits for it (it would wait for its own command until the timeout).
SITE_LOCK_HELD = "CLAIMSCRUB_SITE_LOCK_HELD"


class DatabaseBusyError(RuntimeError):
    """Another process held the database for longer than the lock timeout. The message is one sentence."""


class DatabaseOpenError(RuntimeError):
    """The database file cannot be opened at all (a folder, another kind of file, a folder that does not
    exist). The message is one sentence naming the file."""


# What DuckDB's refusals to open a file mean, in plain words.
OPEN_PROBLEMS = [
    ("is a directory", "it is a folder, not a database file"),
    ("not a valid duckdb database", "it is not a DuckDB database file"),
    ("no such file or directory", "its folder does not exist"),
    ("permission denied", "permission denied"),
]


def open_error(database: str, exc: Exception) -> DatabaseOpenError:
    text = str(exc).lower()
    what = next((words for mark, words in OPEN_PROBLEMS if mark in text), str(exc).splitlines()[0])
    return DatabaseOpenError(f"database {database} cannot be opened: {what} (--db or CLAIMSCRUB_DB names it)")


def waiting_notice(database: str, timeout: float, waiter: str = "") -> str:
    """What a writer says, once, when another process holds the database: the file, how long it waits, and
    (for a run launched by Dagster, whose log has no command line to go by) what is waiting."""
    notice = f"database {database} is in use by another process; waiting up to {timeout:g} s"
    return f"{notice} before {waiter} starts" if waiter else notice


def site_lock_path(database: str | Path) -> Path:
    """The site lock's file, beside the main database: `claimscrub.duckdb.lock` for `claimscrub.duckdb`."""
    path = Path(database).resolve()
    return path.with_name(path.name + ".lock")


# The site locks this process holds, by lock file: [descriptor, holds]. A run the command makes in process takes
# the lock again through its resource and must not wait for the command's own hold.
_held: dict[str, list] = {}
_held_guard = threading.Lock()


def holds_site(database: str | Path) -> bool:
    """Whether this process holds the site lock of `database`."""
    with _held_guard:
        return str(site_lock_path(database)) in _held


@contextmanager
def holding_site(database: str | Path, timeout: float, on_wait=None, deadline: float | None = None):
    """Hold the site lock of `database` for the block, waiting up to `timeout` seconds (or until `deadline`)
    for another process's; `on_wait` is called once if it has to wait. Taken again in a process that holds
    it, it is held at once; in a step process whose command holds it (SITE_LOCK_HELD), it is not taken."""
    path = str(site_lock_path(database))
    if os.environ.get(SITE_LOCK_HELD) == path:
        yield
        return
    # The guard is held while waiting, so that two threads of one process never both wait on the file.
    with _held_guard:
        if path in _held:
            _held[path][1] += 1
        else:
            _held[path] = [_take(path, database, timeout, on_wait, deadline), 1]
    try:
        yield
    finally:
        with _held_guard:
            _held[path][1] -= 1
            if _held[path][1] == 0:
                os.close(_held.pop(path)[0])


def _take(path: str, database, timeout: float, on_wait, deadline: float | None) -> int:
    # The file is never removed: a writer waiting on a removed file's lock would hold a lock nobody else sees.
    # The kernel lets go of the lock when its holder exits, however it ends.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _retrying(lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),
                  lambda exc: isinstance(exc, BlockingIOError), database, timeout, on_wait, deadline)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def holding(database: str, timeout: float, on_wait=None, config: dict = CONNECTION_CONFIG):
    """The site lock, then the database open for writing, for the block; one wait of up to `timeout` seconds
    for both, and `on_wait` called at most once. Yields the connection."""
    # Before the lock file beside it is made: a refused database leaves nothing behind.
    refuse_other_files(database)
    deadline = time.monotonic() + timeout
    said = []

    def say_it_once() -> None:
        if not said and on_wait is not None:
            said.append(True)
            on_wait()

    with holding_site(database, timeout, say_it_once, deadline):
        con = connect(database, timeout, say_it_once, config, deadline)
        try:
            yield con
        finally:
            con.close()


def connect(database: str, timeout: float, on_wait=None, config: dict = CONNECTION_CONFIG,
            deadline: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the database for writing, waiting up to `timeout` seconds for another process's lock.

    Connections of one process share one database instance, so a process that already holds the file
    opens further connections at once; `on_wait` is called once if this one has to wait.
    """
    refuse_other_files(database)
    try:
        return waiting_for_lock(lambda: quiet(duckdb.connect(database, config=config)), database, timeout,
                                on_wait, deadline)
    except duckdb.IOException as exc:
        raise open_error(database, exc) from None
    except duckdb.Error as exc:
        if "corrupt" not in str(exc).lower():
            raise
        said = str(exc).splitlines()[0]
        raise DatabaseOpenError(f"database {database} cannot be opened: it is damaged ({said}); restore it from a "
                                "backup (--db or CLAIMSCRUB_DB names it)") from None


# A DuckDB database file says so in its first block, after the block's checksum.
DUCKDB_MAGIC, DUCKDB_MAGIC_AT = b"DUCK", 8


def refuse_other_files(database: str) -> None:
    """Refuse a file that exists but is no DuckDB database: DuckDB would open a CSV (a claim export named as
    `--db` by mistake) as a database of its own in memory, and the run would keep nothing."""
    if not database:
        raise DatabaseOpenError("database '' cannot be opened: name a file (--db or CLAIMSCRUB_DB names it)")
    if os.path.isdir(database):
        raise DatabaseOpenError(f"database {database} cannot be opened: it is a folder, not a database file "
                                "(--db or CLAIMSCRUB_DB names it)")
    try:
        if os.path.exists(database) and not os.path.isfile(database):
            # A pipe would hold the command in open() until something wrote to it, past any lock timeout.
            raise DatabaseOpenError(f"database {database} cannot be opened: it is not a regular file "
                                    "(--db or CLAIMSCRUB_DB names it)")
        with open(database, "rb") as fh:
            head = fh.read(DUCKDB_MAGIC_AT + len(DUCKDB_MAGIC))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return  # a new database, or one DuckDB refuses in words of its own
    except OSError as exc:
        raise open_error(database, exc) from None
    if head and head[DUCKDB_MAGIC_AT:] != DUCKDB_MAGIC:
        raise DatabaseOpenError(f"database {database} cannot be opened: it is not a DuckDB database file "
                                "(--db or CLAIMSCRUB_DB names it)")


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No progress bar: a query of more than two seconds would draw DuckDB's on standard output, which a script
    reads (a connection's setting, not one DuckDB takes when the database opens)."""
    con.execute("set enable_progress_bar = false")
    return con


def waiting_for_lock(open_it, database, timeout: float, on_wait=None, deadline: float | None = None):
    """`open_it()` (a connection, an attach), tried again while another process holds `database`'s lock, up to
    `timeout` seconds (or until `deadline`); `on_wait` is called once if it has to wait."""
    return _retrying(open_it, lambda exc: isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower(),
                     database, timeout, on_wait, deadline)


def _retrying(try_it, busy, database, timeout: float, on_wait, deadline: float | None):
    deadline = time.monotonic() + timeout if deadline is None else deadline
    while True:
        try:
            return try_it()
        except Exception as exc:
            if not busy(exc):
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
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as exc:  # a file where a folder of the path belongs; a symlink loop
        why = getattr(exc, "strerror", None) or exc
        raise DatabaseOpenError(f"database {database} cannot be opened: its folder cannot be made ({why}) "
                                "(--db or CLAIMSCRUB_DB names it)") from None
    return database
