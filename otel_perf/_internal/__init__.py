"""The in-app runtime: everything that runs inside the instrumented program. Private API."""

VERSION = "0.1.0"
