"""The one Definitions of claimscrub: reference and claim assets by stage, their checks, the jobs, the inbox
sensor and the nightly schedule."""

import dagster as dg

from assets.feedback import FEEDBACK_ASSETS
from assets.flow import ALL_ASSETS
from assets.inbox import inbox_files
from assets.rejudge import REJUDGE_ASSETS
from reference.assets import REFERENCE_CHECKS

from .nightly import (feedback_job, inbox_sensor, nightly_scrub, register_inbox_job, rejudge_job,
                      remittance_sensor, scrub_job)
from .resources import run_resources

defs = dg.Definitions(
    assets=[*ALL_ASSETS, *FEEDBACK_ASSETS, *REJUDGE_ASSETS, inbox_files],
    asset_checks=REFERENCE_CHECKS,
    jobs=[scrub_job, register_inbox_job, feedback_job, rejudge_job],
    schedules=[nightly_scrub],
    sensors=[inbox_sensor, remittance_sensor],
    resources=run_resources(),
    # DuckDB has one writer per file: the steps of a run take turns in one process, never in parallel.
    executor=dg.in_process_executor,
)
