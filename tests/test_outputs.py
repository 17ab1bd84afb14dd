"""lines.csv and flags.csv as a user reads them: the masked patient of every line, and a database whose
priced_lines still has the columns of an earlier release. The batches are judged and written through the
engine (tests/engine.py): what is tested is the write stage and the tables it reads."""

import hashlib
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from assets import flow, outputs
from assets.readers import insertion_order
from pipelines.cli import main

from .corpus import row, text_export
from .engine import engine_scrub
from .helpers import module_site, outputs_of, scrub

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


@pytest.fixture(scope="module")
def patients_run(tmp_path_factory, reference_db):
    """One scrub of the patients' export, its database kept for the tests that write its outputs again."""
    with module_site(tmp_path_factory, reference_db, "patients", CLAIMSCRUB_SECRET=SECRET) as (folder, db):
        export = _export(folder)
        run = engine_scrub([export], folder / "out", db)
    assert run.exit_code == 0, run.stderr
    return run, db, export


def _masked(patient_id: str) -> str:
    return "P-" + hashlib.sha256(f"{SECRET}|{patient_id}".encode()).hexdigest()[:12]


def test_every_line_carries_its_patients_keyed_hash(patients_run):
    run, _, _ = patients_run
    assert [(line["claim_id"], line["line_number"], line["patient"]) for line in run.lines] == [
        ("CLM-TWO-LINES", "1", _masked("PT-ONE")),
        ("CLM-TWO-LINES", "2", _masked("PT-ONE")),
        ("CLM-OTHER-PATIENT", "1", _masked("PT-TWO")),
        ("CLM-QUOTED-ID", "1", _masked('PT "THREE", jr')),
        ("CLM-SECOND-VISIT", "1", _masked("PT-ONE")),
    ]


def test_the_workbooks_findings_and_worklist_carry_the_patients_keyed_hash(patients_run):
    run, _, _ = patients_run
    from openpyxl import load_workbook

    book = load_workbook(run.out_dir / "denial-risk-report.xlsx", read_only=True)
    patients = {"CLM-TWO-LINES": "PT-ONE", "CLM-OTHER-PATIENT": "PT-TWO", "CLM-QUOTED-ID": 'PT "THREE", jr',
                "CLM-SECOND-VISIT": "PT-ONE"}
    for sheet in ("Findings", "Worklist"):
        _, header, *rows = book[sheet].iter_rows(values_only=True)
        claim, patient = header.index("Claim"), header.index("Patient")
        shown = [(r[claim], r[patient]) for r in rows if len(r) > patient and r[claim] in patients]
        assert shown and shown == [(c, _masked(patients[c])) for c, _ in shown], sheet
    book.close()


def test_show_ids_prints_each_lines_own_patient_in_file_order(tmp_path, db_path):
    run = engine_scrub([_export(tmp_path)], tmp_path / "out", db_path, show_ids=True)
    assert run.exit_code == 0, run.stderr
    assert [line["patient"] for line in run.lines] == ["PT-ONE", "PT-ONE", "PT-TWO", 'PT "THREE", jr', "PT-ONE"]


