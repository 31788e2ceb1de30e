# Benchmarks (not tests): conveyor against its peers, one worker process each.
# Results go to bench/RESULTS-<store>.md (+ .json with every run); bench/RESULTS.md sums them up.
# `make bench-deps` installs every peer: the Python ones into the virtualenv, Sidekiq (Ruby) and
# Node with npm from Debian's packages when missing, BullMQ and graphile-worker with npm into
# bench/drivers/node/node_modules (versions pinned by its package-lock.json).
PYTHON ?= .venv/bin/python
REPEAT ?= 3
# `make` alone runs the benchmarks, as it did before the check targets came first.
.DEFAULT_GOAL := bench

.PHONY: bench bench-deps bench-sqlite bench-redis bench-postgres bench-postgres-deep bench-quick bench-scale bench-scale-admin

# --- checks (scripts/test.sh and .pre-commit-config.yaml run these too) --------------------
# Every tool runs even when an earlier one fails, so one run shows every problem.
CHECK_PATHS ?= src tests bench examples
MYPY_PATHS ?= $(CHECK_PATHS)

.PHONY: check lint types screenshots lowest

check:
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory types || status=1; \
	exit $$status

lint:
	@status=0; \
	echo "ruff check $(CHECK_PATHS)"; $(PYTHON) -m ruff check $(CHECK_PATHS) || status=1; \
	echo "ruff format --check $(CHECK_PATHS)"; $(PYTHON) -m ruff format --check $(CHECK_PATHS) || status=1; \
	exit $$status

types:
	@echo "mypy --strict $(MYPY_PATHS)"; $(PYTHON) -m mypy --strict $(MYPY_PATHS)

# The dashboard's screenshots in docs/ (the test suite itself writes them to build/).
screenshots:
	CONVEYOR_SCREENSHOTS_DIR=docs/screenshots $(PYTHON) -m pytest tests/dashboard/test_browser.py \
		-p no:cacheprovider -q

# The core tests against the lowest versions pyproject.toml allows, in .venv-lowest.
lowest:
	bash scripts/lowest.sh

bench: bench-sqlite bench-redis bench-postgres

bench-deps:
	@command -v sidekiq >/dev/null && command -v node >/dev/null && command -v npm >/dev/null || \
		{ apt-get update -q && apt-get install -y -q ruby-sidekiq nodejs npm; }
	cd bench/drivers/node && npm ci --no-audit --no-fund
	$(PYTHON) -m pip install -q -e '.[bench]'
	$(PYTHON) -m pip install -q --no-deps 'arq>=0.26'

bench-sqlite: bench-deps
	$(PYTHON) bench/run.py --store sqlite --repeat $(REPEAT)

bench-redis: bench-deps
	$(PYTHON) bench/run.py --store redis --repeat $(REPEAT)

bench-postgres: bench-deps
	$(PYTHON) bench/run.py --store postgres --repeat $(REPEAT)

# conveyor's PostgreSQL store alone: claim+ack with 1,000,000 jobs queued (bench/RESULTS-postgres-deep.md)
bench-postgres-deep: bench-deps
	$(PYTHON) bench/postgres_bench.py

# Issue 19 §2: every admin call and dashboard page beside 10,000 and 1,000,000 jobs on each
# store (bench/scale_admin.py; figures in docs/listings.md), and the SLOWLOG and plan checks of
# tests/scale at a million jobs. Part of bench-scale.
SCALE_ADMIN_SIZES ?= 10000 1000000
bench-scale-admin:
	for store in sqlite postgres redis cluster; do \
		$(PYTHON) bench/scale_admin.py --store $$store $(SCALE_ADMIN_SIZES) || exit 1; done
	CONVEYOR_SCALE_SIZE=1000000 $(PYTHON) -m pytest -q tests/scale/test_redis_slowlog.py tests/scale/test_listing_size.py

bench-scale: bench-scale-admin

# a smoke run: sizes / 10, one repeat, results written next to the real ones as *-quick.md
bench-quick:
	$(PYTHON) bench/run.py --store sqlite --repeat 1 --quick --out bench/RESULTS-sqlite-quick.md
	$(PYTHON) bench/run.py --store redis --repeat 1 --quick --out bench/RESULTS-redis-quick.md
	$(PYTHON) bench/run.py --store postgres --repeat 1 --quick --out bench/RESULTS-postgres-quick.md

# Issue 19's size comparisons (bench/scale_drain.py) on every store: a drain of SCALE_JOBS
# (first tenth against last, worker RSS), 20k pending alone and beside SCALE_BACKLOG scheduled
# jobs, an idle worker's CPU and its first job beside them; then 200 queues against one
# (bench/queues_probe.py) and a hot queue partitioned over a 3-master Cluster
# (bench/partitions_probe.py); a PostgreSQL drain of SCALE_JOBS watched from the worker and the
# server, which fails if a lease expires under the live worker, a job runs twice or its RSS
# grows (bench/pg_drain_probe.py). 10M jobs take hours and ~10 GB of disk per SQL store;
# `make bench-scale SCALE_JOBS=1000000 SCALE_BACKLOG=1000000` is the quick form.
SCALE_JOBS ?= 10000000
SCALE_BACKLOG ?= 10000000

.PHONY: bench-scale

bench-scale:
	@status=0; \
	for store in sqlite postgres redis; do \
		$(PYTHON) bench/scale_drain.py --store $$store --jobs $(SCALE_JOBS) --backlog $(SCALE_BACKLOG) || status=1; \
		$(PYTHON) bench/queues_probe.py --store $$store || status=1; \
	done; \
	$(PYTHON) bench/queues_probe.py --store cluster || status=1; \
	$(PYTHON) bench/partitions_probe.py || status=1; \
	$(PYTHON) bench/pg_drain_probe.py --jobs $(SCALE_JOBS) || status=1; \
	exit $$status

# The fault suite at full sizes (20,000 jobs, several kill -9 per worker, on every store),
# then a table of its figures, also written to docs/reliability.md. The table is printed
# even when a scenario fails; the target then fails too. Then the limits across worker
# processes with the rate measured over 10 s instead of 3 (every store, Cluster too).
FAULTS_FIGURES ?= /tmp/conveyor-faults.jsonl

.PHONY: faults

faults:
	rm -f $(FAULTS_FIGURES)
	CONVEYOR_FAULTS_FULL=1 CONVEYOR_FAULTS_REPORT=$(FAULTS_FIGURES) $(PYTHON) -m pytest tests/faults \
		tests/worker/test_periodic_processes.py \
		tests/redis/test_topologies.py tests/postgres/test_topologies.py \
		-p no:cacheprovider -q -s -rfEx; status=$$?; \
	$(PYTHON) -m tests.faults.report $(FAULTS_FIGURES) --full --notes tests/faults/findings.md; \
	CONVEYOR_FAULTS_FULL=1 $(PYTHON) -m pytest tests/conformance/test_limits_workers.py \
		tests/redis/test_cluster_conformance.py -k across_worker_processes -p no:cacheprovider -q \
		|| status=1; \
	exit $$status
