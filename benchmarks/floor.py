"""The floor of a benchmark: DuckDB alone reading a claim export into a table, every column as text, with
the same connection and allocator settings as a scrub. Prints the seconds the read took.

    python -m benchmarks.floor FILE DATABASE
"""

import sys
import time

# DuckDB is loaded by this module, after the pipelines package has set its allocator up as for a scrub.
from pipelines.database import connect


def main() -> None:
    path, database = sys.argv[1], sys.argv[2]
    con = connect(database, timeout=0)
    started = time.monotonic()
    con.execute("create or replace table claim_export as select * from read_csv(?, all_varchar = true)", [path])
    print(f"{time.monotonic() - started:.3f}")
    con.close()


if __name__ == "__main__":
    main()
