"""lines.csv as a user reads it: the masked patient of every line, in file order."""

import hashlib

from .corpus import row, text_export
from .helpers import scrub

SECRET = "test-site-secret"

def _export(tmp_path):
    rows = [row("CLM-TWO-LINES", patient="PT-ONE"),
            row("CLM-TWO-LINES", patient="PT-ONE", Line="2", **{"CPT Code": "76000"}),
            row("CLM-OTHER-PATIENT", patient="PT-TWO"),
            row("CLM-QUOTED-ID", patient='PT "THREE", jr'),
            row("CLM-SECOND-VISIT", patient="PT-ONE", DOS="2024-07-09")]
    return text_export(tmp_path / "patients.csv", rows)


def _masked(patient_id: str) -> str:
    return "P-" + hashlib.sha256(f"{SECRET}|{patient_id}".encode()).hexdigest()[:12]


def test_every_line_carries_its_patients_keyed_hash(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    run = scrub([_export(tmp_path)], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert [(line["claim_id"], line["line_number"], line["patient"]) for line in run.lines] == [
        ("CLM-TWO-LINES", "1", _masked("PT-ONE")),
        ("CLM-TWO-LINES", "2", _masked("PT-ONE")),
        ("CLM-OTHER-PATIENT", "1", _masked("PT-TWO")),
        ("CLM-QUOTED-ID", "1", _masked('PT "THREE", jr')),
        ("CLM-SECOND-VISIT", "1", _masked("PT-ONE")),
    ]


def test_show_ids_prints_each_lines_own_patient_in_file_order(tmp_path, db_path):
    run = scrub([_export(tmp_path)], tmp_path / "out", db_path, "--show-ids")
    assert run.exit_code == 0, run.stderr
    assert [line["patient"] for line in run.lines] == ["PT-ONE", "PT-ONE", "PT-TWO", 'PT "THREE", jr', "PT-ONE"]

