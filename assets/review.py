"""`claimscrub review import`: the decisions auditors filled in on a report's Findings sheet, back into the
database's trail (assets/decisions.py).

Only the four columns an auditor fills in (Decision, Reason, Reviewer, Scope) are taken; the row's Finding id
says which finding they decide, and its Claim, Line and Rule must agree with that finding, so that an id typed
over or pasted from another row is refused rather than deciding another finding. Rows may have been sorted or
filtered: the id, not the row's place, matches them.

A row counts as a decision only where it differs from what the report showed (the decisions up to the one the
report records): a row left as it was is no one's decision, so two auditors' copies of one report never undo
each other. A decision equal to the one that counts already is unchanged, and not stored again: the same file
imported twice changes nothing. Files are read and checked in full before anything is stored, and everything
is stored in one transaction.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from reports.sheet_xml import REFUSED

from .decisions import (
    DECISIONS,
    PROPERTY_BATCH,
    PROPERTY_DATABASE,
    PROPERTY_KIND,
    PROPERTY_THROUGH,
    REPORT_KIND,
    SCOPES,
    STANDING_PREFIX,
    database_id,
    finding_id_sql,
)
from .readers import EXCEL_ERRORS, file_sha256
from .rules import RULES

SHEET = "Findings"
# The columns read, by their headers on the Findings sheet.
HEADERS = {"finding_id": "Finding id", "claim_id": "Claim", "line_number": "Line", "rule_id": "Rule",
           "decision": "Decision", "reason": "Reason", "reviewer": "Reviewer", "scope": "Scope"}
# The header is the second row of a report; more rows are searched for one saved with rows put above it.
HEADER_ROWS = 12
# What a finding shows before any decision of its own: pending, for this finding alone.
NO_DECISION = ("pending", None, None, "finding")
RULE_TABLES = {rule.id: rule.judged_by for rule in RULES}


class ReviewFileError(ValueError):
    """A file that cannot be imported at all. The message is one plain sentence naming the file."""


@dataclass
class ReviewRow:
    row: int  # the sheet's row number, as Excel shows it
    finding_id: str | None
    claim_id: str | None
    line_number: str | None
    rule_id: str | None
    decision: str | None
    reason: str | None
    reviewer: str | None
    scope: str | None


@dataclass
class ReviewFile:
    path: Path
    name: str
    sha256: str
    batch_id: str
    database_id: str
    through: int  # the newest decision the report's Findings sheet shows
    rows: list[ReviewRow]


@dataclass
class ImportResult:
    imported: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)  # one sentence each: file, row and why


def _as_shown(text: str | None) -> str | None:
    """A text as the report's cell shows it and a reading of that cell gives it back (_text): control characters
    Excel refuses as U+FFFD, spaces, tabs and line breaks at either end stripped."""
    return _text(REFUSED.sub("\ufffd", text)) if text is not None else None


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read_review(path: Path) -> ReviewFile:
    """The decision columns of a report's Findings sheet, with what the report says of itself."""
    from openpyxl import load_workbook

    if path.is_dir():
        raise ReviewFileError(f"{path}: is a folder, not a claimscrub denial-risk report")
    if not path.is_file():
        raise ReviewFileError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise ReviewFileError(f"{path}: not a claimscrub denial-risk report (not an Excel .xlsx workbook)")
    try:
        # Opened from its bytes: openpyxl goes by the name's suffix, and a report saved or renamed .xls (or
        # given no suffix) is a workbook all the same.
        book = load_workbook(io.BytesIO(path.read_bytes()), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds on a file that is not a workbook
        raise ReviewFileError(f"{path}: not a claimscrub denial-risk report (no workbook can be read from it: "
                              f"{type(exc).__name__})") from None
    try:
        properties = {p.name: p.value for p in book.custom_doc_props}
        if properties.get(PROPERTY_KIND) != REPORT_KIND or SHEET not in book.sheetnames:
            raise ReviewFileError(f"{path}: not a claimscrub denial-risk report (it lacks the report's document "
                                  f"properties or its {SHEET} sheet)")
        try:
            through = int(properties.get(PROPERTY_THROUGH) or 0)
        except ValueError:
            raise ReviewFileError(f"{path}: its {PROPERTY_THROUGH} property is not a number") from None
        rows = _read_rows(path, book[SHEET].iter_rows(values_only=True))
    finally:
        book.close()
    return ReviewFile(path, path.name, file_sha256(path), str(properties.get(PROPERTY_BATCH) or ""),
                      str(properties.get(PROPERTY_DATABASE) or ""), through, rows)


def _read_rows(path: Path, sheet_rows: Iterable[tuple]) -> list[ReviewRow]:
    columns = None
    rows = []
    for number, values in enumerate(sheet_rows, 1):
        if columns is None:
            names = [_text(v) for v in values]
            if HEADERS["finding_id"] in names:
                missing = [h for h in HEADERS.values() if h not in names]
                if missing:
                    raise ReviewFileError(f"{path}: its {SHEET} sheet has no {', '.join(missing)} column")
                columns = {key: names.index(header) for key, header in HEADERS.items()}
            elif number >= HEADER_ROWS:
                raise ReviewFileError(f"{path}: its {SHEET} sheet has no Finding id column in its first "
                                      f"{HEADER_ROWS} rows")
            continue
        cells = {key: _text(values[at]) if at < len(values) else None for key, at in columns.items()}
        if any(cells.values()):
            rows.append(ReviewRow(number, **cells))
    if columns is None:
        raise ReviewFileError(f"{path}: its {SHEET} sheet has no Finding id column")
    return rows


# Every finding of a batch with what a decision on it records: its id, claim line, rule, code, provider, the
# table behind its rule and the release of that table that judged its line.
BATCH_FINDINGS = f"""
select {finding_id_sql("f.batch_id", "l.claim_id", "l.line_number", "f.rule_id")} as finding_id,
       l.claim_id, l.line_number, f.rule_id, l.hcpcs, l.provider, t.rule_table,
       case t.rule_table when 'rvu' then p.rvu_release when 'ptp' then p.ptp_release
                         when 'mue' then p.mue_release when 'aoc' then p.aoc_release end as table_release
from (select * from line_flags where batch_id = $batch) f
join (select * from claim_lines where batch_id = $batch) l on l.line_id = f.line_id
join (select * from priced_lines where batch_id = $batch) p on p.line_id = f.line_id
join rule_tables t on t.rule_id = f.rule_id
"""

# The decision of each finding of a batch after decision number $through: what a report written then showed.
STATES = """
select finding_id, decision, reason, reviewer, scope from (
    select *, row_number() over (partition by finding_id order by decision_id desc) as recency
    from finding_decisions where batch_id = $batch and decision_id <= $through
) where recency = 1
"""

# What an earlier import of the same file stored for each finding, and the newest decision number of each
# decided finding: a row decided again since its report was written is not the auditor's to overrule unseen.
IMPORTED_FROM_FILE = """
select finding_id, decision, reason, reviewer, scope from finding_decisions
where batch_id = $batch and source_sha256 = $sha256
"""
NEWEST_DECISION = "select finding_id, max(decision_id) from finding_decisions where batch_id = $batch group by 1"
STANDING_DISMISSALS = """
select decision_id, rule_id, hcpcs, provider, decision, reason, reviewer, scope from finding_decisions
where scope = 'standing' and decision = 'dismiss' order by decision_id
"""

INSERT = """
insert into finding_decisions (decision_id, batch_id, finding_id, claim_id, line_number, rule_id, hcpcs, provider,
                               decision, reason, reviewer, scope, decided_at, source_file, source_sha256,
                               source_row, rule_table, table_release, release_start)
select (select coalesce(max(decision_id), 0) from finding_decisions) + d.position, d.* exclude (position),
       (select min(r.effective_start) from ref_releases r
        where r.release_id = d.table_release and starts_with(r.table_name, d.rule_table))
from incoming_decisions d
order by d.position
"""
INCOMING_COLUMNS = ["position", "batch_id", "finding_id", "claim_id", "line_number", "rule_id", "hcpcs", "provider",
                    "decision", "reason", "reviewer", "scope", "decided_at", "source_file", "source_sha256", "source_row",
                    "rule_table", "table_release"]


def check_files(con, files: list[ReviewFile]) -> None:
    """Every file a report of this database, of a batch it holds; else the first one that is not, refused."""
    own = database_id(con)
    for review in files:
        if review.database_id != own:
            raise ReviewFileError(f"{review.path}: a report written from another claimscrub database; import it "
                                  "into the database that scrubbed it (--db)")
        known = con.execute("select count(*) from batches where batch_id = ?", [review.batch_id]).fetchall()
        if not known[0][0]:
            raise ReviewFileError(f"{review.path}: its batch {review.batch_id} is no longer in this database")
        # The report says which decisions it shows; one naming decisions this database never made was edited, or
        # written from a copy of the database that went on without this one: what it shows cannot be trusted.
        newest = con.execute("select coalesce(max(decision_id), 0) from finding_decisions").fetchall()[0][0]
        if review.through > newest:
            raise ReviewFileError(f"{review.path}: its report shows decisions up to #{review.through}, but this "
                                  f"database's newest is #{newest}: write the report again from this database")


def import_reviews(con, files: list[ReviewFile]) -> ImportResult:
    """Store the decisions of checked files (check_files), in the order given: a later file's decision on a
    finding comes after an earlier one's."""
    result = ImportResult()
    decided_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    con.register("rule_tables_frame", pd.DataFrame({"rule_id": list(RULE_TABLES),
                                                    "rule_table": list(RULE_TABLES.values())}))
    con.execute("create or replace temp table rule_tables as select * from rule_tables_frame")
    con.unregister("rule_tables_frame")
    incoming = []
    # Per batch, the decision that counts for each decided finding, as this import goes on.
    current_of: dict[str, dict] = {}
    # The findings this import decides, with the file and row that decided each: a later file of the same
    # command was written before that decision, as a file imported on its own after it would have been.
    decided_here: dict[tuple[str, str], str] = {}
    # The standing dismissals this import makes, by rule, code and provider: the batch they were made on and the
    # file and row. A later file of the command was written before them, and cannot overrule them unseen.
    standing_here: dict[tuple, tuple[str, str, int]] = {}
    # The standing dismissals stored, oldest first: what a report showed for a finding they cover.
    every_standing = con.execute(STANDING_DISMISSALS).fetchall()
    # A standing dismissal covers its own batch and those read after it: a report of an earlier batch shows none
    # of the later ones, and has none to overrule.
    place = dict(con.execute("select batch_id, seq from batch_order").fetchall())
    made_in = dict(con.execute("select decision_id, batch_id from finding_decisions "
                               "where scope = 'standing' and decision = 'dismiss'").fetchall())
    for index, review in enumerate(files):
        batch = review.batch_id
        standings = [s for s in every_standing
                     if place.get(made_in.get(s[0]), 0) <= place.get(batch, float("inf"))]
        if batch not in current_of:
            current_of[batch] = _states(con, batch)
        current = current_of[batch]
        shown = _states(con, batch, review.through)
        before = {(finding, tuple(state)) for finding, *state in
                  con.execute(IMPORTED_FROM_FILE, {"batch": batch, "sha256": review.sha256}).fetchall()}
        newest = dict(con.execute(NEWEST_DECISION, {"batch": batch}).fetchall())
        # The rows that differ from what the report showed (a standing dismissal shown where it applies is
        # none of the row's own); only their findings are looked up.
        changed = [(row, state) for row in review.rows if (state := _state(row)) is not None
                   and not (row.finding_id and shown.get(row.finding_id, NO_DECISION) == state)]
        # Rows still showing a standing dismissal: edited around it, they decide nothing, and are told so.
        covered = [row for row in review.rows if _state(row) is None and row.finding_id]
        findings = _findings(con, batch, {row.finding_id for row, _ in changed if row.finding_id}
                             | {row.finding_id for row in covered})
        for row in covered:
            covering = _standing_covering(standings, findings[row.finding_id], review.through) \
                if row.finding_id in findings else None
            if covering is not None and ((row.reason, row.reviewer) != covering[1][1:3]
                                         or SCOPES.get((row.scope or "").lower()) != "standing"):
                result.refused.append(
                    f"{review.name} row {row.row}: its Decision still reads {row.decision!r}, so its other cells "
                    "decide nothing: to decide this finding alone, type accept, dismiss or fixed and set its Scope "
                    "to 'this finding'")
        first_row: dict[str, int] = {}
        # One finding decided differently on two rows of a file (a row copied, then changed): neither is taken.
        states_of: dict[str, set] = {}
        for row, state in changed:
            states_of.setdefault(row.finding_id, set()).add(state)
        for row, state in changed:
            finding = findings.get(row.finding_id or "")
            covering = _standing_covering(standings, finding, review.through) if finding else None
            own = shown.get(row.finding_id)
            problem = _problem(row, state, finding, first_row, own or (covering[1] if covering else None))
            if problem is None and row.finding_id and len(states_of[row.finding_id]) > 1:
                rows = ", ".join(str(r.row) for r, _ in changed if r.finding_id == row.finding_id)
                problem = f"finding {row.finding_id} is decided differently on rows {rows}: keep one of them"
            if problem:
                result.refused.append(f"{review.name} row {row.row}: {problem}")
                continue
            first_row[row.finding_id] = row.row
            # The same file imported again changes nothing, whatever was decided since.
            if current.get(row.finding_id, NO_DECISION) == state or (row.finding_id, state) in before:
                result.unchanged += 1
                continue
            if newest.get(row.finding_id, 0) > review.through:
                result.refused.append(
                    f"{review.name} row {row.row}: finding {row.finding_id} was decided again (decision "
                    f"#{newest[row.finding_id]}) after this report was written: decide it on a report written since")
                continue
            later = _standing_covering(standings, finding, None)
            if own is None and later is not None and later[0] > review.through:
                result.refused.append(
                    f"{review.name} row {row.row}: a standing dismissal of its rule, code and provider (decision "
                    f"#{later[0]}) was made after this report was written: decide it on a report written since")
                continue
            if (batch, row.finding_id) in decided_here:
                result.refused.append(
                    f"{review.name} row {row.row}: finding {row.finding_id} is already decided by "
                    f"{decided_here[batch, row.finding_id]} of this import, after this report was written: "
                    "decide it on a report written since")
                continue
            key = (finding["rule_id"], finding["hcpcs"], finding["provider"])
            made = standing_here.get(key)
            if own is None and made is not None and made[2] != index \
                    and place.get(made[0], 0) <= place.get(batch, float("inf")):
                result.refused.append(
                    f"{review.name} row {row.row}: a standing dismissal of its rule, code and provider ({made[1]} of "
                    "this import) was made after this report was written: decide it on a report written since")
                continue
            decided_here[batch, row.finding_id] = f"{review.name} row {row.row}"
            if state[0] == "dismiss" and state[3] == "standing":
                standing_here.setdefault(key, (batch, f"{review.name} row {row.row}", index))
            current[row.finding_id] = state
            finding = findings[row.finding_id]
            incoming.append((len(incoming) + 1, batch, row.finding_id, finding["claim_id"], finding["line_number"],
                             finding["rule_id"], finding["hcpcs"], finding["provider"], *state, decided_at,
                             review.name, review.sha256, row.row, finding["rule_table"],
                             finding["table_release"]))
            result.imported += 1
    if incoming:
        con.register("incoming_frame", pd.DataFrame.from_records(incoming, columns=INCOMING_COLUMNS).astype(object))
        con.execute(f"""create or replace temp table incoming_decisions as
                        select {", ".join(f"cast({c} as {_kind(c)}) as {c}" for c in INCOMING_COLUMNS)}
                        from incoming_frame""")
        con.unregister("incoming_frame")
        con.execute("begin transaction")
        try:
            con.execute(INSERT)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return result


def _standing_covering(standings: list[tuple], finding: dict, through: int | None) -> tuple | None:
    """The newest standing dismissal (up to decision number `through`, else any) of the finding's rule, code and
    provider, as (decision number, (decision, reason, reviewer, scope)); None if there is none. Whether it had
    lapsed when the report was written is not told apart: a report showed it, or showed none of it."""
    found = None
    for number, rule_id, hcpcs, provider, *state in standings:
        if through is not None and number > through:
            break
        if (rule_id, hcpcs, provider) == (finding["rule_id"], finding["hcpcs"], finding["provider"]):
            found = (number, tuple(state))
    return found


def _findings(con, batch: str, ids: set[str]) -> dict[str, dict]:
    """The findings of `batch` with these ids, by id, with what a decision on one records."""
    con.register("wanted_ids", pd.DataFrame({"finding_id": sorted(ids)}, dtype=object))
    try:
        found = con.execute(f"select * from ({BATCH_FINDINGS}) where finding_id in (select finding_id from wanted_ids)",
                            {"batch": batch})
        names = [d[0] for d in found.description]
        return {row[0]: dict(zip(names, row)) for row in found.fetchall()}
    finally:
        con.unregister("wanted_ids")


def _kind(column: str) -> str:
    return {"position": "bigint", "line_number": "integer", "source_row": "integer",
            "decided_at": "timestamp"}.get(column, "varchar")


def _states(con, batch: str, through: int | None = None) -> dict[str, tuple]:
    """The decision of each decided finding of `batch` after decision number `through` (else the latest), as
    (decision, reason, reviewer, scope)."""
    rows = con.execute(STATES, {"batch": batch, "through": (1 << 62) if through is None else through})
    return {finding: tuple(state) for finding, *state in rows.fetchall()}


def _state(row: ReviewRow) -> tuple | None:
    """The decision a row holds, as stored (scope in its stored word); None for a row that holds none of its
    own: a standing dismissal shown where it applies."""
    decision = (row.decision or "pending").lower()
    if decision.startswith(STANDING_PREFIX):
        return None
    # Only the Scope column's own words (None for any other: the stored word "standing" typed past the
    # drop-down is no scope).
    scope = SCOPES.get((row.scope or "this finding").lower())
    return (decision, row.reason, row.reviewer, scope)


def _problem(row: ReviewRow, state: tuple, finding: dict | None, first_row: dict[str, int],
             earlier: tuple | None = None) -> str | None:
    """Why a row's decision cannot be stored, or None. `earlier`: the decision the report showed deciding the
    finding (its own, else a standing dismissal covering it), as (decision, reason, reviewer, scope), if any."""
    decision, reason, reviewer, scope = state
    for column, value in (("Decision", row.decision), ("Reason", row.reason), ("Reviewer", row.reviewer),
                          ("Scope", row.scope)):
        if value in EXCEL_ERRORS:
            return f"its {column} cell holds the error {value} (a formula, such as =name): type the value itself"
    typed = (row.reason or "").strip().lower()
    if not row.decision and typed in DECISIONS and typed != "pending":
        # A decision typed one cell off would be stored as a pending one: the auditor is told, not thanked.
        return f"its Reason is {row.reason!r} and its Decision is empty: type the decision in the Decision column"
    if not row.finding_id:
        return "a decision without a finding id"
    if finding is None:
        return f"finding id {row.finding_id} is not a finding of this report's batch"
    shown = (row.claim_id, row.line_number, row.rule_id)
    if shown != (_as_shown(finding["claim_id"]), str(finding["line_number"]), finding["rule_id"]):
        return (f"finding id {row.finding_id} is claim {finding['claim_id']} line {finding['line_number']} "
                f"{finding['rule_id']}, not the row's claim {row.claim_id} line {row.line_number} {row.rule_id}")
    if row.finding_id in first_row:
        return f"finding id {row.finding_id} is decided on row {first_row[row.finding_id]} already"
    if decision not in DECISIONS:
        return f"decision {row.decision!r} is not one of {', '.join(DECISIONS)}"
    if scope not in SCOPES.values():
        return f"scope {row.scope!r} is not one of: {'; '.join(SCOPES)}"
    if earlier is not None and (decision, scope) != (earlier[0], earlier[3]) and (reason, reviewer) == (
            earlier[1], earlier[2]):
        # The report fills Reason and Reviewer with the decision it shows: a new decision, or the same one with
        # another scope (a standing dismissal made or ended), left under them would be stored as that
        # reviewer's, with that reason.
        changed = f"Decision is {decision!r}" if decision != earlier[0] else f"Scope is {row.scope!r}"
        return (f"its {changed} now, but its Reason and Reviewer are still those of the "
                f"{earlier[0]!r} by {earlier[2]} the report showed: type who decides it, and why")
    if not reviewer:
        return "a decision needs a reviewer"
    if decision == "dismiss" and not reason:
        return "a dismissal needs a reason"
    if scope == "standing" and decision != "dismiss":
        # The report fills a finding covered by a standing dismissal with that scope: an auditor overruling it
        # for this finding is told the one cell to change.
        return ("only a dismissal can stand for the rule, code and provider: to decide this finding alone, set "
                "its Scope to 'this finding'")
    return None
