"""Spans born finished: sampled, built and handed to the span processors in one step.

A database statement's span is only known once the statement is over (its name, its "slow"
attribute), so it is created with explicit start and end times and never attached as the current
context. The SDK's ``start_span`` + ``end`` would build a mutable span, clean every attribute,
take locks, then copy it into a ReadableSpan for the processors. ``FinishedSpans`` makes the
same decisions from the SDK Tracer's own parts and builds that ReadableSpan directly:

- a ``SpanTemplate`` holds what every span of one statement shares (name, kind, attributes after
  the span limits, status, scope); its OTLP encoding is prepared once, by the exporter, at the
  first export (``fast_otlp``), and a ``FinishedSpan`` (a ReadableSpan) points at it;
- the parent is the current span, as for ``start_span``; ids come from the tracer's id generator
  (``random.getrandbits`` called directly when it is the SDK's random generator, in the same
  order, so the same random state gives the same ids); trace flags carry the sampled and
  random-trace-id bits exactly as the SDK derives them;
- the sampler's decision: the SDK's samplers (``ParentBased``, ``TraceIdRatioBased``, the static
  ``ALWAYS_ON``/``ALWAYS_OFF``, ``AlwaysRecordSampler``, nested in any way) are decided here
  without building a ``SamplingResult`` (``tests/test_finished_spans.py`` checks the decision
  and trace state against ``should_sample`` over many generated samplers, parents and trace
  ids); any other sampler is called as the SDK calls it, and its attributes are the span's;
- span limits (``SpanLimits`` of the provider: attribute count and value length) are applied
  by the SDK's own ``BoundedAttributes``, once per template;
- a tracer disabled by the tracer configurator records nothing.

What is not kept, documented in docs/database.md: span processors' ``on_start`` and
``_on_ending`` are not called (there is no live span to enrich), and the SDK's internal span
metrics (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``) do not count these spans. A tracer that
is not the SDK's gets the regular API (``start_span`` + ``end``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    AlwaysRecordSampler,
    Decision,
    ParentBased,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import INVALID_SPAN, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

UNSET = Status(StatusCode.UNSET)
_new_tuple = tuple.__new__
_DROP, _RECORD_ONLY, _SAMPLE = Decision.DROP, Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE
_MAX_TRACE_ID, _MAX_SPAN_ID = (1 << 128) - 1, (1 << 64) - 1
# The trace flags the SDK gives a new span: sampled or not, random trace id or not.
_FLAGS = {(sampled, rand): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
                                      | (TraceFlags.RANDOM_TRACE_ID if rand else 0))
          for sampled in (False, True) for rand in (False, True)}
_FLAGS_BY_VALUE = [_FLAGS[bool(v & 1), bool(v & 2)] for v in range(4)]  # sampled 0x01 | random 0x02


# -- the current context without the API's layers ------------------------------------------------


def _context_getter() -> Callable[[], Any]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)  # the contextvars runtime context (the default)
    if var is not None and type(runtime).get_current.__qualname__ == "ContextVarsRuntimeContext.get_current":
        return var.get
    return otel_context.get_current


current_context = _context_getter()


def current_parent() -> SpanContext | None:
    """The span context of the current span when it is valid (what ``start_span`` calls the
    parent), else None."""
    span = current_context().get(_SPAN_KEY)
    if span is None or span is INVALID_SPAN or not isinstance(span, Span):
        return None
    parent = span.get_span_context()
    return parent if parent is not None and parent.is_valid else None


# -- span contexts -------------------------------------------------------------------------------


def _span_context_builder() -> Callable[[int, int, TraceFlags, Any], SpanContext]:
    """``SpanContext(trace_id, span_id, False, flags, trace_state)``: the tuple built directly
    when this API version lays it out as we expect (checked here), else the constructor."""
    new = tuple.__new__

    def direct(trace_id: int, span_id: int, flags: TraceFlags, trace_state: Any) -> SpanContext:
        valid = 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID
        return new(SpanContext, (trace_id, span_id, False, flags, trace_state or DEFAULT_TRACE_STATE, valid))

    def constructor(trace_id: int, span_id: int, flags: TraceFlags, trace_state: Any) -> SpanContext:
        return SpanContext(trace_id, span_id, False, flags, trace_state)

    try:
        for args in ((1, 2, _FLAGS[True, True], None), (0, 2, _FLAGS[False, False], None), (1 << 128, 1, _FLAGS[True, False], None)):
            a, b = direct(*args), constructor(*args)
            if a != b or type(a) is not type(b) or (a.trace_id, a.span_id, a.is_remote, a.trace_flags, a.trace_state,
                                                    a.is_valid) != (b.trace_id, b.span_id, b.is_remote, b.trace_flags,
                                                                    b.trace_state, b.is_valid):
                return constructor
    except Exception:
        return constructor
    return direct


span_context = _span_context_builder()


# -- sampling ------------------------------------------------------------------------------------

# What a decider returns: the decision, and whether the span keeps the attributes it was given
# (the SDK's samplers return none with a DROP, which AlwaysRecordSampler turns into RECORD_ONLY).
DROPPED = (_DROP, False)
RECORDED = (_RECORD_ONLY, True)
RECORDED_BARE = (_RECORD_ONLY, False)
SAMPLED = (_SAMPLE, True)
_STATIC = {_DROP: DROPPED, _RECORD_ONLY: RECORDED, _SAMPLE: SAMPLED}
Decider = Callable[[SpanContext | None, int], tuple[Decision, bool]]


def decider(sampler: Any) -> Decider | None:
    """A function (valid parent or None, trace id) -> (decision, attributes kept) giving what
    ``sampler.should_sample`` would give, for the SDK's own samplers; None for any other (or
    for SDK internals this module does not know). The trace state of these samplers' results
    is always the parent's."""
    try:
        kind = type(sampler)
        if kind is StaticSampler:
            result = _STATIC[sampler._decision]  # noqa: SLF001
            return lambda parent, trace_id: result
        if kind is TraceIdRatioBased:
            bound, limit = sampler.bound, TraceIdRatioBased.TRACE_ID_LIMIT
            if not isinstance(bound, int):
                return None
            return lambda parent, trace_id: SAMPLED if trace_id & limit < bound else DROPPED
        if kind is AlwaysRecordSampler:
            root = decider(sampler._root)  # noqa: SLF001
            if root is None:
                return None

            def always_record(parent: SpanContext | None, trace_id: int) -> tuple[Decision, bool]:
                result = root(parent, trace_id)
                if result[0] is _DROP:
                    return RECORDED if result[1] else RECORDED_BARE
                return result

            return always_record
        if kind is ParentBased:
            parts = [decider(getattr(sampler, name)) for name in (
                "_root", "_remote_parent_sampled", "_remote_parent_not_sampled", "_local_parent_sampled",
                "_local_parent_not_sampled")]
            if any(p is None for p in parts):
                return None
            root, remote_sampled, remote_not_sampled, local_sampled, local_not_sampled = parts

            def parent_based(parent: SpanContext | None, trace_id: int) -> tuple[Decision, bool]:
                if parent is None:
                    return root(parent, trace_id)
                if parent.is_remote:
                    if parent.trace_flags.sampled:
                        return remote_sampled(parent, trace_id)
                    return remote_not_sampled(parent, trace_id)
                if parent.trace_flags.sampled:
                    return local_sampled(parent, trace_id)
                return local_not_sampled(parent, trace_id)

            return parent_based
    except Exception:
        return None
    return None


