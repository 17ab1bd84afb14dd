"""The claim assets, stage by stage. Each is a thin wrapper over plain functions; the data lives in DuckDB,
one batch at a time, and every stage rewrites only its own batch."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.database import MAIN_FILE_POOL, MAIN_FILE_TAG
from reference.assets import REFERENCE_ASSETS

from . import outputs
from .coverage import batch_coverage, stale_warnings
from .decisions import DEFAULT_STANDING_DAYS
from .pricing import price_batch
from .progress import stage
from .readers import (
    InputFileError,
    StagedExports,
    StagedFile,
    detect_kind,
    file_sha256,
    land_rows,
    load_mapping,
    stage_csv,
    stage_excel,
    staging_table,
)
from .scrub import BATCH_ORDER, history_span, scrub_batch
from .shards import Layout, attach_all, distribute, each_shard, read_layout, shard_connection
from .tables import clear_batch, ensure_schema
from .validate import validate_batch
from .x12 import stage_837p

ROWS_ACCOUNTED = "rows_accounted"
REFERENCE_CURRENT = "reference_current"


class BatchConfig(dg.Config):
    """One scrub run: the batch it writes, its input files and where its reports go."""

    batch_id: str
    files: list[str] = []
    file_names: list[str] = []
    # The files' sha256 when the caller already computed them (the command names its batch by them).
    file_hashes: list[str] = []
    mapping_file: str = ""
    default_locality: str = ""
    # The RVU file variant that prices the lines ('' for non-QPP, 'QPP'), and a later last day of the 1.0 work
    # GPCI floor than the GPCI file's own (YYYY-MM-DD), from the site's settings.
    rvu_variant: str = ""
    work_floor_through: str = ""
    out_dir: str = ""
    # Where the files come from, for the trend (summary.json's `source`): the nightly run names its inbox;
    # empty, the files' names without their dates.
    source: str = ""
    show_ids: bool = False
    # Also judge the batch's lines against lines of earlier batches (the nightly run and `--history`).
    with_history: bool = False
    # How many days a standing dismissal applies after it was made (assets/decisions.py).
    standing_days: int = DEFAULT_STANDING_DAYS
    # The processes the shards' steps run in (`--workers`): above 1, the run's executor is Dagster's
    # multiprocess one, and a shard's step opens its own file and the main file read-only.
    workers: int = 1
    # A file that cannot be read as a claim export is set aside, named with its reason in the run's outputs,
    # and the others are scrubbed (the nightly run: one broken file must not stop the night). Off, the run
    # fails on it (the command, which refuses its files before it starts).
    set_aside_unreadable: bool = False
    # Files the run leaves out, with why (parallel lists): a nightly batch's earlier versions of a file that
    # was overwritten with a correction before the night. Named in the outputs as set aside.
    set_aside_files: list[str] = []
    set_aside_reasons: list[str] = []
    # The file that replaces each (parallel): should it be unreadable, the version it replaced is read instead.
    set_aside_for: list[str] = []
    # Files of the inbox whose registration refused them (not a claim export at all) since the last nightly
    # run, with why (parallel lists): named in the night's outputs beside the files set aside.
    refused_files: list[str] = []
    refused_reasons: list[str] = []


def read_batch(con, config: BatchConfig, advance=lambda: None, staged_ahead=None) -> dict[str, int]:
    """Land a batch's input files in raw_claim_rows (replacing the batch's earlier rows); returns the rows read
    per file. `staged_ahead`: the exports the command staged ahead of the run (readers.CsvPrefetch), if any."""
    mapping = load_mapping(config.mapping_file or None)
    names = config.file_names or [Path(f).name for f in config.files]
    hashes = config.file_hashes or [None] * len(config.files)
    per_file = {}
    ensure_schema(con)
    # Each file's cells go to a temporary table first, outside the transaction: a CSV read that has to
    # fall back to the single-threaded scanner fails its first attempt, and a failed statement would
    # end the transaction.
    # Every input by its index: the run's files, then a version set aside for a later one that turns out
    # unreadable (read in its stead).
    inputs = {index: (Path(file), names[index], hashes[index]) for index, file in enumerate(config.files)}
    staged, refused = {}, []

    def stage_or_set_aside(index: int) -> None:
        path, name, sha256 = inputs[index]
        try:
            staged[index] = _stage_file(con, path, index, mapping, config.batch_id, name, staged_ahead)
        except InputFileError as exc:
            if not config.set_aside_unreadable:
                raise
            for table in (f"staged_cells_{index}", f"staged_text_{index}"):
                con.execute(f"drop table if exists {table}")
            refused.append((index, name, str(path), sha256 or _sha256_or_none(path), refusal_reason(path, str(exc))))

    for index in list(inputs):
        stage_or_set_aside(index)
    unreadable = {record[2] for record in refused}
    replacements = config.set_aside_for or [""] * len(config.set_aside_files)
    left_out = [*zip(config.set_aside_files, config.set_aside_reasons, replacements),
                *((file, reason, "") for file, reason in zip(config.refused_files, config.refused_reasons))]
    for number, (file, reason, replacement) in enumerate(left_out, start=len(config.files)):
        path = Path(file)
        if replacement and str(Path(replacement)) in unreadable:
            # The later version could not be read: this one is what the night has of the file.
            inputs[number] = (path, path.name, None)
            stage_or_set_aside(number)
        else:
            refused.append((number, path.name, str(path), _sha256_or_none(path), reason))
    shards = read_layout(con).shards
    con.execute("begin transaction")
    clear_batch(con, "raw_claim_rows", config.batch_id)
    # New rows are not judged yet: the batch's quarantine waits for validation.
    clear_batch(con, "claim_quarantine", config.batch_id)
    clear_batch(con, "batch_files", config.batch_id)
    clear_batch(con, "refused_files", config.batch_id)
    clear_batch(con, "batches", config.batch_id)
    for record in refused:
        con.execute("insert into refused_files values (?, ?, ?, ?, ?, ?)", [config.batch_id, *record])
        advance()
    for index, (kind, rows) in staged.items():
        file, name, sha256 = inputs[index]
        count = land_rows(con, rows, "raw_claim_rows", config.batch_id, index, name, shards)
        con.execute(
            "insert into batch_files values (?, ?, ?, ?, ?, ?, ?)",
            [config.batch_id, index, name, str(Path(file)), sha256 or file_sha256(Path(file)), kind, count],
        )
        per_file[name] = count
        advance()
    con.execute(
        """insert into batches (batch_id, started_at, files, with_history, default_locality, rvu_variant,
                                work_floor_through)
           values (?, current_timestamp, ?, ?, ?, ?, ?)""",
        [config.batch_id, "; ".join(inputs[index][1] for index in staged), config.with_history,
         config.default_locality, config.rvu_variant, config.work_floor_through])
    con.execute(BATCH_ORDER, {"batch": config.batch_id})
    con.execute("commit")
    for _, rows in staged.values():
        con.execute(f"drop table {rows.table}")
    return per_file


def _stage_file(con, path: Path, index: int, mapping: dict[str, str], batch_id: str, name: str,
                staged_ahead) -> tuple[str, StagedFile]:
    """(kind, its staged cells) of one input file."""
    kind = detect_kind(path)
    if kind == "xlsx":
        return kind, stage_excel(con, path, index, mapping)
    if kind == "csv":
        ahead = staged_ahead.take(path, index, mapping) if staged_ahead else None
        return kind, ahead or stage_csv(con, path, index, mapping)
    rows = staging_table(con, index)
    stage_837p(con, path, rows.table, batch_id, index, name)
    return kind, rows


def refusal_reason(path: Path, message: str) -> str:
    """Why a file was set aside: the reader's sentence, without the path it starts with (the file is named
    beside it)."""
    for prefix in (f"{path}: ", f"{path.name}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _sha256_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


@dg.asset(group_name="ingest", kinds={"duckdb"}, deps=["inbox_files"], pool=MAIN_FILE_POOL,
          op_tags=MAIN_FILE_TAG)
def raw_claim_rows(context: dg.AssetExecutionContext, config: BatchConfig, duckdb: DuckDBResource,
                   staged_exports: dg.ResourceParam[StagedExports]) -> dg.MaterializeResult:
    """One row per data row of each input export (CSV, Excel) or 837P service line, with its source: the
    values parsed leniently, beside the text of those the quarantine quotes."""
    with stage("read", total=len(config.files), unit="files") as progress, duckdb.get_connection() as con:
        per_file = read_batch(con, config, progress.advance, staged_exports)
        progress.rows = sum(per_file.values())
        refused = con.execute("select source_file, reason from refused_files where batch_id = ? order by file_index",
                              [config.batch_id]).fetchall()
    context.log.info(f"read {progress.rows} rows from {len(per_file)} file(s)")
    for name, reason in refused:
        context.log.warning(f"{name}: set aside, not scrubbed: {reason}")
    return dg.MaterializeResult(
        metadata={"rows_read": progress.rows, "files": len(per_file), "files_set_aside": len(refused),
                  "seconds": progress.seconds}
    )


@dg.multi_asset(
    group_name="validate",
    specs=[
        dg.AssetSpec("claim_lines", deps=[raw_claim_rows], kinds={"duckdb", "pandera"},
                     description="One row per validated claim line of a batch (the scrubbable rows)."),
        dg.AssetSpec("claim_quarantine", deps=[raw_claim_rows], kinds={"duckdb", "pandera"},
                     description="One row per input row that cannot be scrubbed, with every reason found."),
    ],
    check_specs=[dg.AssetCheckSpec(ROWS_ACCOUNTED, asset="claim_lines", blocking=True,
                                   description="rows read = lines scrubbed + rows quarantined")],
    pool=MAIN_FILE_POOL,
    op_tags=MAIN_FILE_TAG,
)
def validated_claims(config: BatchConfig, duckdb: DuckDBResource):
    """Validate a batch with Pandera: scrubbable rows become claim lines, the rest go to the quarantine."""
    with duckdb.get_connection() as con:
        read = con.execute("select count(*) from raw_claim_rows where batch_id = ?",
                           [config.batch_id]).fetchall()[0][0]
        with stage("validate", total=read) as progress:
            con.execute("begin transaction")
            counts = validate_batch(con, config.batch_id, progress.advance)
            con.execute("commit")
            # A per-shard site keeps each shard's lines in its own file from here on.
            distribute(con, duckdb.database, read_layout(con), config.batch_id)
            progress.rows = counts["lines"]
    yield dg.MaterializeResult(asset_key="claim_lines",
                               metadata={"lines": counts["lines"], "rows": read, "seconds": progress.seconds})
    yield dg.MaterializeResult(asset_key="claim_quarantine", metadata={"rows_quarantined": counts["quarantined"]})
    yield dg.AssetCheckResult(
        asset_key="claim_lines",
        check_name=ROWS_ACCOUNTED,
        passed=read == counts["lines"] + counts["quarantined"],
        metadata={"rows_read": read, "lines": counts["lines"], "quarantined": counts["quarantined"]},
    )


@dg.asset(group_name="scrub", kinds={"duckdb"},
          deps=["claim_lines", "rvu_fee_schedule", "gpci_localities", "zip_localities", "mue_limits",
                "ncci_ptp_edits"],
          check_specs=[dg.AssetCheckSpec(REFERENCE_CURRENT, asset="priced_lines",
                                         description="every line is dated within the newest release of each "
                                                     "reference table (warns, never blocks)")],
          pool=MAIN_FILE_POOL, op_tags=MAIN_FILE_TAG)
def priced_lines(config: BatchConfig, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per claim line of a batch: the releases that judge it and its Medicare expected allowed."""
    with stage("price", total=1, unit="queries") as progress, duckdb.get_connection() as con:
        layout = read_layout(con)
        counts = {"priced": 0, "unpriced": 0}
        # Shard by shard on a per-shard site (each in its own file, one transaction each), else the batch.
        for _, on in each_shard(con, duckdb.database, layout):
            on.execute("begin transaction")
            priced = price_batch(on, config.batch_id, config.default_locality, config.rvu_variant,
                                 config.work_floor_through)
            on.execute("commit")
            counts = {key: counts[key] + priced[key] for key in counts}
        attach_all(con, duckdb.database, layout)
        coverage = batch_coverage(con, config.batch_id)
        progress.advance()
        progress.rows = counts["priced"] + counts["unpriced"]
    stale = stale_warnings(coverage)
    return dg.MaterializeResult(
        metadata={**counts, "rows": progress.rows, "seconds": progress.seconds},
        check_results=[dg.AssetCheckResult(
            check_name=REFERENCE_CURRENT, passed=not stale, severity=dg.AssetCheckSeverity.WARN,
            metadata={"stale_tables": "\n".join(stale) or "none"})],
    )


