# The two commands of the README are `make up` and `make test`; the rest serve them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Options for a benchmark: make bench-overhead BENCH_ARGS="--sweep"
BENCH_ARGS ?=

.PHONY: up test lint lint-code check-deploy audit format bootstrap lock e2e clean-var bench bench-report bench-%

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Bytecode is compiled at install: every gunicorn and Celery worker imports Django and
# Wagtail when it starts (a recycled one again), and where Python may not write
# bytecode itself (PYTHONDONTWRITEBYTECODE, a read-only image) it would compile them at
# every start: 8 s instead of 2 s per worker on 2 cores, a pool answering nothing
# while its workers are replaced (docs/benchmarks.md, provisioning).
$(VENV)/.installed: requirements.lock Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	touch $@

bootstrap: $(VENV)/.installed

# make up PODS=2: two pods behind HAProxy on one machine (docs/scaling.md)
PODS ?= 1
up: bootstrap
	PODS=$(PODS) $(BIN)/python -m cms_project.devstack up

test: bootstrap
	DJANGO_SETTINGS_MODULE=cms_project.settings.test $(BIN)/python -m cms_project.devstack run -- $(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser journeys alone (they run in `make test` too); screenshots in tests/e2e/artifacts/.
e2e: bootstrap
	$(MAKE) test PYTEST_ARGS="tests/e2e $(PYTEST_ARGS)"

# Everything `make lint` checks but the audit; CI runs this before the suite.
lint-code: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=cms_project.settings.test $(BIN)/python -m cms_project.devstack run -- \
		$(BIN)/python manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory check-deploy

lint: lint-code audit

# Django's deployment checks on the production settings, warnings included. The
# secret, hosts and service URLs are throw-away values for this one command (the
# checks open no connection); production settings never start embedded servers.
check-deploy: bootstrap
	env DJANGO_SETTINGS_MODULE=cms_project.settings.production \
		SECRET_KEY="$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
		ALLOWED_HOSTS=.example.invalid \
		DATABASE_URL=postgres://check-deploy@127.0.0.1:1/unused \
		REDIS_URL=redis://127.0.0.1:1/0 \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

# Known vulnerabilities in the locked dependencies: pip-audit --strict against PyPI's
# vulnerability service when it answers within a few seconds; otherwise the offline
# PyPA advisory snapshot in ../shared/advisory-db (CMS_ADVISORY_DB), which says so and
# of which date. Either way it names what it checked and fails having checked nothing.
audit: bootstrap
	@if $(BIN)/python -m cms_project.advisories --probe-live requirements.lock; then \
		$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r requirements.lock; \
	else \
		$(BIN)/python -m cms_project.advisories requirements.lock; \
	fi

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the locked dependencies after editing pyproject.toml.
lock: bootstrap
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

# Every benchmark one after another (never two at once), a summary table, and
# docs/benchmarks.md's headline regenerated from the runs on record.
bench: bootstrap
	$(BIN)/python -m cms_project.devstack run -- $(BIN)/python -m bench.suite

bench-report: bootstrap
	$(BIN)/python -m bench.report

bench-%: bootstrap
	$(BIN)/python -m cms_project.devstack run -- $(BIN)/python bench/$*/run.py $(BENCH_ARGS)
