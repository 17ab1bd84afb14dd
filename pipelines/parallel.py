"""The scrub job with its steps in processes of their own (`claimscrub scrub --workers N`).

Dagster's multiprocess executor starts each step in a fresh process, which rebuilds the job from this module
(a job run that way must be reconstructable). The judge's steps, one per shard file, then run side by side,
each writing only its own shard's file and reading the main file read-only; the steps that write the main file
are in one concurrency pool (MAIN_FILE_POOL), which the run's instance limits to one step at a time. The
command holds the site lock for the whole run, and tells the steps so, so that no other writer comes in
between two of them.
"""

import os
from contextlib import contextmanager

import dagster as dg

from .database import SITE_LOCK_HELD, holds_site, site_lock_path

# Each pool without a limit of its own gets this one on the run's instance: the steps in MAIN_FILE_POOL
# (pipelines/database.py) take turns.
POOL_LIMITS = {"pools": {"default_limit": 1}}


def parallel_scrub_job() -> dg.JobDefinition:
    from .definitions import defs

    return defs.resolve_job_def("scrub_job").with_executor_def(dg.multiprocess_executor)


def reconstructable_job():
    return dg.build_reconstructable_job("pipelines.parallel", "parallel_scrub_job")


@contextmanager
def run_instance(home: str):
    """The run's own Dagster instance in `home`: SQLite storage, which keeps the pools' slots, with their limit."""
    overrides = {"telemetry": {"enabled": False}, "concurrency": POOL_LIMITS}
    with dg.DagsterInstance.local_temp(home, overrides=overrides) as instance:
        yield instance


@contextmanager
def _environment(**values: str):
    """Set for the step processes (they inherit it), as it was again afterwards."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(run_config: dict, workers: int, database: str):
    """Run the scrub job's steps in up to `workers` processes, under the site lock this process holds; the
    steps find the database through CLAIMSCRUB_DB and that lock through SITE_LOCK_HELD, which they inherit."""
    import tempfile

    if not holds_site(database):
        raise RuntimeError(f"the steps of a run in processes are covered by the site lock of {database}, "
                           "which this process does not hold")
    config = {**run_config, "execution": {"config": {"max_concurrent": workers}}}
    with _environment(CLAIMSCRUB_DB=str(database), **{SITE_LOCK_HELD: str(site_lock_path(database))}), \
            tempfile.TemporaryDirectory(prefix="claimscrub-run-") as home, run_instance(home) as instance:
        return dg.execute_job(reconstructable_job(), instance=instance, run_config=config, raise_on_error=False)
