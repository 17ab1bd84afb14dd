"""Code location of claimscrub on Kubernetes: the project's definitions with dagster-k8s's k8s_job_executor,
set from deploy/k8s.yaml (validated when the location loads). `dagster dev -f deploy/k8s_definitions.py`, or a
user deployment's `-f` (docs/scaling.md, "Running it on Kubernetes or Celery")."""

from pathlib import Path

from pipelines.deploy import definitions_for, load_run_config

defs = definitions_for("k8s", load_run_config(Path(__file__).with_name("k8s.yaml")))