@dg.op(ins={"priced": dg.In(dg.Nothing), "codes": dg.In(dg.Nothing)}, out=dg.DynamicOut(dict), pool=MAIN_FILE_POOL,
       tags=MAIN_FILE_TAG)
def plan_shards(config: BatchConfig, duckdb: DuckDBResource):
    """The judge's steps: one per shard file on a per-shard site, else one for the batch (which judges it shard
    by shard in the one file)."""
    with duckdb.get_connection() as con:
        layout = read_layout(con)
        # The dates history reads are the whole batch's: a shard's step sees its own lines only, and a window
        # of its own would read (and judge with) other earlier lines than the batch's.
        span = None
        if layout.per_shard and config.with_history:
            attach_all(con, duckdb.database, layout)
            span = history_span(con, config.batch_id, True)
    work = {"config": config.model_dump(), "database": duckdb.database, "shards": layout.shards,
            "layout": layout.layout, "lock_timeout": getattr(duckdb, "lock_timeout", 60.0),
            "connection_config": dict(duckdb.connection_config), "history_span": span}
    if not layout.per_shard:
        yield dg.DynamicOutput({**work, "shard": None}, mapping_key="batch")
        return
    for shard in range(layout.shards):
        yield dg.DynamicOutput({**work, "shard": shard}, mapping_key=f"shard_{shard}")


