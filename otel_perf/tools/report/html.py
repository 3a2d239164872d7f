"""The report as one self-contained HTML file: tables rendered here, charts drawn by uPlot in the page.

uPlot (MIT, ``static/``, rebuilt by ``make report-charts``) and the data are inlined, and a
Content-Security-Policy forbids every network request, so the file opens anywhere: a CI artefact,
an e-mail attachment, a laptop without Grafana.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from otel_perf.tools.report import markdown, model

STATIC = resources.files("otel_perf.tools.report") / "static"
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #1d2433; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #dde; }
.meta { color: #5a6378; } .verdict { font-size: 16px; padding: 8px 12px; border-radius: 6px; background: #eef6ee; }
.verdict.bad { background: #fdecec; }
table { border-collapse: collapse; margin: 8px 0 16px; width: 100%; } td, th { padding: 4px 8px; border-bottom: 1px solid #eef; text-align: right; }
td:first-child, th:first-child, td.text, th.text { text-align: left; } code { font-size: 12px; }
.regression { color: #b3261e; font-weight: 600; } .ok { color: #2e7d32; } .over, .poor { color: #b3261e; }
.needs-improvement { color: #b26a00; } .good { color: #2e7d32; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; } .chart { min-height: 300px; }
.chart.wide { grid-column: 1 / -1; }
"""

SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
  const fmt = {
    s: v => v == null ? '' : v >= 1 ? v.toFixed(2) + ' s' : (v * 1000).toFixed(v < 0.01 ? 1 : 0) + ' ms',
    ratio: v => v == null ? '' : (v * 100).toFixed(Math.abs(v) < 0.01 ? 2 : 0) + ' %',
    none: v => v == null ? '' : String(+v.toFixed(3)),
  };
  for (const c of data.charts) {
    const el = document.getElementById(c.id);
    const f = fmt[c.unit] || fmt.none;
    const series = [{}];
    const ys = [c.x];
    c.series.forEach((s, i) => {
      series.push({label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: true, value: (u, v) => f(v)});
      ys.push(s.values);
    });
    (c.lines || []).forEach(l => {
      series.push({label: l.label, stroke: '#d62728', dash: [6, 4], width: 1.5, value: (u, v) => f(v)});
      ys.push(c.x.map(() => l.value));
    });
    new uPlot({
      title: c.title, width: Math.max(el.clientWidth, 320), height: 260, series,
      axes: [{}, {size: 70, values: (u, vals) => vals.map(f)}],
      points: {show: c.x.length < 40},
    }, ys, el);
  }
  document.body.dataset.chartsDrawn = String(data.charts.length);
})();
"""


def charts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Chart specifications for the page script: x (Unix seconds), series, dashed threshold lines."""
    s = report["sla"]
    out: list[dict[str, Any]] = []
    for i, r in enumerate(report["latency"]):
        out.append({"id": f"latency-{i}", "title": f"{r['route']}: p50 / p95 / p99", "unit": "s", "x": r["t"],
                    "series": [{"label": q, "values": r[q]} for q in ("p50", "p95", "p99")],
                    "lines": [{"label": f"SLA p95 {markdown.ms(s['p95'])}", "value": s["p95"]}]})
    if len(report["periods"]) > 1:
        out.append({"id": "periods", "title": "p95 per route and period", "unit": "s", "wide": True,
                    "x": [p["end"] for p in report["periods"]],
                    "series": [{"label": r["route"], "values": [p["routes"].get(r["route"], {}).get("p95")
                                                                for p in report["periods"]]}
                               for r in report["latency"]],
                    "lines": [{"label": "SLA p95", "value": s["p95"]}]})
    if report["errors"]:
        x = report["errors"][0]["t"]
        out.append({"id": "errors", "title": "5xx error rate", "unit": "ratio", "x": x,
                    "series": [{"label": e["job"], "values": e["ratio"]} for e in report["errors"]],
                    "lines": [{"label": f"SLA {markdown.pct(s['error_rate'])}", "value": s["error_rate"]}]})
        out.append({"id": "budget", "title": "Error budget remaining (since the start)", "unit": "ratio", "x": x,
                    "series": [{"label": e["job"], "values": e["budget"]} for e in report["errors"]],
                    "lines": [{"label": "exhausted", "value": 0}]})
    if report["queries"]:
        out.append({"id": "queries", "title": "Slowest query shapes: mean duration", "unit": "s", "wide": True,
                    "x": report["queries"][0]["t"],
                    "series": [{"label": q["shape"][:60], "values": q["means"]} for q in report["queries"]],
                    "lines": [{"label": f"SLA mean {markdown.ms(s['db_mean'])}", "value": s["db_mean"]}]})
    for v in report["vitals"]:
        pages = {p["page"]: p for p in v["pages"]}  # the trend is per page, all devices
        out.append({"id": f"vital-{v['vital']}", "title": f"{v['vital'].upper()} p75 per page",
                    "unit": "s" if v["unit"] == "s" else "none", "x": v["pages"][0]["t"],
                    "series": [{"label": page, "values": p["values"]} for page, p in pages.items()],
                    "lines": [{"label": "good", "value": v["good"]}]})
    return [c for c in out if any(any(x is not None for x in ser["values"]) for ser in c["series"])]


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict[str, Any]) -> str:
    s = report["sla"]
    specs = charts(report)
    ms, pct = markdown.ms, markdown.pct
    parts = [
        f"<h1>otel-perf performance report</h1><p class=meta>{_e(markdown.day(report['start']))} to "
        f"{_e(markdown.day(report['end']))} ({_e(report['window'])}) &middot; {_e(report['source'])}</p>",
        f"<p class='verdict{' bad' if report['regressions'] else ''}'>Verdict: {_e(model.verdict(report))}.</p>",
        f"<h2>Regressions (&gt; {s['regression']:.0%} worse than the period before)</h2>",
    ]
    if report["regressions"]:
        parts.append("<ul>" + "".join(f"<li class=regression>REGRESSION {_e(markdown.regression_line(r))}</li>"
                                      for r in report["regressions"]) + "</ul>")
    else:
        parts.append("<p class=ok>None.</p>")
    parts.append(f"<h2>Latency per route (SLA: p95 &lt; {ms(s['p95'])})</h2>")
    rows = []
    for r in report["latency"]:
        w = r["window"]
        cls = "-" if w.get("p95") is None else "ok" if w["p95"] <= s["p95"] else "over"
        rows.append([f"<code>{_e(r['route'])}</code>", str(r["requests"]), ms(w.get("p50")), ms(w.get("p95")),
                     ms(w.get("p99")), f"<span class={cls}>{cls}</span>"])
    parts.append(_table(["route", "requests", "p50", "p95", "p99", "SLA"], rows))
    if report.get("routes_total", 0) > len(report["latency"]):
        parts.append(f"<p class=meta>The {len(report['latency'])} busiest of {report['routes_total']} routes.</p>")
    if report["periods"]:
        labels = [p["label"] for p in report["periods"]]
        prow = [[f"<code>{_e(r['route'])}</code>"] + [ms(p["routes"].get(r["route"], {}).get("p95"))
                                                       for p in report["periods"]] for r in report["latency"]]
        parts.append(_table(["p95 per period"] + [_e(x) for x in labels], prow))
    parts.append("<div class=charts>" + "".join(
        f"<div class='chart{' wide' if c.get('wide') else ''}' id='{c['id']}'></div>" for c in specs
        if c["id"].startswith(("latency", "periods"))) + "</div>")
    parts.append(f"<h2>Errors and error budget (SLA: &lt; {pct(s['error_rate'])} 5xx)</h2>")
    erows = []
    for e in report["errors"]:
        remaining = next((b for b in reversed(e["budget"]) if b is not None), None)
        rate = e["errors"] / e["requests"] if e["requests"] else None
        erows.append([f"<code>{_e(e['job'])}</code>", str(e["requests"]), str(e["errors"]), pct(rate, 2),
                      f"<span class={'ok' if (remaining or 0) > 0 else 'over'}>{pct(remaining)}</span>"])
    parts.append(_table(["service", "requests", "5xx", "error rate", "budget remaining"], erows) if erows
                 else "<p>No error counts in this source.</p>")
    parts.append("<div class=charts>" + "".join(f"<div class=chart id='{c['id']}'></div>" for c in specs
                                                if c["id"] in ("errors", "budget")) + "</div>")
    parts.append(f"<h2>Slowest query shapes (SLA: mean &lt; {ms(s['db_mean'])})</h2>")
    qrows = [[f"<code>{_e(q['shape'][:160])}</code>", str(q["calls"]), ms(q["mean"]), f"{q['total']:.1f} s"]
             for q in report["queries"]]
    parts.append(_table(["query shape", "calls", "mean", "total time"], qrows) if qrows
                 else "<p>No statements in this source.</p>")
    parts.append("".join(f"<div class='chart wide' id='{c['id']}'></div>" for c in specs if c["id"] == "queries"))
    parts.append("<h2>Core Web Vitals (p75 per page)</h2>")
    vrows = [[v["vital"].upper(), f"<code>{_e(p['page'])}</code>", _e(p["device"]),
              markdown.vital_value(p["p75"], v["unit"]),
              f"{markdown.vital_value(v['good'], v['unit'])} / {markdown.vital_value(v['poor'], v['unit'])}",
              f"<span class={_e(p['rating'])}>{_e(p['rating'])}</span>"] for v in report["vitals"] for p in v["pages"]]
    parts.append(_table(["vital", "page", "device", "p75", "good / poor", "rating"], vrows) if vrows
                 else "<p>No page views with Core Web Vitals in this source.</p>")
    parts.append("<div class=charts>" + "".join(f"<div class=chart id='{c['id']}'></div>" for c in specs
                                                if c["id"].startswith("vital-")) + "</div>")
    data = json.dumps({"charts": specs}, separators=(",", ":")).replace("</", "<\\/")
    uplot_js = (STATIC / "uPlot.iife.min.js").read_text(encoding="utf-8")
    uplot_css = (STATIC / "uPlot.min.css").read_text(encoding="utf-8")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>otel-perf report {_e(markdown.day(report['end']))}</title>"
        f"<style>{uplot_css}{STYLE}</style></head><body>"
        + "".join(parts)
        + f"<script type=application/json id=report-data>{data}</script>"
        f"<script>{uplot_js}</script><script>{SCRIPT}</script></body></html>\n"
    )
