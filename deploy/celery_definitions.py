"""Code location of claimscrub with Celery workers: the project's definitions with dagster-celery's
celery_executor, set from deploy/celery.yaml (validated when the location loads; CLAIMSCRUB_CELERY_BROKER must
be set). `dagster dev -f deploy/celery_definitions.py`; the workers: `dagster-celery worker start -A
dagster_celery.app -y deploy/celery.yaml -i pipelines.definitions` (docs/scaling.md, "Running it on Kubernetes
or Celery")."""

from pathlib import Path

from pipelines.deploy import definitions_for, load_run_config

defs = definitions_for("celery", load_run_config(Path(__file__).with_name("celery.yaml")))
