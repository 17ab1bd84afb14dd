"""Validate the raw rows of a batch, parsed leniently by the readers: judge them with Pandera, and split the
batch into `claim_lines` (scrubbable) and `claim_quarantine` (every reason found for each row that is not)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pandas as pd
import pandera.pandas as pa

from pipelines.settings import run_day

from .schemas import (
    EXCEL_ERRORS_SQL,
    MODIFIER,
    PLAIN_NUMBER,
    REASONS,
    SUSPECT_SQL,
    claim_lines,
    scrubbable_rows,
)
from .tables import ROW_ID, clear_batch, record_claim_sends

CHUNK_ROWS = 250_000
REASON_ORDER = ["claim_billed", "cells_fit", "claim_id", "line_number", "patient_id", "date_of_service", "hcpcs",
                "modifiers_shaped", "units", "units_written", "place_of_service", "key_rank"]
# The values without any of which a row is no claim line (a claim's line cut short keeps its line number), and
# what its quarantine says instead of the reasons.
NO_LINE = {"line_number", "date_of_service", "hcpcs", "units"}
TOTAL_LABEL = re.compile(r"(?i:(grand |sub-?|page |report )?totals?)\b\W*.*")
TOTAL_LINE = ("not a claim line: a total line (no line number, date of service or code to read, its sums where "
              "units or charges stand); its cells are not quoted")
NOT_A_LINE = ("not a claim line: no line number, date of service, code or units to read (a report's title, page, "
              "total or note line, or its header repeated); its cells are not quoted")
# A reason quotes a value up to this many characters: enough to find it, not a whole pasted document.
QUOTED_CHARACTERS = 40
# A row gets one reason per value of the export: a column the model adds to judge a value speaks for it.
SUBJECT = {"units_written": "units"}
# Rows that Pandera checks in full on every batch, whatever its size: all of a small batch. The samples look
# for defects of the pipeline, and those are systematic: a SUSPECT_SQL condition or a parsing expression
# wrong for a whole kind of value. 20,000 rows picked by a hash of their id (as good as drawn at random: the
# hash knows nothing of the values) find a kind that is 1 clean row in 5,000 with 98% odds in one run, and a
# night's exports bring the same kinds back night after night.
SAMPLE_ROWS = 20_000


def sample_filter(column: str, total: int) -> str:
    """A condition that keeps about SAMPLE_ROWS of `total` rows, the same ones on every run (all of a small
    batch): those whose `column` hashes to 0 modulo total // SAMPLE_ROWS. DuckDB filters on all its
    threads; a reservoir sample draws on one."""
    return f"hash({column}) % {max(1, total // SAMPLE_ROWS)} = 0"


# Claim lines that appear more than once are few: find them by counting rather than ranking every row, then
# spell out where each was first seen from its own rows only.
REPEATED = f"""
create or replace temp table repeated_lines as
with repeated as (
    select claim_id, line_number_num from raw_claim_rows
    where batch_id = $batch and claim_id is not null and line_number_num is not null
    group by all having count(*) > 1
)
select claim_id, line_number_num, first_row_id, first_file || ' row ' || first_source_row as first_seen
from (
    select r.claim_id, r.line_number_num, min({ROW_ID}) as first_row_id,
           arg_min(source_file, {ROW_ID}) as first_file, arg_min(source_row, {ROW_ID}) as first_source_row
    from raw_claim_rows r
    semi join repeated k on k.claim_id = r.claim_id and k.line_number_num = r.line_number_num
    where r.batch_id = $batch
    group by r.claim_id, r.line_number_num
)
"""

# The batch's parsed rows, each with its rank among the rows of its claim line; read where used, never
# materialised whole.
PARSED = f"""
create or replace temp macro parsed_rows(batch) as table
select {ROW_ID} as row_id, r.*,
       case when p.first_row_id is null or {ROW_ID} = p.first_row_id then 1 else 2 end as key_rank,
       p.first_seen
from raw_claim_rows r
left join repeated_lines p on p.claim_id = r.claim_id and p.line_number_num = r.line_number_num
where r.batch_id = batch
"""

# The parsed rows under the loose model's column names. A date of service far outside what a timestamp of
# pandas holds (the year 24, the year 9999) is judged as the nearest date it holds: it fails the same check.
JUDGED = f"""
select row_id, claim_id, line_number_num as line_number, patient_id,
       case when dos < date '1900-01-01' then date '1900-01-01'
            when dos > date '2200-01-01' then date '2200-01-01' else dos end::timestamp as date_of_service,
       hcpcs, units_num as units,
       units is null or units_num is null or regexp_full_match(units, '{PLAIN_NUMBER}') as units_written,
       key_rank,
       case when len(modifiers) = 0 then true
            else regexp_full_match(array_to_string(modifiers, ','), '{MODIFIER}(,{MODIFIER})*') end
           as modifiers_shaped,
       place_of_service, not coalesce(extra_cells, false) as cells_fit,
       not coalesce(void_claim, false) as claim_billed
