"""Grafana alerting provisioning besides the rules: contact points, notification policies, mute timings.

Addresses come from environment variables, which Grafana's provisioning interpolates at start
(ALERT_WEBHOOK_URL, SLACK_WEBHOOK_URL, SLACK_CHANNEL, ALERT_EMAIL_TO; collector/compose.yaml passes
them). Routing mirrors collector/alertmanager/alertmanager.yml: severity decides the receiver;
``critical`` pages and repeats hourly, ``warning`` is a ticket (muted outside working hours; the
WarningUnresolved rule escalates one that stays unresolved to a page), ``info`` goes to the webhook.
"""

from __future__ import annotations

from typing import Any

ORG = 1
GROUP_BY = ["grafana_folder", "alertname", "service"]


def contact_points() -> dict[str, Any]:
    webhook = {"uid": "otel-perf-webhook", "type": "webhook", "disableResolveMessage": False,
               "settings": {"url": "$ALERT_WEBHOOK_URL", "httpMethod": "POST"}}
    slack = {"uid": "otel-perf-slack", "type": "slack", "disableResolveMessage": False,
             "settings": {"url": "$SLACK_WEBHOOK_URL", "recipient": "$SLACK_CHANNEL",
                          "title": '{{ template "slack.default.title" . }}',
                          "text": "{{ range .Alerts }}{{ .Annotations.summary }} {{ .Annotations.runbook_url }}\n{{ end }}"}}
    email = {"uid": "otel-perf-email", "type": "email", "disableResolveMessage": False,
             "settings": {"addresses": "$ALERT_EMAIL_TO", "singleEmail": True}}

    def point(name: str, receivers: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
        return {"orgId": ORG, "name": name,
                "receivers": [{**r, "uid": f"{r['uid']}-{suffix}"} for r in receivers]}

    return {"apiVersion": 1, "contactPoints": [
        point("otel-perf-page", [webhook, slack, email], "page"),
        point("otel-perf-ticket", [webhook, email], "ticket"),
        point("otel-perf-webhook", [webhook], "info"),
    ]}


def policies() -> dict[str, Any]:
    return {"apiVersion": 1, "policies": [{
        "orgId": ORG,
        "receiver": "otel-perf-webhook",
        "group_by": GROUP_BY,
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
        "routes": [
            {"receiver": "otel-perf-page", "object_matchers": [["severity", "=", "critical"]],
             "group_wait": "10s", "repeat_interval": "1h", "mute_time_intervals": ["otel-perf-maintenance"]},
            {"receiver": "otel-perf-ticket", "object_matchers": [["severity", "=", "warning"]],
             "repeat_interval": "12h", "mute_time_intervals": ["otel-perf-maintenance", "otel-perf-off-hours"]},
            {"receiver": "otel-perf-webhook", "object_matchers": [["severity", "=", "info"]],
             "repeat_interval": "24h", "mute_time_intervals": ["otel-perf-maintenance"]},
        ],
    }]}


def mute_timings() -> dict[str, Any]:
    return {"apiVersion": 1, "muteTimes": [
        # The weekly maintenance window (edit to yours): nothing notifies while it runs.
        {"orgId": ORG, "name": "otel-perf-maintenance", "time_intervals": [
            {"weekdays": ["sunday"], "times": [{"start_time": "02:00", "end_time": "04:00"}], "location": "UTC"}]},
        # Tickets wait for working hours; pages never do.
        {"orgId": ORG, "name": "otel-perf-off-hours", "time_intervals": [
            {"weekdays": ["saturday", "sunday"], "location": "UTC"},
            {"times": [{"start_time": "00:00", "end_time": "08:00"}, {"start_time": "18:00", "end_time": "24:00"}],
             "location": "UTC"}]},
    ]}
