# Two commands: `make run` (the demo on http://127.0.0.1:8005) and `make test`
# (`make coverage`: the same tests, with the coverage of portal/).
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN = $(VENV)/bin
FLASK = $(BIN)/flask --app wsgi
PORT ?= 8005
TEST_WORKERS ?= 2
COV_ARGS = --cov --cov-report=term-missing:skip-covered

.PHONY: run test coverage install lint format migrate seed bench clean

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

# The web app under gunicorn and the worker together; Ctrl-C stops both.
run: seed
	@echo "Module Registry on http://127.0.0.1:$(PORT)  (demo accounts in README.md; Ctrl-C stops)"
	@bash -c 'trap "kill 0" INT TERM EXIT; \
	  $(BIN)/gunicorn --bind 127.0.0.1:$(PORT) --workers 2 --threads 4 --access-logfile - wsgi:app & \
	  $(FLASK) worker & \
	  wait'

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
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(if $(filter 1,$(COVERAGE)),$(COV_ARGS))

coverage: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(COV_ARGS)

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
