"""The patient timeline example service (see docs/example.md)."""
