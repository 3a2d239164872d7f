# Put on PYTHONPATH by `otel-perf run`: configure telemetry before the program's first line runs.
import os

from otel_perf.auto import boot, chain_sitecustomize

if os.environ.get("OTEL_PERF_BOOTSTRAP") == "1":
    boot()
chain_sitecustomize(os.path.dirname(os.path.abspath(__file__)))
