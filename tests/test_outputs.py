"""lines.csv and flags.csv as a user reads them: the masked patient of every line, and a database whose
priced_lines still has the columns of an earlier release."""

import hashlib

import duckdb

from assets import outputs

from .corpus import row, text_export
from .helpers import outputs_of, scrub

SECRET = "test-site-secret"
# priced_lines as earlier releases created it: the fee's RVUs, GPCIs and the MUE rationale stored per line.
OLD_PRICED_LINES = """
create or replace table priced_lines (
    batch_id varchar, line_id bigint, rvu_release varchar, gpci_release varchar, ptp_release varchar,
    mue_release varchar, reference_match varchar, locality varchar, in_fee_schedule boolean,
    status varchar, pctc varchar, mult_proc varchar, work_rvu decimal(9,2), pe_rvu decimal(9,2),
    mp_rvu decimal(9,2), pe_na_note boolean, conversion_factor decimal(9,4), work_gpci decimal(6,3),
    pe_gpci decimal(6,3), mp_gpci decimal(6,3), unit_fee decimal(14,2), expected_allowed decimal(14,2),
    mue_value integer, mai integer, mue_rationale varchar)
"""


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


def test_a_database_with_the_old_priced_lines_gives_the_same_outputs(tmp_path, db_path, reference_db,
                                                                      monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    export = _export(tmp_path)
    fresh = scrub([export], tmp_path / "fresh", db_path)
    assert fresh.exit_code == 0, fresh.stderr

    old_db = tmp_path / "old.duckdb"
    old_db.write_bytes(reference_db.read_bytes())
    with duckdb.connect(str(old_db)) as con:
        con.execute(OLD_PRICED_LINES)
    old = scrub([export], tmp_path / "old", old_db)
    assert old.exit_code == 0, old.stderr
    assert outputs_of(tmp_path / "old") == outputs_of(tmp_path / "fresh")
    with duckdb.connect(str(old_db)) as con:
        columns = [c[0] for c in con.execute("describe priced_lines").fetchall()]
    assert "work_rvu" not in columns and "expected_allowed" in columns


def test_lines_csv_written_in_parts_is_the_same_file(tmp_path, db_path, monkeypatch):
    # A big batch's lines.csv is sorted and written part by part; parts cut a file and join small ones.
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    first = text_export(tmp_path / "first.csv", [row(f"CLM-{n}", patient=f"PT-{n % 3}") for n in range(7)])
    second = text_export(tmp_path / "second.csv", [row("CLM-LAST", patient="PT-9")])
    whole = scrub([first, second], tmp_path / "whole", db_path)
    assert whole.exit_code == 0, whole.stderr

    monkeypatch.setattr(outputs, "LINES_PER_PART", 3)
    parts = scrub([first, second], tmp_path / "parts", db_path)
    assert parts.exit_code == 0, parts.stderr
    written = (tmp_path / "parts" / "lines.csv").read_bytes()
    assert written == (tmp_path / "whole" / "lines.csv").read_bytes()
    assert written.count(b"source_file") == 1
    assert [(line["source_file"], line["claim_id"]) for line in parts.lines] == [
        *(("first.csv", f"CLM-{n}") for n in range(7)), ("second.csv", "CLM-LAST")]
    assert not list((tmp_path / "parts").glob("*.part"))
