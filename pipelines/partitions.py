"""Partitions of claimscrub: one dynamic partition per export registered from the inbox."""

import dagster as dg

INBOX_PARTITIONS = dg.DynamicPartitionsDefinition(name="inbox_files")

# Dagster refuses partition keys holding "..." or control characters; a file name could.
_FORBIDDEN = ["...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0"]


def inbox_key(file_name: str, sha256: str) -> str:
    """A file's partition key: its name and the start of its content hash, so a new version is a new key."""
    # A name that is not UTF-8 (as a share or a zip made on Windows can leave) reaches Python with its bytes
    # as surrogates, which Dagster cannot store: they become U+FFFD.
    file_name = file_name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for bad in _FORBIDDEN:
        file_name = file_name.replace(bad, "_")
    return f"{file_name}@{sha256[:12]}"


def key_file_name(key: str) -> str:
    return key.rsplit("@", 1)[0]


def key_hash(key: str) -> str:
    return key.rsplit("@", 1)[1]
