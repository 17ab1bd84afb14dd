"""The floor of a benchmark: DuckDB alone reading a claim export into a table, every column as text, with
the same connection and allocator settings as a scrub. Prints the seconds the read took.

    python -m benchmarks.floor FILE DATABASE
"""

import sys
import time

# isort: off
# Before DuckDB loads: the pipelines package sets the allocator up as for a scrub (pipelines/__init__.py).
from pipelines.resources import CONNECTION_CONFIG

import duckdb

# isort: on


def main() -> None:
    path, database = sys.argv[1], sys.argv[2]
    con = duckdb.connect(database, config=CONNECTION_CONFIG)
    started = time.monotonic()
    con.execute("create or replace table claim_export as select * from read_csv(?, all_varchar = true)", [path])
    print(f"{time.monotonic() - started:.3f}")
    con.close()


if __name__ == "__main__":
    main()
