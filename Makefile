# pimsync — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.lock pyproject.toml | cksum | cut -d' ' -f1)
# Where `make run` serves (`make run PORT=8010`); the sandbox stays on 8700.
HOST ?= 127.0.0.1
PORT ?= 8000

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
	$(BIN)/python manage.py seed_demo --host $(HOST) --port $(PORT)

# Installs, migrates, seeds the demo (kept on re-run) and runs web + worker +
# beat + channel sandbox in the foreground; Ctrl-C stops them all.
run: seed
	$(BIN)/python manage.py run_stack --host $(HOST) --port $(PORT)

E2E_DIR := $(CURDIR)/var/e2e
# Parallel test processes (pytest-xdist) for the tests that need no shared servers.
TEST_WORKERS ?= 2

# The whole suite on the embedded default (SQLite), then the end-to-end tests
# whose worker processes share a file database and the filesystem broker.
# The PostgreSQL-only concurrency tests run in `make test-pg`.
test: install
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not postgres and not e2e" $(PYTEST_ARGS)
	rm -rf $(E2E_DIR) && mkdir -p $(E2E_DIR)
	PIMSYNC_VAR_DIR=$(E2E_DIR) CELERY_BROKER_URL=filesystem:// \
		PIMSYNC_TEST_DB_FILE=$(E2E_DIR)/test.sqlite3 \
		$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

# The same suite plus the concurrency tests on throwaway PostgreSQL + Redis.
test-pg: install
	PIMSYNC_TEST_WORKERS=$(TEST_WORKERS) bash scripts/test-pg.sh $(PYTEST_ARGS)

# Style (ruff), the architecture contracts (import-linter, pyproject's
# [tool.importlinter]) and types (mypy with django-stubs, [tool.mypy]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
