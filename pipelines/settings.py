"""Where claimscrub keeps its state: one working folder, overridable by environment variables."""

import os
import secrets
from pathlib import Path


def home() -> Path:
    """The working folder (CLAIMSCRUB_HOME, default ./.claimscrub): database, site secret, Dagster storage."""
    return Path(os.environ.get("CLAIMSCRUB_HOME", ".claimscrub")).resolve()


def database_path() -> str:
    return os.environ.get("CLAIMSCRUB_DB", str(home() / "claimscrub.duckdb"))


def site_secret() -> str:
    """The key of the patient-id hash: CLAIMSCRUB_SECRET, else a generated secret kept owner-only."""
    from_env = os.environ.get("CLAIMSCRUB_SECRET")
    if from_env:
        return from_env
    path = home() / "site-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()
