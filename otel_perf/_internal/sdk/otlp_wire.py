"""OTLP messages written in the protobuf wire format directly: attributes, resources, scopes and
metrics, the same bytes as the upstream encoders produce.

The upstream encoders build protobuf objects, so exporting anything loads protobuf and the
generated OTLP modules: about 3 MB resident and a tenth of an instrumented program's start-up
CPU (every program exports its metrics at exit). Written here, the export path needs neither.
Field by field this follows ``opentelemetry.exporter.otlp.proto.common``'s encoders (which fields
are always present, which are omitted when zero, what an unsupported attribute does);
``tests/test_otlp_wire.py`` checks the bytes against them over generated data.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

# The upstream encoder's logger: a bad attribute is reported as before.
_attributes_log = logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal")
_metrics_log = logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder")

_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<q").pack  # sfixed64
_pack_Q = struct.Struct("<Q").pack  # fixed64
_SMALL = [bytes([n]) for n in range(0x80)]
_INT64 = (-(1 << 63), 1 << 63)


def varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a message, string or bytes)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _fixed64(number: int, value: int) -> bytes:
    """A fixed64 field; omitted when zero (proto3)."""
    return varint(number << 3 | 1) + _pack_Q(value) if value else b""


def _double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + _pack_d(value)


def _zigzag(n: int) -> int:
    if not -(1 << 31) <= n < (1 << 31):
        raise ValueError(f"{n} does not fit in sint32")
    return (n << 1) ^ (n >> 31)


# -- common.proto ------------------------------------------------------------------------------


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body, as ``_encode_value`` builds it."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return field(1, value.encode("utf-8"))
    if isinstance(value, int):
        if not _INT64[0] <= value < _INT64[1]:
            raise ValueError(f"Value out of range: {value}")
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return field(7, value)
    if isinstance(value, Sequence):
        return field(5, b"".join([field(1, any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return field(6, b"".join([field(1, key_value(str(k), v)) for k, v in value.items()]))
    raise Exception(f"Invalid type {type(value)} of value {value}")  # noqa: TRY002 - upstream's words


def key_value(key: str, value: Any) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"{key!r} has type {type(key).__name__}, but expected one of: str")
    return (field(1, key.encode("utf-8")) if key else b"") + field(2, any_value(value))


def attributes(number: int, attrs: Any) -> bytes:
    """Each attribute as a ``KeyValue`` field ``number``; one that cannot be encoded is logged
    and left out, as upstream does."""
    if not attrs:
        return b""
    parts = []
    for key, value in attrs.items():
        try:
            parts.append(field(number, key_value(key, value)))
        except Exception as error:
            _attributes_log.exception("Failed to encode key %s: %s", key, error)
    return b"".join(parts)


def resource(sdk_resource: Any) -> bytes:
    """A ``Resource`` message body."""
    return attributes(1, sdk_resource.attributes)


def scope(sdk_scope: Any) -> bytes:
    """An ``InstrumentationScope`` message body."""
    if sdk_scope is None:
        return b""
    out = field(1, sdk_scope.name.encode("utf-8")) if sdk_scope.name else b""
    if sdk_scope.version:
        out += field(2, sdk_scope.version.encode("utf-8"))
    return out + attributes(3, sdk_scope.attributes)


# -- metrics.proto -----------------------------------------------------------------------------


def encode_metrics(data: Any) -> bytes:
    """An ``ExportMetricsServiceRequest`` for the SDK's ``MetricsData``, as ``encode_metrics`` +
    ``SerializeToString`` produce it."""
    from opentelemetry.sdk.metrics.export import ExponentialHistogram, Gauge, Histogram, Sum

    kinds = {Gauge: _gauge, Sum: _sum, Histogram: _histogram, ExponentialHistogram: _exponential}
    grouped: dict[Any, dict[Any, tuple[Any, list[bytes]]]] = {}
    for resource_metrics in data.resource_metrics:
        scopes: dict[Any, tuple[Any, list[bytes]]] = {}
        grouped[resource_metrics.resource] = scopes  # like upstream: one entry per resource
        for scope_metrics in resource_metrics.scope_metrics:
            sdk_scope = scope_metrics.scope
            encoded: list[bytes] = []
            scopes[sdk_scope] = (sdk_scope, encoded)
            for metric in scope_metrics.metrics:
                body = field(1, metric.name.encode("utf-8")) if metric.name else b""
                if metric.description:
                    body += field(2, metric.description.encode("utf-8"))
                if metric.unit:
                    body += field(3, metric.unit.encode("utf-8"))
                encode = kinds.get(type(metric.data))
                if encode is None:
                    encode = next((f for k, f in kinds.items() if isinstance(metric.data, k)), None)
                if encode is None:
                    _metrics_log.warning("unsupported data type %s", metric.data.__class__.__name__)
                elif metric.data.data_points:
                    body += encode(metric.data)
                encoded.append(body)
    return request([(sdk_resource, [(sdk_scope, b"".join([field(2, m) for m in metrics]))
                                    for sdk_scope, metrics in scopes.values()])
                    for sdk_resource, scopes in grouped.items()], resource, scope)


def request(groups: Any, encode_resource: Any = resource, encode_scope: Any = scope) -> bytes:
    """An export request's body from ``[(resource, [(scope, items), ...]), ...]``: each item
    already framed as field 2 of its scope's message (spans, metrics). Resource{Spans,Metrics}
    and Scope{Spans,Metrics} share their field numbers: 1 resource/scope, 2 items, 3 schema_url."""
    out = []
    for sdk_resource, scopes in groups:
        body = [field(1, encode_resource(sdk_resource))]
        for sdk_scope, items in scopes:
            scope_body = field(1, encode_scope(sdk_scope) if sdk_scope is not None else b"") + items
            if sdk_scope is not None and sdk_scope.schema_url:
                scope_body += field(3, sdk_scope.schema_url.encode("utf-8"))
            body.append(field(2, scope_body))
        if sdk_resource.schema_url:
            body.append(field(3, sdk_resource.schema_url.encode("utf-8")))
        out.append(field(1, b"".join(body)))
    return b"".join(out)


def _temporality(number: int, temporality: Any) -> bytes:
    value = int(temporality)
    return varint(number << 3) + varint(value) if value else b""


def _number_point(point: Any, start: bool) -> bytes:
    out = _fixed64(2, point.start_time_unix_nano) if start else b""
    out += _fixed64(3, point.time_unix_nano)
    value = point.value
    if isinstance(value, int):
        return out + _exemplars(5, point.exemplars) + b"\x31" + _pack_q(value) + attributes(7, point.attributes)
    return out + b"\x21" + _pack_d(value) + _exemplars(5, point.exemplars) + attributes(7, point.attributes)


def _gauge(data: Any) -> bytes:
    return field(5, b"".join([field(1, _number_point(p, False)) for p in data.data_points]))


def _sum(data: Any) -> bytes:
    body = b"".join([field(1, _number_point(p, True)) for p in data.data_points])
    body += _temporality(2, data.aggregation_temporality)
    if data.is_monotonic:
        body += b"\x18\x01"
    return field(7, body)


def _histogram(data: Any) -> bytes:
    points = []
    for p in data.data_points:
        out = _fixed64(2, p.start_time_unix_nano) + _fixed64(3, p.time_unix_nano) + _fixed64(4, p.count)
        if p.sum is not None:
            out += _double(5, p.sum)
        if p.bucket_counts:
            out += field(6, b"".join([_pack_Q(c) for c in p.bucket_counts]))
        if p.explicit_bounds:
            out += field(7, b"".join([_pack_d(b) for b in p.explicit_bounds]))
        out += _exemplars(8, p.exemplars) + attributes(9, p.attributes)
        if p.min is not None:
            out += _double(11, p.min)
        if p.max is not None:
            out += _double(12, p.max)
        points.append(field(1, out))
    return field(9, b"".join(points) + _temporality(2, data.aggregation_temporality))


def _buckets(number: int, buckets: Any) -> bytes:
    if not buckets.bucket_counts:
        return b""
    offset = _zigzag(buckets.offset)
    body = (b"\x08" + varint(offset) if offset else b"") + field(2, b"".join([varint(c) for c in buckets.bucket_counts]))
    return field(number, body)


def _exponential(data: Any) -> bytes:
    points = []
    for p in data.data_points:
        out = _fixed64(2, p.start_time_unix_nano) + _fixed64(3, p.time_unix_nano) + _fixed64(4, p.count)
        if p.sum is not None:
            out += _double(5, p.sum)
        scale = _zigzag(p.scale)
        if scale:
            out += b"\x30" + varint(scale)
        out += _fixed64(7, p.zero_count) + _buckets(8, p.positive) + _buckets(9, p.negative)
        if p.flags:
            out += b"\x50" + varint(p.flags)
        out += _exemplars(11, p.exemplars)
        if p.min is not None:
            out += _double(12, p.min)
        if p.max is not None:
            out += _double(13, p.max)
        points.append(field(1, attributes(1, p.attributes) + out))
    return field(10, b"".join(points) + _temporality(2, data.aggregation_temporality))


def _exemplars(number: int, exemplars: Any) -> bytes:
    parts = []
    for e in exemplars or ():
        out = _fixed64(2, e.time_unix_nano)
        value = e.value
        if isinstance(value, float):
            out += _double(3, value)
        elif not isinstance(value, int):
            raise ValueError("Exemplar value must be an int or float")
        if e.span_id is not None and e.trace_id is not None:
            out += field(4, e.span_id.to_bytes(8, "big")) + field(5, e.trace_id.to_bytes(16, "big"))
        if isinstance(value, int) and not isinstance(value, float):
            out += b"\x31" + _pack_q(value)
        out += attributes(7, e.filtered_attributes)
        parts.append(field(number, out))
    return b"".join(parts)
