"""The chaos harness (bench/chaos.py): its traffic means what it says, and a short run balances.

The smoke run starts its own Redis, gunicorn, workers and receivers on 127.0.0.1 and takes
about 25 s (under the 40 s that keeps it in the normal test run); `python -m bench.chaos
--duration 60` is the longer run with every fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench._traffic import Traffic
from workers.inbox import intake

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def traffic_app(redis, redis_url):
    """The web app with the harness's own secret and token."""
    from bench import chaos
    from tests.conftest import app_env
    from webhook import create_app

    app = create_app(
        app_env(redis_url, WASTATUS_APP_SECRET=chaos.SECRET, WASTATUS_ONPREM_TOKEN=chaos.TOKEN)
    )
    return app.test_client()


class TestTraffic:
    def test_expected_event_ids_are_the_ones_the_webhook_stores(self, traffic_app, redis):
        """Every delivery the harness expects events from stores exactly those event ids."""
        traffic = Traffic("chaos-app-secret", "chaos-onprem-token", seed=7)
        for kind in ("failed", "onprem_failed", "batch"):
            redis.flushdb()
            send = getattr(traffic, "_" + kind)()
            reply = traffic_app.post("/webhook", data=send.body, headers=send.headers)
            assert reply.status_code == 200, (kind, reply.get_json())
            stored = [json.loads(item)["event_id"] for item in redis.lrange(intake.INBOX, 0, -1)]
            assert sorted(stored) == sorted(send.expects), kind

    def test_unauthenticated_deliveries_are_refused(self, traffic_app):
        """Each unauthenticated variant (no signature, wrong secret, wrong token) gets 401."""
        traffic = Traffic("chaos-app-secret", "chaos-onprem-token", seed=3)
        answers = set()
        for _ in range(12):
            send = traffic._unauthenticated()
            answers.add(
                traffic_app.post("/webhook", data=send.body, headers=send.headers).status_code
            )
        assert answers == {401}

    def test_malformed_deliveries_are_quarantined_without_events(self, traffic_app, redis):
        """A malformed delivery is answered 200, stores no event and is quarantined."""
        traffic = Traffic("chaos-app-secret", "chaos-onprem-token", seed=5)
        for _ in range(8):
            send = traffic._malformed()
            reply = traffic_app.post("/webhook", data=send.body, headers=send.headers)
            assert reply.status_code == 200
            assert reply.get_json().get("quarantined")
        assert redis.llen(intake.INBOX) == 0


class TestSmokeRun:
    @pytest.mark.timeout(150)
    def test_short_run_with_faults_balances(self):
        """A 15 s run with failing receivers and a worker killed mid-drain balances its ledger."""
        command = [
            sys.executable,
            "-m",
            "bench.chaos",
            "--plan",
            "smoke",
            "--duration",
            "15",
            "--rate",
            "20",
            "--drain-timeout",
            "60",
            "--json",
            "--quiet",
        ]
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=140)
        report = json.loads(finished.stdout)
        failed = [check for check in report["checks"] if not check["passed"]]
        assert failed == [], failed
        assert report["balanced"] and finished.returncode == 0
        assert report["ledger"]["failed_statuses_answered_200"] > 0
        assert (
            sum(report["ledger"]["outcomes"].values())
            == report["ledger"]["failed_statuses_answered_200"]
        )
        assert {fault["fault"] for fault in report["faults"]} >= {
            "alert-receiver-500",
            "kill-drain-worker",
            "resend-429",
        }
