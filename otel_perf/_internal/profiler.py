"""Where a slow request's time went: stack samples taken only while a request is slow.

The request path pays for a dict insert and a call at its end (about a microsecond); no timer,
no signal, no tracing hook. It records the middleware's own frame; the sampler finds the request's
asyncio task from it only when the request is slow. One daemon thread sleeps while nothing is in flight; while requests
are in flight it wakes when the oldest could become slow, and samples only the requests that
have run longer than half the latency threshold, every ``profile_interval`` seconds:

- when the request's task is running (CPU work on the event loop, or a synchronous server
  thread), the stack of the thread serving it (``sys._current_frames()``);
- when it is suspended in a worker thread (Starlette's and FastAPI's ``def`` endpoints and
  ``run_in_threadpool``: anyio keeps the thread in a local of the awaiting frame), that thread's stack;
- otherwise (awaiting the database, a lock, a sleep), the task's coroutine chain: the sample then
  counts as *waiting* at that await.

Each sample is charged to the innermost frame of application code (not the standard library,
installed packages or otel-perf), marked ``(awaiting)`` when the request was waiting there. When the request ends slower than the threshold, the hottest
frames go on its span (event ``otel_perf.profile``) and into the summary per route; otherwise the
samples are dropped. Costs are bounded: at most ``MAX_PROFILED`` requests sampled at once,
``MAX_SAMPLES`` samples each, and the sampler sleeps long enough to spend at most ``BUDGET`` (1 %)
of the time sampling: when many requests are slow at once (an incident) it samples less often
rather than take more of the process. Work handed to a thread pool other than anyio's (``run_in_executor``)
shows as waiting at the await.
"""

from __future__ import annotations

import asyncio.tasks
import logging
import os
import sys
import threading
from collections import Counter
from time import perf_counter, sleep, thread_time
from typing import Any

log = logging.getLogger("otel_perf")
_get_ident = threading.get_ident
_getframe = sys._getframe

START_FRACTION = 0.5  # start sampling at half the threshold: the slow part is usually already running
MAX_PROFILED = 8  # requests sampled at once
MAX_SAMPLES = 2000  # per request
BUDGET = 0.01  # share of wall time the sampler may spend: it backs off when many requests are slow at once
TOP_FRAMES = 3
EVENT = "otel_perf.profile"
_OTEL_PERF = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_library: tuple[str, ...] | None = None


def _library_paths() -> tuple[str, ...]:
    """Where library code lives (read at the first label: sysconfig and its data are not loaded
    by a program that never profiles a request)."""
    global _library
    if _library is None:
        import sysconfig

        _library = tuple(sorted({os.path.abspath(p) + os.sep for p in (
            *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
            _OTEL_PERF, *(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))),
        )}))
    return _library


class Watch:
    """One request in flight, as the sampler sees it."""

    __slots__ = ("start", "thread", "frame", "task", "request", "samples", "waiting", "count")

    def __init__(self, start: float, thread: int, frame: Any, request: Any):
        self.start = start
        self.thread = thread
        self.frame = frame  # the middleware's frame: on the thread's stack while the request runs there
        self.task: Any = None  # its asyncio task, looked up by the sampler
        self.request = request
        self.samples: Counter[str] | None = None  # created by the first sample: most requests never get one
        self.waiting = 0
        self.count = 0


