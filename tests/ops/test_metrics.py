"""/metrics after real requests and real jobs on a real Redis: every family, counted once."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from tests.conftest import Poster, app_env, drive, load_fixture, work
from tests.ops.conftest import Scrape, cloud_status
from webhook import create_app, quarantine
from workers import metrics
from workers.alerting import groups, silences
from workers.outcomes import deadletters


def _tokenless(client, body: dict):
    return client.post("/webhook", data=json.dumps(body), content_type="application/json")


class TestWebhookFamilies:
    def test_every_outcome_is_counted(self, client, post, scrape):
        """accepted, duplicate, quarantined, unauthorized and too_large each count their request."""
        before = scrape()
        failed = cloud_status()
        post.signed(failed)
        post.signed(failed)
        post.signed(cloud_status("delivered"))
        post.fixture("invalid/unknown_status.json")
        _tokenless(client, cloud_status())
        post.signed(b"x" * (5 * 1024 * 1024))
        after = scrape()
        name = "wastatus_webhook_requests_total"
        expected = {"accepted": 2, "duplicate": 1, "quarantined": 1, "unauthorized": 1,
                    "too_large": 1}  # fmt: skip
        for outcome, count in expected.items():
            assert after.value(name, outcome=outcome) - before.value(name, outcome=outcome) == (
                count
            ), outcome

    def test_unavailable_is_counted_when_redis_is_down(self, make_redis_server):
        """A failure that cannot be stored counts as unavailable; the scrape says Redis is down."""
        server = make_redis_server()
        client = create_app(app_env(server.url)).test_client()

        def count() -> float:
            text = client.get("/metrics").get_data(as_text=True)
            return Scrape(text).value("wastatus_webhook_requests_total", outcome="unavailable")

        before = count()
        server.stop()
        assert Poster(client).signed(cloud_status()).status_code == 503
        scrape = Scrape(client.get("/metrics").get_data(as_text=True))
        assert scrape.value("wastatus_redis_up") == 0
        assert scrape.value("wastatus_webhook_requests_total", outcome="unavailable") == before + 1

    def test_statuses_are_counted_by_api_and_status(self, post, scrape):
        """Every status in a batch counts under its api and status, failed or not."""
        before = scrape()
        post.fixture("cloud/batch_mixed.json")
        post.fixture("on_premises/sent.json")
        after = scrape()
        name = "wastatus_statuses_total"
        batch = json.loads(load_fixture("cloud/batch_mixed.json"))
        statuses = [s["status"] for e in batch["entry"] for c in e["changes"]
                    for s in c["value"].get("statuses", [])]  # fmt: skip
        for status in set(statuses):
            delta = after.value(name, api="cloud", status=status) - before.value(
                name, api="cloud", status=status
            )
            assert delta == statuses.count(status), status
        sent = after.value(name, api="on_premises", status="sent")
        assert sent - before.value(name, api="on_premises", status="sent") == 1


class TestWorkerFamilies:
    def test_failures_by_api_code_and_category_come_from_the_workers(self, redis, post, scrape):
        """Failures enriched by a worker show with api, code and the catalog's category."""
        before = scrape()
        post.signed(cloud_status(code=131049))
        post.signed(cloud_status(code=131049))
        post.fixture("on_premises/failed_470.json")
        work(redis)
        after = scrape()
        name = "wastatus_failures_total"
        labels = {"api": "cloud", "code": "131049", "category": "policy"}
        assert after.value(name, **labels) - before.value(name, **labels) == 2
        labels = {"api": "on_premises", "code": "470", "category": "policy"}
        assert after.value(name, **labels) - before.value(name, **labels) == 1

    def test_job_latency_is_observed_per_queue_and_function(self, redis, post, scrape):
        """Every job a worker runs lands in the duration and wait histograms."""
        before = scrape()
        post.signed(cloud_status())
        work(redis)
        after = scrape()
        labels = {"queue": "wastatus-events", "function": "workers.drain.drain_inbox",
                  "outcome": "succeeded"}  # fmt: skip
        name = "wastatus_job_duration_seconds_count"
        assert after.value(name, **labels) - before.value(name, **labels) >= 1
        wait = "wastatus_job_wait_seconds_count"
        queue = {"queue": "wastatus-events"}
        assert after.value(wait, **queue) > before.value(wait, **queue)
        assert after.has("wastatus_job_duration_seconds_bucket")

    def test_notifications_and_grouping_are_counted_by_receiver(
        self, redis, post, scrape, receiver, monkeypatch
    ):
        """Grouped events and a notification delivered to the webhook receiver are counted."""
        monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
        monkeypatch.delenv("WASTATUS_RETRY_URL", raising=False)
        before = scrape()
        post.signed(cloud_status(code=131049))
        post.signed(cloud_status(code=131049))
        drive(redis, lambda: len(receiver.requests) >= 1, timeout=20)
        after = scrape()

        def delta(name: str, **labels: str) -> float:
            return after.value(name, **labels) - before.value(name, **labels)

        assert delta("wastatus_alert_events_grouped_total") == 2
        assert delta("wastatus_alert_notifications_sent_total", receiver="webhook") == 1

    def test_failed_notifications_are_counted_by_receiver(
        self, redis, post, scrape, receiver, monkeypatch
    ):
        """A receiver answering 500 counts as a failed notification for that receiver."""
        from bench._receiver import Reply

        receiver.script(Reply(500), times=1)
        monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
        before = scrape()
        post.signed(cloud_status(code=131049))
        drive(redis, lambda: len(receiver.requests) >= 1, timeout=20)
        after = scrape()
        name = "wastatus_alert_notifications_failed_total"
        assert after.value(name, receiver="webhook") - before.value(name, receiver="webhook") >= 1

    def test_silenced_events_are_counted(self, redis, post, scrape, monkeypatch):
        """Events matched by a silence count as silenced, and the silence shows as active."""
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "1h")
        silence = silences.add(redis, {"code": 131049}, time.time() + 3600, comment="known")
        before = scrape()
        post.signed(cloud_status(code=131049))
        work(redis)
        after = scrape()
        name = "wastatus_alert_events_silenced_total"
        assert after.value(name) - before.value(name) == 1
        assert after.value("wastatus_silences_active") == 1
        assert silence["id"]

    def test_retries_are_counted_by_outcome(self, redis, post, scrape, receiver, monkeypatch):
        """A transient failure resent to the sender's endpoint counts as scheduled and delivered."""
        monkeypatch.setenv("WASTATUS_RETRY_URL", receiver.url + "/resend")
        monkeypatch.setenv("WASTATUS_RETRY_SECRET", "whsec_" + "QUJDREVGR0hJSktMTU5PUA==")
        before = scrape()
        post.signed(cloud_status(code=131043))
        drive(redis, lambda: len(receiver.requests) >= 1, timeout=20)
        after = scrape()
        name = "wastatus_retries_total"
        assert after.value(name, outcome="scheduled") - before.value(name, outcome="scheduled") == 1
        assert after.value(name, outcome="delivered") - before.value(name, outcome="delivered") == 1


