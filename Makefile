# The project's contract: run, up, job, datagen, down, test (see README). Everything else is detail.
SHELL := /bin/bash
# As root, the services run as an unprivileged account (attribution/account.py), which must be able
# to run the venv's interpreter: the first python3.11 on PATH that an unprivileged user can run
# (pyenv's, under /root, is out of its reach).
RUNNABLE_PYTHON := $(if $(filter 0,$(shell id -u)),$(shell for p in $$(which -a python3.11 2>/dev/null); do \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$$p" -c '' 2>/dev/null && { echo "$$p"; break; }; done))
PYTHON ?= $(or $(RUNNABLE_PYTHON),python3.11)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CLI := $(PY) -m attribution
comma := ,
# $(call step,name,command): the command, announced by its name and followed by its time.
step = @echo "== $(1) ..."; started=$$(date +%s); $(2) && echo "== $(1): done in $$(( $$(date +%s) - started )) s"
# Arguments for the generator started by `make run` / `make datagen` (see `$(PY) -m datagen --help`).
DATAGEN_ARGS ?= --rate 200

.PHONY: help setup run up job stop-job cancel soak bench datagen down status psql sql test unit-test integration-test lint ci sql-client ui viz clean reset docker-run docker-down replay-dead-letters backfill

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: Python 3.11 is required (apache-flink 2.0 has no wheels for newer Pythons)"; exit 1; }
	@command -v java >/dev/null || { echo "java not found: a Java 17 JDK is required"; exit 1; }
	@echo "Creating $(VENV) and installing pinned packages (first time: a few minutes) ..."
	$(call step,virtual environment,$(PYTHON) -m venv $(VENV))
	$(call step,pip,$(PY) -m pip install --quiet --upgrade pip==25.3)
	$(call step,pinned packages (requirements.lock),$(PY) -m pip install --progress-bar on -r requirements.lock)
	$(call step,this project,$(PY) -m pip install --quiet --no-deps -e '.[dev]')
	touch $(STAMP)

setup: $(STAMP)  ## venv, pinned packages, connector jars and the UDF jar (javac)
	$(PY) -m attribution.deps
	@# Optional: the Kubernetes manifest's schema check (tests) needs Node.js; skipped without it.
	@if command -v npm >/dev/null && [ ! -d k8s/validate/node_modules ]; then \
		npm ci --prefix k8s/validate --no-audit --no-fund --loglevel=error; fi

run: setup  ## up, then the job, then the generator; print where to look
	$(CLI) run $(if $(FRESH),--fresh) -- $(DATAGEN_ARGS)

up: setup  ## start the supervised stack (broker, Postgres, Flink, keeper, Prometheus if installed); schema, topics
	$(CLI) up

job: setup  ## submit the job (resuming the latest checkpoint/savepoint; FRESH=1: without); returns once RUNNING
	$(CLI) job $(if $(FRESH),--fresh)

stop-job: setup  ## stop the job with a savepoint; the keeper leaves it stopped (`make job` resumes it)
	$(CLI) stop-job

cancel: setup  ## cancel the running job; the keeper leaves it stopped
	$(CLI) cancel

datagen: setup  ## start the generator in the background (DATAGEN_ARGS=...)
	$(CLI) datagen -- $(DATAGEN_ARGS)

down: ## stop everything the stack started
	@if [ -x $(PY) ]; then $(CLI) down; else echo "nothing to stop (no $(VENV))"; fi

status: setup  ## services (state, restarts), job, business figures (rates, attribution, lag, checkpoint), rows (FORMAT=json)
	$(CLI) status $(if $(filter json,$(FORMAT)),--json)

replay-dead-letters: setup  ## send dead letters back to their topics once each (REASON=r SINCE=t UNTIL=t ALL=1 DRY_RUN=1)
	$(CLI) replay-dead-letters $(foreach r,$(subst $(comma), ,$(REASON)),--reason $(r)) \
		$(if $(SINCE),--since '$(SINCE)') $(if $(UNTIL),--until '$(UNTIL)') $(if $(ALL),--all) $(if $(DRY_RUN),--dry-run)

backfill: setup  ## recompute a period into the same tables, beside the job (SINCE=iso-8601 [UNTIL=...])
	@[ -n "$(SINCE)" ] || { echo "error: SINCE=<ISO-8601 time> names the period's start (UNTIL=... its end)"; exit 2; }
	$(CLI) backfill --since '$(SINCE)' $(if $(UNTIL),--until '$(UNTIL)')

psql: setup  ## psql on the pipeline's database, read-only (ADMIN=1: as POSTGRES_USER)
	$(CLI) psql $(if $(ADMIN),--admin)

sql: setup  ## print the job's rendered SQL
	$(PY) -m attribution.pipeline --print-sql

test: lint  ## lint, type check, unit tests and integration tests on a separate embedded stack
	$(PY) -m pytest

unit-test: setup  ## unit tests only: the rule on a local Flink, configs, deployments (no stack)
	$(PY) -m pytest tests/unit

integration-test: setup  ## integration tests only, on a separate embedded stack (ports in tests/integration/test-stack.env)
	$(PY) -m pytest tests/integration

lint: setup  ## ruff (lint and format check) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

ci:  ## exactly what CI runs (.ci/run: installs the checks' tools, then `make test`)
	bash .ci/run

sql-client: setup  ## Flink's SQL client on the running stack, the job's tables declared (SQL_FILE=f.sql: run a file)
	$(CLI) sql-client $(if $(SQL_FILE),--file $(SQL_FILE))

ui: setup  ## open the Flink web UI on the job (prints the URL where there is no browser)
	@$(CLI) ui

viz: setup  ## open Grafana (Compose stack) or Prometheus (embedded); prints the URL without a browser
	@$(CLI) viz

reset: down  ## stop and delete all data, checkpoints and logs (keeps the venv and jars)
	rm -rf .stack/postgres .stack/checkpoints .stack/savepoints .stack/logs .stack/prometheus .stack/test \
		.stack/job-intent.json .stack/keeper-status.json

clean: down  ## remove everything the project created
	rm -rf .stack $(VENV)

soak: setup  ## steady traffic for minutes on the running job; prints state size and heap (SOAK_ARGS=...)
	$(PY) bench/soak.py $(SOAK_ARGS)

bench: setup  ## generator, burst, latency and pass-through benchmarks on the embedded stack (BENCH_ARGS=...)
	$(PY) -m bench $(BENCH_ARGS)

# --- Docker Compose: the same job, templates and settings on Apache Kafka, Flink containers,
# Postgres, Prometheus and Grafana (needs Docker; `make test` validates these files offline).
COMPOSE ?= docker compose

docker-run:  ## Compose stack: build, start (the keeper submits the job), generate events (TASKMANAGERS=N to scale)
	$(COMPOSE) up -d --build $(if $(TASKMANAGERS),--scale taskmanager=$(TASKMANAGERS))
	@echo "Flink UI http://127.0.0.1:8081  Grafana http://127.0.0.1:3000 (admin / \$${GRAFANA_ADMIN_PASSWORD:-flink})  Prometheus http://127.0.0.1:9090"
	@echo "(published on BIND_ADDRESS, default 127.0.0.1; the keeper starts the job: $(COMPOSE) logs -f keeper)"

docker-down:  ## stop the Compose stack (volumes kept; `$(COMPOSE) down -v` deletes them)
	$(COMPOSE) down
