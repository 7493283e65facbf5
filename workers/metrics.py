"""Prometheus metrics of the web app and the workers, every name prefixed `wastatus_`.

The web app's families are defined here; worker modules define their own next to the code
that counts. Two transports bring them all to one `GET /metrics`:

* gunicorn workers of one web server write into `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's
  multiprocess mode), read back by `MultiProcessCollector` at scrape time;
* RQ workers run anywhere and fork a process per job, so their counters would die with the
  job: after each job, `export` adds what the job counted to a Redis hash (HINCRBYFLOAT, one
  pipelined round trip), and the web app reads it back with `exported_families`.

Only counters and histograms travel through Redis (sums of deltas stay correct whatever the
number of workers); a gauge means "now" and is derived from Redis at scrape time instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric

PREFIX = "wastatus_"

EXPORT_KEY = "wastatus:metrics"
"""Hash: JSON `[sample name, {labels}]` -> total value, summed over every worker process."""

EXPORT_META_KEY = "wastatus:metrics:meta"
"""Hash: family name -> JSON `[type, help]`, so families show before their first sample."""

EXPORTED_TYPES = ("counter", "histogram", "summary")

WEBHOOK_REQUESTS = Counter(
    "wastatus_webhook_requests",
    "Webhook POSTs by outcome.",
    ["outcome"],
)
STATUSES = Counter(
    "wastatus_statuses",
    "Status updates received, by api and status.",
    ["api", "status"],
)
FIELDS_IGNORED = Counter(
    "wastatus_webhook_fields_ignored",
    "Webhook changes of fields other than messages, acknowledged and not processed.",
    ["field"],
)
QUARANTINE_DROPPED = Counter(
    "wastatus_quarantine_dropped",
    "Quarantined webhooks dropped, oldest first, to keep the quarantine within its bounds.",
)
EVENTS_STORED = Counter(
    "wastatus_events_stored",
    "Failure events stored for the workers, and duplicates not stored again.",
    ["result"],
)
WEBHOOK_SECONDS = Histogram(
    "wastatus_webhook_request_seconds",
    "Time the app took to answer a webhook POST, by outcome (as wastatus_webhook_requests).",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_SECONDS = Histogram(
    "wastatus_job_duration_seconds",
    "Time an RQ job ran, by queue, function and outcome (succeeded or failed).",
    ["queue", "function", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOB_WAIT_SECONDS = Histogram(
    "wastatus_job_wait_seconds",
    "Time an RQ job waited in its queue between enqueued and started, by queue.",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)

# What this process has already exported, per sample key; a forked job process inherits it.
_exported: dict[str, float] = {}
_exported_meta: set[str] = set()


def _sample_key(name: str, labels: dict[str, str]) -> str:
    return json.dumps([name, dict(sorted(labels.items()))], separators=(",", ":"))


def _own_families(registry: CollectorRegistry) -> Iterator[Metric]:
    for family in registry.collect():
        if family.name.startswith(PREFIX) and family.type in EXPORTED_TYPES:
            yield family


def export(connection: redis.Redis, registry: CollectorRegistry = REGISTRY) -> int:
    """Add what this process counted since its last export to Redis; returns samples sent.

    Called after every job by the worker (`workers.telemetry`); safe to call any time.
    """
    deltas: dict[str, float] = {}
    meta: dict[str, str] = {}
    current: dict[str, float] = {}
    for family in _own_families(registry):
        changed = False
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = _sample_key(sample.name, sample.labels)
            current[key] = sample.value
            delta = sample.value - _exported.get(key, 0.0)
            if delta:
                deltas[key] = delta
                changed = True
        # Sent with every change too, so a Redis that lost its data learns the family again.
        if changed or family.name not in _exported_meta:
            meta[family.name] = json.dumps([family.type, family.documentation])
    if not deltas and not meta:
        return 0
    pipe = connection.pipeline(transaction=False)
    if meta:
        pipe.hset(EXPORT_META_KEY, mapping=meta)
    for key, delta in deltas.items():
        pipe.hincrbyfloat(EXPORT_KEY, key, delta)
    pipe.execute()
    _exported.update(current)
    _exported_meta.update(meta)
    return len(deltas)


def exported_families(connection: redis.Redis) -> list[Metric]:
    """The families workers exported to Redis, with their totals; raises RedisError."""
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(EXPORT_META_KEY)
    pipe.hgetall(EXPORT_KEY)
    raw_meta, raw_values = pipe.execute()
    families: dict[str, Metric] = {}
    for name, doc in raw_meta.items():
        typ, documentation = json.loads(doc)
        families[name.decode()] = Metric(name.decode(), documentation, typ)
    for key, value in raw_values.items():
        sample_name, labels = json.loads(key)
        family = families.get(_family_name(sample_name, families))
        if family is not None:
            family.add_sample(sample_name, labels, float(value))
    return list(families.values())


def _family_name(sample_name: str, families: dict[str, Metric]) -> str:
    if sample_name in families:
        return sample_name
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample_name.endswith(suffix) and sample_name[: -len(suffix)] in families:
            return sample_name[: -len(suffix)]
    return sample_name


def not_exported(families: Iterable[Metric]) -> list[Metric]:
    """Local `families` less what this process already exported to Redis.

    A process that both serves /metrics and runs jobs (the tests; a `SimpleWorker` beside the
    app) would otherwise count its exported samples twice: locally and from Redis.
    """
    if not _exported:
        return list(families)
    adjusted = []
    for family in families:
        copy = Metric(family.name, family.documentation, family.type)
        for sample in family.samples:
            own = _exported.get(_sample_key(sample.name, sample.labels), 0.0)
            copy.add_sample(sample.name, sample.labels, sample.value - own)
        adjusted.append(copy)
    return adjusted


def merge(families: Iterable[Metric]) -> list[Metric]:
    """One family per name, samples with equal name and labels summed (several sources).

    `_created` samples are dropped: a sum of creation times means nothing.
    """
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    for family in families:
        target = merged.get(family.name)
        if target is None:
            target = merged[family.name] = Metric(family.name, family.documentation, family.type)
            values[family.name] = {}
        bucket = values[family.name]
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            bucket[key] = bucket.get(key, 0.0) + sample.value
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())
