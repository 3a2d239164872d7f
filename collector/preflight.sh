#!/bin/sh
# Refuse to publish the stack beyond localhost without authentication (one line, exit 1).
# Run by the `preflight` service every other service waits for, and by `make stack-up`.
# Environment: STACK_BIND (127.0.0.1 by default), OTLP_AUTH (`on` in compose.exposed.yaml),
# SECRETS (the folder holding make_secrets.py's files).
set -eu
bind=${STACK_BIND:-127.0.0.1}
case "$bind" in 127.*|localhost|::1) exit 0 ;; esac
for name in otlp-token prometheus-web.yml alertmanager-web.yml prometheus-password; do
  if [ ! -s "${SECRETS:-/run/secrets}/$name" ]; then
    echo "otel-perf stack: STACK_BIND=$bind publishes the stack beyond localhost but secret $name is missing: run 'make stack-secrets' and start with -f collector/compose.exposed.yaml (docs/collector.md, Running beyond localhost)" >&2
    exit 1
  fi
done
if [ "${OTLP_AUTH:-off}" != "on" ]; then
  echo "otel-perf stack: STACK_BIND=$bind publishes the OTLP receivers without a token: start with -f collector/compose.yaml -f collector/compose.exposed.yaml (docs/collector.md, Running beyond localhost)" >&2
  exit 1
fi
