"""The one DuckDB resource (pipelines/database.py has the database's path and how a connection waits)."""

import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from .database import (
    CONNECTION_CONFIG,
    DATABASE_TAG,  # noqa: F401  (the nightly job and its tests import it from here)
    connect,
    holding,
    waiting_notice,
)
from .settings import database_path, lock_timeout


class ClaimsDatabase(DuckDBResource):
    """DuckDBResource that holds the site lock and the database for a whole run, as `claimscrub scrub` does,
    and whose connections wait for another process's write lock instead of failing.

    The hold is taken when the run sets its resources up, before its first step, and let go when it tears
    them down after its last, whether the run succeeded or not. Between two steps of a run launched by the
    daemon or the UI, a command-line writer therefore finds the site still held and waits, instead of slipping
    in and interleaving with the run. The steps open their own connections in the same process (the
    definitions' in-process executor), which share the held instance and its lock, so they open at once. When
    a command runs a job in process it already holds both itself, and the hold here is taken at once too; in
    the step processes of `claimscrub scrub --workers N` the command holds the site lock for them
    (pipelines/database.py `holding_site`), and each step holds the file for its own length.
    """

    lock_timeout: float = 60.0
    _holding: ExitStack | None = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Everything a run makes (the database, its reports) holds patient data: owner-only, as the command makes
        # it (pipelines/cli.py), whatever umask started the daemon or the UI whose run this is.
        os.umask(0o077)
        # The folder is made when a run starts, not when the code is imported.
        Path(self.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        run = context.dagster_run
        waiter = f"run {run.run_id[:8]} of {run.job_name}" if run is not None else "this run"
        notice = waiting_notice(self.database, self.lock_timeout, waiter)

        def say_it_waits() -> None:
            # Standard error for whoever watches the run's process (its compute log), the run log for the UI.
            print(f"claimscrub: {notice}", file=sys.stderr, flush=True)
            if context.log is not None:
                context.log.warning(notice)

        # Past the timeout, DatabaseBusyError fails the run before any step started: nothing is written.
        with ExitStack() as stack:
            stack.enter_context(holding(self.database, self.lock_timeout, on_wait=say_it_waits,
                                        config=self.connection_config))
            self._holding = stack.pop_all()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._holding is not None:
            self._holding.close()
            self._holding = None

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
