# A newcomer needs two commands: `make run` (the instrumented example) and `make test` (everything).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
SYSTEM_PACKAGES := python3-venv postgresql postgresql-contrib prometheus prometheus-alertmanager chromium

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
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

test: system-deps venv collector dist
	$(BIN)/pytest

# The wheel and sdist users get, built from this tree, and the wheel installed into a fresh venv
# (cached under .cache/wheel/ until a source changes): the packaging tests run the CLI from there.
.PHONY: dist
dist: venv
	$(BIN)/python -m tests.fixtures.wheel

lint: venv
	$(BIN)/ruff check otel_perf tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache .cache build dist *.egg-info otel_perf/tools/stack

# The backend stack (Collector, Prometheus, Tempo, Alertmanager, Grafana); needs Docker and GRAFANA_ADMIN_PASSWORD.
# STACK_BIND=0.0.0.0 publishes it beyond localhost with token-authenticated OTLP (compose.exposed.yaml).
.PHONY: stack-up stack-down stack-secrets
STACK_FILES = -f collector/compose.yaml $(if $(filter-out 127.% localhost ::1,$(or $(STACK_BIND),127.0.0.1)),-f collector/compose.exposed.yaml)

stack-secrets: venv
	$(BIN)/python collector/make_secrets.py

stack-up: stack-secrets
	STACK_BIND=$(or $(STACK_BIND),127.0.0.1) SECRETS=collector/secrets OTLP_AUTH=$(if $(findstring exposed,$(STACK_FILES)),on,off) sh collector/preflight.sh
	STACK_BIND=$(or $(STACK_BIND),127.0.0.1) docker compose $(STACK_FILES) up -d

stack-down:
	docker compose -f collector/compose.yaml -f collector/compose.exposed.yaml down

# Rebuild the RUM browser script (otel_perf/_internal/integrations/rum/static/) from rum/package-lock.json; needs npm. The output is committed.
.PHONY: rum
rum:
	cd rum && npm ci --no-audit --no-fund && npm run build

# Re-copy uPlot (the charts of `otel-perf report`) into otel_perf/tools/report/static/ from report/package-lock.json; needs npm. The output is committed.
.PHONY: report-charts
report-charts:
	cd report && npm ci --no-audit --no-fund && npm run build

# Overhead against bare and vanilla OpenTelemetry, side by side in one run, as one table (a few
# minutes): CPU per request under three servers, RSS, CPU per psycopg query, start-up, collection
# cost and stall. Writes benchmarks/results.md and the tables in README.md and docs/performance.md.
# The vanilla and lean venvs it compares are built once into benchmarks/.cache/.
BENCH_PACKAGES := wrk util-linux postgresql
.PHONY: bench bench-deps
bench: bench-deps venv
	$(BIN)/python benchmarks/bench.py --docs $(ARGS)

bench-deps:
	@$(MAKE) --no-print-directory system-deps SYSTEM_PACKAGES="$(BENCH_PACKAGES)"

# The patient-timeline example under `otel-perf run` (throwaway PostgreSQL unless DATABASE_URL is set),
# ~20 s of Locust traffic, then the SLA summary. Pass options with ARGS, e.g. ARGS="--duration 60".
run: system-deps venv
	$(BIN)/python examples/demo.py $(ARGS)

# Regenerate alert rules, dashboards and runbooks from the SLA spec (a test fails when they drift).
.PHONY: generate
generate: venv
	$(BIN)/otel-perf generate

# The otel-perf Collector distribution (collector/builder-config.yaml), built from Go modules with the
# OpenTelemetry Collector Builder into build/otelcol-otel-perf/ (where the tests and `otel-perf validate`
# look). Rebuilt only when the manifest changes; Go's module and build caches are reused between runs.
# Bounded for a 2-core machine: GOMAXPROCS=2, `go build -p 2`. Needs Go (GO=/path/to/go to choose one).
.PHONY: collector
GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
OTELCOL_VERSION := $(shell sed -n 's/^  version: *//p' collector/builder-config.yaml)
OTELCOL := build/otelcol-otel-perf/otelcol-otel-perf
OCB := build/tools/builder-v$(OTELCOL_VERSION)/builder
GO_ENV := PATH="$(dir $(GO)):$$PATH" GOTOOLCHAIN=local GOMAXPROCS=2 GOFLAGS=-p=2
collector: $(OTELCOL)
$(OCB):
	$(GO_ENV) GOBIN="$(abspath $(dir $@))" $(GO) install go.opentelemetry.io/collector/cmd/builder@v$(OTELCOL_VERSION)
$(OTELCOL): collector/builder-config.yaml $(OCB)
	$(GO_ENV) $(OCB) --config=collector/builder-config.yaml
	touch $@

# Throughput, CPU per 1,000 spans and memory of the agent Collector with the shipped processors (docs/collector.md).
.PHONY: bench-collector
bench-collector: venv collector
	$(BIN)/python benchmarks/bench_collector.py
