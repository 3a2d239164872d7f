"""A faster OTLP/HTTP span exporter: the upstream encoder's exact bytes, a fraction of its cost.

The upstream encoder builds protobuf objects one field and one attribute at a time (~45 µs of
CPU per span here, more than a whole database statement). ``encode`` writes the protobuf wire
format directly, byte for byte what ``encode_spans(spans).SerializeToString()`` writes
(``tests/test_otlp.py`` proves it over many generated spans: every attribute type, events,
links, parents, trace states, statuses, limits, resources and scopes):

- fields in field-number order, proto3 defaults (empty strings, zero times and counts) left
  out, oneof values (``AnyValue``) and sub-messages (status, scope, resource) always written;
- spans grouped by resource, then by instrumentation scope, as the upstream encoder groups them
  (a dict keyed by the objects: equal objects share a group), in order of first appearance;
- the encoded bytes of repeated short attributes (method, route, status code...) are cached;
- a ``FinishedSpan`` (``finished_spans``) shares name, kind, attributes and status with the
  other spans of its template: those are encoded once per template, and such a span costs
  little more than packing its ids and times;
- whatever the SDK's encoder refuses or handles by logging (an attribute type it does not know,
  an integer beyond 64 bits, invalid UTF-8) is handed to the upstream encoder for that span, so
  the output stays the upstream one (protobuf is loaded only then). Resources and scopes are
  written by ``otlp_wire`` (once per object).

Configuration, transport, retries, headers, compression and TLS are the upstream exporter's
(``otlp_http``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.span import DEFAULT_TRACE_STATE as _DEFAULT_STATE

from otel_perf._internal.sdk import otlp_wire
from otel_perf._internal.sdk.finished_spans import FinishedSpan, SpanTemplate
from otel_perf._internal.sdk.otlp_http import OTLPHTTPExporter

_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_KIND_FIELD = {kind: b"\x30" + bytes([value]) for kind, value in _KIND.items()}
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE)  # Span.flags (16, fixed32)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)
_CACHE_LIMIT = 8192  # entries
_CACHE_BYTES = 1 << 20  # and bytes: the cache is cleared when its encodings reach 1 MiB
_CACHED_LEN = 128  # longer strings are encoded every time: repeated values are short (routes, codes)
# Values chosen by the client (a 404 scan sends a new one per request): never worth a cache slot.
_UNCACHED_KEYS = frozenset({
    "url.path", "url.query", "url.full", "user_agent.original", "client.address", "client.port",
    "network.peer.address", "network.peer.port", "http.request.header.referer",
})
# Exact value types whose encodings may be cached (floats are not: 0.0 and -0.0 are equal keys).
_CACHEABLE = frozenset({str, int, bool})
_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack
_pack_ids = struct.Struct(">HQQHQ").pack  # trace_id (1) and span_id (2), tags included
_pack_parent = struct.Struct(">HQ").pack  # parent_span_id (4)
_pack_times = struct.Struct("<BQBQ").pack  # start (7) and end (8) time, fixed64
_MASK64 = (1 << 64) - 1
_NOTHING = object()
_PLAIN_TYPES = (ReadableSpan, FinishedSpan)  # exactly these: a subclass may override a property


# The wire primitives are otlp_wire's; whatever they refuse (an int beyond 64 bits, a type
# upstream does not know) sends the span to the upstream encoder, which logs it its own way.
_varint, _ld, _key_value = otlp_wire.varint, otlp_wire.field, otlp_wire.key_value


def _attributes(number: int, attributes: Any) -> bytes:
    """Repeated ``KeyValue`` field ``number``, uncached."""
    if not attributes:
        return b""
    return b"".join([_ld(number, _key_value(k, v)) for k, v in attributes.items()])


_attribute_cache: dict[tuple[str, type, Any], bytes] = {}
_cache_bytes = 0


def _span_attribute(key: str, value: Any) -> bytes:
    """One encoded attribute field of a span (9), cached by key and value when both are short
    and not chosen by the client (bounded in entries and bytes)."""
    global _cache_bytes
    kind = type(value)
    if kind not in _CACHEABLE or key in _UNCACHED_KEYS or (kind is str and len(value) > _CACHED_LEN):
        return _ld(9, _key_value(key, value))
    cache_key = (key, kind, value)
    encoded = _attribute_cache.get(cache_key)
    if encoded is not None:
        return encoded
    encoded = _ld(9, _key_value(key, value))
    if len(_attribute_cache) >= _CACHE_LIMIT or _cache_bytes >= _CACHE_BYTES:
        _attribute_cache.clear()
        _cache_bytes = 0
    _attribute_cache[cache_key] = encoded
    _cache_bytes += 2 * len(encoded) + 100  # the encoding, the key's value, dict and tuple overhead
    return encoded


def cached_bytes() -> int:
    """About how many bytes the attribute cache holds."""
    return _cache_bytes


def _status(status: Any) -> bytes:
    if status is None:
        return b""
    description = status.description
    code = status.status_code.value
    return _ld(15, (_ld(2, description.encode("utf-8")) if description else b"")
               + (b"\x18" + _varint(code) if code else b""))


def _span(span: Any) -> bytes:
    """One encoded ``Span`` message (without its field tag)."""
    if type(span) in _PLAIN_TYPES:  # its properties return its fields: read them directly
        ctx, parent, name, kind = span._context, span._parent, span._name, span._kind  # noqa: SLF001
        start, end, status = span._start_time, span._end_time, span._status  # noqa: SLF001
        attributes, events, links = span._attributes, span._events, span._links  # noqa: SLF001
        dropped_attributes = attributes.dropped if isinstance(attributes, BoundedAttributes) else 0
        attributes = attributes or {}  # as the property reads them (an empty BoundedAttributes may count drops)
        dropped_events = events.dropped if isinstance(events, BoundedList) else 0
        dropped_links = links.dropped if isinstance(links, BoundedList) else 0
    else:
        ctx, parent, name, kind = span.get_span_context(), span.parent, span.name, span.kind
        start, end, status = span.start_time, span.end_time, span.status
        attributes, events, links = span.attributes, span.events, span.links
        dropped_attributes, dropped_events, dropped_links = span.dropped_attributes, span.dropped_events, span.dropped_links
    parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08", ctx.span_id.to_bytes(8, "big")]
    trace_state = ctx.trace_state
    if trace_state is not None:
        text = ",".join([f"{key}={value}" for key, value in trace_state.items()])
        if text:
            parts.append(_ld(3, text.encode("utf-8")))
    if parent:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    if name:
        parts.append(_ld(5, name.encode("utf-8")))
    parts.append(_KIND_FIELD[kind])
    if start:
        parts += (b"\x39", _pack_q(start))
    if end:
        parts += (b"\x41", _pack_q(end))
    for key, value in attributes.items():
        parts.append(_span_attribute(key, value))
    if dropped_attributes:
        parts += (b"\x50", _varint(dropped_attributes))
    for event in events:
        timestamp, event_name = event.timestamp, event.name
        body = b"\x09" + _pack_q(timestamp) if timestamp else b""
        if event_name:
            body += _ld(2, event_name.encode("utf-8"))
        body += _attributes(3, event.attributes)
        dropped = event.dropped_attributes
        if dropped:
            body += b"\x20" + _varint(dropped)
        parts.append(_ld(11, body))
    if dropped_events:
        parts += (b"\x60", _varint(dropped_events))
    for link in links:
        context = link.context
        body = (b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big")
                + _attributes(4, link.attributes))
        dropped = link.dropped_attributes
        if dropped:
            body += b"\x28" + _varint(dropped)
        body += b"\x35" + _pack_i(_HAS_IS_REMOTE | (_IS_REMOTE if context.is_remote else 0))
        parts.append(_ld(13, body))
    if dropped_links:
        parts += (b"\x70", _varint(dropped_links))
    parts.append(_status(status))
    parts.append(_FLAGS_REMOTE if parent and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def _encoded_span(span: Any) -> bytes:
    try:
        return _span(span)
    except Exception:  # a value otlp_wire refuses: the upstream encoder reports it in its own way
        from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span

        return _encode_span(span).SerializeToString()  # loads protobuf: only for such spans


class _Prepared:
    """A template's shared fields, encoded, and the field header of its spans by parent kind."""

    __slots__ = ("middle", "tail", "head_root", "head_child")

    def __init__(self, template: SpanTemplate):
        name = template.name
        self.middle = (_ld(5, name.encode("utf-8")) if name else b"") + _KIND_FIELD[template.kind]
        attributes = template.attributes
        tail = _attributes(9, attributes)  # not through the attribute cache: the template is the cache
        dropped = getattr(attributes, "dropped", 0)
        if dropped:
            tail += b"\x50" + _varint(dropped)
        self.tail = tail + _status(template.status)
        size = 28 + len(self.middle) + 18 + len(self.tail) + len(_FLAGS_LOCAL)  # ids, middle, times, tail, flags
        self.head_root = b"\x12" + _varint(size)
        self.head_child = b"\x12" + _varint(size + 10)  # and parent_span_id


