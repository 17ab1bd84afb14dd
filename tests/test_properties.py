"""Properties of generated exports: every row ends up scrubbed or quarantined, and the findings do not
depend on the order of the rows or on how they are split across files (and file formats)."""

import uuid
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .corpus import HEADER, row, text_export, workbook_export
from .helpers import scrub

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

    one_file = scrub([text_export(example / "one.csv", rows)], example / "out-one", db_path)
    _assert_every_row_accounted(one_file, rows, defects)

    reshuffled = [rows[i] for i in order]
    split = scrub(_write(example / "split", reshuffled, placement), example / "out-split", db_path)
    _assert_every_row_accounted(split, rows, defects)

    assert _findings(split) == _findings(one_file)
