"""Shared fixtures: one database with the bundled reference releases, built once per session and copied
per test, and an isolated working folder for every test (nothing is written into the repository)."""

import shutil
from pathlib import Path

import duckdb
import pytest

from reference.loaders import ensure_bundled, ensure_schema

REFERENCE_TABLES = ["rvu", "gpci", "locality_counties", "zip", "ptp", "mue", "aoc", "adjustment_codes"]


@pytest.fixture(scope="session")
def reference_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "reference.duckdb"
    con = duckdb.connect(str(path))
    ensure_schema(con)
    for table in REFERENCE_TABLES:
        ensure_bundled(con, table)
    con.close()
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
    """The slowest modules first: the two workers then finish close together instead of one waiting for the
    other's long module at the end (the order of the tests within a module stays as written)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1)