from parsed_rows($batch)
"""

# Every row of the batch is marked: scrubbable unless it failed a check. The claim_lines view holds the
# scrubbable rows.
MARK_SCRUBBABLE = f"""
update raw_claim_rows set scrubbable = {ROW_ID} not in (select row_id from failed_rows) where batch_id = ?
"""


def _failures(model: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Run the loose model over one chunk; returns (row_id, column, check) of every failed check."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna()]
        return pd.DataFrame(
            {"row_id": cases["index"].astype("int64"), "column": cases["column"], "check": cases["check"]}
        )
    return pd.DataFrame({"row_id": pd.Series(dtype="int64"), "column": [], "check": []})


class SchemaMirrorError(AssertionError):
    """The SQL mirror of the loose model passed a row that Pandera fails: a defect, not bad input."""


def _reason_text(row: dict, day: date) -> str:
    column, check = row["column"], row["check"]
    template = REASONS.get((column, check), f"{column} fails {check}")
    raw = {
        "claim_id": row["claim_id"],
        "patient_id": row["patient_error"],
        "line_number": row["line_number_raw"],
        "date_of_service": row["date_raw"],
        "hcpcs": row["hcpcs"],
        "units": row["units_raw"],
        "units_written": row["units_raw"],
        "place_of_service": row["place_raw"],
    }.get(column)
    if column == "modifiers_shaped":
        wrong = [m for m in str(row["modifier_text"]).split(", ") if not re.fullmatch(MODIFIER, m)]
        # A member number moved into a modifier cell is said, not quoted, as in the other columns.
        shown = [repr(m) for m in wrong if not identifier_like(m, column)]
        if len(shown) == len(wrong):
            return template.format(raw=", ".join(shown))
        said = IDENTIFIER_REASON.format(column="a modifier cell", what="modifier")
        return "; ".join([template.format(raw=", ".join(shown))] * bool(shown) + [said])
    read = row["date_read"]
    if (column, check) == ("date_of_service", "plausible") and isinstance(read, str) and read[:2] == "19":
        # A date of the 1900s where the date of service belongs is most often the patient's date of birth in
        # the wrong column: said so, not quoted.
        return BIRTH_DATE_LIKE
    if check == "not_nullable" and column in ("line_number", "date_of_service", "units") and not _quoted(raw):
        return f"{column} is missing"
    if column in IDENTIFIER_WORDS and isinstance(raw, str) and identifier_like(raw, column):
        return IDENTIFIER_REASON.format(column=SUBJECT.get(column, column), what=IDENTIFIER_WORDS[column])
    raw = _quoted(raw)
    return template.format(raw=raw, claim=_quoted(row["claim_id"]), line=_quoted(row["line_number_raw"]),
                           first=row["first_seen"], today=day.isoformat(),
                           read="" if pd.isna(read) or read == raw else f" (read as {read})")


# A value shaped like a member or account number (letters and digits, or nine digits and more) where a date,
# count, line number, place or code belongs: most often a patient's identifier moved in by a missing cell or a
# shifted row. Said so, not quoted.
# A month's name in it is a date written with letters (08JUL2027), quoted as any other.
# Nine digits and more are an identifier only where no number belongs (a line number or a count that large is
# quoted: its size is the mistake).
# Short ones too (MBR1, AB12): a member number is no shorter than a valid value of these columns is long. A
# number in exponent form (1e15, as a spreadsheet writes a big one) is a number.
# Member numbers are also written in groups (ABC-123-456, W123 456 789, an SSN's 123-45-6789), or follow a date
# in one cell (Jul 8 2024 ABC1234): a word of the value, hyphens within it, is enough. A code with its modifiers
# (76120-TC) is a code, quoted.
IDENTIFIER_LIKE = re.compile(r"(?!.*(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(?![0-9]+[Ee][0-9]+$)"
                             r"(?=.*[0-9])(?=.*[A-Za-z])(?=(?:[^A-Za-z0-9]*[A-Za-z0-9]){4})"
                             r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
NUMBER_LIKE_IDENTIFIER = re.compile(r"[0-9]{9,}")
GROUPED_NUMBER = re.compile(r"(?=(?:[^0-9]*[0-9]){9})[0-9]+(?:[- ][0-9]+)+")
CODE_WITH_MODIFIERS = re.compile(r"[A-Za-z0-9]{5}(?:-[A-Za-z0-9]{2})+")


def identifier_like(value: str, column: str) -> bool:
    """Whether a cell's value looks like a member or account number where `column`'s value belongs: said so in
    a reason, never quoted."""
    value = value.strip()
    if GROUPED_NUMBER.fullmatch(value) or (column in ("date_of_service", "place_of_service", "hcpcs")
                                            and NUMBER_LIKE_IDENTIFIER.fullmatch(value)):
        return True
    return any(IDENTIFIER_LIKE.fullmatch(word) and not CODE_WITH_MODIFIERS.fullmatch(word)
               for word in value.split())
IDENTIFIER_WORDS = {"date_of_service": "date", "line_number": "line number", "units": "number of units",
                    "units_written": "number of units", "place_of_service": "place-of-service code",
                    "hcpcs": "procedure code"}
IDENTIFIER_REASON = ("{column} holds a value shaped like an identifier, not a {what}: not quoted (a member or "
                     "account number moved into it by a missing or extra cell?)")
BIRTH_DATE_LIKE = ("date_of_service is an implausible date of service (before 2000): a date of the 1900s, most "
                   "often a date of birth in the wrong column; not quoted")


def _quoted(value) -> str:
    """A value of the export as a reason quotes it: "" for none, a long one cut."""
    if value is None or pd.isna(value):
        return ""
    return value if len(value) <= QUOTED_CHARACTERS else value[: QUOTED_CHARACTERS - 1] + "…"


def validate_batch(con, batch_id: str, advance: Callable[[int], None] = lambda rows: None,
                   day: date | None = None) -> dict[str, int]:
    """Split one batch's raw rows into claim lines and quarantined rows. Returns the counts.

    DuckDB ranks the rows of repeated claim lines and picks out, with the SQL mirror of the loose model, the
    rows that may fail; Pandera judges those rows chunk by chunk, and a sample of the others to prove the
    mirror right. The batch is never copied: each row of it is marked in `raw_claim_rows`, scrubbable or
    not, and the `claim_lines` view holds the scrubbable ones. A date of service after `day` (the run's
    day: today, or CLAIMSCRUB_TODAY) is in the future.
    """
    day = day or run_day()
    model = scrubbable_rows(day)
    con.execute(REPEATED, {"batch": batch_id})
    con.execute(PARSED)
    total = con.execute("select count(*) from raw_claim_rows where batch_id = ?", [batch_id]).fetchall()[0][0]
    suspect = " or ".join(f"({condition})" for condition in SUSPECT_SQL.values())
    con.execute(f"""create or replace temp table suspect_rows as
                    select row_number() over (order by row_id) as n, * from ({JUDGED}) where {suspect}""",
                {"batch": batch_id, "today": day})
    suspects = con.execute("select count(*) from suspect_rows").fetchall()[0][0]
    advance(total - suspects)
    failures = []
    for start in range(0, suspects, CHUNK_ROWS):
        chunk = con.execute(
            "select * exclude (n) from suspect_rows where n > ? and n <= ?", [start, start + CHUNK_ROWS]
        ).df().set_index("row_id")
        failures.append(_failures(model, chunk))
        advance(len(chunk))
    sample = con.execute(
        f"""select * from ({JUDGED})
            where row_id not in (select row_id from suspect_rows) and {sample_filter("row_id", total)}""",
        {"batch": batch_id},
    ).df().set_index("row_id")
    missed = _failures(model, sample)
    if len(missed):
        raise SchemaMirrorError(f"SUSPECT_SQL passes rows ScrubbableRow fails: {missed.head(5).to_dict('records')}")
    failed = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=["row_id"])

    clear_batch(con, "claim_quarantine", batch_id)
    con.register("failed_frame", failed[["row_id"]].drop_duplicates())
    con.execute("create or replace temp table failed_rows as select row_id::bigint as row_id from failed_frame")
    con.unregister("failed_frame")

    if len(failed):
        detail = con.execute(
            f"""
            select row_id, file_index, source_file, source_row, claim_id, line_number as line_number_raw,
                   date_of_service as date_raw, dos::varchar as date_read, hcpcs, units as units_raw,
                   array_to_string(modifiers, ', ') as modifier_text, place_of_service as place_raw, first_seen,
                   -- The patient's identifier is quoted only where it is an Excel error, never in clear.
                   case when patient_id in ({EXCEL_ERRORS_SQL}) then patient_id end as patient_error
            from parsed_rows(?) where row_id in (select row_id from failed_rows)
            """,
            [batch_id],
        ).df().set_index("row_id")
        # A missing value fails its not-null check and, with it, the value checks: keep the first only.
        # Reasons in the order of the export's columns, so the same row always reads the same.
        failed = (
            failed.assign(column_order=failed["column"].map(REASON_ORDER.index),
                          subject=failed["column"].map(lambda column: SUBJECT.get(column, column)),
                          null_first=failed["check"] != "not_nullable")
            .sort_values(["row_id", "column_order", "null_first"], kind="stable")
            .drop_duplicates(subset=["row_id", "subject"], keep="first")
        )
        # A row with no line number, date of service, code or units to read is no claim line: a report's title,
        # page, total or note line, or its header printed again. It is said so, and nothing of it is quoted:
        # such a line may name a patient ("Patient: DOE, JOHN  Acct 123456").
        subjects = failed.groupby("row_id")["subject"].agg(set)
        furniture = set(subjects[subjects.map(lambda found: NO_LINE <= found and "cells_fit" not in found)].index)
        # So is a total line, whose units (or charge) are the sums of the rows above it: "Total" where the claim
        # id stands, and no line number, date of service or code.
        totals = {row_id for row_id in subjects[subjects.map(
                      lambda found: NO_LINE - {"units"} <= found and "cells_fit" not in found)].index
                  if isinstance(claim := detail.at[row_id, "claim_id"], str) and TOTAL_LABEL.fullmatch(claim.strip())}
        furniture |= totals
        # An X12 file has no such lines: a row of it with nothing to read is a claim (CLM) without a service
        # line, named with its claim id and each thing missing.
        x12_files = {index for (index,) in con.execute(
            "select file_index from batch_files where batch_id = ? and kind = 'x12'", [batch_id]).fetchall()}
        if x12_files:
            furniture -= set(detail.index[detail["file_index"].isin(x12_files)])
        # A row with text in more cells than the header names has its cells moved from where the unquoted
        # delimiter stands on ("DOE, JOHN" in a first column puts the patient's id under claim_id): that is
        # its one reason, and nothing of it is quoted, its claim id and line number included.
        shifted = set(subjects[subjects.map(lambda found: "cells_fit" in found)].index)
        detail.loc[detail.index.isin(furniture | shifted), ["claim_id", "line_number_raw"]] = None
        cases = failed[~failed["row_id"].isin(furniture)
                       & (~failed["row_id"].isin(shifted) | (failed["column"] == "cells_fit"))].join(detail, on="row_id")
        # Plain lists rather than pandas rows and groups: a night's export can quarantine many thousands.
        fields = ["column", "check", "line_number_raw", "date_raw", "date_read", "hcpcs", "units_raw",
                  "modifier_text", "place_raw", "claim_id", "first_seen", "patient_error"]
        by_row: dict[int, list[str]] = {row_id: [TOTAL_LINE if row_id in totals else NOT_A_LINE]
                                         for row_id in furniture}
        for row_id, *values in zip(*(cases[name].tolist() for name in ["row_id", *fields])):
            by_row.setdefault(row_id, []).append(_reason_text(dict(zip(fields, values)), day))
        reasons = pd.Series({row_id: "; ".join(texts) for row_id, texts in by_row.items()}, name="reason")
        quarantine = detail.join(reasons).reset_index()
        # Its line number column shows no more than its reasons quote: a member number moved there is left out.
        quarantine["line_number_raw"] = quarantine["line_number_raw"].map(
            lambda value: None if isinstance(value, str) and identifier_like(value, "line_number") else value)
        quarantine = quarantine.assign(batch_id=batch_id)[
            ["batch_id", "file_index", "source_file", "source_row", "claim_id", "line_number_raw", "reason"]
        ]
        con.register("quarantine_frame", quarantine)
        con.execute("insert into claim_quarantine select * from quarantine_frame")
        con.unregister("quarantine_frame")

    con.execute(MARK_SCRUBBABLE, [batch_id])
    record_claim_sends(con, batch_id)
    check_claim_lines(con, batch_id, total, day)
    lines = con.execute("select count(*) from claim_lines where batch_id = ?", [batch_id]).fetchall()[0][0]
    quarantined = con.execute(
        "select count(*) from claim_quarantine where batch_id = ?", [batch_id]
    ).fetchall()[0][0]
    return {"rows_read": total, "lines": lines, "quarantined": quarantined}


def check_claim_lines(con, batch_id: str, total: int, day: date) -> None:
    """The strict model over a sample of the stored lines (all of a small batch): a failure here is a defect
    of the pipeline, not bad input (the loose model guards each of its checks), and a sample finds a
    systematic one."""
    frame = con.execute(
        f"""
        select line_id, claim_id, line_number, patient_id, date_of_service::timestamp as date_of_service,
               hcpcs, units::double as units, component, place_of_service, claim_type, facility
        from claim_lines where batch_id = ? and {sample_filter("line_id", total)}
        """,
        [batch_id],
    ).df()
    try:
        claim_lines(day).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        # Pandera's message lists the failing values, patient ids among them; Dagster would keep it.
        failed = exc.failure_cases
        raise RuntimeError(
            f"claim_lines broke its schema ({len(failed)} failures in "
            f"{', '.join(sorted(set(map(str, failed['column']))))}): a defect in claimscrub, not in the input"
        ) from None
