"""The input contract in Pandera: a loose model of what a row must hold to be scrubbed, and a strict
typed model of a claim line, the schema of record for the `claim_lines` table.

The loose model runs over rows whose values were parsed (leniently) in DuckDB; each failed check becomes a
quarantine reason. The strict model is a promise about what the rule engine receives: if it fails, the
pipeline is wrong, not the input.
"""

from datetime import date

import pandas as pd
import pandera.pandas as pa

from .readers import EXCEL_ERRORS, TWO_DIGITS

# A date of service before this is a slip of the keyboard (1899, 0024), not a service anyone still bills.
EARLIEST_SERVICE = "2000-01-01"
# Units as a claim system writes a count: digits, thousands grouped by commas or not, a decimal part or not
# (whether the value is whole is a check of its own); not 1e3, not 1,5.
PLAIN_NUMBER = "[+-]?([0-9]+|[0-9]{1,3}(,[0-9]{3})+)([.][0-9]*)?"

# (column, check name) -> reason template; {raw} is the value as it stood in the export, {read} the date it
# was read as where that reads otherwise.
REASONS = {
    ("claim_id", "not_nullable"): "claim_id is missing",
    ("claim_id", "not an Excel error"): "claim_id {raw!r} is an Excel error value, not a claim's identifier",
    ("patient_id", "not an Excel error"): "patient_id {raw!r} is an Excel error value, not a patient's identifier",
    ("line_number", "not_nullable"): "line_number {raw!r} is not a whole number",
    ("line_number", "whole positive number"): "line_number {raw!r} is not a whole number above zero",
    ("patient_id", "not_nullable"): "patient_id is missing",
    ("date_of_service", "not_nullable"):
        "date_of_service {raw!r} is not a date (YYYY-MM-DD, MM/DD/YYYY, YYYYMMDD, Jul 8, 2024, 08-Jul-2024 and the "
        "other forms docs/INTERFACE.md lists)",
    ("date_of_service", "plausible"):
        "date_of_service {raw!r}{read} is an implausible date of service (before "
        + EARLIEST_SERVICE[:4] + ")",
    ("date_of_service", "not in the future"):
        "date_of_service {raw!r}{read} is a date of service in the future (after the run's day, {today})",
    ("hcpcs", "not_nullable"): "hcpcs is missing",
    ("hcpcs", "five letters and digits"): "hcpcs {raw!r} is not five letters and digits",
    ("units", "not_nullable"): "units {raw!r} is not a positive number",
    ("units", "positive"): "units {raw!r} is not a positive number",
    ("units", "whole number"): "units {raw!r} is not a whole number",
    ("units_written", "digits"): "units {raw!r} is not a whole number written in digits",
    ("line_number", "fits the line number column"): "line_number {raw!r} is too large",
    ("units", "fits the units column"): "units {raw!r} is too large",
    ("key_rank", "first of its claim line"): "claim {claim}, line {line} appears more than once (first at {first})",
    ("place_of_service", "two digits"):
        "place_of_service {raw!r} is not a place-of-service code (two digits, such as 11 or 22)",
    ("claim_billed", "not a void"):
        "claim {claim} voids a claim sent before (837P claim frequency code 8): it bills nothing and is not "
        "scrubbed; the claim it voids leaves history",
    ("cells_fit", "no more cells than the header"):
        "the row has text in more cells than the header names: a value holding the file's delimiter without "
        "quotes (such as $1,234.50) moves every cell after it",
    ("modifiers_shaped", "two letters or digits each"):
        "modifier {raw} is not a modifier (two letters or digits, such as 26, TC or 59)",
}
# A modifier as the claim carries it: two letters or digits.
MODIFIER = "[A-Z0-9]{2}"


# The loose model's checks, column by column, as SQL conditions over the parsed rows. DuckDB picks out in one
# set-based pass the rows that may fail (a superset: Pandera words the reasons), so that Pandera does not
# have to turn millions of clean rows into pandas frames. Validation checks this mirror against the model
# on a sample of the rows it passes; keep the two in step. $today is the run's day.
EXCEL_ERRORS_SQL = ", ".join(f"'{error}'" for error in sorted(EXCEL_ERRORS))
SUSPECT_SQL = {
    "claim_id": f"claim_id is null or claim_id in ({EXCEL_ERRORS_SQL})",
    "line_number": "line_number is null or not isfinite(line_number) or line_number <= 0 "
                   "or line_number <> round(line_number) or line_number > 2147483647",
    "patient_id": f"patient_id is null or patient_id in ({EXCEL_ERRORS_SQL})",
    "date_of_service": f"date_of_service is null or date_of_service < timestamp '{EARLIEST_SERVICE}' "
                       "or date_of_service > $today::timestamp",
    "hcpcs": "hcpcs is null or not regexp_full_match(hcpcs, '[A-Z0-9]{5}')",
    "units": "units is null or not isfinite(units) or units <= 0 or units <> round(units) or units >= 1e9",
    "units_written": "not units_written",
    "key_rank": "key_rank is null or key_rank <> 1",
    "modifiers_shaped": "not modifiers_shaped",
    "cells_fit": "not cells_fit",
    "claim_billed": "not claim_billed",
    # The readers leave two digits, nearly always, or the cell as written: the cheap test of the first.
    "place_of_service": f"not ({TWO_DIGITS})",
}


