"""Properties of generated exports: every row ends up scrubbed or quarantined, whatever its cells hold, and
the findings do not depend on the order of the rows or on how they are split across files (and file
formats)."""

import csv
import os
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from .corpus import HEADER, row, text_export, workbook_export
from assets.readers import inspect_export, load_mapping

from .engine import engine_scrub

pytestmark = pytest.mark.slow

# Few values, so that generated lines meet: same patient, day and provider, pairs of NCCI edits,
# components of one code, MUE limits, invalid NPIs, missing diagnoses, hospital places of service.
CODES = ["76120", "76000", "76001", "77002", "71046", "99214", "70450", "G0008"]
# A defect makes a row unscrubbable; its key stays intact so the row can be followed.
DEFECTS = {"date": {"DOS": "2024-02-30"}, "units": {"Units": "0"}, "code": {"CPT Code": "761"},
           "patient": {"Member ID": ""}}

line_fields = st.fixed_dictionaries({
    "claim": st.sampled_from(["C1", "C2", "C3", "C4"]),
    "patient": st.sampled_from(["PA", "PB"]),
    "DOS": st.sampled_from(["2024-07-08", "07/08/2024", "20240709"]),
    "CPT Code": st.sampled_from(CODES),
    "Mod 1": st.sampled_from(["", "", "26", "TC", "59", "XU", "26 59"]),
    "Units": st.sampled_from(["1", "1", "2", "4"]),
    "Rendering NPI": st.sampled_from(["1234567893", "1234567893", "5550001114", "1234567890"]),
    "POS": st.sampled_from(["11", "11", "22", "2", "21"]),
    "Dx 1": st.sampled_from(["R13.10", "R13.10", ""]),
    "defect": st.sampled_from([None] * 6 + list(DEFECTS)),
})


@st.composite
def exports(draw):
    """Rows of one batch (keys unique, as a claim system's are), plus a reshuffle of them into files."""
    fields = draw(st.lists(line_fields, min_size=1, max_size=14))
    numbers, rows, defects = Counter(), [], {}
    for f in fields:
        numbers[f["claim"]] += 1
        key = (f["claim"], str(numbers[f["claim"]]))
        changes = {k: v for k, v in f.items() if k not in ("claim", "patient", "defect")}
        changes.update(DEFECTS.get(f["defect"], {}))
        rows.append(row(key[0], patient=f["patient"], Line=key[1], **changes))
        if f["defect"]:
            defects[key] = f["defect"]
    order = draw(st.permutations(range(len(rows))))
    files = draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["csv", "semicolon", "xlsx"])),
                          min_size=len(rows), max_size=len(rows)))
    return rows, defects, order, files


def _write(folder: Path, rows: list[list], placement: list[tuple[int, str]]) -> list[Path]:
    folder.mkdir(parents=True)
    parts: dict[tuple[int, str], list] = {}
    for r, where in zip(rows, placement):
        parts.setdefault(where, []).append(r)
    paths = []
    for (part, kind), part_rows in sorted(parts.items()):
        if kind == "xlsx":
            paths.append(workbook_export(folder / f"part{part}.xlsx", part_rows))
        else:
            paths.append(text_export(folder / f"part{part}-{kind}.csv", part_rows,
                                     delimiter=";" if kind == "semicolon" else ","))
    return paths


def _findings(run) -> Counter:
    return Counter((f["claim_id"], f["line_number"], f["rule_id"]) for f in run.flags)


def _assert_every_row_accounted(run, rows: list[list], defects: dict) -> None:
    assert run.exit_code == 0, run.stderr
    keys = {(r[HEADER.index("Claim ID")], r[HEADER.index("Line")]) for r in rows}
    scrubbed = {(line["claim_id"], line["line_number"]) for line in run.lines}
    quarantined = {(q["claim_id"], q["line_number"]) for q in run.quarantine}
    assert run.summary["rows_read"] == len(rows) == len(run.lines) + len(run.quarantine)
    assert scrubbed | quarantined == keys and not scrubbed & quarantined
    assert quarantined == set(defects)


@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(export=exports())
# Two equally priced imaging services of one session: which one the reduction falls on once followed the
# order of the rows.
@example(export=([row("C1", **{"CPT Code": "70450"}), row("C2", **{"CPT Code": "70450"})], {}, [1, 0],
                 [(0, "csv"), (1, "xlsx")]))
