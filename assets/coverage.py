"""How far each reference table reaches: its newest release, the end of that release's period, and the lines of
a batch dated beyond it. A table is stale for a line dated after its newest release ends; the line is still
judged (by that newest release, `approximate`), and the run says so on the command line, at the top of the
workbook's Summary, on its Reference sheet and in summary.json (`reference_coverage`). Lines dated between two
loaded releases (the quarters between never loaded) are judged by the older one, and said the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


# A release with fewer than this share of the rows of another release of its table is said, when it is loaded
# and when it judges a batch's lines: a quarter's fee schedule, edits or MUEs differ from another's by a few
# percent (the AOC edits of 2024 and 2026 by a sixth), and an excerpt, a file cut at a line break (which no
# layout check sees) or one PTP part of four holds far fewer. A GPCI release with fewer than GPCI_SHARE of
# another's localities too (CMS retires a locality or two a year).
FULL_SHARE = {"rvu": 0.9, "ptp": 0.9, "mue_practitioner": 0.9, "mue_outpatient_hospital": 0.9, "mue_dme": 0.9,
              "aoc": 0.75, "zip": 0.9, "gpci": 0.9}
GPCI_SHARE = FULL_SHARE["gpci"]


@dataclass(frozen=True)
class Family:
    """One reference table as people name it: the `ref_releases` table names it covers, which lines it judges
    (a condition on `claim_lines`), and how a site brings it up to date."""

    label: str
    tables: tuple[str, ...]
    lines: str
    period: str  # quarter or year
    load_hint: str
    # The column of priced_lines naming the release that judged each line ('' for a table no line names).
    judged_by: str = ""
    # Said only for a batch that has lines it judges: a table of one kind of claim, which a site without
    # such claims need not keep current.
    only_when_used: bool = False


# The lines whose place was looked up in the ZIP file (pricing.py): a ZIP and no locality, or a locality that
# pricing did not take (no pricing locality of the line's GPCI release).
ZIP_PLACED = """service_zip is not null and (locality is null or locality is distinct from (
    select p.locality from priced_lines p
    where p.batch_id = claim_lines.batch_id and p.line_id = claim_lines.line_id))"""

FAMILIES = [
    Family("RVU", ("rvu",), "true", "quarter",
           "claimscrub reference download --release RVU{yy}{letter} (or reference load its PPRRVU file)",
           judged_by="rvu_release"),
    Family("GPCI", ("gpci",), "true", "year", "claimscrub reference load GPCI{year}.csv", judged_by="gpci_release"),
    Family("localities", ("locality_counties",), "false", "year", "claimscrub reference load {yy}LOCCO.csv"),
    Family("ZIP", ("zip",), ZIP_PLACED, "quarter",
           "claimscrub reference load ZIP5_{mon}{year}.txt"),
    Family("PTP", ("ptp",), "true", "quarter",
           "claimscrub reference download --release 'PTP {year}Q{q}' (or reference load its ccipra files)",
           judged_by="ptp_release"),
    # Each MUE service type is a table of its own: professional lines are judged by the practitioner MUEs,
    # institutional ones by the outpatient hospital MUEs, and either can be behind while the other is current.
    Family("MUE", ("mue_practitioner",), "claim_type <> 'institutional'", "quarter",
           "claimscrub reference download --release 'MUE {year}Q{q}' (or reference load the MCR_MUE CSV)",
           judged_by="mue_release"),
    Family("MUE outpatient hospital", ("mue_outpatient_hospital",), "claim_type = 'institutional'", "quarter",
           "claimscrub reference load MCR_MUE_OutpatientHospitalServices_Eff_{mm}-01-{year}.csv",
           only_when_used=True, judged_by="mue_release"),
    Family("AOC", ("aoc",), "true", "quarter", "claimscrub reference load AOC_V{year}Q{q}-MCR.xlsx",
           judged_by="aoc_release"),
]


def load_hint(family: Family, day: date) -> str:
    """The command that brings the table up to `day`: the release of its quarter (or year)."""
    quarter = (day.month - 1) // 3 + 1
    first_month = date(day.year, 3 * quarter - 2, 1) if family.period == "quarter" else date(day.year, 1, 1)
    return family.load_hint.format(yy=f"{day.year % 100:02d}", letter="ABCD"[quarter - 1], year=day.year,
                                   q=quarter, mon=first_month.strftime("%b").upper(),
                                   mm=f"{first_month.month:02d}")


def _newest(con, family: Family, variant: str = "") -> tuple[str, date, date] | None:
    """The table's newest release; of the RVU file, the newest of the site's variant (QPP or not) where it has
    one (the other tables have no variant), since the other variant prices a date only in a year the site's
    has no release of (pricing.py): a QPP file of a later quarter does not bring a non-QPP site's prices up to
    date."""
    rows = con.execute(
        f"""select release_id, effective_start, effective_end from ref_releases
            where table_name in ({", ".join("?" for _ in family.tables)})
            order by coalesce(variant, '') = ? desc, effective_end desc, effective_start desc, loaded_at desc
            limit 1""",
        [*family.tables, variant.upper()],
    ).fetchall()
    return rows[0] if rows else None


def _site_variant(con, batch_id: str) -> str:
    found = con.execute("select coalesce(rvu_variant, '') from batches where batch_id = ?", [batch_id]).fetchall()
    return found[0][0] if found else ""


def batch_coverage(con, batch_id: str) -> list[dict]:
    """Per table, for one batch: its newest release, that release's end, and the batch's lines dated beyond it
    (how many, the latest date, how many days past the end)."""
    coverage = []
    variant = _site_variant(con, batch_id)
    # The releases the batch's lines were judged by, from its few price contexts: only a release that ends
    # before its table's newest can have judged lines between releases.
    used = con.execute("select distinct rvu_release, gpci_release, ptp_release, mue_release, aoc_release "
                       "from price_contexts where batch_id = ?", [batch_id]).fetchall()
    judged = {column: {row[n] for row in used if row[n]}
              for n, column in enumerate(["rvu_release", "gpci_release", "ptp_release", "mue_release",
                                          "aoc_release"])}
    for family in FAMILIES:
        if family.only_when_used and not _any_lines(con, batch_id, family):
            continue
        newest = _newest(con, family, variant)
        if newest is None:
            # A table the batch never needed (no institutional lines, no ZIP) is not worth a line.
            if family.lines != "true" and not _any_lines(con, batch_id, family):
                continue
            release, start, end = None, None, None
            beyond, latest = con.execute(
                f"""select count(*), max(date_of_service) from claim_lines
                    where batch_id = ? and ({family.lines})""", [batch_id]).fetchall()[0]
        else:
            release, start, end = newest
            beyond, latest = con.execute(
                f"""select count(*), max(date_of_service) from claim_lines
                    where batch_id = ? and ({family.lines}) and date_of_service > ?""",
                [batch_id, end]).fetchall()[0]
        between = _between_releases(con, batch_id, family, end, judged.get(family.judged_by, set())) if end else []
        # The localities file judges no line; the ZIP file, the lines it places.
        before = _before_releases(con, batch_id, family) if end and family.label != "localities" else None
        partial = _partial_releases(con, batch_id, family, judged.get(family.judged_by, set()))
        coverage.append({
            "table": family.label,
            "newest_release": release,
            "effective_start": str(start) if start else None,
            "effective_end": str(end) if end else None,
            "lines_beyond": beyond,
            "latest_date_of_service": str(latest) if latest else None,
            "days_beyond": (latest - end).days if latest and end else None,
            "stale": beyond > 0,
            "lines_between_releases": sum(gap["lines"] for gap in between),
            "between_releases": between,
            "lines_before_releases": before["lines"] if before else 0,
            "before_releases": before,
            "lines_by_partial_releases": sum(part["lines"] for part in partial),
            "partial_releases": partial,
        })
        if beyond:
            _describe(coverage[-1])
        if between:
            _describe_between(coverage[-1])
        if before:
            _describe_before(coverage[-1])
        if partial:
            _describe_partial(coverage[-1])
    return coverage


def _partial_releases(con, batch_id: str, family: Family, judged: set[str]) -> list[dict]:
    """The releases that judged the batch's lines and hold far fewer rows than another release of their table
    (an excerpt, a sample, one part of a PTP release), with the lines each judged."""
    if not family.judged_by or not judged:
        return []
    rows = con.execute(
        f"""with sizes as (
                select release_id, table_name, row_count,
                       max(row_count) over (partition by table_name) as largest,
                       arg_max(release_id, row_count) over (partition by table_name) as largest_release
                from ref_releases where table_name in ({", ".join("?" for _ in family.tables)}))
            select release_id, row_count, largest, largest_release from sizes
            where release_id in (select unnest(?::varchar[]))
              and row_count < largest * ?::double
            order by release_id""",
        [*family.tables, sorted(judged), FULL_SHARE.get(family.tables[0], 0.5)]).fetchall()
    partial = []
    for release, count, largest, largest_release in rows:
        lines = con.execute(f"select count(*) from priced_lines where batch_id = ? and {family.judged_by} = ?",
                            [batch_id, release]).fetchall()[0][0]
        if lines:
            partial.append({"release": release, "rows": count, "largest_release": largest_release,
                            "largest_rows": largest, "lines": lines})
    return partial


# Tables whose rates are set per calendar year: a line of the oldest release's year is priced by a release of
# its own year (RULES.md), only an earlier year's lines by another year's rates.
BY_YEAR = {"RVU", "GPCI"}


def _before_releases(con, batch_id: str, family: Family) -> dict | None:
    """The batch's lines dated before the table's oldest release (for RVU and GPCI, before its year), which that
    release judges (approximate): a 2024 line priced at 2025 rates, a line of 2024Q1 judged by edits of 2024Q2."""
    oldest = con.execute(
        f"""select release_id, effective_start from ref_releases
            where table_name in ({", ".join("?" for _ in family.tables)})
            order by effective_start, loaded_at limit 1""", [*family.tables]).fetchall()
    if not oldest:
        return None
    release, start = oldest[0]
    first_day = date(start.year, 1, 1) if family.label in BY_YEAR else start
    count, first, last = con.execute(
        f"""select count(*), min(date_of_service), max(date_of_service) from claim_lines
            where batch_id = ? and ({family.lines}) and date_of_service < ?""", [batch_id, first_day]).fetchall()[0]
    if not count:
        return None
    return {"release": release, "effective_start": str(start), "lines": count, "first_date_of_service": str(first),
            "last_date_of_service": str(last), "days_before_start": (start - first).days}


def _between_releases(con, batch_id: str, family: Family, newest_end: date, judged: set[str]) -> list[dict]:
    """The batch's lines up to the newest release's end that no release's period holds, by the older release
    that judged them (its period ended before their dates: the quarters between were never loaded). Only the
    lines dated after the earliest end of such a release are joined to their releases."""
    if not family.judged_by or not judged:
        return []
    older = con.execute(
        f"""select distinct release_id, effective_end from ref_releases
            where table_name in ({", ".join("?" for _ in family.tables)})
              and release_id in (select unnest(?::varchar[])) and effective_end < ?""",
        [*family.tables, sorted(judged), newest_end]).fetchall()
    if not older:
        return []
    first = min(end for _, end in older)
    # Most batches have no line dated after such a release's end: a scan of the dates says so, without the join.
    if not con.execute(f"""select count(*) from claim_lines where batch_id = ? and ({family.lines})
                           and date_of_service > ? and date_of_service <= ?""",
                       [batch_id, first, newest_end]).fetchall()[0][0]:
        return []
    rows = con.execute(
        f"""select r.release_id, r.effective_end, count(*), min(l.date_of_service), max(l.date_of_service)
            from (select line_id, date_of_service from claim_lines
                  where batch_id = $batch and ({family.lines}) and date_of_service > $first
                    and date_of_service <= $newest_end) l
            join priced_lines p on p.batch_id = $batch and p.line_id = l.line_id
            join (select unnest($releases::varchar[]) as release_id, unnest($ends::date[]) as effective_end) r
              on r.release_id = p.{family.judged_by}
            where l.date_of_service > r.effective_end
            group by all order by r.effective_end, r.release_id""",
        {"batch": batch_id, "first": first, "newest_end": newest_end,
         "releases": [release for release, _ in older], "ends": [end for _, end in older]}).fetchall()
    return [{"release": release, "effective_end": str(end), "lines": count, "first_date_of_service": str(first),
             "last_date_of_service": str(last), "days_past_end": (last - end).days}
            for release, end, count, first, last in rows]


def _any_lines(con, batch_id: str, family: Family) -> bool:
    return con.execute(f"select count(*) from claim_lines where batch_id = ? and ({family.lines})",
                       [batch_id]).fetchall()[0][0] > 0


def status_as_of(con, as_of: date, variant: str = "") -> list[dict]:
    """Per table: its newest release and period (of the RVU file, of the site's `variant`), and how many days
    that period has ended before `as_of`."""
    rows = []
    for family in FAMILIES:
        if family.only_when_used:
            continue
        newest = _newest(con, family, variant)
        release, start, end = newest if newest else (None, None, None)
        days = (as_of - end).days if end and as_of > end else 0
        rows.append({"table": family.label, "newest_release": release,
                     "effective_start": str(start) if start else None,
                     "effective_end": str(end) if end else None,
                     "days_stale": days if end else None, "stale": end is None or as_of > end})
    return rows


def warning_text(entry: dict) -> str:
    """One sentence for a stale table of a run, as the command, the Summary and the asset check say it."""
    return f"{entry['finding']} {entry['advice']}"


# The tables whose release makes a line's reference_match approximate (pricing.py); the ZIP file only finds
# its locality, and a line it placed can still be `exact`.
MATCHED = {"rvu", "gpci", "ptp", "mue_practitioner", "mue_outpatient_hospital", "aoc"}


def counted(count: int, noun: str) -> str:
    """`1 line`, `2 lines`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _describe(entry: dict) -> None:
    """The entry's finding (what is stale, for how many lines) and advice (what to load), each short enough for a
    line of the workbook's banner."""
    family = next(f for f in FAMILIES if f.label == entry["table"])
    latest = date.fromisoformat(entry["latest_date_of_service"]) if entry["latest_date_of_service"] else None
    lines = counted(entry["lines_beyond"], "line")
    were = "was" if entry["lines_beyond"] == 1 else "were"
    if entry["newest_release"] is None:
        entry["finding"] = f"no {family.label} release is loaded; {lines} {were} judged without it."
    else:
        entry["finding"] = (f"{entry['newest_release']} ends {entry['effective_end']}; {lines} dated up to "
                            f"{entry['latest_date_of_service']} ({counted(entry['days_beyond'], 'day')} past its "
                            f"end) {were} judged by it{' (approximate)' if family.tables[0] in MATCHED else ''}.")
    entry["advice"] = f"Load the current {family.period}: {load_hint(family, latest or date.today())}"
    entry["warning"] = warning_text(entry)


def _describe_between(entry: dict) -> None:
    """What an entry's lines between releases are (judged by a release whose period ended before them) and what
    to load: the quarter (or year) of the first of them."""
    family = next(f for f in FAMILIES if f.label == entry["table"])
    gaps = entry["between_releases"]
    first = min(gap["first_date_of_service"] for gap in gaps)
    approximate = " (approximate)" if family.tables[0] in MATCHED else ""
    entry["between_finding"] = " ".join(
        f"{gap['release']} ends {gap['effective_end']}; {counted(gap['lines'], 'line')} dated "
        f"{gap['first_date_of_service']} to {gap['last_date_of_service']}, in no later {family.label} release's "
        f"period, {'was' if gap['lines'] == 1 else 'were'} judged by it{approximate}." for gap in gaps)
    entry["between_advice"] = (f"Load the {family.period}s between, from the first: "
                               f"{load_hint(family, date.fromisoformat(first))}")
    entry["between_warning"] = f"{entry['between_finding']} {entry['between_advice']}"


def _describe_before(entry: dict) -> None:
    """What an entry's lines before its oldest release are, and what to load: the quarter (or year) of the first."""
    family = next(f for f in FAMILIES if f.label == entry["table"])
    gap = entry["before_releases"]
    approximate = " (approximate)" if family.tables[0] in MATCHED else ""
    before = f"in a year with no {family.label} release" if family.label in BY_YEAR else \
        f"before any {family.label} release's period"
    entry["before_finding"] = (
        f"{gap['release']} starts {gap['effective_start']}; {counted(gap['lines'], 'line')} dated "
        f"{gap['first_date_of_service']} to {gap['last_date_of_service']}, {before}, "
        f"{'was' if gap['lines'] == 1 else 'were'} judged by it{approximate}.")
    entry["before_advice"] = (f"Load the {family.period} of their dates, from the first: "
                              f"{load_hint(family, date.fromisoformat(gap['first_date_of_service']))}")
    entry["before_warning"] = f"{entry['before_finding']} {entry['before_advice']}"


def _describe_partial(entry: dict) -> None:
    """What an entry's partial releases judged: each, its rows against the largest release's, its lines."""
    entry["partial_finding"] = " ".join(
        f"{part['release']} holds {part['rows']:,} rows against {part['largest_rows']:,} in "
        f"{part['largest_release']}; {counted(part['lines'], 'line')} {'was' if part['lines'] == 1 else 'were'} "
        "judged by it, and a code it leaves out is judged as if unlisted." for part in entry["partial_releases"])
    entry["partial_advice"] = "An excerpt, or a file cut short? Load the whole file as CMS publishes it."
    entry["partial_warning"] = f"{entry['partial_finding']} {entry['partial_advice']}"


def stale_warnings(coverage: list[dict]) -> list[str]:
    """What the run says of its reference data: each stale table, each table with lines between releases, and
    each with lines before its oldest release."""
    warnings = []
    for entry in coverage:
        if entry["stale"]:
            warnings.append(entry["warning"])
        if entry.get("lines_between_releases"):
            warnings.append(entry["between_warning"])
        if entry.get("lines_before_releases"):
            warnings.append(entry["before_warning"])
        if entry.get("lines_by_partial_releases"):
            warnings.append(entry["partial_warning"])
    return warnings
