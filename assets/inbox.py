"""The inbox: exports dropped for the nightly run, each registered once as a partition of `inbox_files`.

Registering copies the file into the archive (under its partition key) and checks that it is a claim
export at all, so a broken file fails its own small run at once instead of the nightly scrub. The nightly
run reads the archived copies: the inbox can be cleaned or overwritten without changing what was scrubbed.
"""

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from pipelines.partitions import INBOX_PARTITIONS, inbox_key, key_file_name, key_hash
from pipelines.settings import archive_path, inbox_path, mapping_file

from .readers import InputFileError, detect_kind, file_sha256, inspect_export, load_mapping
from .x12 import inspect_835, transaction_set

REMITTANCE_KIND = "835"


def archived_file(key: str) -> Path:
    """Where the registered copy of an inbox partition lives."""
    return archive_path() / key / key_file_name(key)


def archived_key(path: str | Path) -> str:
    """The partition key of an archived copy (its folder's name)."""
    return Path(path).parent.name


def _inbox_file(key: str) -> Path:
    direct = inbox_path() / key_file_name(key)
    if direct.is_file():
        return direct
    # The key's name part was made safe for Dagster; find the file it came from.
    for path in inbox_path().iterdir():
        if path.is_file() and inbox_key(path.name, key_hash(key)) == key:
            return path
    raise InputFileError(f"{key_file_name(key)}: no longer in the inbox and never archived; drop it again")


def _inspect(path: Path) -> str:
    """"csv", "xlsx" or "x12" for a claim export, "835" for a remittance; raises for anything else."""
    if detect_kind(path) == "x12" and transaction_set(path) == "835":
        inspect_835(path)
        return REMITTANCE_KIND
    return inspect_export(path, load_mapping(mapping_file() or None))


def is_remittance(key: str) -> bool:
    path = archived_file(key)
    try:
        return path.exists() and detect_kind(path) == "x12" and transaction_set(path) == "835"
    except (InputFileError, OSError):
        return False  # not one: the nightly read says what it is


@dg.asset(group_name="ingest", kinds={"file"}, partitions_def=INBOX_PARTITIONS)
def inbox_files(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One archived copy per export registered from the inbox (partition key: file name @ content hash)."""
    key = context.partition_key
    target = archived_file(key)
    if not target.exists():
        source = _inbox_file(key)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=".partial-", dir=target.parent)
        os.close(fd)
        shutil.copyfile(source, staging)
        # The file may have been overwritten since the sensor hashed it: its new content is another key.
        if not file_sha256(Path(staging)).startswith(key_hash(key)):
            os.unlink(staging)
            raise InputFileError(f"{source.name}: changed after it was registered; the new version is "
                                 "registered on its own")
        os.chmod(staging, 0o600)
        os.replace(staging, target)
    kind = _inspect(target)
    return dg.MaterializeResult(
        metadata={"file": key_file_name(key), "kind": kind, "bytes": target.stat().st_size,
                  "sha256": file_sha256(target)}
    )
