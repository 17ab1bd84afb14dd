"""The scrub job with its steps in processes of their own (`claimscrub scrub --workers N`).

Dagster's multiprocess executor starts each step in a fresh process, which rebuilds the job from this module
(a job run that way must be reconstructable). The judge's steps, one per shard file, then run side by side,
each writing only its own shard's file and reading the main file read-only; the other steps write the main
file one after another.
"""

import dagster as dg


def parallel_scrub_job() -> dg.JobDefinition:
    from .definitions import defs

    return defs.resolve_job_def("scrub_job").with_executor_def(dg.multiprocess_executor)


def reconstructable_job():
    return dg.build_reconstructable_job("pipelines.parallel", "parallel_scrub_job")


def execute(run_config: dict, workers: int, database: str):
    """Run the scrub job's steps in up to `workers` processes; the steps find the database through
    CLAIMSCRUB_DB, which their processes inherit."""
    import os
    import tempfile

    os.environ["CLAIMSCRUB_DB"] = str(database)
    config = {**run_config, "execution": {"config": {"max_concurrent": workers}}}
    with tempfile.TemporaryDirectory(prefix="claimscrub-run-") as home, \
            dg.DagsterInstance.local_temp(home, overrides={"telemetry": {"enabled": False}}) as instance:
        result = dg.execute_job(reconstructable_job(), instance=instance, run_config=config,
                                raise_on_error=False)
        return result