# No pool: each of these steps writes its own shard's file (the main file only on a single-file site, where
# it is the run's one judge step). A pool is the op's, the same for every step mapped from it (docs/scaling.md).
@dg.op
def judge_shard(work: dict) -> dict:
    """Judge the batch's lines of one shard (or the whole batch, shard by shard, in a single-file site), writing
    only that shard's findings."""
    config = BatchConfig(**work["config"])
    layout = Layout(work["shards"], work["layout"])
    shard = work["shard"]
    name = "judge" if shard is None or layout.shards == 1 else f"judge shard {shard + 1} of {layout.shards}"
    with stage(name, total=1, unit="batches") as progress, shard_connection(work) as con:
        con.execute("begin transaction")
        by_severity = scrub_batch(con, config.batch_id, with_history=config.with_history,
                                  shards=layout.shards if shard is None else 1, span=work.get("history_span"))
        con.execute("commit")
        progress.advance()
        progress.rows = sum(by_severity.values())
    return {"by_severity": by_severity, "seconds": progress.seconds}


@dg.op
def collect_findings(context: dg.OpExecutionContext, judged: list[dict]) -> None:
    by_severity: dict[str, int] = {}
    for part in judged:
        for severity, count in part["by_severity"].items():
            by_severity[severity] = by_severity.get(severity, 0) + count
    findings = sum(by_severity.values())
    context.add_output_metadata(
        {"findings": findings, **{f"findings_{k}": v for k, v in sorted(by_severity.items())}, "rows": findings,
         "steps": len(judged), "seconds": round(max(part["seconds"] for part in judged), 2)})


