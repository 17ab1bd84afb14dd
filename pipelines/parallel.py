"""The scrub job with its steps in processes of their own (`claimscrub scrub --workers N`).

Dagster's multiprocess executor starts each step in a process of its own, which rebuilds the job from this
module (a job run that way must be reconstructable). The processes are forked from a server that has already
imported the job's modules (the executor's `forkserver` start method), so a step does not import Dagster,
DuckDB and the rules again. The server is the command's, started by its first run: a step takes the site's
settings (the CLAIMSCRUB_* variables, the working folder) from its job's arguments, not from the environment
that the server was started with. The judge's steps, one per shard file, then run side by side,
each writing only its own shard's file and reading the main file read-only; the steps that write the main file
are in one concurrency pool (MAIN_FILE_POOL), which the run's instance limits to one step at a time. The
command holds the site lock for the whole run, and tells the steps so, so that no other writer comes in
between two of them.
"""

import multiprocessing
import os
import re
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from assets.readers import remove_abandoned

from .database import MAIN_FILE_TAG, SITE_LOCK_HELD, holds_site, site_lock_path

# What the step processes' server imports once, before it forks them: the job and what its steps use, and
# what Dagster imports when a step opens the run's instance (its SQLite storage, alembic, upath), which is
# otherwise most of a step's start.
PRELOAD = ["pipelines.parallel", "pipelines.definitions", "assets.flow", "assets.validate",
           "assets.scrub", "assets.outputs", "reports.workbook", "dagster._core.instance.factory",
           "dagster._core.storage.sqlite_storage", "dagster._core.storage.event_log.sqlite.sqlite_event_log",
           "dagster._core.storage.runs.sqlite.sqlite_run_storage",
           "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage", "dagster._core.storage.root",
           "dagster._core.secrets.loader", "alembic.command", "alembic.config", "alembic.runtime.migration",
           "upath", "fsspec.implementations.local"]
SETTINGS_PREFIX = "CLAIMSCRUB_"
# The command's --log, for the steps to append their progress lines to (a step's bars would garble the
# command's terminal: it has none).
PROGRESS_LOG = "CLAIMSCRUB_PROGRESS_LOG"

# Each pool without a limit of its own gets this one on the run's instance: the steps in MAIN_FILE_POOL
# (pipelines/database.py) take turns.
POOL_LIMITS = {"pools": {"default_limit": 1}}


def parallel_scrub_job(settings: dict | None = None, cwd: str | None = None) -> dg.JobDefinition:
    if settings is not None:
        adopt(settings, cwd)
    from .definitions import defs

    return defs.resolve_job_def("scrub_job").with_executor_def(dg.multiprocess_executor)


def adopt(settings: dict, cwd: str | None) -> None:
    """The command's settings in a step's process: its CLAIMSCRUB_* variables exactly, and its working folder."""
    for key in [key for key in os.environ if key.startswith(SETTINGS_PREFIX) and key not in settings]:
        del os.environ[key]
    os.environ.update(settings)
    if cwd:
        os.chdir(cwd)
    if multiprocessing.parent_process() is not None and settings.get(PROGRESS_LOG):
        from .progress import show_progress

        show_progress(open(settings[PROGRESS_LOG], "a"), bars=False)  # noqa: SIM115 (the step's whole life)


def settings_now() -> dict:
    return {key: value for key, value in os.environ.items() if key.startswith(SETTINGS_PREFIX)}


def reconstructable_job(**kwargs):
    return dg.build_reconstructable_job("pipelines.parallel", "parallel_scrub_job", reconstructable_kwargs=kwargs)


# The run's own instance folder (`execute`): the process id, then TemporaryDirectory's suffix.
RUN_FOLDER = re.compile(r"claimscrub-run-(\d+)-[A-Za-z0-9_]+")


@contextmanager
def run_instance(home: str):
    """The run's own Dagster instance in `home`: SQLite storage, which keeps the pools' slots, with their limit."""
    # The step processes log through the instance's Python log level: Dagster's DEBUG lines stay off the
    # command's standard error.
    # No compute log capture: it tails each step's output through two helper processes per step, which print
    # a traceback each when Ctrl-C reaches the command's process group; the steps write to the command's
    # standard error as they are.
    overrides = {"telemetry": {"enabled": False}, "concurrency": POOL_LIMITS,
                 "python_logs": {"python_log_level": "ERROR"},
                 "compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                                  "class": "NoOpComputeLogManager"}}
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


def execute(run_config: dict, workers: int, database: str, log: str | None = None):
    """Run the scrub job's steps in up to `workers` processes, under the site lock this process holds; the
    steps find the database through CLAIMSCRUB_DB and that lock through SITE_LOCK_HELD, which their job's
    arguments hand them with the command's other settings."""
    import tempfile

    if not holds_site(database):
        raise RuntimeError(f"the steps of a run in processes are covered by the site lock of {database}, "
                           "which this process does not hold")
    executor = {"max_concurrent": workers, "start_method": {"forkserver": {"preload_modules": PRELOAD}},
                "tag_concurrency_limits": [{"key": key, "value": value, "limit": 1}
                                           for key, value in MAIN_FILE_TAG.items()]}
    config = {**run_config, "execution": {"config": executor}}
    progress = {PROGRESS_LOG: str(Path(log).resolve())} if log else {}
    # The run's instance folder is named by this process: a run killed outright leaves it, and the next one
    # removes it.
    remove_abandoned(Path(tempfile.gettempdir()), RUN_FOLDER)
    with _environment(CLAIMSCRUB_DB=str(database), **{SITE_LOCK_HELD: str(site_lock_path(database))}, **progress), \
            tempfile.TemporaryDirectory(prefix=f"claimscrub-run-{os.getpid()}-") as home, \
            run_instance(home) as instance:
        job = reconstructable_job(settings=settings_now(), cwd=os.getcwd())
        return dg.execute_job(job, instance=instance, run_config=config, raise_on_error=False)
