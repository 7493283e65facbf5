"""`GET /metrics`: every wastatus metric in Prometheus' text format, whichever process counted it.

A scrape reaches one gunicorn worker, which answers for all of them and for the RQ workers:
* counters of this web server's processes: `MultiProcessCollector` over
  `PROMETHEUS_MULTIPROC_DIR` (set up by `webhook.gunicorn_conf`), or this process's own
  registry when that is unset (a single process: `flask run`, the tests);
* counters of the RQ workers, wherever they run: the totals they export to Redis;
* gauges read from Redis now (queue depths, inbox, quarantine, dead letters, open alert
  groups, silences, workers), so every scrape of every web server agrees.
Families with one name from several sources are summed. Redis trouble never fails a scrape:
`wastatus_redis_up` says 0 and the Redis-derived families are left out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import redis
from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from rq import Worker

from webhook import quarantine
from webhook.errors import error_response
from workers import backlog, metrics, storage
from workers.alerting import groups, silences
from workers.connection import RedisNotConfigured
from workers.health import tracker
from workers.inbox import intake
from workers.outcomes import deadletters

bp = Blueprint("metrics", __name__)

WEB_MARK_PREFIX = "web_"
"""`web_<pid>` in the multiprocess dir marks a gunicorn worker (written by `post_fork` in
`webhook.gunicorn_conf`, which cannot import this module: it must run before prometheus_client)."""
logger = logging.getLogger("wastatus.web")


def local_families() -> list[Metric]:
    """This web server's own metrics: all its gunicorn workers in multiprocess mode.

    Only the files of processes `webhook.gunicorn_conf` marked as its workers are read, when
    there are marks: an RQ worker started with the same directory exports through Redis too.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not (path and os.path.isdir(path)):
        return list(REGISTRY.collect())
    directory = Path(path)
    files = sorted(directory.glob("*.db"))
    marks = directory.glob(WEB_MARK_PREFIX + "*")
    web = {mark.name.removeprefix(WEB_MARK_PREFIX) for mark in marks}
    if web:
        files = [f for f in files if f.stem.rpartition("_")[2] in web]
    # a process that just started may have created its file but not sized it yet: an empty
    # file holds no values, and prometheus_client fails on it (a 500 for the scrape)
    files = [f for f in files if _sized(f)]
    return list(MultiProcessCollector.merge([str(f) for f in files], accumulate=True))


def _sized(file: Path) -> bool:
    try:
        return file.stat().st_size >= 8  # prometheus_client's header: bytes used, padding
    except FileNotFoundError:  # its process ended and removed it
        return False


def _queue_depths(connection: redis.Redis) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "wastatus_queue_jobs", "RQ jobs per queue and state, now.", labels=["queue", "state"]
    )
    for name, states in backlog.queue_states(connection).items():
        for state, count in states.items():
            family.add_metric([name, state], count)
    return family


def _resends(connection: redis.Redis) -> GaugeMetricFamily:
    # Resends are items, not RQ jobs: wastatus_queue_jobs cannot see a pile of them.
    family = GaugeMetricFamily(
        "wastatus_resends", "Resends waiting, by state: due now, due later, in flight "
        "(claimed by a sender).", labels=["state"]
    )  # fmt: skip
    for state, count in backlog.resends(connection).items():
        family.add_metric([state], count)
    return family


