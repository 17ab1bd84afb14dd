"""The floor of a benchmark: DuckDB alone reading a claim export into a table, every column as text, with
the same connection settings as a scrub. Prints the seconds the read took.

    python -m benchmarks.floor FILE DATABASE
"""

import sys
import time

import duckdb

from pipelines.resources import CONNECTION_CONFIG


def main() -> None:
    path, database = sys.argv[1], sys.argv[2]
    con = duckdb.connect(database, config=CONNECTION_CONFIG)
    started = time.monotonic()
    con.execute("create or replace table claim_export as select * from read_csv(?, all_varchar = true)", [path])
    print(f"{time.monotonic() - started:.3f}")
    con.close()


if __name__ == "__main__":
    main()
