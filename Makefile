# Two entry points for a fresh machine with Python 3.11: `make run` and `make test` (see README).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test system-packages install lint bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# Migrate, train and promote a first model if none is active, serve. Without DATABASE_URL each
# command starts or joins the embedded PostgreSQL in .pgdata/; the last one to exit stops it.
run: install
	DEBUG=1 $(BIN)/python manage.py migrate --no-input
	DEBUG=1 $(BIN)/python manage.py bootstrap
	DEBUG=1 $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The whole test suite, none skipped: on the embedded PostgreSQL unless DATABASE_URL is set (CI).
test: install system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# What the browser, proxy and container tests drive: Debian's chromium, nginx, and podman with
# runc and debootstrap (command:package). As root (CI, a container) the missing ones are installed
# here; as anyone else the browser test fails naming its package, and the proxy and container
# tests skip naming theirs (in CI they fail). CONTAINER_TEST_ELSEWHERE=1: a job whose container
# test runs elsewhere (GitHub's test job) needs no podman.
SYSTEM_PACKAGES := chromium:chromium nginx:nginx-light
ifneq ($(CONTAINER_TEST_ELSEWHERE),1)
SYSTEM_PACKAGES += podman:podman runc:runc debootstrap:debootstrap
endif
system-packages:
	@missing=""; \
	for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/$${pair%%:*}" ] || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing$$missing from Debian."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The benchmark against the FastAPI reference (PostgreSQL on 127.0.0.1; see docs/performance.md).
# Its load generator is Debian's wrk, installed like the test tools above.
bench: SYSTEM_PACKAGES := wrk:wrk
bench: install bench/.venv/.installed system-packages
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The reference's own virtualenv (FastAPI, uvicorn, profilers), rebuilt when its pins change.
bench/.venv/.installed: bench/requirements.txt
	$(PYTHON) -m venv bench/.venv
	bench/.venv/bin/pip install --quiet -r bench/requirements.txt
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