class TestRedisGauges:
    def test_queue_depths_inbox_and_open_groups_are_read_from_redis(
        self, redis, post, scrape, monkeypatch
    ):
        """Gauges show what waits in Redis now: inbox, queues by state, open alert groups."""
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "1h")
        post.signed(cloud_status())
        post.signed(cloud_status())
        waiting = scrape()
        assert waiting.value("wastatus_inbox_events") == 2
        assert waiting.value("wastatus_queue_jobs", queue="wastatus-events", state="queued") == 1
        work(redis)
        worked = scrape()
        assert worked.value("wastatus_inbox_events") == 0
        assert worked.value("wastatus_queue_jobs", queue="wastatus-events", state="queued") == 0
        assert worked.value("wastatus_alert_groups_open") == len(groups.open_groups(redis)) == 1
        scheduled = worked.value("wastatus_queue_jobs", queue="wastatus-alerts", state="scheduled")
        assert scheduled == 1
        assert worked.value("wastatus_redis_up") == 1

    def test_quarantine_and_dead_letters_are_read_from_redis(self, redis, post, scrape):
        """Quarantined bodies and dead letters show as gauges, and dead letters as a counter."""
        before = scrape()
        post.fixture("invalid/unknown_status.json")
        deadletters.put(redis, "alert", {"group_key": "g"}, "receiver down")
        after = scrape()
        assert after.value("wastatus_quarantine_entries") == quarantine.size(redis) == 1
        assert after.value("wastatus_dead_letter_entries") == 1
        name = "wastatus_dead_letters_total"
        assert after.value(name, kind="alert") - before.value(name, kind="alert") == 1


