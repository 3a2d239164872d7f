# A newcomer needs two commands: `make run` (the instrumented example) and `make test` (everything).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
SYSTEM_PACKAGES := postgresql postgresql-contrib prometheus prometheus-alertmanager chromium

.PHONY: run test venv system-deps lint bench clean

venv: $(BIN)/otel-perf
$(BIN)/otel-perf: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Debian packages the tests start for real (root or sudo; skipped when all are present).
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: venv system-deps
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check otel_perf tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