class Profiler:
    def __init__(self, threshold: float, interval: float, summary: Any = None):
        self.threshold = threshold
        self.start_after = threshold * START_FRACTION
        self.interval = interval
        self.summary = summary
        self.inflight: dict[int, Watch] = {}
        self.samples_taken = 0
        self._wake = threading.Event()
        self._idle = True
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- the request path ---------------------------------------------------------------------

    def begin(self, request: Any, start: float) -> None:
        """Watch ``request`` from ``start`` (a perf_counter reading); the caller calls ``end`` with it
        when it ends, before the span ends."""
        self.inflight[id(request)] = Watch(start, _get_ident(), _getframe(1), request)
        if self._idle:
            self._idle = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="otel-perf-profiler", daemon=True)
                self._thread.start()
            self._wake.set()

    def end(self, request: Any) -> None:
        watch = self.inflight.pop(id(request), None)
        if watch is None or not watch.count:
            return  # never sampled: the common case costs nothing more
        duration = perf_counter() - watch.start
        if duration <= self.threshold:
            return
        top = hottest(watch.samples, watch.count)
        request.span.add_event(EVENT, {
            "otel_perf.profile.samples": watch.count,
            "otel_perf.profile.waiting": round(watch.waiting / watch.count, 3),
            "otel_perf.profile.top": [f"{share:.0%} {frame}" for frame, share in top],
        })
        if top:
            request.span.set_attribute("otel_perf.profile.hot_frame", top[0][0])
        if self.summary is not None:
            self.summary.profile(f"{request.method} {request.route or '(unmatched)'}", watch.samples, watch.count,
                                 watch.waiting)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    # -- the sampler thread ---------------------------------------------------------------------

    def _run(self) -> None:
        quiet_since = None
        while not self._stopped:
            try:
                now = perf_counter()
                if not self.inflight:
                    # Idle only after a quiet spell: waking per request would cost every request a
                    # thread switch; under traffic this thread wakes about once per start_after instead.
                    if quiet_since is None:
                        quiet_since = now
                    if now - quiet_since < self.start_after:
                        sleep(self.start_after)
                        continue
                    self._idle = True
                    self._wake.clear()
                    if not self.inflight:
                        self._wake.wait()
                    quiet_since = None
                    continue
                quiet_since = None
                watches = list(self.inflight.values())
                due = [w for w in watches if now - w.start >= self.start_after and w.count < MAX_SAMPLES]
                if not due:
                    oldest = min(w.start for w in watches)
                    sleep(max(self.interval, self.start_after - (now - oldest)))
                    continue
                cpu = thread_time()  # CPU, not wall: waiting for the GIL costs the process nothing
                frames = sys._current_frames()
                for watch in due[:MAX_PROFILED]:
                    self._sample(watch, frames)
                del frames
                sleep(max(self.interval, (thread_time() - cpu) / BUDGET))
            except Exception:  # a request ending mid-sample, a frame gone: never stop the thread
                log.debug("otel-perf: profiler sample failed", exc_info=True)
                sleep(self.interval)

    def _sample(self, watch: Watch, frames: dict[int, Any]) -> None:
        stack = _thread_stack(frames.get(watch.thread), watch.frame)
        waiting = False
        if not stack:  # not running on its thread: suspended in a worker thread, or where it awaits
            if watch.task is None:
                watch.task = _find_task(watch.frame)
            if watch.task is not None:
                awaiting = _await_stack(watch.task.get_coro())
                worker = _worker_thread(awaiting)
                stack = _thread_stack(frames.get(worker.ident), None) if worker is not None else []
                if not stack:
                    stack, waiting = awaiting, True
        if not stack:
            return
        if watch.samples is None:
            watch.samples = Counter()
        watch.samples[_label(stack) + (" (awaiting)" if waiting else "")] += 1
        watch.waiting += waiting
        watch.count += 1
        self.samples_taken += 1


def _thread_stack(top: Any, root: Any) -> list[Any]:
    """Frames from ``top`` outwards; with ``root``, only when ``root`` is among them (up to it)."""
    stack = []
    frame = top
    while frame is not None:
        stack.append(frame)
        if frame is root:
            return stack
        frame = frame.f_back
    return [] if root is not None else stack


def _find_task(frame: Any) -> Any:
    """The asyncio task whose coroutine chain holds ``frame`` (None: not found, e.g. running now)."""
    for _ in range(3):
        try:  # the loop thread may add tasks meanwhile: retry, as asyncio.all_tasks() does
            candidates = [*getattr(asyncio.tasks, "_all_tasks", ()), *getattr(asyncio.tasks, "_eager_tasks", ())]
            break
        except RuntimeError:
            continue
    else:
        return None
    for task in candidates:
        coro, depth = task.get_coro(), 0
        while coro is not None and depth < 100:
            if getattr(coro, "cr_frame", None) is frame:
                return task
            coro, depth = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None), depth + 1
    return None


def _await_stack(coro: Any) -> list[Any]:
    """The suspended coroutine chain, innermost first."""
    stack = []
    while coro is not None and len(stack) < 200:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            stack.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    stack.reverse()
    return stack


def _worker_thread(awaiting: list[Any]) -> threading.Thread | None:
    """The worker thread anyio runs the request's function in (its ``worker`` local)."""
    for frame in awaiting[:8]:
        if frame.f_code.co_name == "run_sync_in_worker_thread":
            worker = frame.f_locals.get("worker")
            if isinstance(worker, threading.Thread) and worker.is_alive():
                return worker
    return None


def _label(stack: list[Any]) -> str:
    """The innermost application frame (else the innermost frame) as ``file.py:function``."""
    library = _library or _library_paths()
    for frame in stack:
        code = frame.f_code
        # comprehensions and lambdas are charged to the function that holds them
        if not code.co_filename.startswith(library) and code.co_filename[:1] != "<" and code.co_name[:1] != "<":
            return f"{os.path.basename(code.co_filename)}:{code.co_name}"
    code = stack[0].f_code
    return f"{os.path.basename(code.co_filename)}:{code.co_name}"


def hottest(samples: Counter[str], count: int, n: int = TOP_FRAMES) -> list[tuple[str, float]]:
    return [(frame, hits / count) for frame, hits in samples.most_common(n)] if count else []