def constant_table(sampler: Any) -> tuple | None:
    """The results of ``decider(sampler)`` for (no parent, remote sampled, remote not sampled,
    local sampled, local not sampled) parents when they depend on nothing else (static samplers,
    alone or under ParentBased); None otherwise."""
    def constant(s: Any) -> tuple | None:
        if type(s) is StaticSampler:
            return _STATIC.get(s._decision)  # noqa: SLF001
        if type(s) is AlwaysRecordSampler:
            inner = constant(s._root)  # noqa: SLF001
            if inner is None:
                return None
            return (RECORDED if inner[1] else RECORDED_BARE) if inner[0] is _DROP else inner
        return None

    try:
        if type(sampler) is ParentBased:
            table = tuple(constant(getattr(sampler, name)) for name in (
                "_root", "_remote_parent_sampled", "_remote_parent_not_sampled", "_local_parent_sampled",
                "_local_parent_not_sampled"))
            return None if None in table else table
        result = constant(sampler)
        return None if result is None else (result,) * 5
    except Exception:
        return None


# -- the spans -----------------------------------------------------------------------------------


class SpanTemplate:
    """What every span of one kind of operation shares. Never changed once built; ``otlp`` is
    the exporter's cache of its encoding (filled at the first export)."""

    __slots__ = ("name", "kind", "given", "attributes", "status", "scope", "info", "otlp")

    def __init__(self, name: str, kind: SpanKind, given: Any, attributes: Any, status: Status, scope: Any, info: Any):
        self.name = name
        self.kind = kind
        self.given = given  # the attributes as given: what a sampler is shown
        self.attributes = attributes  # after the span limits: the span's
        self.status = status
        self.scope = scope
        self.info = info
        self.otlp: Any = None


