"""The summary as terminal tables: plain text, bold/red/green only on a terminal.

No markup language on purpose: route templates and SQL shapes are printed exactly as they are
(``a[i]`` stays ``a[i]``), and the runtime needs no terminal library.
"""

from __future__ import annotations

from typing import Any

from otel_perf._internal.summary.bottlenecks import render_lines

_RED, _GREEN, _YELLOW, _BOLD, _RESET = "\033[31m", "\033[32m", "\033[33m", "\033[1m", "\033[0m"
QUERY_WIDTH = 72


def render(data: dict[str, Any], stream: Any) -> None:
    """Write ``data`` (``Summary.as_dict()``) to ``stream``: routes, query shapes, N+1 suspects."""
    tty = stream.isatty()

    def paint(text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if tty else text

    sla = data["sla"]
    target = f"p{round(sla['http_latency_target'] * 100, 3):g}"
    lines: list[str] = []
    if data["routes"]:
        rows = [
            [f"{r['method']} {r['route']}", str(r["count"]), f"{r['error_rate'] * 100:.1f} %",
             _ms(r["p50"]), _ms(r["p95"]), _ms(r["p99"]),
             ("ok", _GREEN) if r["verdict"] == "ok" else (r["verdict"].upper(), _RED)]
            for r in data["routes"]
        ]
        lines += _table(f"otel-perf summary: {data['service']} (pid {data['pid']})",
                        ["route", "requests", "errors", "p50", "p95", "p99", "verdict"], rows, paint,
                        f"SLA: {target} < {_ms(sla['http_latency'])} ({sla['http_latency_target']:.4g} of requests "
                        f"within it), errors < {sla['http_error_rate'] * 100:g} %")
    if data["queries"]:
        rows = [
            [_clip(q["shape"], QUERY_WIDTH), str(q["count"]), _ms(q["mean"]), _ms(q["p95"]), _ms(q["max"]),
             (str(q["slow"]), _RED) if q["slow"] else "0"]
            for q in data["queries"][:10]
        ]
        lines += _table("query shapes (slowest first)", ["query", "calls", "mean", "p95", "max", "slow"], rows, paint,
                        f"slow > {_ms(sla['db_slow'])} (or its class threshold), mean budget {_ms(sla['db_mean'])}")
    for s in data["n_plus_one"]:
        lines.append(f"{paint('N+1 suspect', _YELLOW)}: {s['route']} ran `{_clip(s['shape'], 80)}` up to "
                     f"{s['max_count']} times per request ({s['requests']} requests)")
    lines += render_lines(data, paint, _YELLOW, _clip)
    stream.write("\n".join(lines) + "\n")
    stream.flush()


def _table(title: str, header: list[str], rows: list[list[Any]], paint: Any, caption: str) -> list[str]:
    """Left-aligned first and last columns, right-aligned numbers; a cell may be (text, colour)."""
    text = [[c[0] if isinstance(c, tuple) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    last = len(header) - 1

    def line(cells: list[Any]) -> str:
        out = []
        for i, cell in enumerate(cells):
            value, colour = cell if isinstance(cell, tuple) else (cell, None)
            padded = value.ljust(widths[i]) if i in (0, last) else value.rjust(widths[i])
            out.append(paint(padded, colour) if colour else padded)
        return "  ".join(out).rstrip()

    rule = "-" * (sum(widths) + 2 * last)
    return [paint(title, _BOLD), line(header), rule, *(line(r) for r in rows), rule, caption, ""]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
