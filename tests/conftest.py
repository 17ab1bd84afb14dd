"""Shared fixtures: one database with the bundled reference releases, built once per version of the reference
package and copied per test, and an isolated working folder for every test (nothing is written into the
repository but the reference database's cache, under the ignored .claimscrub/)."""

import fcntl
import hashlib
import os
import shutil
import threading
from pathlib import Path

import duckdb
import pytest

from reference.loaders import ensure_bundled, ensure_schema

REFERENCE_TABLES = ["rvu", "gpci", "locality_counties", "zip", "ptp", "mue", "aoc", "adjustment_codes"]


ROOT = Path(__file__).resolve().parent.parent
# A database holding the bundled releases is made once per version of the reference package (its code, manifest
# and files) and of DuckDB, and kept here for the next runs of the suite; each worker copies it.
CACHE = ROOT / ".claimscrub" / "test-cache"


def _reference_version() -> str:
    digest = hashlib.sha256(duckdb.__version__.encode())
    for path in sorted((ROOT / "reference").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build_reference(path: Path) -> None:
    con = duckdb.connect(str(path))
    ensure_schema(con)
    for table in REFERENCE_TABLES:
        ensure_bundled(con, table)
    con.close()


def _cached_reference() -> Path:
    """The cached database of bundled releases, built first if this version has none. Processes take turns:
    one builds, the others wait for it."""
    cached = CACHE / f"reference-{_reference_version()}.duckdb"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.exists():
            staged = cached.with_suffix(f".{os.getpid()}.partial")
            try:
                _build_reference(staged)
                os.replace(staged, cached)
            finally:
                staged.unlink(missing_ok=True)
            for old in CACHE.glob("reference-*.duckdb"):
                if old != cached:
                    old.unlink()
    return cached


def pytest_configure(config: pytest.Config) -> None:
    # With workers (`-n`), the process that hands out the tests builds a missing cache while the workers start
    # up (they import and collect for some seconds first), instead of one worker building while the others wait.
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        config._reference_build = threading.Thread(target=_cached_reference, daemon=True)
        config._reference_build.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    build = getattr(config, "_reference_build", None)
    if build is not None:
        build.join()


@pytest.fixture(scope="session")
def reference_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "reference.duckdb"
    shutil.copyfile(_cached_reference(), path)
    return path


@pytest.fixture
def db_path(reference_db: Path, tmp_path: Path) -> Path:
    """A claimscrub database for one test, reference data already loaded."""
    dest = tmp_path / "db" / "claimscrub.duckdb"
    dest.parent.mkdir()
    shutil.copyfile(reference_db, dest)
    return dest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLAIMSCRUB_HOME", str(home))
    monkeypatch.delenv("CLAIMSCRUB_DB", raising=False)
    monkeypatch.delenv("CLAIMSCRUB_SECRET", raising=False)
    return home


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first (marked `long`, then `slow`): the workers then finish close together instead
    of one waiting for another's long module at the end (the order of the tests within a module stays as
    written). `make test` keeps xdist from ordering the modules by their number of tests instead."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("long") else 1 if item.get_closest_marker("slow")
               else 2)
