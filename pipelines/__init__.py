"""Dagster wiring for claimscrub: definitions, resources, jobs and the command line front door."""

import os

# Set before DuckDB and numpy load, for every process that runs claimscrub (a setting of the environment wins):
# - DuckDB's allocator keeps the memory it frees for its next allocation instead of handing it back to the
#   system after a second; DuckDB still releases it when it nears its memory limit. Otherwise a big scrub
#   hands back gigabytes and faults them in again, time spent in the kernel (docs/performance.md).
# - numpy's BLAS threads, which claimscrub never uses, do not wait for work on the cores.
os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", "dirty_decay_ms:-1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
