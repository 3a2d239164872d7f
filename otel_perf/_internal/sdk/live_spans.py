"""Live spans without the SDK's per-span machinery: what the SERVER span of every request uses.

The SDK's ``Tracer.start_span`` + ``Span.end`` cost more than the rest of our request path: a
``BoundedAttributes`` (a lock, a cleaning pass over every attribute through generic type checks),
a ``BoundedList`` for events and another for links, two more locks, the processors' ``on_start``
and ``_on_ending`` loops, then a ``ReadableSpan`` copy for ``on_end``. ``LiveSpans.start`` makes
the same decisions from the SDK Tracer's own parts and returns a ``LiveSpan``: a subclass of the
SDK's ``Span`` (so ``isinstance`` checks, ``span.attributes``, ``span.name``, ``to_json`` and the
context-manager behaviour are the SDK's) whose state is plain dicts and lists, with the SDK's
limit semantics applied by hand. At ``end`` it builds the ``ReadableSpan`` the SDK would have
built and hands it to the tracer's span processor.

What is kept, value for value (``tests/test_live_spans.py`` proves it against the SDK path over
many generated attribute sets, operations, limits, samplers and parents, down to the OTLP bytes):
- the sampler's decision: ``should_sample`` is called with the same arguments (parent context,
  trace id, name, kind, attributes, links); its attributes are the span's initial attributes and
  its ``trace_state`` goes into the span context; a non-recording decision gives the SDK's
  ``NonRecordingSpan``. The SDK's own samplers (AlwaysOn/Off, TraceIdRatioBased, AlwaysRecord
  and ParentBased over those, exact types) are decided in place as their code decides, without
  the result objects (``finished_spans.decider``, shared with the database spans);
- ids from the tracer's id generator; the parent (the span in the given context, or the current
  one), remote or local, and the random-trace-id flag as the SDK derives it;
- span limits (``SpanLimits``, ``OTEL_SPAN_*``/``OTEL_ATTRIBUTE_*``): attribute count (oldest
  dropped first, counted in ``dropped_attributes``), value length (strings truncated, also inside
  sequences), event count and event attribute limits, link limits; invalid keys and values are
  cleaned by the SDK's own function, with its warnings;
- the API behaviour: ``set_attribute(s)``, ``add_event``, ``add_link``, ``record_exception``,
  ``set_status`` (an OK status is final), ``update_name``, ``is_recording``, a second ``end`` and
  changes after ``end`` are ignored with the SDK's warning; used as a context manager, an
  exception is recorded and sets the status as the SDK does;
- resource and instrumentation scope of the tracer; the SDK's own span metrics
  (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``); the tracer configurator's "disabled".

What is not kept, and when the SDK path is used instead: span processors' ``on_start`` and
``_on_ending`` are not called, so the fast path is taken only while every processor registered
on the provider is one whose hooks do nothing (the SDK's Batch and Simple processors, or any
that does not override them); with any other processor (one that enriches spans at start, for
instance), a ``ConcurrentMultiSpanProcessor``, a tracer that is not the SDK's, or an SDK whose
internals are not the ones this module knows, every span goes through ``Tracer.start_span``
exactly as before. Processors added while a fast span is open see its ``_on_ending``, not its
``on_start``. The SDK serialises changes to a span with a lock per span; a ``LiveSpan`` keeps the
lock for ``end`` and the calls that check it, not for setting attributes: attributes set from
several threads at once while the span is full may count a dropped attribute differently. Code
reaching into the SDK span's private fields finds plain containers (``_attributes`` is a dict).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from otel_perf._internal.sdk.finished_spans import decider  # the SDK's own samplers, decided in place

_attributes_log = logging.getLogger("opentelemetry.attributes")  # the SDK's own loggers: same messages
_sdk_log = logging.getLogger("opentelemetry.sdk.trace")
_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED_RANDOM = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
_PLAIN = (str, int, float, bool, bytes, type(None))  # exact types the SDK keeps as they are (str: up to the limit)
# Hooks that do nothing: processors whose on_start and _on_ending are these need no live span.
_NOOP_ON_START = frozenset({SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start})
_NOOP_ON_ENDING = frozenset({SpanProcessor._on_ending, BatchSpanProcessor._on_ending,  # noqa: SLF001
                             SimpleSpanProcessor._on_ending})  # noqa: SLF001
_get_current_span = trace_api.get_current_span
_new_tuple = tuple.__new__
_new_object = object.__new__
_DEFAULT_TRACE_STATE = trace_api.DEFAULT_TRACE_STATE
_MAX_TRACE_ID = 2**128 - 1
_MAX_SPAN_ID = 2**64 - 1


def _quiet_hooks(processor: Any) -> bool:
    cls = type(processor)
    own = getattr(processor, "__dict__", {})  # hooks set on the instance itself count too
    return (getattr(cls, "on_start", None) in _NOOP_ON_START and "on_start" not in own
            and getattr(cls, "_on_ending", None) in _NOOP_ON_ENDING and "_on_ending" not in own)


class LiveSpans:
    """Start spans of one SDK tracer; ``start`` has the arguments and result of ``Tracer.start_span``
    (less links, record_exception and set_status_on_exception, which keep their defaults)."""

    def __init__(self, tracer: Any):
        self.tracer = tracer
        self._checked: tuple | None = None  # the processor tuple last found quiet
        try:
            usable = (type(tracer).start_span is sdk_trace.Tracer.start_span
                      and type(tracer.span_processor) is sdk_trace.SynchronousMultiSpanProcessor)
            self._processor = tracer.span_processor
            self._sampler = tracer.sampler
            self._decide = decider(self._sampler)
            tracer.id_generator  # noqa: B018
            self._limits = tracer._span_limits  # noqa: SLF001
            self._scope = tracer._instrumentation_scope  # noqa: SLF001
            self._info = tracer.instrumentation_info
            tracer._tracer_config.is_enabled  # noqa: B018, SLF001 - read per span: a configurator replaces it
            metrics = tracer._tracer_metrics  # noqa: SLF001
            self._metrics = None if type(metrics).__name__ == "NoOpTracerMetrics" else metrics
            self._processor._span_processors  # noqa: B018, SLF001
            self._attribute_limits = (self._limits.max_span_attributes, self._limits.max_span_attribute_length)
            # What every span of this tracer shares, as class attributes: fewer stores per span.
            self._class = type("LiveSpan", (LiveSpan,), {
                "_instrumentation_scope": self._scope, "_instrumentation_info": self._info,
                "_limits": self._limits, "_attribute_limits": self._attribute_limits, "_spans": self,
                "_span_processor": self._processor, "__module__": __name__, "__slots__": (),
            })
        except Exception:
            usable = False
        self.usable = usable

    def fast(self) -> bool:
        """Whether the next span can skip the SDK: the processors registered now have quiet hooks."""
        if not self.usable:
            return False
        processors = self._processor._span_processors  # noqa: SLF001 - a tuple, replaced on each add
        if processors is not self._checked:
            if not all(_quiet_hooks(p) for p in processors):
                return False
            self._checked = processors
        return self.tracer._tracer_config.is_enabled  # noqa: SLF001

    def start(self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL,
              attributes: Mapping[str, Any] | None = None, start_time: int | None = None) -> trace_api.Span:
        tracer = self.tracer
        if (not self.usable or self._processor._span_processors is not self._checked  # noqa: SLF001
                or not tracer._tracer_config.is_enabled):  # noqa: SLF001
            if not self.fast():
                return tracer.start_span(name, context, kind, attributes, start_time=start_time)
        parent = _get_current_span(context).get_span_context()
        if type(parent) is not SpanContext:  # the SDK raises for some; let it
            return tracer.start_span(name, context, kind, attributes, start_time=start_time)
        ids = tracer.id_generator
        if parent.is_valid:
            trace_id = parent.trace_id
            random = parent.trace_flags.random_trace_id
        else:
            parent = None
            trace_id = ids.generate_trace_id()
            random = ids.is_trace_id_random()
        sampler = tracer.sampler
        if sampler is not self._sampler:
            self._sampler, self._decide = sampler, decider(sampler)
        decided = self._decide(parent, trace_id) if self._decide is not None else None
        if decided is not None:  # what the SDK's own sampler returns, without the result objects
            decision, kept = decided
            sampled, recording = decision is _RECORD_AND_SAMPLE, decision is not _DROP
            trace_state = parent.trace_state if parent is not None else _DEFAULT_TRACE_STATE
            initial = attributes if kept else None
        else:
            result = sampler.should_sample(context, trace_id, name, kind, attributes, ())
            decision, trace_state, initial = result.decision, result.trace_state, result.attributes
            sampled, recording = decision.is_sampled(), decision.is_recording()
            if trace_state is None:
                trace_state = _DEFAULT_TRACE_STATE
        if sampled:
            flags = _SAMPLED_RANDOM if random else _SAMPLED
        else:
            flags = _NOT_SAMPLED_RANDOM if random else _NOT_SAMPLED
        span_id = ids.generate_span_id()
        # SpanContext(trace_id, span_id, False, flags, trace_state), built as its __new__ does
        span_context = _new_tuple(SpanContext, (trace_id, span_id, False, flags, trace_state,
                                                0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID))
        end_metrics = self._metrics.start_span(parent, decision) if self._metrics is not None else None
        if not recording:
            return NonRecordingSpan(span_context)
        span = _new_object(self._class)
        span._name = name
        span._context = span_context
        span._kind = kind
        span._parent = parent
        span._start_time = start_time if start_time is not None else time_ns()
        span._end_time = None
        span._status = _UNSET
        span._resource = tracer.resource
        span._record_end_metrics = end_metrics
        span._lock = threading.Lock()
        if initial:
            span._attributes = _plain_copy(initial, self._attribute_limits)
            if span._attributes is None:
                span._attributes = {}
                span._set_items(initial)
        else:
            span._attributes = {}
        return span


def _plain_copy(attributes: Mapping[str, Any], limits: tuple) -> dict | None:
    """A copy of ``attributes`` when the SDK would keep them as they are (valid keys, plain values
    within the length limit, room for all); None otherwise."""
    maxlen, max_value_len = limits
    if maxlen is not None and len(attributes) > maxlen:
        return None
    for key, value in attributes.items():
        if (type(key) is not str or not key or type(value) not in _PLAIN
                or (max_value_len is not None and type(value) is str and len(value) > max_value_len)):
            return None
    return dict(attributes)


_DROP = sampling.Decision.DROP
_RECORD_AND_SAMPLE = sampling.Decision.RECORD_AND_SAMPLE


class LiveSpan(sdk_trace.Span):
    """An SDK ``Span`` whose state is plain containers; made by ``LiveSpans.start`` only."""

    # Stored in slots, not in an instance dict; plus defaults shared by every instance until a
    # span needs its own (most never get events or links, nothing dropped).
    __slots__ = ("_name", "_context", "_kind", "_parent", "_start_time", "_end_time", "_status", "_resource",
                 "_record_end_metrics", "_lock", "_attributes")
    _events: Any = ()
    _links: Any = ()
    _dropped_attributes = 0
    _dropped_events = 0
    _dropped_links = 0
    _sampler = None
    _trace_config = None
    _record_exception = True
    _set_status_on_exception = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never called
        raise TypeError("LiveSpan is made by LiveSpans.start")

    # -- attributes: BoundedAttributes' semantics on a dict -----------------------------------------

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is not None:
            _sdk_log.warning("Setting attribute on ended span.")
            return
        self._set_items(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is not None:
            _sdk_log.warning("Setting attribute on ended span.")
            return
        maxlen, max_value_len = self._attribute_limits
        if maxlen == 0:
            self._dropped_attributes += 1
            return
        if not key or not isinstance(key, str):
            _attributes_log.warning("invalid key `%s`. must be non-empty string. Dropping key from attributes.", key)
            self._dropped_attributes += 1
            return
        if type(value) not in _PLAIN or (max_value_len is not None and type(value) is str
                                         and len(value) > max_value_len):
            value = _clean_attribute_value(value, max_value_len)
        self._put(key, value, maxlen)

    def _set_items(self, attributes: Mapping[str, Any]) -> None:
        maxlen, max_value_len = self._attribute_limits
        if maxlen == 0:
            self._dropped_attributes += len(attributes)
            return
        cleaned = attributes
        for key, value in attributes.items():
            if (type(key) is not str or not key or type(value) not in _PLAIN
                    or (max_value_len is not None and type(value) is str and len(value) > max_value_len)):
                # Anything unusual: the SDK's own cleaning of the whole mapping (keys made str,
                # invalid ones dropped, values truncated or converted), with its warnings.
                cleaned = _clean_attribute_value(attributes, max_value_len)
                self._dropped_attributes += len(attributes) - len(cleaned)
                break
        mine = self._attributes
        for key, value in cleaned.items():  # _put, inline
            if key in mine:
                del mine[key]
            elif maxlen is not None and len(mine) >= maxlen:
                self._put(key, value, maxlen)
                continue
            mine[key] = value

    def get_span_context(self) -> SpanContext:
        return self._context

    def update_name(self, name: str) -> None:  # the SDK's, without its decorator's extra call
        with self._lock:
            if self._end_time is None:
                self._name = name
                return
        _sdk_log.warning("Tried calling %s on an ended span.", "update_name")

    def _put(self, key: str, value: Any, maxlen: int | None) -> None:
        attributes = self._attributes
        if key in attributes:
            del attributes[key]  # a key set again moves to the end, as in the SDK
        elif maxlen is not None and len(attributes) >= maxlen:
            _attributes_log.warning(
                "Attributes dict is full. Dropping the oldest key-value pair from attributes to make space for "
                "the new key-value pair.",
            )
            del attributes[next(iter(attributes))]
            self._dropped_attributes += 1
        attributes[key] = value

    # -- events and links: BoundedList's semantics on a list (add_event, add_link: the SDK's) -------

    def _add_event(self, event: Any) -> None:
        with self._lock:
            if self._end_time is None:
                if self._events is LiveSpan._events:
                    self._events = []
                self._dropped_events += _append(self._events, event, self._limits.max_events)
                return
        _sdk_log.warning("Tried calling %s on an ended span.", "_add_event")

    def _add_link(self, link: Any) -> None:
        with self._lock:
            if self._end_time is None:
                if self._links is LiveSpan._links:
                    self._links = []
                self._dropped_links += _append(self._links, link, self._limits.max_links)
                return
        _sdk_log.warning("Tried calling %s on an ended span.", "_add_link")

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, start_time: int | None = None, parent_context: Any = None) -> None:
        _sdk_log.warning("Calling start() on a started span.")

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                _sdk_log.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
        if self._record_end_metrics is not None:
            self._record_end_metrics()
        processor = self._span_processor
        processors = processor._span_processors  # noqa: SLF001
        if processors is not self._spans._checked:  # one added meanwhile: the SDK's calls, in full
            processor._on_ending(self)  # noqa: SLF001
            processor.on_end(self._readable_span())
            return
        readable = self._readable_span()
        for each in processors:  # what SynchronousMultiSpanProcessor.on_end does
            each.on_end(readable)

    def _readable_span(self) -> ReadableSpan:
        events, links = self._events, self._links
        if self._dropped_attributes or self._dropped_events or self._dropped_links:
            span = _CountedReadableSpan(
                self._name, self._context, self._parent, self._resource, self._attributes, tuple(events),
                tuple(links), self._kind, self._instrumentation_info, self._status, self._start_time,
                self._end_time, self._instrumentation_scope,
            )
            span._counts = (self._dropped_attributes, self._dropped_events, self._dropped_links)
            return span
        return ReadableSpan(
            self._name, self._context, self._parent, self._resource, self._attributes,
            events if events is LiveSpan._events else tuple(events),
            links if links is LiveSpan._links else tuple(links),
            self._kind, self._instrumentation_info, self._status, self._start_time, self._end_time,
            self._instrumentation_scope,
        )


def _append(items: list, item: Any, maxlen: int | None) -> int:
    """Append as a ``BoundedList`` does (the oldest item goes when full); returns the number dropped."""
    if maxlen is None:
        items.append(item)
        return 0
    if maxlen == 0:
        return 1
    dropped = 0
    if len(items) >= maxlen:
        del items[0]
        dropped = 1
    items.append(item)
    return dropped


class _CountedReadableSpan(ReadableSpan):
    """A ReadableSpan of a span that dropped attributes, events or links: it reports the counts
    (the SDK's reads them off its bounded containers)."""

    _counts = (0, 0, 0)

    @property
    def dropped_attributes(self) -> int:
        return self._counts[0]

    @property
    def dropped_events(self) -> int:
        return self._counts[1]

    @property
    def dropped_links(self) -> int:
        return self._counts[2]
