# Benchmarks (not tests): conveyor against its peers, one worker process each.
# Results go to bench/RESULTS-<store>.md (+ .json with every run); bench/RESULTS.md sums them up.
# `make bench-deps` installs every peer: the Python ones into the virtualenv, Sidekiq (Ruby) and
# Node with npm from Debian's packages when missing, BullMQ and graphile-worker with npm into
# bench/drivers/node/node_modules (versions pinned by its package-lock.json).
PYTHON ?= .venv/bin/python
REPEAT ?= 3

.PHONY: bench bench-deps bench-sqlite bench-redis bench-postgres bench-postgres-deep bench-quick

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

# a smoke run: sizes / 10, one repeat, results written next to the real ones as *-quick.md
bench-quick:
	$(PYTHON) bench/run.py --store sqlite --repeat 1 --quick --out bench/RESULTS-sqlite-quick.md
	$(PYTHON) bench/run.py --store redis --repeat 1 --quick --out bench/RESULTS-redis-quick.md
	$(PYTHON) bench/run.py --store postgres --repeat 1 --quick --out bench/RESULTS-postgres-quick.md

# The fault suite at full sizes (20,000 jobs, several kill -9 per worker, on every store),
# then a table of its figures, also written to docs/reliability.md. The table is printed
# even when a scenario fails; the target then fails too.
FAULTS_FIGURES ?= /tmp/conveyor-faults.jsonl

.PHONY: faults

faults:
	rm -f $(FAULTS_FIGURES)
	CONVEYOR_FAULTS_FULL=1 CONVEYOR_FAULTS_REPORT=$(FAULTS_FIGURES) $(PYTHON) -m pytest tests/faults \
		-p no:cacheprovider -q -s -rfEx; status=$$?; \
	$(PYTHON) -m tests.faults.report $(FAULTS_FIGURES) --full --notes tests/faults/findings.md; \
	exit $$status