def test_a_database_with_the_old_priced_lines_gives_the_same_outputs(tmp_path, reference_db, patients_run,
                                                                      monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    fresh, _, export = patients_run

    old_db = tmp_path / "old.duckdb"
    old_db.write_bytes(reference_db.read_bytes())
    with duckdb.connect(str(old_db)) as con:
        con.execute(OLD_PRICED_LINES)
    old = engine_scrub([export], tmp_path / "old", old_db)
    assert old.exit_code == 0, old.stderr
    assert outputs_of(tmp_path / "old") == outputs_of(fresh.out_dir)
    with duckdb.connect(str(old_db)) as con:
        columns = [c[0] for c in con.execute("describe priced_lines").fetchall()]
    assert "work_rvu" not in columns and "expected_allowed" in columns


def _rows_stored_last_first(monkeypatch):
    """Each file's raw rows stored last row first, as a database that did not keep file order holds them."""
    land_rows = flow.land_rows

    def land_reversed(con, staged, table, batch_id, file_index, name, shards=1):
        count = land_rows(con, staged, table, batch_id, file_index, name, shards)
        where = "where batch_id = ? and file_index = ?"
        with insertion_order(con):
            con.execute(f"create temp table reversed as select * from raw_claim_rows {where} order by source_row desc",
                        [batch_id, file_index])
            con.execute(f"delete from raw_claim_rows {where}", [batch_id, file_index])
            con.execute("insert into raw_claim_rows select * from reversed")
            con.execute("drop table reversed")
        return count

    monkeypatch.setattr(flow, "land_rows", land_reversed)


# A scrub with its rows stored in reverse: the slow tier (CI runs it).
@pytest.mark.slow
def test_lines_csv_is_in_file_order_however_the_rows_are_stored(tmp_path, db_path, monkeypatch):
    # lines.csv follows the stored rows when they are in file order, and is sorted when they are not; a big
    # batch's is sorted part by part, and parts cut a file and join small ones.
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    first = text_export(tmp_path / "first.csv", [row(f"CLM-{n}", patient=f"PT-{n % 3}") for n in range(7)])
    second = text_export(tmp_path / "second.csv", [row("CLM-LAST", patient="PT-9")])
    stored_in_order = engine_scrub([first, second], tmp_path / "in-order", db_path)
    assert stored_in_order.exit_code == 0, stored_in_order.stderr
    assert [(line["source_file"], line["claim_id"]) for line in stored_in_order.lines] == [
        *(("first.csv", f"CLM-{n}") for n in range(7)), ("second.csv", "CLM-LAST")]
    expected = (tmp_path / "in-order" / "lines.csv").read_bytes()

    _rows_stored_last_first(monkeypatch)
    sorted_whole = engine_scrub([first, second], tmp_path / "sorted", db_path)
    assert sorted_whole.exit_code == 0, sorted_whole.stderr
    with duckdb.connect(str(db_path)) as con:
        stored = con.execute("select source_row from raw_claim_rows where file_index = 0").fetchall()
    assert [r[0] for r in stored] == list(range(7, 0, -1))
    assert (tmp_path / "sorted" / "lines.csv").read_bytes() == expected

    monkeypatch.setattr(outputs, "LINES_PER_PART", 3)
    parts = engine_scrub([first, second], tmp_path / "parts", db_path)
    assert parts.exit_code == 0, parts.stderr
    written = (tmp_path / "parts" / "lines.csv").read_bytes()
    assert written == expected
    assert written.count(b"source_file") == 1
    assert not list((tmp_path / "parts").glob("*.part"))


@pytest.mark.slow  # a per-shard site of its own: the slow tier (CI runs it)
def test_a_per_shard_site_writes_the_one_file_site_s_lines_and_flags_part_by_part(tmp_path, db_path,
                                                                                  tmp_path_factory,
                                                                                  reference_db, monkeypatch):
    # A per-shard site reads the batch through the views over its shard files: lines.csv is sorted in parts
    # there, and the findings are joined to their lines shard by shard; the files are the one-file site's.
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    rows = [row(f"CLM-{n}", patient=f"PT-{n % 5}", HCPCS="76120" if n % 2 else "76000") for n in range(9)]
    rows += [row("CLM-1", patient="PT-1", HCPCS="76120")]  # a duplicate line: findings on both
    first = text_export(tmp_path / "first.csv", rows)
    second = text_export(tmp_path / "second.csv", [row("CLM-LAST", patient="PT-9")])
    one_file = scrub([first, second], tmp_path / "one", db_path)
    assert one_file.exit_code == 0, one_file.stderr
    assert one_file.flags
    monkeypatch.setattr(outputs, "LINES_PER_SHARDED_PART", 3)
    with module_site(tmp_path_factory, reference_db, "parts-shards", CLAIMSCRUB_SECRET=SECRET) as (folder, db):
        made = CliRunner().invoke(main, ["db", "init", "--db", str(db), "--shards", "3", "--layout", "per-shard"])
        assert made.exit_code == 0, made.output
        sharded = scrub([first, second], folder / "out", db)
    assert sharded.exit_code == 0, sharded.stderr
    assert len({line["patient"] for line in sharded.lines}) == 6
    for name in ["lines.csv", "flags.csv", "quarantine.csv"]:
        assert (folder / "out" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert not list((folder / "out").glob("*.part"))


def test_findings_judged_before_partners_were_stored_still_name_their_partner_line(tmp_path, db_path,
                                                                                 monkeypatch):
    # A batch judged by an earlier version has no partner claim and line stored with its findings: the
    # report looks them up from the partner lines.
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    export = text_export(tmp_path / "pairs.csv", [row("CLM-DUP", patient="PT-ONE"),
                                                  row("CLM-DUP", patient="PT-ONE", Line="2")])
    judged = engine_scrub([export], tmp_path / "judged", db_path)
    assert judged.exit_code == 0, judged.stderr
    assert {(f["claim_id"], f["line_number"], f["partner_claim_id"], f["partner_line_number"])
            for f in judged.flags if f["rule_id"] == "DUP_COMPONENT"} == {
        ("CLM-DUP", "1", "CLM-DUP", "2"), ("CLM-DUP", "2", "CLM-DUP", "1")}
    with duckdb.connect(str(db_path)) as con:
        con.execute("update line_flags set partner_claim_id = null, partner_line_number = null")
        [(batch,)] = con.execute("select distinct batch_id from line_flags").fetchall()
        outputs.write_outputs(con, batch, tmp_path / "rewritten", show_ids=False)
    assert ((tmp_path / "rewritten" / "flags.csv").read_bytes()
            == (tmp_path / "judged" / "flags.csv").read_bytes())


def test_the_write_stage_leaves_the_database_settings_as_it_found_them(tmp_path, patients_run, monkeypatch):
    # The stage keeps insertion order and halves DuckDB's threads for its two connections: a process that
    # goes on using the database gets it back as it was.
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    first, db, _ = patients_run
    settings = "select current_setting('threads'), current_setting('preserve_insertion_order')"
    with duckdb.connect(str(db)) as con:
        con.execute("set threads = 3")
        before = con.execute(settings).fetchall()
        [(batch,)] = con.execute("select distinct batch_id from line_flags").fetchall()
        outputs.write_outputs(con, batch, tmp_path / "again", show_ids=False)
        assert con.execute(settings).fetchall() == before == [(3, True)]
    for name in ("flags.csv", "lines.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (first.out_dir / name).read_bytes()


def test_a_database_that_stored_each_lines_prices_keeps_them_and_judges_against_them(tmp_path, db_path,
                                                                                     monkeypatch):
    # Earlier versions stored every column of a line's prices on the line; a database made by one has its
    # batches' prices split into price contexts on first use, and later batches judge against them.
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    earlier = text_export(tmp_path / "earlier.csv", [row("CLM-EARLIER", patient="PT-ONE"),
                                                     row("CLM-EARLIER", patient="PT-ONE", Line="2",
                                                         **{"CPT Code": "76000", "Units": "3"})])
    assert engine_scrub([earlier], tmp_path / "earlier", db_path).exit_code == 0
    with duckdb.connect(str(db_path)) as con:
        prices = con.execute("select * from priced_lines order by line_id").fetchall()
        con.execute("create table stored_prices as select * from priced_lines")
        con.execute("drop view priced_lines")
        con.execute("drop table priced_keys")
        con.execute("drop table price_contexts")
        con.execute("alter table stored_prices rename to priced_lines")
    assert len(prices) == 2 and prices[0][2:] != prices[1][2:]

    later = text_export(tmp_path / "later.csv", [row("CLM-LATER", patient="PT-ONE")])
    run = engine_scrub([later], tmp_path / "later", db_path, history=True)
    assert run.exit_code == 0, run.stderr
    with duckdb.connect(str(db_path)) as con:
        kind = con.execute("select table_type from information_schema.tables where table_name = 'priced_lines'")
        assert kind.fetchall() == [("VIEW",)]
        batches = dict(con.execute("select source_file, batch_id from batch_files").fetchall())
        kept = con.execute("select * from priced_lines where batch_id = ? order by line_id",
                           [batches["earlier.csv"]]).fetchall()
    assert kept == prices
    # The later line bills the earlier batch's first code again for the patient on the same day.
    assert {f["rule_id"] for f in run.flags} >= {"DUP_COMPONENT"}
    assert "Earlier batch" in " ".join(f["message"] for f in run.flags if f["rule_id"] == "DUP_COMPONENT")


@pytest.mark.slow  # two scrubs
def test_a_report_that_cannot_be_replaced_leaves_the_previous_reports_whole(tmp_path, db_path, monkeypatch):
    """A lines.csv held open (or locked) where the reports go: the new run fails, and the folder still holds
    yesterday's reports, all of them, not a mix of both nights without a summary."""
    import os

    from .corpus import row, text_export
    from .helpers import outputs_of

    out = tmp_path / "out"
    yesterday = scrub([text_export(tmp_path / "yesterday.csv", [row("Y1"), row("Y2")])], out, db_path)
    assert yesterday.exit_code == 0, yesterday.stderr
    before = outputs_of(out)
    real_replace = os.replace

    def locked(src, dst):
        if Path(src) == out / "lines.csv":
            raise PermissionError(1, "Operation not permitted", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", locked)
    tonight = scrub([text_export(tmp_path / "tonight.csv", [row("T1")])], out, db_path)
    assert tonight.exit_code == 1
    assert outputs_of(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["flags.csv", "lines.csv", "quarantine.csv", "summary.json", "denial-risk-report.xlsx"])