class TestScopes:
    def test_local_scope_is_this_servers_counters_only(self, client, post):
        """?scope=local shows the web counters and reads nothing from Redis."""
        post.signed(cloud_status())
        scrape = Scrape(client.get("/metrics?scope=local").get_data(as_text=True))
        assert scrape.has("wastatus_webhook_requests_total")
        assert not scrape.has("wastatus_queue_jobs") and not scrape.has("wastatus_redis_up")

    def test_shared_scope_is_what_every_server_reads_alike(self, redis, client, post):
        """?scope=shared shows the Redis gauges and worker counters, not the web counters."""
        post.signed(cloud_status())
        before = Scrape(client.get("/metrics?scope=shared").get_data(as_text=True))
        assert before.value("wastatus_inbox_events") == 1 and before.value("wastatus_redis_up") == 1
        assert not before.has("wastatus_webhook_requests_total")
        work(redis)
        after = Scrape(client.get("/metrics?scope=shared").get_data(as_text=True))
        assert after.value("wastatus_failures_total", code="131049") == 1

    def test_unknown_scope_is_a_400(self, client):
        """Any other scope is refused with the JSON error shape."""
        response = client.get("/metrics?scope=everything")
        assert response.status_code == 400 and response.get_json()["error"] == "bad-request"


class TestExport:
    def test_export_sends_only_what_changed_since_the_last_export(self, redis):
        """Exporting twice adds each increment once to the totals in Redis."""
        registry = CollectorRegistry()
        hits = Counter("wastatus_test_hits", "Test hits.", ["kind"], registry=registry)
        hits.labels("a").inc(2)
        assert metrics.export(redis, registry) == 1
        assert metrics.export(redis, registry) == 0
        hits.labels("a").inc()
        hits.labels("b").inc()
        metrics.export(redis, registry)
        families = {f.name: f for f in metrics.exported_families(redis)}
        values = {s.labels["kind"]: s.value for s in families["wastatus_test_hits"].samples}
        assert values == {"a": 3.0, "b": 1.0}
        assert families["wastatus_test_hits"].type == "counter"

    def test_histograms_travel_with_their_buckets(self, redis):
        """An exported histogram keeps its type, buckets, count and sum."""
        registry = CollectorRegistry()
        seconds = Histogram("wastatus_test_seconds", "Test.", buckets=(1, 5), registry=registry)
        seconds.observe(0.5)
        seconds.observe(3)
        metrics.export(redis, registry)
        family = {f.name: f for f in metrics.exported_families(redis)}["wastatus_test_seconds"]
        samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
        assert family.type == "histogram"
        assert samples[("wastatus_test_seconds_bucket", "1.0")] == 1
        assert samples[("wastatus_test_seconds_bucket", "+Inf")] == 2
        assert samples[("wastatus_test_seconds_count", None)] == 2
        assert samples[("wastatus_test_seconds_sum", None)] == 3.5

    def test_merge_sums_samples_of_one_family_from_several_sources(self, redis):
        """Equal name and labels from two sources add up; _created samples are dropped."""
        one, two = CollectorRegistry(), CollectorRegistry()
        Counter("wastatus_test_merge", "T.", ["k"], registry=one).labels("x").inc(2)
        Counter("wastatus_test_merge", "T.", ["k"], registry=two).labels("x").inc(3)
        merged = metrics.merge([*one.collect(), *two.collect()])
        assert len(merged) == 1
        assert [(s.name, s.value) for s in merged[0].samples] == [("wastatus_test_merge_total", 5)]

    @pytest.mark.parametrize("family", ["wastatus_failures", "wastatus_retries",
                                        "wastatus_alert_notifications_sent",
                                        "wastatus_alert_notifications_failed",
                                        "wastatus_alert_events_grouped",
                                        "wastatus_alert_events_silenced",
                                        "wastatus_dead_letters",
                                        "wastatus_job_duration_seconds"])  # fmt: skip
    def test_worker_families_show_once_a_worker_has_run(self, redis, post, scrape, family):
        """After one worker run, each worker family is announced even before its first sample."""
        post.signed(cloud_status())
        work(redis)
        assert family in scrape().families
