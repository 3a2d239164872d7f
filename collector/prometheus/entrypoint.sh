#!/bin/sh
# Start Prometheus with the stack's flags: web configuration (basic auth) always; the lifecycle API
# (remote shutdown/reload) never — reload with SIGHUP (`docker compose kill -s HUP prometheus`);
# the remote-write receiver only when PROMETHEUS_REMOTE_WRITE_RECEIVER=true (Tempo's service graphs).
# Usage: entrypoint.sh PROMETHEUS [extra flags...]. POSIX sh, for the stock prom/prometheus image.
set -eu
binary=$1
shift
set -- "$@" --web.config.file="${PROMETHEUS_WEB_CONFIG:-/run/secrets/prometheus_web}"
if [ "${PROMETHEUS_REMOTE_WRITE_RECEIVER:-false}" = "true" ]; then
  set -- "$@" --web.enable-remote-write-receiver
fi
exec "$binary" "$@"