class FinishedSpan(ReadableSpan):
    """A ReadableSpan whose shared parts come from a ``SpanTemplate``: the same fields a
    ReadableSpan built by the SDK has (no events, no links)."""

    def __init__(self, template: SpanTemplate, context: SpanContext, parent: SpanContext | None, resource: Any,
                 start: int, end: int):  # noqa: D107 - ReadableSpan.__init__'s assignments, from the template
        self._name = template.name
        self._context = context
        self._kind = template.kind
        self._instrumentation_info = template.info
        self._instrumentation_scope = template.scope
        self._parent = parent
        self._start_time = start
        self._end_time = end
        self._attributes = template.attributes
        self._events = ()
        self._links = ()
        self._resource = resource
        self._status = template.status
        self._template = template


class FinishedSpans:
    """Build finished spans of one kind for one SDK tracer."""

    def __init__(self, tracer: Any, kind: SpanKind = SpanKind.CLIENT):
        self.tracer = tracer
        self.kind = kind
        self.fast = all(hasattr(tracer, a) for a in ("sampler", "resource", "span_processor", "id_generator"))
        self._hot = False
        self._limits = self.scope = self._info = None
        if not self.fast:
            return
        self._sampler = tracer.sampler
        self._decide = decider(self._sampler)
        generator = tracer.id_generator
        self._generator = generator
        self._random = type(generator) is RandomIdGenerator
        self._getrandbits = random.getrandbits
        self._limits = getattr(tracer, "_span_limits", None)
        self._config = getattr(tracer, "_tracer_config", None)
        self.scope = getattr(tracer, "_instrumentation_scope", None)
        self._info = getattr(tracer, "instrumentation_info", None)
        # emit's own path: a sampler whose decision depends only on the parent's kind, the SDK's
        # random ids, span contexts built directly; anything else goes through _start
        self._table = constant_table(self._sampler)
        self._hot = self._table is not None and self._random and span_context.__name__ == "direct"
        self._dispatched: tuple | None = None
        self._on_end_sampled: tuple = ()
        self._on_end_unsampled: tuple = ()

    # -- templates ------------------------------------------------------------------------------

    def bounded(self, attributes: Any) -> Any:
        """``attributes`` after the provider's span limits, as the SDK stores a span's."""
        limits = self._limits
        if limits is None:
            return dict(attributes)
        return BoundedAttributes(limits.max_span_attributes, attributes, immutable=True,
                                 max_value_len=limits.max_span_attribute_length)

    def template(self, name: str, attributes: Any, status: Status = UNSET) -> SpanTemplate:
        return SpanTemplate(name, self.kind, attributes, self.bounded(attributes), status, self.scope, self._info)

    # -- emitting -------------------------------------------------------------------------------

    def _start(self, name: str, attributes: Any, force_sample: bool) -> tuple | None:
        """Parent, trace id, span context and the sampler's attributes (None: as given) of a new
        span; None when it is not recorded."""
        tracer = self.tracer
        config = self._config
        if config is not None and not config.is_enabled:
            return None
        parent = current_parent()
        if parent is None:
            if self._random:
                trace_id = self._getrandbits(128) or self._generator.generate_trace_id()
                rand = True
            else:
                trace_id = self._generator.generate_trace_id()
                rand = self._generator.is_trace_id_random()
            trace_state = None
        else:
            trace_id = parent.trace_id
            rand = parent.trace_flags.random_trace_id
            trace_state = parent.trace_state
        sampler_attributes = None
        if force_sample:  # a slow statement is kept whatever the head sampler would say
            sampled = True
        else:
            decide = self._decide if tracer.sampler is self._sampler else None
            if decide is not None:
                decision, kept = decide(parent, trace_id)
                if not kept:
                    sampler_attributes = {}
            else:
                result = tracer.sampler.should_sample(None, trace_id, name, self.kind, attributes)
                decision, trace_state, sampler_attributes = result.decision, result.trace_state, result.attributes
            sampled = decision is _SAMPLE
        # the SDK draws the span id before it looks at the decision: so do we (the same ids follow)
        if self._random:
            span_id = self._getrandbits(64) or self._generator.generate_span_id()
        else:
            span_id = self._generator.generate_span_id()
        if not force_sample and not decision.is_recording():
            return None
        context = span_context(trace_id, span_id, _FLAGS[sampled, bool(rand)], trace_state)
        return parent, context, sampler_attributes

    def emit(self, template: SpanTemplate, start: int, end: int, force_sample: bool = False) -> SpanContext | None:
        """Record one span of ``template``; its span context, or None if it is not recorded."""
        tracer = self.tracer
        if not self._hot or force_sample or tracer.sampler is not self._sampler:
            return self._emit(template, start, end, force_sample)
        # _start and _emit, for a constant decision table and the SDK's random ids: the hot path
        config = self._config
        if config is not None and not config.is_enabled:
            return None
        parent = None if current_context().get(_SPAN_KEY) is None else current_parent()
        getrandbits = self._getrandbits
        if parent is None:
            decision, kept = self._table[0]
            trace_id = getrandbits(128) or self._generator.generate_trace_id()
            flags = 2  # the SDK's random ids: the random-trace-id flag
            trace_state = DEFAULT_TRACE_STATE
        else:
            parent_flags = parent.trace_flags
            decision, kept = self._table[(1 if parent_flags & 1 else 2) if parent.is_remote
                                         else (3 if parent_flags & 1 else 4)]
            trace_id = parent.trace_id
            flags = parent_flags & 2
            trace_state = parent.trace_state
        span_id = getrandbits(64) or self._generator.generate_span_id()  # drawn even for a dropped span, as the SDK does
        if decision is _DROP:
            return None
        context = _new_tuple(SpanContext, (trace_id, span_id, False, _FLAGS_BY_VALUE[flags | (decision is _SAMPLE)],
                                           trace_state, True))
        if kept:
            span: ReadableSpan = FinishedSpan(template, context, parent, tracer.resource, start, end)
        else:
            span = ReadableSpan(template.name, context, parent, tracer.resource, self.bounded({}), (), (),
                                template.kind, template.info, template.status, start, end, template.scope)
        processor = tracer.span_processor
        if type(processor) is SynchronousMultiSpanProcessor:
            processors = processor._span_processors  # noqa: SLF001 - replaced whole when one is added
            if processors is not self._dispatched:
                self._dispatch(processors)
            for on_end in self._on_end_sampled if decision is _SAMPLE else self._on_end_unsampled:
                on_end(span)
        else:
            processor.on_end(span)
        return context

    def _dispatch(self, processors: tuple) -> None:
        """What SynchronousMultiSpanProcessor.on_end calls, per sampled flag: a BatchSpanProcessor's
        on_end is its batch processor's ``emit`` for sampled spans, nothing for the others."""
        sampled, unsampled = [], []
        for processor in processors:
            batch = getattr(processor, "_batch_processor", None)
            if type(processor) is BatchSpanProcessor and callable(getattr(batch, "emit", None)):
                sampled.append(batch.emit)
            else:
                sampled.append(processor.on_end)
                unsampled.append(processor.on_end)
        self._on_end_sampled, self._on_end_unsampled = tuple(sampled), tuple(unsampled)
        self._dispatched = processors

    def _emit(self, template: SpanTemplate, start: int, end: int, force_sample: bool) -> SpanContext | None:
        if not self.fast:
            return self.emit_span(template.name, template.given, start, end, (), template.status, force_sample)
        started = self._start(template.name, template.given, force_sample)
        if started is None:
            return None
        parent, context, sampler_attributes = started
        tracer = self.tracer
        if sampler_attributes is not None:  # a sampler of its own: its attributes are the span's
            span: ReadableSpan = ReadableSpan(
                template.name, context, parent, tracer.resource, self.bounded(sampler_attributes), (), (),
                template.kind, template.info, template.status, start, end, template.scope)
        else:
            span = FinishedSpan(template, context, parent, tracer.resource, start, end)
        tracer.span_processor.on_end(span)
        return context

    def emit_span(self, name: str, attributes: Any, start: int, end: int, events: Sequence[Event] = (),
                  status: Status = UNSET, force_sample: bool = False) -> SpanContext | None:
        """Record one span built for this occasion (events, an error status...)."""
        if not self.fast:
            span = self.tracer.start_span(name, None, self.kind, attributes, start_time=start)
            for event in events:
                span.add_event(event.name, event.attributes, event.timestamp)
            if status.status_code is not StatusCode.UNSET:
                span.set_status(status)
            span.end(end_time=end)
            context = span.get_span_context()
            return context if context.is_valid and context.trace_flags.sampled else None
        started = self._start(name, attributes, force_sample)
        if started is None:
            return None
        parent, context, sampler_attributes = started
        tracer = self.tracer
        bounded = self.bounded(attributes if sampler_attributes is None else sampler_attributes)
        limits = self._limits
        if events and limits is not None:  # as Span.add_event keeps them
            kept = BoundedList(limits.max_events)
            for e in events:
                kept.append(Event(e.name, BoundedAttributes(limits.max_event_attributes, e.attributes, immutable=True,
                                                            max_value_len=limits.max_attribute_length), e.timestamp))
            events = kept
        tracer.span_processor.on_end(ReadableSpan(
            name, context, parent, tracer.resource, bounded, events, (), self.kind, self._info, status,
            start, end, self.scope))
        return context
