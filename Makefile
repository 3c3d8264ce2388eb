# pimsync — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test test-pg lint format bench clean migrate seed

$(STAMP): requirements/dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

# Installs, migrates, seeds the demo (kept on re-run) and runs web + worker +
# beat + channel sandbox in the foreground; Ctrl-C stops them all.
run: seed
	$(BIN)/python manage.py run_stack

# The whole suite on the embedded default (SQLite). PostgreSQL-only
# concurrency tests run in `make test-pg`.
test: install
	$(BIN)/python -m pytest -m "not postgres" $(PYTEST_ARGS)

# The same suite plus the concurrency tests on throwaway PostgreSQL + Redis.
test-pg: install
	bash scripts/test-pg.sh $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
