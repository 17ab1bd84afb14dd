"""Unattended operation: the inbox sensor registers each complete export once, and the nightly schedule
scrubs every export registered since the last nightly run as one batch, judged with history.

Why two steps: encounters are often split across exports (the radiologist's and the proceduralist's), so
files that arrive on one day are judged together, exactly as `claimscrub scrub` judges the files of one run.
Registering at once still gives every file its own partition, an archived copy and an early failure when
it is not a claim export at all; earlier nights' lines stay in DuckDB as history.
"""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from assets.feedback import FEEDBACK_ASSETS
from assets.flow import refusal_reason
from assets.inbox import archived_file, archived_key, is_remittance
from assets.readers import file_sha256

from .runs import run_config
from .partitions import INBOX_PARTITIONS, inbox_key, key_file_name, key_hash
from .resources import DATABASE_TAG
from .settings import database_path, default_locality, inbox_path, mapping_file, reports_path

NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_TIMEZONE = "UTC"
INBOX_INTERVAL_SECONDS = 30
BATCH_TAG = "claimscrub/batch"
NIGHTLY_TAG = "claimscrub/nightly"
DONE_SUFFIX = ".done"
# An empty file is taken as complete only once it has stayed empty this long (a copy may create the file a
# moment before it writes): then it is registered, refused as empty, and named in the night's report.
EMPTY_SETTLED_SECONDS = 300
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
            if p.is_file() and not p.name.startswith((".", "~$")) and not p.name.lower().endswith(PARTIAL_SUFFIXES)}


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
        try:
            stat = path.stat()
            look = [stat.st_size, stat.st_mtime_ns]
            previous = looks.get(name)
            if previous == [*look, "registered"]:
                next_looks[name] = previous
                continue
            settled = previous == look and (stat.st_size > 0 or time.time() - stat.st_mtime > EMPTY_SETTLED_SECONDS)
            if not (_marked_done(path, stat) or settled):
                next_looks[name] = look
                continue
            digest = file_sha256(path)
        except OSError as exc:
            # One file the sensor may not read (another account's, or gone meanwhile) must not stop the
            # others: it is said in the tick's log and looked at again on the next tick.
            context.log.warning(f"{_printable(name)}: cannot be read ({exc.strerror or exc}); looked at again "
                                "on the next tick")
            continue
        key = inbox_key(name, digest)
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


def _marked_done(path: Path, stat) -> bool:
    """A `.done` marker vouches for the file only when it is no older than the file: a marker left from an
    earlier version must not let the next one be read while it is still being copied."""
    try:
        return path.with_name(path.name + DONE_SUFFIX).stat().st_mtime_ns >= stat.st_mtime_ns
    except FileNotFoundError:
        return False


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _taken_keys(instance: dg.DagsterInstance) -> set[str]:
    """Inbox partitions already in a nightly batch, counting runs that are queued, running or succeeded:
    the files of a nightly run that failed and was not retried go into the next night's batch."""
    taken = set()
    for record in instance.get_run_records(dg.RunsFilter(tags={NIGHTLY_TAG: "true"})):
        run = record.dagster_run
        if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            continue
        config = _batch_config(run)
        taken.update(archived_key(f) for f in [*config.get("files", []), *config.get("set_aside_files", [])])
    return taken


def _batch_config(run: dg.DagsterRun) -> dict:
    """The batch's settings a nightly run was given (its files, those it set aside or named as refused)."""
    return run.run_config.get("ops", {}).get("raw_claim_rows", {}).get("config", {})


