"""Run the definitions' nightly `scrub_job` in a process of its own, as the daemon launches a run:
`python nightly_run.py REQUEST.json`, where the file holds the schedule's `run_config` and `tags`.

The job comes from `pipelines.definitions` with the resources bound there (CLAIMSCRUB_DB and
CLAIMSCRUB_LOCK_TIMEOUT are read when the definitions load, as in the daemon's run worker). The last line on
standard output is JSON: whether the run succeeded and the warnings of its run log (what the UI shows).

With PAUSE_BETWEEN_STEPS=FILE the run stops between two steps, once the batch's rows are staged and before the
next step opens its connection (no step connection open: the moment another writer could slip in if the run
did not hold the database), creates FILE, and goes on once FILE.go exists.
"""

import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

import assets.flow
from pipelines.resources import ClaimsDatabase

PAUSE_SECONDS_AT_MOST = 120


def _pause_between_steps(signal: Path) -> None:
    go = signal.with_name(signal.name + ".go")
    real_land, real_get = assets.flow.land_rows, ClaimsDatabase.get_connection
    state = {"staged": False, "open": 0, "paused": False}

    def land_rows(*args, **kwargs):
        count = real_land(*args, **kwargs)
        state["staged"] = True
        return count

    @contextmanager
    def get_connection(self):
        if state["staged"] and state["open"] == 0 and not state["paused"]:
            state["paused"] = True
            signal.touch()
            deadline = time.monotonic() + PAUSE_SECONDS_AT_MOST
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        state["open"] += 1
        try:
            with real_get(self) as con:
                yield con
        finally:
            state["open"] -= 1

    assets.flow.land_rows = land_rows
    ClaimsDatabase.get_connection = get_connection


if __name__ == "__main__":
    if os.environ.get("PAUSE_BETWEEN_STEPS"):
        _pause_between_steps(Path(os.environ["PAUSE_BETWEEN_STEPS"]))
    from pipelines.definitions import defs

    request = json.loads(Path(sys.argv[1]).read_text())
    job = defs.resolve_job_def("scrub_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(run_config=request["run_config"], tags=request["tags"], instance=instance,
                                        raise_on_error=False)
        warnings = [entry.user_message for entry in instance.all_logs(result.run_id)
                    if entry.level >= logging.WARNING]
    print(json.dumps({"success": result.success, "warnings": warnings}), flush=True)
    sys.exit(0 if result.success else 1)
