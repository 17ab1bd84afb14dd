"""The input contract in Pandera: a loose model of what a row must hold to be scrubbed, and a strict
typed model of a claim line, the schema of record for the `claim_lines` table.

The loose model runs over rows whose values were parsed (leniently) in DuckDB; each failed check becomes a
quarantine reason. The strict model is a promise about what the rule engine receives: if it fails, the
pipeline is wrong, not the input.
"""

import pandera.pandas as pa

# (column, check name) -> reason template; {raw} is the value as it stood in the export.
REASONS = {
    ("claim_id", "not_nullable"): "claim_id is missing",
    ("line_number", "not_nullable"): "line_number {raw!r} is not a whole number",
    ("line_number", "whole positive number"): "line_number {raw!r} is not a whole number",
    ("patient_id", "not_nullable"): "patient_id is missing",
    ("date_of_service", "not_nullable"): "date_of_service {raw!r} is not a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)",
    ("hcpcs", "not_nullable"): "hcpcs is missing",
    ("hcpcs", "five letters and digits"): "hcpcs {raw!r} is not five letters and digits",
    ("units", "not_nullable"): "units {raw!r} is not a positive number",
    ("units", "positive"): "units {raw!r} is not a positive number",
    ("line_number", "fits the line number column"): "line_number {raw!r} is too large",
    ("units", "fits the units column"): "units {raw!r} is too large",
    ("key_rank", "first of its claim line"): "claim {claim}, line {line} appears more than once (first at {first})",
}


# The loose model's checks, column by column, as SQL conditions over the parsed rows. DuckDB picks out in one
# set-based pass the rows that may fail (a superset: Pandera words the reasons), so that Pandera does not
# have to turn millions of clean rows into pandas frames. Validation checks this mirror against the model
# on a sample of the rows it passes; keep the two in step.
SUSPECT_SQL = {
    "claim_id": "claim_id is null",
    "line_number": "line_number is null or not isfinite(line_number) or line_number <= 0 "
                   "or line_number <> round(line_number) or line_number > 2147483647",
    "patient_id": "patient_id is null",
    "date_of_service": "date_of_service is null",
    "hcpcs": "hcpcs is null or not regexp_full_match(hcpcs, '[A-Z0-9]{5}')",
    "units": "units is null or not isfinite(units) or units <= 0 or units >= 1e9",
    "key_rank": "key_rank is null or key_rank <> 1",
}


class ScrubbableRow(pa.DataFrameModel):
    """One row of a claim export, after lenient parsing: what it must hold to be scrubbed at all."""

    claim_id: str = pa.Field(nullable=False)
    line_number: float = pa.Field(nullable=False)
    patient_id: str = pa.Field(nullable=False)
    date_of_service: pa.DateTime = pa.Field(nullable=False)
    hcpcs: str = pa.Field(nullable=False)
    units: float = pa.Field(nullable=False)
    key_rank: int = pa.Field(nullable=False)

    @pa.check("line_number", name="whole positive number")
    def _whole(cls, s):
        return (s > 0) & (s == s.round())

    @pa.check("hcpcs", name="five letters and digits")
    def _code(cls, s):
        return s.str.fullmatch(r"[A-Z0-9]{5}")

    @pa.check("units", name="positive")
    def _units(cls, s):
        return s > 0

    # claim_lines stores line_number as integer and units as decimal(12,3): a larger value would stop the
    # whole batch at the insert instead of quarantining its row.
    @pa.check("line_number", name="fits the line number column")
    def _line_fits(cls, s):
        return s.isna() | (s <= 2**31 - 1)

    @pa.check("units", name="fits the units column")
    def _units_fit(cls, s):
        return s.isna() | (s < 1e9)

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
    date_of_service: pa.DateTime
    hcpcs: str = pa.Field(str_matches=r"^[A-Z0-9]{5}$")
    units: float = pa.Field(gt=0)
    component: str = pa.Field(isin=["global", "26", "TC"])
    place_of_service: str
    claim_type: str = pa.Field(isin=["professional", "institutional"])
    facility: bool

    class Config:
        coerce = True
        strict = False