def test_every_row_is_scrubbed_or_quarantined_and_findings_ignore_order_and_files(tmp_path, db_path, export):
    rows, defects, order, placement = export
    example = tmp_path / uuid.uuid4().hex
    example.mkdir()

    # Judged through the engine: what is proven here is the judgement's independence of order and files.
    one_file = engine_scrub([text_export(example / "one.csv", rows)], example / "out-one", db_path)
    _assert_every_row_accounted(one_file, rows, defects)

    reshuffled = [rows[i] for i in order]
    split = engine_scrub(_write(example / "split", reshuffled, placement), example / "out-split", db_path)
    _assert_every_row_accounted(split, rows, defects)

    assert _findings(split) == _findings(one_file)


# --- Hostile values: nothing a row holds can stop the run ------------------------------------------------
#
# Every input column gets values a claim system or a person might put there (dates in every written form,
# numbers as text, Unicode, very long text, empty cells, whitespace) and some nobody should. Whatever they
# are, the front door and the run complete and account for every row; a row whose required values are all
# good is scrubbed and read right, and a row with one known defect is quarantined with its reason. `make test`
# tries a few examples with a fixed seed; `make fuzz` the same test with CLAIMSCRUB_FUZZ_EXAMPLES of them.

FUZZ_EXAMPLES = int(os.environ.get("CLAIMSCRUB_FUZZ_EXAMPLES", "0"))
FUZZ_SEED = os.environ.get("CLAIMSCRUB_FUZZ_SEED")
RUN_DAY = date(2026, 1, 15)
HOSTILE_HEADER = ["Row", "Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Mod 1", "Mod 2", "Modifiers",
                  "Units", "Charge", "Rendering NPI", "Billing NPI", "POS", "Claim Type", "Dx 1", "Dx 2",
                  "Diagnoses", "Payer", "Locality", "Service ZIP"]
MODIFIER_CELLS = ("Mod 1", "Mod 2", "Modifiers")

# Text of any kind but NUL, which marks a binary file (refused whole, by design).
any_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=24)
whitespace = st.text(st.sampled_from(" \t\u00a0\u2007\u3000\u200b\ufeff\u0085\u2028"), min_size=1, max_size=4)
numbers_as_text = st.one_of(
    st.sampled_from(["0", "-0", "-1", "1.5", "1e3", "1E-4", "1e308", "-1e308", "NaN", "nan", "inf",
                     "-Infinity", "1,5", "1,000", "1,0000", "0x10", "１", "٣", "1_000", "+", "-", ".", "1.",
                     ".5", "9" * 40, "2147483648", "999999999", "1000000000", "0.0001", "1.0000000001", "$1",
                     "(1)"]),
    st.integers().map(str), st.floats().map(str), st.decimals(allow_nan=False, places=4).map(str))
long_text = st.builds(lambda text, n: text * n, any_text.filter(bool), st.integers(100, 5_000))
markup = st.sampled_from(['=1+1', '+SUM(A1:A9)', '-2+3', '@cmd', '=cmd|\' /C calc\'!A0', '"', '""', ',', ';',
                          '\n', '\r\n', 'a\nb', "'", '\\', '<b>x</b>', 'NULL', 'null', 'None', 'N/A', '#N/A'])


def written_date(day: date, form: str) -> str:
    """`day` as an export writes it in `form` (forms as INTERFACE.md names them)."""
    return {
        "iso": day.isoformat(),
        "iso time": f"{day.isoformat()} 10:30:00",
        "mm/dd/yyyy": day.strftime("%m/%d/%Y"),
        "m/d/yyyy": f"{day.month}/{day.day}/{day.year}",
        "m/d/yy": f"{day.month}/{day.day}/{day.year % 100:02d}",
        "yyyymmdd": day.strftime("%Y%m%d"),
        "serial": str((day - date(1899, 12, 30)).days),
    }[form]


def dates_in(low: date, high: date, forms: list[str]):
    return st.tuples(st.dates(low, high), st.sampled_from(forms))