def _health_problems(connection: redis.Redis) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "wastatus_health_problems_open",
        "Open account, template and number health problems, by field and severity.",
        labels=["field", "severity"],
    )
    for (field, severity), count in tracker.open_counts(connection).items():
        family.add_metric([field, severity], count)
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def redis_families(connection: redis.Redis) -> Iterator[Metric]:
    """Gauges of what is in Redis now; raises RedisError."""
    yield _queue_depths(connection)
    yield _gauge("wastatus_inbox_events", "Failure events stored and not yet claimed by a "
                 "drain job.", connection.llen(intake.INBOX))  # fmt: skip
    yield _gauge("wastatus_inbox_oldest_event_age_seconds", "How long the oldest event in "
                 "the inbox has waited for a drain job (0 when none waits).",
                 intake.oldest_age(connection))  # fmt: skip
    yield _gauge("wastatus_quarantine_bytes", "Bytes of the quarantined bodies kept.",
                 quarantine.held_bytes(connection))  # fmt: skip
    yield from _memory_families(connection)
    yield _gauge("wastatus_inbox_claimed_batches", "Batches of events claimed by a drain job "
                 "and not yet finished.", backlog.claimed_batches(connection))  # fmt: skip
    yield _gauge("wastatus_quarantine_entries", "Authenticated webhooks kept because they failed "
                 "validation.", quarantine.size(connection))  # fmt: skip
    yield _gauge("wastatus_dead_letter_entries", "Dead letters waiting for a person.",
                 deadletters.count(connection))  # fmt: skip
    yield _gauge("wastatus_alert_groups_open", "Alert groups gathering or waiting to repeat.",
                 groups.open_group_count(connection))  # fmt: skip
    yield _gauge("wastatus_silences_active", "Silences in force now.",
                 len(silences.active(connection)))  # fmt: skip
    yield _health_problems(connection)
    yield _gauge("wastatus_rq_workers", "RQ workers registered on this Redis.",
                 Worker.count(connection=connection))  # fmt: skip
    yield _resends(connection)


def _memory_families(connection: redis.Redis) -> Iterator[Metric]:
    held = storage.memory(connection)
    yield _gauge("wastatus_redis_memory_used_bytes", "Memory Redis uses now.",
                 held["used_bytes"])  # fmt: skip
    yield _gauge("wastatus_redis_memory_max_bytes", "Redis' maxmemory (0: no limit); at it, "
                 "with noeviction, webhooks are answered 503.", held["max_bytes"])  # fmt: skip
    yield _gauge("wastatus_redis_keys", "Keys in the Redis database.", held["keys"])
    family = GaugeMetricFamily("wastatus_redis_key_bytes", "Memory of the wastatus keys that "
                               "grow with traffic, by key.", labels=["key"])  # fmt: skip
    for name, size in held["largest"].items():
        family.add_metric([name], size)
    yield family


SCOPES = ("all", "local", "shared")
"""`?scope=`: everything; this web server's own counters; or what every server reads alike."""


class ScrapeCollector:
    """What one scrape shows: local and exported counters summed, and the Redis gauges.

    `local` is what only this web server knows (its gunicorn workers' counters); `shared` is
    what every web server would report alike (worker counters exported to Redis, gauges read
    from Redis). With several web servers, scrape each with `local` and one with `shared`, so
    sums over instances count nothing twice.
    """

    def __init__(self, connection_factory, scope: str = "all") -> None:
        self.connection_factory = connection_factory
        self.scope = scope

    def collect(self) -> Iterator[Metric]:
        families = []
        if self.scope in ("all", "local"):
            families = metrics.not_exported(local_families())
        if self.scope == "local":
            yield from metrics.merge(families)
            return
        gauges: list[Metric] = []
        up = 1
        try:
            connection = self.connection_factory()
            families += metrics.exported_families(connection)
            gauges = list(redis_families(connection))
        except (redis.RedisError, RedisNotConfigured) as error:
            logger.warning("metrics.redis_unavailable: %s", error)
            up = 0
        yield from metrics.merge(families)
        yield from gauges
        yield _gauge("wastatus_redis_up", "1 if this scrape could read Redis, else 0.", up)


@bp.get("/metrics")
def scrape() -> Response | tuple[Response, int]:
    """The Prometheus exposition of the wastatus metrics in `?scope=` (default all)."""
    scope = request.args.get("scope", "all")
    if scope not in SCOPES:
        return error_response("bad-request", "scope must be one of: " + ", ".join(SCOPES))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(current_app.extensions["wastatus"].redis, scope))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Register `/metrics`."""
    app.register_blueprint(bp)
