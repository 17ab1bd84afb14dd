"""Run the claimscrub command with a step of its `--workers` run paused: `python steps_paused.py scrub ARGS...`.

The command's run rebuilds its job in every step process from this module rather than from pipelines.parallel.
With PAUSE_JUDGE=FILE, the process that judges shard 0 stops before it opens any file, creates FILE, and goes on
once FILE.go exists. No process of the run holds the main file then (the steps before have ended; the command
let go of it when the run began): the moment a writer that did not wait for the command's site lock would come
in between two steps.
"""

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

PAUSE_SECONDS_AT_MOST = 120


def _pause_the_first_shard(signal: Path) -> None:
    import assets.flow

    go = signal.with_name(signal.name + ".go")
    real = assets.flow.shard_connection

    @contextmanager
    def shard_connection(work: dict):
        if work["shard"] == 0:
            signal.touch()
            deadline = time.monotonic() + PAUSE_SECONDS_AT_MOST
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        with real(work) as con:
            yield con

    assets.flow.shard_connection = shard_connection


def parallel_scrub_job(**kwargs) -> dg.JobDefinition:
    from pipelines.parallel import parallel_scrub_job as the_job

    job = the_job(**kwargs)
    if os.environ.get("PAUSE_JUDGE"):
        _pause_the_first_shard(Path(os.environ["PAUSE_JUDGE"]))
    return job


if __name__ == "__main__":
    import pipelines.parallel
    from pipelines.cli import main

    pipelines.parallel.reconstructable_job = lambda **kwargs: dg.build_reconstructable_job(
        "tests.steps_paused", "parallel_scrub_job", reconstructable_kwargs=kwargs)
    sys.exit(main(sys.argv[1:]))
