#!/bin/sh
# Render alertmanager.yml's ${VAR:-default} placeholders from the environment, then start Alertmanager.
# Usage: entrypoint.sh TEMPLATE OUTPUT [alertmanager args...]   (with no args after OUTPUT: render only)
# POSIX sh + awk only, so it runs in the stock prom/alertmanager (busybox) image.
set -eu
template=$1 output=$2
shift 2
awk '{
  out = ""
  while (match($0, /\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}/)) {
    ref = substr($0, RSTART + 2, RLENGTH - 3)
    name = ref; def = ""
    i = index(ref, ":-")
    if (i > 0) { name = substr(ref, 1, i - 1); def = substr(ref, i + 2) }
    val = (name in ENVIRON && ENVIRON[name] != "") ? ENVIRON[name] : def
    out = out substr($0, 1, RSTART - 1) val
    $0 = substr($0, RSTART + RLENGTH)
  }
  print out $0
}' "$template" > "$output"
[ "$#" -gt 0 ] || exit 0
exec /bin/alertmanager --config.file="$output" "$@"