def _judge_config(config: BatchConfig) -> dict:  # Dagster hands it over validated, as a dict
    """The judge's graph takes the run's configuration like every other stage; its first step uses it."""
    return {"plan_shards": {"config": dict(config)}}


@dg.graph_asset(group_name="scrub", kinds={"duckdb"}, config=dg.ConfigMapping(config_fn=_judge_config),
                ins={"priced": dg.AssetIn("priced_lines", dagster_type=dg.Nothing),
                     "codes": dg.AssetIn("adjustment_codes", dagster_type=dg.Nothing)})
def line_flags(priced, codes):
    """One row per finding: a rule of RULES.md that a claim line of the batch breaks. The batch's patient shards
    are judged in steps of their own (one per shard file), which the run's executor places."""
    return collect_findings(plan_shards(priced=priced, codes=codes).map(judge_shard).collect())


@dg.asset(group_name="report", kinds={"excel", "csv"}, deps=[line_flags, "claim_quarantine"], pool=MAIN_FILE_POOL,
          op_tags=MAIN_FILE_TAG)
def scrub_report(config: BatchConfig, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One set of output files per batch: flags, lines, quarantine, summary and the denial-risk workbook."""
    if not config.out_dir:
        return dg.MaterializeResult(metadata={"written": "no output folder configured"})
    with stage("write", total=len(outputs.OUTPUT_FILES), unit="files") as progress, \
            duckdb.get_connection() as con:
        attach_all(con, duckdb.database, read_layout(con))
        summary = outputs.write_outputs(con, config.batch_id, Path(config.out_dir), config.show_ids,
                                        progress.advance, config.source, config.standing_days)
        progress.rows = summary["lines_scrubbed"] + summary["findings"]["total"] + summary["rows_quarantined"]
    return dg.MaterializeResult(
        metadata={"out_dir": config.out_dir, "findings": summary["findings"]["total"], "rows": progress.rows,
                  "seconds": progress.seconds}
    )


CLAIM_ASSETS = [raw_claim_rows, validated_claims, priced_lines, line_flags, scrub_report]
ALL_ASSETS = [*REFERENCE_ASSETS, *CLAIM_ASSETS]
