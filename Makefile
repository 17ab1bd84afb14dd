# Two commands work on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-slow fuzz setup ui bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 2; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@# The project's bytecode, the tests' rewritten assertions and the suite's reference database, made once here
	@# rather than by each test worker on the first run of a fresh clone.
	$(VENV)/bin/python -m compileall -q assets pipelines reference reports benchmarks tests
	$(VENV)/bin/python -m pytest -q --collect-only -p no:cacheprovider >/dev/null
	$(VENV)/bin/python -c "from tests.conftest import _cached_reference; _cached_reference()"
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/claimscrub scrub samples/claims_sample.csv --out out/sample

# Three workers, a test module to each at a time (module-scoped runs are shared within a module): on two cores a
# third keeps them busy while a test waits for a process it started or for a lock. The modules are handed out
# in the order tests/conftest.py gives them, the longest first: xdist's own order (most tests first) left the
# longest modules to the end. `make test` leaves out the slow tier (tests marked slow: the command killed at
# each point of a run, writers racing in processes, the property tests), which `make test-slow` runs; CI runs
# both.
PYTEST := $(VENV)/bin/python -m pytest -n 3 --dist loadscope --no-loadscope-reorder
# Each worker and each command a test starts would otherwise compile the project's modules and rewrite the
# tests' assertions again, where the environment says not to keep bytecode.
unexport PYTHONDONTWRITEBYTECODE
test: $(STAMP)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -m slow

# The hostile-values property of `make test` with a bigger budget (a scrub per example, about a second
# each), shrinking what it finds; FUZZ_SEED=N draws other examples than the fixed ones.
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	CLAIMSCRUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(if $(FUZZ_SEED),CLAIMSCRUB_FUZZ_SEED=$(FUZZ_SEED)) \
		$(VENV)/bin/python -m pytest tests/test_properties.py -k no_value_a_row_holds --hypothesis-show-statistics

ui: $(STAMP)
	./scripts/ui.sh

# Not a test: times the whole scrub on synthetic exports next to DuckDB's own read (see docs/performance.md).
BENCH_LINES ?= 100000 1000000 2000000 10000000
# A sharded site instead of one file, e.g. BENCH_SITE="--shards 4 --layout per-shard --workers 2"
BENCH_SITE ?=
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.bench --lines $(BENCH_LINES) $(BENCH_SITE)

clean:
	rm -rf out .claimscrub .bench
