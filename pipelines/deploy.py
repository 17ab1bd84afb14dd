"""The project's definitions with an executor that runs each step away from the run: dagster-k8s's
`k8s_job_executor` (a Kubernetes pod per step) or dagster-celery's `celery_executor` (a Celery task per step,
taken by a worker). deploy/k8s.yaml and deploy/celery.yaml are a site's run configuration for them, and
deploy/k8s_definitions.py and deploy/celery_definitions.py the code locations that load it (docs/scaling.md).

dagster_k8s and dagster_celery are imported inside the function only: the `claimscrub` command, the tests of
the claim flow and `make ui` never load them."""

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import yaml

from .definitions import defs

EXECUTORS = ("k8s", "celery")


def executor_def(executor: str) -> dg.ExecutorDefinition:
    """The executor a site names, as its library publishes it: a run's config is validated with its schema."""
    if executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    raise ValueError(f"no executor {executor!r}: say {' or '.join(EXECUTORS)}")


def _with_executor(executor: dg.ExecutorDefinition) -> dg.Definitions:
    # The same objects as pipelines/definitions.py: nothing to keep in step with it but the executor.
    return dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, schedules=defs.schedules,
        sensors=defs.sensors, resources=defs.resources, loggers=defs.loggers, metadata=defs.metadata,
        executor=executor)


def definitions_for(executor: str, run_config: Mapping | None = None) -> dg.Definitions:
    """The project's assets, checks, jobs, schedule, sensors and resources, run by `executor` ("k8s" or
    "celery") instead of in process.

    Without `run_config` the executor takes its settings from each run's `execution:` section. With it (a
    site's deploy/*.yaml), the file is first validated against the scrub job, as tests/test_deploy.py does,
    and its `execution:` section then becomes the settings of every run: the nightly schedule and the sensors
    request runs whose configuration names only the ops, and they must reach the same cluster or broker. A
    run's own `execution:` section is then accepted and ignored."""
    bare = executor_def(executor)
    if run_config is None:
        return _with_executor(bare)
    dg.validate_run_config(_with_executor(bare).resolve_job_def("scrub_job"), dict(run_config))
    settings = dict(run_config.get("execution", {}).get("config") or {})
    return _with_executor(bare.configured(settings, name=bare.name))


def load_run_config(path: str | Path) -> dict:
    """A run configuration file (YAML) as Dagster reads one: `dagster job launch -c FILE` takes the same."""
    loaded = yaml.safe_load(Path(path).read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a run configuration (a mapping with ops: and execution:)")
    return loaded
