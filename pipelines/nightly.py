"""Unattended operation: the inbox sensor registers each complete export once, and the nightly schedule
scrubs every export registered since the last nightly run as one batch, judged with history.

Why two steps: encounters are often split across exports (the radiologist's and the proceduralist's), so
files that arrive on one day are judged together, exactly as `claimscrub scrub` judges the files of one run.
Registering at once still gives every file its own partition, an archived copy and an early failure when
it is not a claim export at all; earlier nights' lines stay in DuckDB as history.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from assets.feedback import FEEDBACK_ASSETS
from assets.inbox import archived_file, archived_key, is_remittance
from assets.readers import file_sha256

from .runs import run_config
from .partitions import INBOX_PARTITIONS, inbox_key, key_hash
from .resources import DATABASE_TAG
from .settings import database_path, default_locality, inbox_path, mapping_file, reports_path

NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_TIMEZONE = "UTC"
INBOX_INTERVAL_SECONDS = 30
BATCH_TAG = "claimscrub/batch"
NIGHTLY_TAG = "claimscrub/nightly"
DONE_SUFFIX = ".done"
# Names that copy tools and editors use while a file is still being written.
PARTIAL_SUFFIXES = (DONE_SUFFIX, ".part", ".partial", ".tmp", ".crdownload", ".filepart")

register_inbox_job = dg.define_asset_job(
    "register_inbox_file", selection=dg.AssetSelection.assets("inbox_files"), partitions_def=INBOX_PARTITIONS,
    description="Archive one export from the inbox and check that it is a claim export.")

# The claim stages and their reference data; not the inbox partitions, not the payer feedback (835s).
scrub_job = dg.define_asset_job(
    "scrub_job",
    selection=dg.AssetSelection.groups("reference", "ingest", "validate", "scrub", "report")
    - dg.AssetSelection.assets("inbox_files"),
    description="Load reference data, then ingest, validate, price, scrub and report one batch.",
    tags={DATABASE_TAG: database_path()})


feedback_job = dg.define_asset_job(
    "payer_feedback_job", selection=dg.AssetSelection.assets(*FEEDBACK_ASSETS),
    description="Load 835 remittances and refresh the payer feedback views.",
    tags={DATABASE_TAG: database_path()})

# Run after `claimscrub reference load` (by hand, or on a site's own schedule): without config it judges again
# the stored lines from the start of the period of the release loaded last, and writes the impact to the
# reports folder.
rejudge_job = dg.define_asset_job(
    "rejudge_job", selection=dg.AssetSelection.assets("rejudge_impact"),
    description="Judge stored lines again under the releases now loaded; write what changes (impact.csv).",
    tags={DATABASE_TAG: database_path()})


def _candidates(inbox: Path) -> dict[str, Path]:
    if not inbox.is_dir():
        return {}
    return {p.name: p for p in sorted(inbox.iterdir())
            if p.is_file() and not p.name.startswith((".", "~")) and not p.name.endswith(PARTIAL_SUFFIXES)}


@dg.sensor(job=register_inbox_job, minimum_interval_seconds=INBOX_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Register each complete new export in the inbox once: a `.done` marker beside it, or the same size
    and modification time on two looks in a row. The same content dropped again is not registered again."""
    # The cursor remembers each file's last look, so a file is hashed once it is complete, not on every tick.
    looks = json.loads(context.cursor) if context.cursor else {}
    files = _candidates(inbox_path())
    registered = context.instance.get_dynamic_partitions(INBOX_PARTITIONS.name)
    known_hashes = {key_hash(k) for k in registered}
    new_keys: list[str] = []
    next_looks = {}
    for name, path in files.items():
        stat = path.stat()
        look = [stat.st_size, stat.st_mtime_ns]
        previous = looks.get(name)
        if previous == [*look, "registered"]:
            next_looks[name] = previous
            continue
        complete = path.with_name(name + DONE_SUFFIX).exists() or (previous == look and stat.st_size > 0)
        if not complete:
            next_looks[name] = look
            continue
        key = inbox_key(name, file_sha256(path))
        if key_hash(key) not in known_hashes:
            new_keys.append(key)
            known_hashes.add(key_hash(key))
        next_looks[name] = [*look, "registered"]
    if new_keys:
        context.log.info(f"registering {len(new_keys)} new export(s)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in new_keys],
        dynamic_partitions_requests=[INBOX_PARTITIONS.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(next_looks, sort_keys=True),
    )


def _taken_keys(instance: dg.DagsterInstance) -> set[str]:
    """Inbox partitions already in a nightly batch, counting runs that are queued, running or succeeded:
    the files of a nightly run that failed and was not retried go into the next night's batch."""
    taken = set()
    for record in instance.get_run_records(dg.RunsFilter(tags={NIGHTLY_TAG: "true"})):
        run = record.dagster_run
        if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            continue
        files = run.run_config.get("ops", {}).get("raw_claim_rows", {}).get("config", {}).get("files", [])
        taken.update(archived_key(f) for f in files)
    return taken


def nightly_batch_id(night: str, keys: list[str]) -> str:
    """A night's batch is named for its date and its files: the same files give the same batch again."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:8]
    return f"nightly-{night}-{digest}"


@dg.schedule(job=scrub_job, cron_schedule=NIGHTLY_CRON, execution_timezone=NIGHTLY_TIMEZONE,
             default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_scrub(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Scrub every export registered since the last nightly run as one batch, with history, and write its
    reports to the reports folder under the batch id."""
    registered = context.instance.get_materialized_partitions(dg.AssetKey("inbox_files"))
    pending = sorted(k for k in registered - _taken_keys(context.instance) if not is_remittance(k))
    if not pending:
        return dg.SkipReason("no new exports registered since the last nightly run")
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    batch_id = nightly_batch_id(night, pending)
    files = [archived_file(key) for key in pending]
    # The trend compares tonight with earlier nights of this inbox, whatever the files are called.
    config = run_config(batch_id, files, reports_path() / batch_id, mapping_file(), default_locality(), False,
                        with_history=True, source=f"inbox {inbox_path().resolve()}")
    return dg.RunRequest(run_key=batch_id, run_config=config,
                         tags={BATCH_TAG: batch_id, NIGHTLY_TAG: "true"})


@dg.sensor(job=feedback_job, minimum_interval_seconds=INBOX_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def remittance_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Load each 835 registered from the inbox once, and refresh the payer feedback (files in the reports
    folder under payer-feedback) with what the payers said."""
    examined = set(json.loads(context.cursor)) if context.cursor else set()
    registered = context.instance.get_materialized_partitions(dg.AssetKey("inbox_files"))
    new = sorted(registered - examined)
    requests = [
        dg.RunRequest(run_key=key, run_config={"ops": {
            "remittances": {"config": {"files": [str(archived_file(key))],
                                       "file_names": [archived_file(key).name]}},
            "payer_feedback": {"config": {"out_dir": str(reports_path() / "payer-feedback")}},
        }})
        for key in new if is_remittance(key)
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(examined | set(new))))
