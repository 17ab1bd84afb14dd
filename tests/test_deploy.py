"""deploy/k8s.yaml and deploy/celery.yaml, a site's run configuration of the scrub job on Kubernetes or with
Celery workers, checked with Dagster's own validator against the job of the definitions with that executor: a
misspelled key or a wrong type fails here, not on the first night. Validation only: no cluster, no broker."""

import copy
import re
import runpy
import sys
from pathlib import Path

import dagster as dg
import pytest

import assets.flow  # noqa: F401  (what the command imports to scrub)
import pipelines.cli  # noqa: F401
from pipelines.definitions import defs
from pipelines.deploy import EXECUTORS, definitions_for, load_run_config
from pipelines.runs import run_config


def _executor_modules() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] in ("dagster_k8s", "dagster_celery", "kubernetes",
                                                                 "celery"))


# Taken when the module is collected: no test has asked for an executor yet, and no other test module does.
LOADED_WITH_THE_COMMAND = _executor_modules()

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BROKER = "pyamqp://claimscrub@127.0.0.1//"


@pytest.fixture(autouse=True)
def broker(monkeypatch):
    # celery.yaml reads the broker's URL from the environment, as a site's code location and workers do.
    monkeypatch.setenv("CLAIMSCRUB_CELERY_BROKER", BROKER)


def site_file(executor: str) -> dict:
    return load_run_config(DEPLOY / f"{executor}.yaml")


def scrub_job(executor: str) -> dg.JobDefinition:
    return definitions_for(executor).resolve_job_def("scrub_job")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_site_file_is_a_run_of_the_scrub_job(executor):
    config = site_file(executor)
    validated = dg.validate_run_config(scrub_job(executor), config)
    assert validated["execution"] == {executor: validated["execution"][executor]}
    # The ops and their settings are those the command and the nightly schedule give a scrub.
    expected = run_config("b", [Path("claims.csv")], None, "", "", False)["ops"]
    assert config["ops"].keys() == expected.keys()
    for op, op_config in config["ops"].items():
        assert op_config["config"].keys() == expected[op]["config"].keys(), op


def test_one_step_at_a_time_writes_the_database():
    assert site_file("k8s")["execution"]["config"]["max_concurrent"] == 1
    assert site_file("celery")["execution"]["config"]["config_source"]["worker_concurrency"] == 1


def _set(path: str, value):
    def change(config: dict) -> None:
        *parents, key = path.split(".")
        for name in parents:
            config = config[name]
        config[key] = value
    return change


def _rename(path: str, new: str):
    def change(config: dict) -> None:
        *parents, key = path.split(".")
        for name in parents:
            config = config[name]
        config[new] = config.pop(key)
    return change


@pytest.mark.parametrize("executor, change, said", [
    ("k8s", _rename("execution.config.job_namespace", "job_namepsace"),
     'unexpected config entry "job_namepsace" at path root:execution:config'),
    ("k8s", _set("execution.config.max_concurrent", "one"), "root:execution:config:max_concurrent"),
    ("k8s", _set("execution.config.volume_mounts", [{"mount_path": "/var/lib/claimscrub"}]),
     'Missing required config entry "name" at path root:execution:config:volume_mounts[0]'),
    ("celery", _rename("execution.config.broker", "brokr"),
     'unexpected config entry "brokr" at path root:execution:config'),
    ("celery", _set("execution.config.include", "pipelines.definitions"),
     "root:execution:config:include must be list"),
    ("celery", _rename("ops.raw_claim_rows.config.batch_id", "batch"),
     'Missing required config entry "batch_id" at path root:ops:raw_claim_rows:config'),
], ids=["k8s-misspelled-key", "k8s-wrong-type", "k8s-mount-without-volume-name", "celery-misspelled-key",
        "celery-wrong-type", "op-config-misspelled"])
def test_a_wrong_file_is_refused(executor, change, said):
    config = copy.deepcopy(site_file(executor))
    change(config)
    with pytest.raises(dg.DagsterInvalidConfigError, match=re.escape(said)):
        dg.validate_run_config(scrub_job(executor), config)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_definitions_are_the_projects_with_another_executor(executor):
    deployed = definitions_for(executor)
    for part in ("assets", "asset_checks", "jobs", "schedules", "sensors"):
        assert list(getattr(deployed, part)) == list(getattr(defs, part)), part
    assert deployed.resources == defs.resources
    assert scrub_job(executor).executor_def.name == executor
    assert defs.resolve_job_def("scrub_job").executor_def.name == "in_process"


def test_an_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="k8s or celery"):
        definitions_for("dask")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_code_location_runs_every_run_with_the_site_file(executor):
    location = runpy.run_path(str(DEPLOY / f"{executor}_definitions.py"))["defs"]
    job = location.resolve_job_def("scrub_job")
    config = site_file(executor)
    expected = dg.validate_run_config(scrub_job(executor), config)["execution"]
    # The nightly schedule's runs name only the ops: they get the site file's executor settings all the same.
    assert dg.validate_run_config(job, {"ops": config["ops"]})["execution"] == expected


def test_a_celery_worker_reads_the_same_settings():
    from dagster_celery.cli import get_validated_config

    expected = dg.validate_run_config(scrub_job("celery"), site_file("celery"))["execution"]["celery"]
    assert get_validated_config(str(DEPLOY / "celery.yaml")) == expected
    assert expected["broker"] == BROKER


def test_the_command_and_the_ui_never_load_the_executors():
    # The command, the project's definitions (`make ui`) and pipelines.deploy itself import dagster_k8s and
    # dagster_celery only when an executor is asked for.
    assert LOADED_WITH_THE_COMMAND == []
    definitions_for("k8s")
    assert "dagster_k8s" in sys.modules
