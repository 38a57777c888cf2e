# Two commands: `make run` (the demo on http://127.0.0.1:8005) and `make test`
# (`make coverage`: the same tests, with the coverage of portal/).
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN = $(VENV)/bin
FLASK = $(BIN)/flask --app wsgi
PORT ?= 8005
TEST_WORKERS ?= 2
COV_ARGS = --cov --cov-report=term-missing:skip-covered

.PHONY: run test coverage fuzz install lint format migrate seed bench clean drill

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) seed-demo

# The web app under gunicorn and the worker together; Ctrl-C stops both within 5 s.
run: seed
	@echo "Demo accounts are listed in README.md"
	@$(BIN)/python -m portal.cli.serve --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Two workers (pytest-xdist; each has its own database, store and Redis prefix), work
# stolen between them so neither idles at the end. `make coverage` (or COVERAGE=1) adds line
# and branch coverage of portal/; on Python 3.11 tracing roughly doubles the suite's time.
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal -m "not fuzz" $(if $(filter 1,$(COVERAGE)),$(COV_ARGS))

coverage: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal -m "not fuzz" $(COV_ARGS)

# The schemathesis fuzz of the OpenAPI document, per role (tests/contract), on PostgreSQL
# and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set. FUZZ_EXAMPLES examples per
# operation, mode and role (default 20: about 3,100 requests, 2-3 minutes on one core).
fuzz: install
	$(BIN)/pytest -p no:cacheprovider -m fuzz -s tests/contract

# Fault drills (a PostgreSQL cluster of their own, gunicorn, faults mid-load): minutes, so
# not part of `make test`; CI runs them after it.
drill: install
	MR_DRILLS=1 $(BIN)/pytest -p no:cacheprovider tests/drills

bench: install
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
