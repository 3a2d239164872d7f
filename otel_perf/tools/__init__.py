"""The command-line tools (``otel-perf validate|generate|load|baseline``); they need the ``tools`` extra and never run inside the instrumented program."""