class ScrubbableRow(pa.DataFrameModel):
    """One row of a claim export, after lenient parsing: what it must hold to be scrubbed at all."""

    claim_id: str = pa.Field(nullable=False)
    line_number: float = pa.Field(nullable=False)
    patient_id: str = pa.Field(nullable=False)
    date_of_service: pa.DateTime = pa.Field(nullable=False)
    hcpcs: str = pa.Field(nullable=False)
    units: float = pa.Field(nullable=False)
    units_written: bool = pa.Field(nullable=False)
    key_rank: int = pa.Field(nullable=False)
    modifiers_shaped: bool = pa.Field(nullable=False)
    cells_fit: bool = pa.Field(nullable=False)
    claim_billed: bool = pa.Field(nullable=False)
    # Which rules apply and which rate prices the line (hospital, facility) hang on it: a place of service
    # that is no code cannot be guessed at.
    place_of_service: str = pa.Field(nullable=False)

    # An identifier that reads #N/A is a lookup or formula that failed in the workbook the export came from:
    # two such claims are not one, nor their patients one patient.
    @pa.check("claim_id", name="not an Excel error")
    def _claim_not_error(cls, s):
        return ~s.isin(EXCEL_ERRORS)

    @pa.check("patient_id", name="not an Excel error")
    def _patient_not_error(cls, s):
        return ~s.isin(EXCEL_ERRORS)

    @pa.check("line_number", name="whole positive number")
    def _whole(cls, s):
        return (s > 0) & (s == s.round())

    @pa.check("date_of_service", name="plausible")
    def _plausible(cls, s):
        return s >= pd.Timestamp(EARLIEST_SERVICE)

    @pa.check("hcpcs", name="five letters and digits")
    def _code(cls, s):
        return s.str.fullmatch(r"[A-Z0-9]{5}")

    @pa.check("units", name="positive")
    def _units(cls, s):
        return s > 0

    # Units that are not positive have that reason already.
    @pa.check("units", name="whole number")
    def _units_whole(cls, s):
        return ~(s > 0) | (s == s.round())

    @pa.check("units_written", name="digits")
    def _digits(cls, s):
        return s

    # claim_lines stores line_number as integer and units as decimal(12,3): a larger value would stop the
    # whole batch at the insert instead of quarantining its row.
    @pa.check("line_number", name="fits the line number column")
    def _line_fits(cls, s):
        return s.isna() | (s <= 2**31 - 1)

    @pa.check("units", name="fits the units column")
    def _units_fit(cls, s):
        return s.isna() | (s < 1e9)

    @pa.check("place_of_service", name="two digits")
    def _place(cls, s):
        return s.str.fullmatch(r"[0-9]{2}")

    @pa.check("modifiers_shaped", name="two letters or digits each")
    def _modifiers(cls, s):
        return s

    # A CSV row with text past the header's columns: its cells may sit under the wrong headers (an NPI read as
    # 234.50), so nothing of it is taken on trust.
    @pa.check("cells_fit", name="no more cells than the header")
    def _cells_fit(cls, s):
        return s

    # A line of a void (837P frequency code 8) cancels a claim sent before: there is nothing of it to deny.
    @pa.check("claim_billed", name="not a void")
    def _claim_billed(cls, s):
        return s

    @pa.check("key_rank", name="first of its claim line")
    def _unique(cls, s):
        return s == 1

    class Config:
        coerce = False
        strict = False


class ClaimLine(pa.DataFrameModel):
    """One validated claim line: the grain of `claim_lines`, keyed by batch and line id."""

    line_id: int = pa.Field(ge=1)
    claim_id: str = pa.Field(str_length={"min_value": 1})
    line_number: int = pa.Field(ge=1)
    patient_id: str = pa.Field(str_length={"min_value": 1})
    date_of_service: pa.DateTime = pa.Field(ge=pd.Timestamp(EARLIEST_SERVICE))
    hcpcs: str = pa.Field(str_matches=r"^[A-Z0-9]{5}$")
    units: float = pa.Field(gt=0)
    component: str = pa.Field(isin=["global", "26", "TC"])
    place_of_service: str
    claim_type: str = pa.Field(isin=["professional", "institutional"])
    facility: bool

    @pa.check("units", name="whole number")
    def _units_whole(cls, s):
        return s == s.round()

    class Config:
        coerce = True
        strict = False


def _not_after(schema: pa.DataFrameSchema, day: date) -> pa.DataFrameSchema:
    """`schema` with a date of service after `day` failing the check "not in the future"."""
    column = schema.columns["date_of_service"]
    check = pa.Check(lambda s: s <= pd.Timestamp(day), name="not in the future")
    return schema.update_column("date_of_service", checks=[*column.checks, check])


def scrubbable_rows(day: date) -> pa.DataFrameSchema:
    """The loose model for a run on `day`."""
    return _not_after(ScrubbableRow.to_schema(), day)


def claim_lines(day: date) -> pa.DataFrameSchema:
    """The strict model for a run on `day`."""
    return _not_after(ClaimLine.to_schema(), day)
