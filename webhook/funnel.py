"""The web process's tally of statuses for the delivery funnels, flushed in the background.

Counting every sent, delivered and read status in Redis would add a round trip to the nine in
ten webhooks that need none. The view adds each request's counts to this process's tally
instead (a dict update under a lock), and a daemon thread flushes the tally to Redis every
`WASTATUS_FUNNEL_FLUSH` (1 s) in one round trip (`workers.outcomes.funnels.flush`). On a clean
exit (SIGTERM under gunicorn or granian, or the end of a test) the tally is flushed once more,
so a restart loses nothing; a crash (SIGKILL, OOM) loses at most the last flush interval's
counts of that process. While Redis is down the tally is kept and flushed once it answers, up
to `PENDING_MAX` entries (then the oldest counts are dropped and counted in a metric).

With message tracking off, the same flush marks the sent and failed statuses it counts
(`workers.fates.marks`), so that a message that reported both counts once as a message
(`sent_failed`) for everyone; the request path only appends them to a list.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from multiprocessing import util as multiprocessing_util

import redis
from prometheus_client import Counter as PromCounter

from workers.fates import late, marks
from workers.outcomes import funnels, timelines
from workers.settings import Settings

logger = logging.getLogger(__name__)

PENDING_MAX = 100_000
"""Distinct tally entries kept while Redis is down (a few MB); beyond it counts are dropped."""

FLUSHES = PromCounter(
    "wastatus_funnel_flushes",
    "Flushes of a web process's funnel tally to Redis, by result (stored, failed).",
    ["result"],
)
DROPPED = PromCounter(
    "wastatus_funnel_dropped",
    "Funnel counts dropped because Redis was down for too long to keep them.",
)

WARN_EVERY = 60.0
"""Seconds between two warnings of failed flushes (the metric counts every one)."""

IDLE_FLUSHES = 60
"""Empty flush intervals after which the thread stops (the next status starts it again)."""

_live: weakref.WeakSet[Tally] = weakref.WeakSet()


class Tally:
    """This process's funnel counts since the last flush, and the thread that flushes them."""

    def __init__(self, settings: Settings, connect: Callable[[], redis.Redis]) -> None:
        self.settings = settings
        self._connect = connect
        self._counts: Counter = Counter()
        self._progressed: list[str] = []
        self._ended: list[tuple[int, list[tuple]]] = []  # (minute, a request's `ended`)
        self._ended_size = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._warned = -WARN_EVERY
        _live.add(self)

    def add(
        self,
        fates: Mapping[tuple, int],
        when: float,
        progressed: list[str] = (),
        ended: list[tuple] = (),
    ) -> None:
        """Count one request's statuses (`Reading.fates`) in the minute of `when`; keep the
        wamids that reported delivered, read or played (`Reading.progressed`) for the check
        against failures already alerted (`workers.fates.late`), and the sent and failed
        statuses (`Reading.ended`) to mark (`workers.fates.marks`)."""
        if not fates:
            return
        minute = int(when // 60)
        with self._lock:
            counts = self._counts
            for key, count in fates.items():
                counts[(minute, *key)] += count
            if progressed and len(self._progressed) < PENDING_MAX:
                self._progressed.extend(progressed)
            if ended and self._ended_size < PENDING_MAX:  # the list, not a copy: no work here
                self._ended.append((minute, ended))
                self._ended_size += len(ended)
            if self._thread is None or self._pid != os.getpid():
                self._start()

    def _start(self) -> None:
        # Lazily, in the process that serves: a thread started before a fork is not in the child.
        self._pid = os.getpid()
        _register_exit()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wastatus-funnel", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        idle = 0
        while not self._stop.wait(self.settings.funnel_flush):
            if self.pending() or self._progressed or self._ended:
                idle = 0
                self.flush()
                continue
            idle += 1
            with self._lock:  # an idle process (or a test's app) keeps no thread
                if idle >= IDLE_FLUSHES and not self._counts:
                    self._thread = None
                    return

    def flush(self) -> bool:
        """Store the counts gathered so far, check the wamids that progressed and mark those
        sent or failed, in one round trip (a second one counts the messages that now reported
        both, and those alerted as failed that progressed); on a Redis error keep what was not
        stored for the next flush."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            progressed, self._progressed = self._progressed, []
            ended, self._ended, self._ended_size = self._ended, [], 0
        if not counts and not progressed and not ended:
            return True
        settings = self.settings
        try:
            connection = self._connect()
            with connection.pipeline(transaction=False) as pipe:
                funnels.write(pipe, counts, settings.funnel_retention, settings.funnel_max_trackers)
                lookup = late.look_up(pipe, progressed)
                marking = marks.mark(
                    pipe,
                    [(minute, *item) for minute, items in ended for item in items],
                    settings.funnel_alert_window,
                    time.time(),
                )
                replies = pipe.execute()
        except Exception as error:  # a flush must never kill the thread
            self._failed(error)
            self._keep(counts, progressed, ended)
            return False
        # the marks are set: from here on a message that reported both is a count to store
        both = marks.counted(marking, replies[-len(marking.chunks) :]) if marking else Counter()
        if marking is not None:
            replies = replies[: -len(marking.chunks)]
        try:  # a second round trip only when a message reported both, or one alerted progressed
            if both:
                with connection.pipeline(transaction=False) as pipe:
                    funnels.write(
                        pipe, both, settings.funnel_retention, settings.funnel_max_trackers
                    )
                    pipe.execute()
                both = Counter()
            if lookup is not None:
                late.mark(connection, lookup, replies[-len(lookup.chunks) :])
        except Exception as error:  # the counts are stored: keep only what is left
            self._failed(error)
            self._keep(both, progressed)
            return False
        FLUSHES.labels("stored").inc()
        return True

    def _failed(self, error: Exception) -> None:
        FLUSHES.labels("failed").inc()
        if time.monotonic() - self._warned >= WARN_EVERY:  # not once a second in an outage
            self._warned = time.monotonic()
            logger.warning("funnel.flush_failed: %s", error)

    def _keep(self, counts: Counter, progressed: list[str], ended: list[tuple] = ()) -> None:
        with self._lock:
            if len(self._progressed) + len(progressed) <= PENDING_MAX:
                self._progressed[:0] = progressed
            size = sum(len(items) for _minute, items in ended)
            if ended and self._ended_size + size <= PENDING_MAX:
                self._ended[:0] = ended
                self._ended_size += size
            counts.update(self._counts)
            if len(counts) > PENDING_MAX:
                oldest = sorted(counts, key=lambda key: key[0])[: len(counts) - PENDING_MAX]
                DROPPED.inc(sum(counts.pop(key) for key in oldest))
            self._counts = counts

    def pending(self) -> int:
        """Statuses counted and not yet flushed."""
        with self._lock:
            return sum(self._counts.values())

    def close(self) -> None:
        """Stop the thread and flush what is left (on exit)."""
        self._stop.set()
        self.flush()


def count_once(fates: Counter, recorded: timelines.Recorded) -> None:
    """With message tracking on, correct a request's `fates` by what its timelines knew:
    statuses Meta delivered again are not counted twice, and a message that reported both
    sent and failed is counted once as a message (`sent_failed`)."""
    for _wamid, _timestamp, *fate in recorded.again:
        key = tuple(fate)
        fates[key] -= 1
        if fates[key] <= 0:
            del fates[key]
    for _wamid, _timestamp, _name, _code, *dimensions in recorded.both:
        fates[("sent_failed", None, *dimensions)] += 1


def stop_all() -> None:
    """Stop every tally's thread and drop what it holds (tests: no thread outlives its test)."""
    for tally in list(_live):
        tally._stop.set()
        with tally._lock:
            tally._counts, tally._progressed, tally._ended = Counter(), [], []
            tally._ended_size = 0


def flush_all() -> None:
    """Flush every tally of this process once; what an exiting process does."""
    for tally in list(_live):
        if tally._pid == os.getpid():
            tally.close()


_registered_in: int | None = None


def _register_exit() -> None:
    """Flush on this process's clean exit: atexit for gunicorn's workers (they leave with
    sys.exit), multiprocessing's exit functions for granian's (a multiprocessing child leaves
    with os._exit after running only those, and only those registered in it)."""
    global _registered_in
    if _registered_in == os.getpid():
        return
    _registered_in = os.getpid()
    done = threading.Event()

    def exit_once() -> None:
        if not done.is_set():
            done.set()
            flush_all()

    atexit.register(exit_once)
    multiprocessing_util.Finalize(None, exit_once, exitpriority=100)
