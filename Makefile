# trailpay — two commands for a new user: `make dev` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: dev demo test test-unit lint soak bench bench-engine bench-refold bench-scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Start the embedded default (broker, PostgreSQL, ledger, accrual, gateway). DEMO=1 loads a demo.
dev: $(STAMP)
	$(VENV)/bin/trailpay dev $(if $(filter 1 true yes,$(DEMO)),--demo,)

## Same as `make dev DEMO=1`.
demo: $(STAMP)
	$(VENV)/bin/trailpay dev --demo

## The whole suite against real PostgreSQL and a real broker.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit tests/scenarios $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check trailpay services tests
	$(VENV)/bin/lint-imports

## Load with poison while the ledger and accrual are SIGKILLed 100+ times and PostgreSQL and the
## broker restart once each; prints kills, accepted, lost, doubled, 5xx, dead letters, max stall.
## Bounded (SOAK_SECONDS, default 600) and stops itself; exit 1 if anything was lost or doubled.
SOAK_SECONDS ?= 600
SOAK_KILLS ?= 110
soak: $(STAMP)
	$(PY) -m tests.soak --duration $(SOAK_SECONDS) --kills $(SOAK_KILLS)

## End-to-end throughput and latency beside this machine's raw limits (QUICK=1: under two minutes;
## PROFILE=1: py-spy samples the services, flame stacks beside the results; LEDGERS=, ACCRUALS=,
## PARTITIONS=: processes and partitions).
bench: $(STAMP)
	$(if $(filter 1 true yes,$(PROFILE)),$(PY) -m pip install --quiet -e '.[bench]',)
	$(PY) -m bench $(if $(filter 1 true yes,$(QUICK)),--quick,) $(if $(filter 1 true yes,$(PROFILE)),--profile,) \
	  $(if $(LEDGERS),--ledgers $(LEDGERS),) $(if $(ACCRUALS),--accruals $(ACCRUALS),) \
	  $(if $(PARTITIONS),--partitions $(PARTITIONS),)

## Events/s against ledger and accrual processes, sized to this machine's cores (SIZE=quick
## for a short sweep; BUDGET=seconds to stop starting points).
bench-scale: $(STAMP)
	$(PY) -m bench.scale $(if $(SIZE),--size $(SIZE),) $(if $(BUDGET),--budget $(BUDGET),) $(if $(LANES),--lanes $(LANES),)

## Plan-engine throughput on one core only (pure core, no I/O).
bench-engine: $(STAMP)
	$(PY) -m bench.engine

## The time to fold one partner (50,000 entries in a year) again for one late entry: p50/p99.
bench-refold: $(STAMP)
	$(PY) -m bench.refold

clean:
	rm -rf $(VENV) .trailpay .pytest_cache .hypothesis