def _refused_registrations(instance: dg.DagsterInstance, registered: set[str]) -> dict[str, str]:
    """The inbox files whose registration failed (not a claim export at all: a column missing, a PDF) and that no
    nightly run has named yet, each with the reason its run gave: a team that reads the night's report, not the
    UI's run log, learns of them there, once. A file registered after all (re-executed from the UI) is not
    among them. Not a window of time since the last night: a night run again from the UI, or a registration
    that failed after the night was made, would hide a refusal for good."""
    named = set()
    for record in instance.get_run_records(dg.RunsFilter(tags={NIGHTLY_TAG: "true"})):
        if record.dagster_run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            config = _batch_config(record.dagster_run)
            named.update(archived_key(f) for f in config.get("refused_files", []))
    refused = {}
    inbox_keys = set(instance.get_dynamic_partitions(INBOX_PARTITIONS.name))
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        key = record.dagster_run.tags.get("dagster/partition")
        if key in inbox_keys and key not in registered and key not in named and key not in refused:
            refused[key] = _failure(instance, record.dagster_run.run_id, key)
    return refused


def _failure(instance: dg.DagsterInstance, run_id: str, key: str) -> str:
    """The reason a registration run gave: its reader's sentence, without the archived path it starts with."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error
        while error.cause is not None and error.cls_name not in ("InputFileError", "ReferenceFileError"):
            error = error.cause
        said = error.message.strip().splitlines()[-1].split(": ", 1)[-1]
        return f"not registered: {refusal_reason(archived_file(key), said)}"
    return "not registered: its registration run failed (see its log in the UI)"


def _registered_at(key: str) -> datetime | None:
    """When a file was registered: its archived copy is made then, and never touched after. None when the copy
    is gone (the read then sets the file aside, saying so)."""
    try:
        return datetime.fromtimestamp(archived_file(key).stat().st_mtime, tz=UTC)
    except OSError:
        return None


def _night_of(registered: datetime) -> datetime:
    """The nightly tick a file registered at `registered` was first due for: the next 02:00 (NIGHTLY_CRON) in
    the schedule's time zone."""
    minute, hour = (int(part) for part in NIGHTLY_CRON.split()[:2])
    local = registered.astimezone(ZoneInfo(NIGHTLY_TIMEZONE))
    tick = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return tick if local < tick else tick + timedelta(days=1)


def _replaced_versions(pending: list[str]) -> dict[str, tuple[str, str]]:
    """Of the versions of one file name registered for one night (a file overwritten with its correction
    during the day), every one but the latest, each with why it is left out and the version that replaces it
    (should that one be unreadable, the read takes this one instead): scrubbing both would quarantine one
    version's lines as repeats of the other's. That holds whenever they are scrubbed: a night whose run failed
    gives its files to the next, and its versions are grouped by the night they were due for, not by the night
    that reads them. Files of one name due for different nights (a system writing claims.csv every day) are
    different exports, all scrubbed."""
    by_name: dict[tuple[str, datetime], list[tuple[datetime, str]]] = {}
    for key in pending:
        registered = _registered_at(key)
        if registered is not None:
            by_name.setdefault((key_file_name(key), _night_of(registered)), []).append((registered, key))
    replaced = {}
    for versions in by_name.values():
        latest_at, latest = max(versions)
        for registered, key in versions:
            if key != latest:
                reason = (f"replaced by a later version of the same name (sha256 {key_hash(latest)}…, registered "
                          f"{latest_at:%Y-%m-%d %H:%M} UTC, against {registered:%H:%M}): only the later one was "
                          "scrubbed")
                replaced[key] = (reason, latest)
    return replaced


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
    refused = _refused_registrations(context.instance, registered)
    if not pending and not refused:
        return dg.SkipReason("no new exports registered since the last nightly run")
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    replaced = _replaced_versions(pending)
    scrubbed = [key for key in pending if key not in replaced]
    batch_id = nightly_batch_id(night, scrubbed + sorted(refused))
    files = [archived_file(key) for key in scrubbed]
    # The trend compares tonight with earlier nights of this inbox, whatever the files are called.
    config = run_config(batch_id, files, reports_path() / batch_id, mapping_file(), default_locality(), False,
                        with_history=True, source=f"inbox {inbox_path().resolve()}", set_aside_unreadable=True,
                        set_aside={archived_file(key): (reason, archived_file(by))
                                   for key, (reason, by) in replaced.items()},
                        refused={archived_file(key): reason for key, reason in sorted(refused.items())})
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
