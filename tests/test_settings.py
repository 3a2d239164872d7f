"""Settings precedence and validation; the SLA spec and its bucket boundaries."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from otel_perf import ConfigError
from otel_perf._internal.config.settings import Settings
from otel_perf._internal.config.sla import SLO

ROOT = Path(__file__).resolve().parent.parent


def test_precedence_kwargs_over_env_over_file_over_default(tmp_path):
    config = tmp_path / "perf.yml"
    config.write_text("service_name: from-file\nsampler: always_off\nsummary: 'false'\nslo:\n  http_latency: 0.3\n")
    env = {"OTEL_PERF_CONFIG": str(config), "OTEL_SERVICE_NAME": "from-env", "OTEL_TRACES_SAMPLER": "traceidratio"}
    s = Settings.resolve({"service_name": "from-kwargs"}, env)
    assert s.service_name == "from-kwargs"  # kwargs beat env
    assert s.sampler == "traceidratio"  # env beats file
    assert s.summary == "false"  # file beats default
    assert s.slo.http_latency == 0.3
    assert s.metrics_exporter == "otlp"  # default
    assert Settings.resolve({}, {"OTEL_PERF_CONFIG": str(config)}).service_name == "from-file"


def test_slo_env_and_kwargs_override_file(tmp_path):
    config = tmp_path / "perf.yml"
    config.write_text("slo:\n  db_slow: 0.2\n  n_plus_one: 5\n")
    env = {"OTEL_PERF_CONFIG": str(config), "OTEL_PERF_SLO_DB_SLOW": "0.15"}
    assert Settings.resolve({}, env).slo.db_slow == 0.15
    assert Settings.resolve({}, env).slo.n_plus_one == 5
    assert Settings.resolve({"slo": {"db_slow": 0.05}}, env).slo.db_slow == 0.05


@pytest.mark.parametrize(
    ("env", "named", "accepted"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc, http/protobuf, http/json"),
        ({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "OTEL_TRACES_EXPORTER", "otlp, console, none"),
        ({"OTEL_LOGS_EXPORTER": "none,otlp"}, "OTEL_LOGS_EXPORTER", "a comma-separated list"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", "otlp, console, none"),
        ({"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER", "otlp, prometheus, console, none"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", "always_on"),
        ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG", "a number from 0 to 1"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG", "a number from 0 to 1"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "-3"}, "OTEL_BSP_MAX_QUEUE_SIZE", "an integer from 1"),
        ({"OTEL_PERF_SERVER_TIMING": "maybe"}, "OTEL_PERF_SERVER_TIMING", "true, false"),
        ({"OTEL_PERF_SLO_HTTP_LATENCY": "fast"}, "OTEL_PERF_SLO_HTTP_LATENCY='fast' is not a number", "seconds above 0"),
        ({"OTEL_PERF_SLO_NOPE": "1"}, "OTEL_PERF_SLO_NOPE: unknown SLO key 'nope'", "http_latency"),
        ({"OTEL_PERF_SLO_DB_SLOWW": "1"}, "(did you mean 'db_slow'?)", "db_slow"),
        ({"OTEL_PERF_CONFIG": "/nonexistent/perf.yml"}, "OTEL_PERF_CONFIG", "a readable YAML file"),
    ],
)
def test_bad_configuration_names_the_setting_and_accepted_values(env, named, accepted):
    with pytest.raises(ConfigError) as err:
        Settings.resolve({}, env)
    message = str(err.value)
    assert "\n" not in message
    assert named in message and accepted in message


def test_bad_yaml_and_unknown_keys_are_reported(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("service_name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML line"):
        Settings.resolve({}, {"OTEL_PERF_CONFIG": str(bad)})
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("sevice_name: typo\n")
    with pytest.raises(ConfigError, match="unknown setting 'sevice_name' \\(did you mean 'service_name'\\?\\)"):
        Settings.resolve({}, {"OTEL_PERF_CONFIG": str(unknown)})
    with pytest.raises(ConfigError, match="configure\\(\\): unknown setting 'colour'"):
        Settings.resolve({"colour": "blue"}, {})


def test_semantic_conventions_default_to_stable():
    assert Settings.resolve({}, {}).semconv_opt_in == "http,database"
    assert Settings.resolve({}, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}).semconv_opt_in == "http/dup"


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    for f in fields(Settings):
        key = f.metadata.get("env") or f.name
        assert f"`{key}`" in readme, f"README configuration table lacks {key}"


def test_sla_thresholds_are_bucket_boundaries():
    slo = SLO()
    for b in (0.05, 0.1, 0.2, 0.5, 1.0, 2.5):
        assert b in slo.http_buckets
    for b in (0.01, 0.05, 0.1, 0.5, 1.0):
        assert b in slo.db_buckets
    for name, (good, poor) in {"lcp": (2.5, 4.0), "inp": (0.2, 0.5), "cls": (0.1, 0.25),
                               "fcp": (1.8, 3.0), "ttfb": (0.8, 1.8)}.items():
        assert {good, poor} <= set(slo.vital_buckets(name))
    custom = slo.with_overrides({"http_latency": 0.35, "db_slow": 0.07}, "test")
    assert 0.35 in custom.http_buckets and 0.07 in custom.db_buckets


def test_query_class_thresholds():
    slo = SLO().with_overrides({"query_classes": {"audit": {"threshold": 0.02, "pattern": "audit_log"}}}, "t")
    assert slo.slow_threshold("SELECT audit_log") == 0.02
    assert slo.slow_threshold("SELECT patients") == slo.db_slow
    assert slo.slow_threshold("SELECT patients", query_class="audit") == 0.02
    with pytest.raises(ConfigError, match="query_classes.bad"):
        SLO().with_overrides({"query_classes": {"bad": {"threshold": "x"}}}, "t")


@pytest.mark.parametrize(
    ("slo", "message", "accepted"),
    [
        ("http_latency_target: 1.5", "slo.http_latency_target=1.5 is out of range", "between 0 and 1"),
        ("http_latency_target: 0", "slo.http_latency_target=0 is out of range", "between 0 and 1"),
        ("http_error_rate: 2", "slo.http_error_rate=2 is out of range", "between 0 and 1"),
        ("throughput_drop: 1", "slo.throughput_drop=1 is out of range", "between 0 and 1"),
        ("cpu: 7", "slo.cpu=7 is out of range", "at most 1"),
        ("memory: 0", "slo.memory=0 is out of range", "at most 1"),
        ("lcp: 5", "slo.lcp: lcp=5 is not below lcp_poor=4", "lcp < lcp_poor"),
        ("inp_poor: 0.1", "slo.inp_poor: inp=0.2 is not below inp_poor=0.1", "inp < inp_poor"),
        ("n_plus_one: 2.5", "slo.n_plus_one=2.5 is not a whole number", "at least 2"),
        ("n_plus_one: 1", "slo.n_plus_one=1 is out of range", "at least 2"),
        ("n_plus_one: true", "slo.n_plus_one=True is not a whole number", "at least 2"),
        ("db_slow: [1]", "slo.db_slow=[1] is not a number", "seconds above 0"),
        ("db_slow: .nan", "slo.db_slow=nan is out of range", "seconds above 0"),
        ("regression: -0.2", "slo.regression=-0.2 is out of range", "a fraction above 0"),
        ("query_classes: {audit: {threshold: -1}}", "slo.query_classes.audit.threshold=-1 is out of range",
         "seconds above 0"),
        ("query_classes: {audit: {threshold: 0.1, patern: x}}",
         "slo.query_classes.audit: unknown field 'patern' (did you mean 'pattern'?)", "pattern"),
        ("query_classes: {audit: {threshold: 0.1, pattern: '('}}", "slo.query_classes.audit.pattern='(' is not a",
         "regular expression"),
        ("query_classes: [1, 2]", "slo.query_classes=[1, 2] is invalid", "threshold: seconds"),
        ("db_slwo: 1", "unknown SLO key 'db_slwo' (did you mean 'db_slow'?)", "db_mean"),
    ],
)
def test_nonsensical_sla_specs_are_refused(tmp_path, slo, message, accepted):
    config = tmp_path / "perf.yml"
    config.write_text(f"slo:\n  {slo}\n")
    with pytest.raises(ConfigError) as err:
        Settings.resolve({}, {"OTEL_PERF_CONFIG": str(config)})
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{config}: ")
    assert message in text and accepted in text, text


def test_slo_that_is_not_a_mapping_is_one_line(tmp_path):
    config = tmp_path / "perf.yml"
    config.write_text("slo: [1, 2]\n")
    with pytest.raises(ConfigError, match="perf.yml: slo must be a mapping, not list"):
        Settings.resolve({}, {"OTEL_PERF_CONFIG": str(config)})
    with pytest.raises(ConfigError, match=r"configure\(slo=...\): slo must be a mapping"):
        Settings.resolve({"slo": [1, 2]}, {})


def test_errors_name_the_environment_variable():
    with pytest.raises(ConfigError, match=r"^OTEL_PERF_SLO_HTTP_LATENCY_TARGET='1.5' is out of range"):
        Settings.resolve({}, {"OTEL_PERF_SLO_HTTP_LATENCY_TARGET": "1.5"})


def test_query_classes_merge_with_the_defaults_by_name(tmp_path):
    config = tmp_path / "perf.yml"
    config.write_text("slo:\n  query_classes:\n    audit: {threshold: 0.02, pattern: audit_log}\n")
    merged = Settings.resolve({}, {"OTEL_PERF_CONFIG": str(config)}).slo
    assert [c.name for c in merged.query_classes] == ["rls", "audit"]  # the default rls class stays
    assert merged.slow_threshold("SELECT current_setting('app.user')") == 0.05
    config.write_text("slo:\n  query_classes:\n    rls: {threshold: 0.03}\n")
    (rls,) = Settings.resolve({}, {"OTEL_PERF_CONFIG": str(config)}).slo.query_classes
    assert rls.threshold == 0.03 and rls.pattern == SLO().query_classes[0].pattern  # same class, new threshold
    config.write_text("slo:\n  query_classes:\n    rls: null\n")
    assert Settings.resolve({}, {"OTEL_PERF_CONFIG": str(config)}).slo.query_classes == ()


def test_query_class_in_code_refuses_a_nonsensical_threshold():
    from otel_perf import query_class

    for bad in (-0.05, 0, "fast", True):
        with pytest.raises(ConfigError, match="query_class\\('rls', threshold="):
            query_class("rls", bad)
    assert query_class("rls", 0.02).qc.threshold == 0.02
