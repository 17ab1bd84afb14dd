"""The Dagster side: the definitions load, and a run through dg.materialize passes its checks."""

import dagster as dg
import pytest

from assets.flow import ALL_ASSETS, REFERENCE_CURRENT, ROWS_ACCOUNTED
from pipelines.cli import run_config
from pipelines.definitions import defs
from pipelines.resources import run_resources
from reference.assets import REFERENCE_CHECKS

from .helpers import write_csv


def test_definitions_load_with_every_stage_and_check():
    repo = defs.get_repository_def()
    groups = {key.to_user_string(): node.group_name for key, node in
              ((n.key, n) for n in repo.asset_graph.asset_nodes)}
    assert groups["raw_claim_rows"] == "ingest"
    assert groups["claim_lines"] == groups["claim_quarantine"] == "validate"
    assert groups["priced_lines"] == groups["line_flags"] == "scrub"
    assert groups["scrub_report"] == "report"
    assert groups["ncci_ptp_edits"] == groups["mue_limits"] == groups["rvu_fee_schedule"] == "reference"
    check_names = {key.name for key in repo.asset_graph.asset_check_keys}
    assert {ROWS_ACCOUNTED, "rvu_76120_total_rvus", "mue_76120_value"} <= check_names


def _materialize(export, out_dir, db_path):
    """The whole job through Dagster's own materialize, on one export."""
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            [*ALL_ASSETS, *REFERENCE_CHECKS],
            resources=run_resources(str(db_path)),
            run_config=run_config("test-batch", [export], out_dir, "", "", False),
            instance=instance,
        )


def test_materialize_reports_counts_and_passes_the_row_accounting_check(tmp_path, db_path):
    export = write_csv(tmp_path / "export.csv", [
        dict(claim_id="C1", line_number=1, patient_id="P1", date_of_service="2024-07-01", hcpcs="76120",
             units=2, rendering_npi="1234567893", diagnosis_1="R13.10"),
        dict(claim_id="C1", line_number=2, patient_id="P1", date_of_service="not a date", hcpcs="76120",
             units=1, rendering_npi="1234567893", diagnosis_1="R13.10"),
    ])
    result = _materialize(export, tmp_path / "out", db_path)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[ROWS_ACCOUNTED].passed
    assert checks[ROWS_ACCOUNTED].metadata["rows_read"].value == 2
    assert checks["rvu_76120_total_rvus"].passed and checks["mue_76120_value"].passed
    materialized = {m.asset_key.to_user_string(): m.metadata for m in result.get_asset_materialization_events()
                    for m in [m.materialization]}
    assert materialized["claim_lines"]["lines"].value == 1
    assert materialized["claim_quarantine"]["rows_quarantined"].value == 1
    assert materialized["line_flags"]["findings_deny"].value == 1
    assert (tmp_path / "out" / "flags.csv").exists()


# A Dagster run of its own: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_batch_beyond_the_newest_ptp_release_warns_through_its_asset_check_and_still_runs(tmp_path, db_path):
    export = write_csv(tmp_path / "export.csv", [
        dict(claim_id="C1", line_number=1, patient_id="P1", date_of_service="2026-05-12", hcpcs="76120",
             units=1, rendering_npi="1234567893", diagnosis_1="R13.10")])
    result = _materialize(export, tmp_path / "out", db_path)
    assert result.success
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}[REFERENCE_CURRENT]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "PTP 2024Q3 ends 2024-09-30; 1 line dated up to 2026-05-12" in check.metadata["stale_tables"].value
