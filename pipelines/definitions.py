"""The one Definitions of claimscrub: reference and claim assets by stage, their checks, one job."""

import dagster as dg

from assets.feedback import FEEDBACK_ASSETS
from assets.flow import ALL_ASSETS
from reference.assets import REFERENCE_CHECKS

from .resources import duckdb_resource

scrub_job = dg.define_asset_job("scrub_job", selection=dg.AssetSelection.all(),
                                description="Load reference data, then ingest, validate, price, scrub and report.")

defs = dg.Definitions(
    assets=[*ALL_ASSETS, *FEEDBACK_ASSETS],
    asset_checks=REFERENCE_CHECKS,
    jobs=[scrub_job],
    resources={"duckdb": duckdb_resource()},
)
