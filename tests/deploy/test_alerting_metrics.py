"""The families the alerting rules and the dashboard read that /metrics did not have before."""

from __future__ import annotations

import time

from tests.ops.conftest import Scrape, cloud_status
from workers.resend import schedule


class TestAlertingMetrics:
    """/metrics shows the resends waiting by state and how long webhooks took, by outcome."""

    def test_resends_waiting_by_state(self, client, redis):
        """wastatus_resends counts resends due now, due later and claimed by a sender."""
        now = time.time()
        redis.zadd(schedule.DUE, {"a": now - 5, "b": now - 1, "c": now + 3600})
        redis.zadd(schedule.INFLIGHT, {"d": now + 60})
        scrape = Scrape(client.get("/metrics").get_data(as_text=True))
        assert scrape.value("wastatus_resends", state="due") == 2
        assert scrape.value("wastatus_resends", state="later") == 1
        assert scrape.value("wastatus_resends", state="in_flight") == 1

    def test_webhook_latency_by_outcome(self, client, post):
        """Each webhook POST is timed once, under the outcome it was counted with."""

        def count(outcome: str) -> float:
            scrape = Scrape(client.get("/metrics").get_data(as_text=True))
            return scrape.value("wastatus_webhook_request_seconds_count", outcome=outcome)

        before = {outcome: count(outcome) for outcome in ("accepted", "unauthorized")}
        assert post.signed(cloud_status()).status_code == 200
        assert post.signed(cloud_status("delivered")).status_code == 200
        assert post.signed(cloud_status(), secret="wrong").status_code == 401
        assert count("accepted") - before["accepted"] == 2
        assert count("unauthorized") - before["unauthorized"] == 1
        scrape = Scrape(client.get("/metrics").get_data(as_text=True))
        assert scrape.value("wastatus_webhook_request_seconds_sum", outcome="accepted") > 0