GOOD_FORMS = ["iso", "iso time", "mm/dd/yyyy", "m/d/yyyy", "m/d/yy", "yyyymmdd", "serial"]
# Any date in any form, and shapes that are nearly dates.
hostile_dates = st.one_of(
    dates_in(date(1, 1, 1), date(9999, 12, 31), ["iso", "iso time", "mm/dd/yyyy", "m/d/yyyy", "yyyymmdd"])
    .map(lambda d: written_date(*d)),
    dates_in(date(1900, 1, 1), date(2099, 12, 31), GOOD_FORMS).map(lambda d: written_date(*d)),
    st.sampled_from(["2024-02-30", "2023-02-29", "00/00/0000", "13/45/2024", "2024-13-45", "24-07-08",
                     "0000-00-00", "99999", "10000", "45481.", "2024/07/08", "08.07.2024", "July 8, 2024",
                     "2024-07-08Z", "2024-07-08T25:00", "1/1/1", "31/12/99", "20241301"]))
hostile = st.one_of(st.just(""), whitespace, any_text, numbers_as_text, hostile_dates, markup, long_text)

CODES = ["76120", "99214", "71046", "G0008", "J3490", "0001U", "77002"]
MODIFIERS = ["26", "TC", "59", "XU", "76", "LT"]


@st.composite
def code_cells(draw):
    """(cell, code, modifiers it carries) of a code that scrubs: plain, lower case, or with its modifiers."""
    code = draw(st.sampled_from(CODES))
    carried = draw(st.lists(st.sampled_from(MODIFIERS), max_size=3, unique=True))
    cell = code.lower() if draw(st.booleans()) and not carried else code
    for modifier in carried:
        cell += draw(st.sampled_from(["-", " ", " - "])) + modifier
    return cell, code, sorted(carried)


whole_units = st.sampled_from([("1", 1), ("1.0", 1), ("2.00", 2), ("3", 3), ("+2", 2), ("10.", 10),
                               ("1,000", 1000), ("12", 12)])
# (column, cell, a fragment of the reason) of one defect that quarantines a row that is otherwise good.
ONE_DEFECT = st.one_of(
    # Five-digit serial days end in 2173.
    dates_in(date(2026, 1, 16), date(2173, 10, 14), ["iso", "mm/dd/yyyy", "yyyymmdd", "serial"])
    .map(lambda d: ("DOS", written_date(*d), "is a date of service in the future")),
    dates_in(date(1000, 1, 1), date(1999, 12, 31), ["iso", "mm/dd/yyyy", "m/d/yyyy", "yyyymmdd"])
    .map(lambda d: ("DOS", written_date(*d), "is an implausible date of service")),
    st.sampled_from([("Units", "1.5", "is not a whole number"), ("Units", "0.25", "is not a whole number"),
                     ("Units", "0", "is not a positive number"), ("Units", "-1", "is not a positive number"),
                     ("Units", "1e3", "is not a whole number written in digits"),
                     ("Units", "1,5", "is not a whole number written in digits"),
                     ("CPT Code", "7612", "is not five letters and digits"),
                     ("CPT Code", "76120-2", "is not five letters and digits"),
                     ("Member ID", "", "patient_id is missing"),
                     ("Mod 1", "ABC", "modifier 'ABC' is not a modifier"),
                     ("Modifiers", "26, 6/26", "modifier '6/26' is not a modifier"),
                     ("POS", "Office", "place_of_service 'Office' is not a place-of-service code"),
                     ("POS", "O2", "place_of_service 'O2' is not a place-of-service code")]))


# A typical value of each column, for the cells of a row that are not drawn hostile.
TYPICAL = {"Line": "1", "Member ID": "PT-1", "DOS": "2024-07-08", "CPT Code": "76120", "Mod 1": "",
           "Mod 2": "", "Modifiers": "", "Units": "1", "Charge": "$1,234.50", "Rendering NPI": "1234567893",
           "Billing NPI": "5550001114", "POS": "11", "Claim Type": "professional", "Dx 1": "R13.10",
           "Dx 2": "", "Diagnoses": "", "Payer": "Medicare Part B", "Locality": "01112-05",
           "Service ZIP": "02134"}