def _prepare(template: SpanTemplate) -> _Prepared | bool:
    """The template's encoding, made once (False: its spans are encoded one by one)."""
    try:
        prepared: _Prepared | bool = _Prepared(template)
    except Exception:
        prepared = False  # encoded span by span (and by the upstream encoder where it must)
    template.otlp = prepared
    return prepared


_resource_cache: dict[int, tuple[Any, bytes]] = {}


def _cached(obj: Any, encode: Any) -> bytes:
    """Encoded resource/scope bytes, kept while the same object is in use."""
    hit = _resource_cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    encoded = encode(obj)
    if len(_resource_cache) > 64:
        _resource_cache.clear()
    _resource_cache[id(obj)] = (obj, encoded)
    return encoded


def _same_key(a: Any, b: Any) -> bool:
    """Would a dict keyed by ``a`` find ``b``?"""
    try:
        return a is b or (hash(a) == hash(b) and a == b)
    except Exception:
        return False


def encode(spans: Sequence[Any]) -> bytes:
    """An ``ExportTraceServiceRequest`` for ``spans`` as protobuf wire bytes."""
    # resource groups in order: [resource, [[scope, parts], ...]]; looked up by identity first
    # (Resource.__hash__ serialises the resource to JSON), then by equality as a dict would.
    groups: list[list[Any]] = []
    by_id: dict[tuple[int, int], list[bytes]] = {}
    last_resource: Any = _NOTHING
    last_scope: Any = _NOTHING
    out: list[bytes] = []
    for span in spans:
        finished = type(span) is FinishedSpan
        if finished:
            resource, scope = span._resource, span._instrumentation_scope or None  # noqa: SLF001
        else:
            resource, scope = span.resource, span.instrumentation_scope or None
        if resource is not last_resource or scope is not last_scope:
            key = (id(resource), id(scope))
            out = by_id.get(key)  # type: ignore[assignment]
            if out is None:
                out = by_id[key] = _group(groups, resource, scope)
            last_resource, last_scope = resource, scope
        if finished:  # from its template's prepared encoding, when nothing calls for the general path
            prepared = span._template.otlp  # noqa: SLF001
            if prepared is None:
                prepared = _prepare(span._template)  # noqa: SLF001
            ctx = span._context  # noqa: SLF001
            start, end = span._start_time, span._end_time  # noqa: SLF001
            if prepared and type(ctx) is SpanContext and start and end:
                # SpanContext: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)
                trace_state = ctx[4]
                if trace_state is _DEFAULT_STATE or not trace_state:
                    trace_id = ctx[0]
                    parent = span._parent  # noqa: SLF001
                    try:
                        if parent is None:
                            out += (prepared.head_root,
                                     _pack_ids(0x0A10, trace_id >> 64, trace_id & _MASK64, 0x1208, ctx[1]),
                                     prepared.middle, _pack_times(0x39, start, 0x41, end), prepared.tail,
                                     _FLAGS_LOCAL)
                        else:
                            out += (prepared.head_child,
                                    _pack_ids(0x0A10, trace_id >> 64, trace_id & _MASK64, 0x1208, ctx[1]),
                                    _pack_parent(0x2208, parent.span_id), prepared.middle,
                                    _pack_times(0x39, start, 0x41, end), prepared.tail,
                                    _FLAGS_REMOTE if parent.is_remote else _FLAGS_LOCAL)
                        continue
                    except struct.error:  # ids or times out of range: the general path decides
                        pass
        encoded = _encoded_span(span)
        out += (b"\x12", _varint(len(encoded)), encoded)
    return otlp_wire.request([(resource, [(scope, b"".join(parts)) for scope, parts in scopes])
                              for resource, scopes in groups],
                             lambda r: _cached(r, otlp_wire.resource), lambda s: _cached(s, otlp_wire.scope))


def _group(groups: list[list[Any]], resource: Any, scope: Any) -> list[bytes]:
    """The parts list of (resource, scope), created in first-appearance order."""
    for entry in groups:
        if _same_key(entry[0], resource):
            scopes = entry[1]
            break
    else:
        scopes = []
        groups.append([resource, scopes])
    for entry in scopes:
        if _same_key(entry[0], scope):
            return entry[1]
    parts: list[bytes] = []
    scopes.append([scope, parts])
    return parts


class FastOTLPSpanExporter(OTLPHTTPExporter):
    """The upstream OTLP/HTTP span exporter's configuration and client with :func:`encode` in
    place of its encoder."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            data = encode(spans)
        except Exception:
            try:
                from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

                data = encode_spans(spans).SerializePartialToString()
            except Exception as error:
                self._logger.error("Failed to encode span batch: %s", error)
                return SpanExportResult.FAILURE
        if self._too_large(data, "span"):  # upstream reports and drops oversized batches
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self._client.export(data).success else SpanExportResult.FAILURE
