"""Where claimscrub keeps its state: one working folder, overridable by environment variables."""

import os
import secrets
import tempfile
from datetime import date
from pathlib import Path


def home() -> Path:
    """The working folder (CLAIMSCRUB_HOME, default ./.claimscrub): database, site secret, Dagster storage."""
    # Set but empty (a unit file's `CLAIMSCRUB_HOME=`) is unset: the working folder itself is no site's.
    return Path(os.environ.get("CLAIMSCRUB_HOME") or ".claimscrub").resolve()


def database_path() -> str:
    # Set but empty is unset: DuckDB would open "" as a database in memory, and keep nothing.
    return os.environ.get("CLAIMSCRUB_DB") or str(home() / "claimscrub.duckdb")


def lock_timeout() -> float:
    """Seconds to wait for another process's hold on the database (CLAIMSCRUB_LOCK_TIMEOUT, default 60)."""
    value = os.environ.get("CLAIMSCRUB_LOCK_TIMEOUT", "60")
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ValueError(f"CLAIMSCRUB_LOCK_TIMEOUT={value!r} is not a number of seconds") from None


def site_secret() -> str:
    """The key of the patient-id hash: CLAIMSCRUB_SECRET, else a generated secret kept owner-only."""
    from_env = os.environ.get("CLAIMSCRUB_SECRET")
    if from_env:
        return from_env
    path = home() / "site-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written in full under a private name, then linked into place: a run killed half-way never leaves
        # an empty key behind, and of two first runs at once, one secret wins and both use it.
        fd, staged = tempfile.mkstemp(prefix=".site-secret-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
                fh.flush()
                os.fsync(fh.fileno())
            os.link(staged, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(staged)
    return _checked_secret(path)


def check_site_secret() -> None:
    """Refuse, before a run, a site secret file that is there but emptied or cut short (writes nothing: a
    missing one is made by the run)."""
    path = home() / "site-secret"
    if not os.environ.get("CLAIMSCRUB_SECRET") and path.exists():
        _checked_secret(path)


def _checked_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < SECRET_LENGTH:
        # An emptied or cut key would mask ids with a hash anyone can reverse from a list of member ids.
        raise ValueError(f"{path}: the site secret is empty or cut short ({len(secret)} characters): restore it "
                         "from a backup (earlier reports' patient masks depend on it), or remove it to make a new one")
    return secret


# The generated secret's length is 64 hex digits; a site's own file holds at least half that.
SECRET_LENGTH = 32


def inbox_path() -> Path:
    """Where exports are dropped for the nightly run: CLAIMSCRUB_INBOX, default the working folder's inbox."""
    return Path(os.environ.get("CLAIMSCRUB_INBOX", str(home() / "inbox"))).resolve()


def archive_path() -> Path:
    """Registered exports, one folder per inbox partition: the nightly run reads these copies, not the inbox."""
    return home() / "archive"


def reports_path() -> Path:
    """Nightly reports, one folder per batch: CLAIMSCRUB_REPORTS, default the working folder's reports."""
    return Path(os.environ.get("CLAIMSCRUB_REPORTS", str(home() / "reports"))).resolve()


def default_locality() -> str:
    """The pricing locality (MAC-LL) of lines that name none (CLAIMSCRUB_LOCALITY): the nightly run's, and the
    command's where --locality is not given."""
    return os.environ.get("CLAIMSCRUB_LOCALITY", "")


def mapping_file() -> str:
    """The site's header mapping for unattended runs (CLAIMSCRUB_MAPPING), empty for none."""
    return os.environ.get("CLAIMSCRUB_MAPPING", "")


def rvu_variant() -> str:
    """Which RVU file prices the lines: '' (non-QPP, the default) or 'QPP' for qualifying APM participants
    (CLAIMSCRUB_RVU_VARIANT = nonqpp or qpp)."""
    value = os.environ.get("CLAIMSCRUB_RVU_VARIANT", "").strip().lower()
    if value in ("", "nonqpp", "non-qpp"):
        return ""
    if value == "qpp":
        return "QPP"
    raise ValueError(f"CLAIMSCRUB_RVU_VARIANT={value!r}: say qpp or nonqpp")


def work_floor_through() -> str:
    """The last date of service of the 1.0 work GPCI floor when the law extends it past what the GPCI file says
    (CLAIMSCRUB_WORK_GPCI_FLOOR_THROUGH, YYYY-MM-DD); empty to follow the file."""
    value = os.environ.get("CLAIMSCRUB_WORK_GPCI_FLOOR_THROUGH", "").strip()
    if value:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"CLAIMSCRUB_WORK_GPCI_FLOOR_THROUGH={value!r} is not a date YYYY-MM-DD") from None
    return value


def standing_days() -> int:
    """How many days a standing dismissal applies after it was made (CLAIMSCRUB_STANDING_DAYS, default 180):
    the nightly run's, and the command's unless --standing-days says otherwise."""
    value = os.environ.get("CLAIMSCRUB_STANDING_DAYS", "180").strip()
    if not value.isdigit():
        raise ValueError(f"CLAIMSCRUB_STANDING_DAYS={value!r} is not a whole number of days")
    return int(value)


def run_day() -> date:
    """The day of the run, after which a date of service is in the future: today, unless CLAIMSCRUB_TODAY
    (YYYY-MM-DD) pins it (tests do, so that what is in the future does not change with the calendar)."""
    value = os.environ.get("CLAIMSCRUB_TODAY", "").strip()
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"CLAIMSCRUB_TODAY={value!r} is not a date YYYY-MM-DD") from None