@st.composite
def hostile_rows(draw, index: int):
    """One row: (its cells by header, what a user should see: None, ("line", date, code, mods, units) or
    ("quarantine", reason fragment))."""
    cells = {"Row": f"r{index}", "Claim ID": f"C{index}", **TYPICAL}  # Row: unmapped, keeps the row a row
    for name in draw(st.sets(st.sampled_from(HOSTILE_HEADER[1:]), max_size=8)):
        cells[name] = draw(hostile)
    if "GOOD" in cells["Claim ID"].upper():
        cells["Claim ID"] = f"C{index}"
    kind = draw(st.sampled_from(["hostile", "good", "good", "defect"]))
    if kind == "hostile":
        return cells, None
    day = draw(st.dates(date(2000, 1, 1), RUN_DAY))
    form = draw(st.sampled_from(GOOD_FORMS))
    cell, code, carried = draw(code_cells())
    units, count = draw(whole_units)
    cells.update({"Claim ID": f"GOOD-{index}", "Line": draw(st.sampled_from(["1", "2", "1.0", " 3 ", "007"])),
                  "Member ID": "PT-" + draw(any_text), "DOS": written_date(day, form), "CPT Code": cell,
                  "Units": units})
    # A modifier cell of anything but modifiers quarantines the row (a defect below): a good row has none.
    cells.update(dict.fromkeys(MODIFIER_CELLS, ""))
    # So does a place of service that is no code: a good row's is one, written one way or another, or none.
    cells["POS"] = draw(st.sampled_from(["", "11", "22", "2", "11.0", " 21 ",
                                         "22 - On Campus-Outpatient Hospital"]))
    if kind == "good":
        return cells, ("line", day.isoformat(), code, carried, count)
    column, value, reason = draw(ONE_DEFECT)
    cells[column] = value
    if value == "76120-26":
        cells.update({"Mod 1": "59", "Mod 2": "", "Modifiers": ""})
    return cells, ("quarantine", reason)


@st.composite
def hostile_exports(draw):
    count = draw(st.integers(10, 40))
    rows = [draw(hostile_rows(index)) for index in range(count)]
    return rows, draw(st.sampled_from(["csv", "csv", "xlsx"]))


def _hostile_file(folder: Path, rows: list[dict], kind: str) -> Path:
    folder.mkdir()
    if kind == "xlsx":
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        # An .xlsx cannot hold the control characters openpyxl refuses, nor more than 32,767 characters.
        cleaned = [[ILLEGAL_CHARACTERS_RE.sub("", cells[name])[:32_767] for name in HOSTILE_HEADER]
                   for cells in rows]
        return workbook_export(folder / "hostile.xlsx", header=HOSTILE_HEADER, rows=cleaned)
    path = folder / "hostile.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HOSTILE_HEADER)
        writer.writerows([cells[name] for name in HOSTILE_HEADER] for cells in rows)
    return path


def _with_seed(test):
    return seed(int(FUZZ_SEED))(test) if FUZZ_SEED else test


# Every example is a scrub (about a second): `make test` does not shrink a failing one, which could take
# minutes; `make fuzz` does.
@settings(max_examples=FUZZ_EXAMPLES or 6, derandomize=not FUZZ_SEED, deadline=None, database=None,
          phases=list(Phase) if FUZZ_EXAMPLES else [Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@_with_seed
@given(export=hostile_exports())
def test_no_value_a_row_holds_stops_the_run_and_every_row_is_accounted_for(tmp_path, db_path, monkeypatch,
                                                                            export):
    monkeypatch.setenv("CLAIMSCRUB_TODAY", RUN_DAY.isoformat())
    generated, kind = export
    rows = [cells for cells, _ in generated]
    example = tmp_path / uuid.uuid4().hex
    example.mkdir()
    export = _hostile_file(example / "in", rows, kind)
    # The command's front door reads the header and the first rows before the run; the run is the engine's.
    inspect_export(export, load_mapping(None))
    run = engine_scrub([export], example / "out", db_path)

    scrubbed = {int(line["source_row"]): line for line in run.lines}
    quarantined = {int(q["source_row"]): q["reasons"] for q in run.quarantine}
    assert run.summary["rows_read"] == len(rows) == len(run.lines) + len(run.quarantine)
    assert set(scrubbed) | set(quarantined) == set(range(1, len(rows) + 1))
    assert not set(scrubbed) & set(quarantined)
    for number, (cells, expected) in enumerate(generated, start=1):
        if expected and expected[0] == "line":
            assert number in scrubbed, (cells, quarantined.get(number))
            line = scrubbed[number]
            _, day, code, carried, units = expected
            assert (line["date_of_service"], line["hcpcs"], line["units"]) == (day, code, str(units)), cells
            assert set(carried) <= set(line["modifiers"].split(",")) - {""}, (cells, line["modifiers"])
        elif expected:
            assert expected[1] in quarantined.get(number, ""), (cells, quarantined.get(number))
