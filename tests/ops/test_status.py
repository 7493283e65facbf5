"""`wastatus status [--json]` against a Redis populated through the real code paths."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

import catalog
from tests.conftest import work
from tests.fates import body, status
from tests.ops.conftest import cloud_status
from webhook.cli import main
from workers import queues
from workers.alerting import silences
from workers.outcomes import deadletters
from workers.resend import schedule
from workers.telemetry import Worker


@pytest.fixture
def cli_env(monkeypatch, redis_url, tmp_path):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "1h")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("WASTATUS_RULES", raising=False)
    monkeypatch.delenv("WASTATUS_LANG", raising=False)


@pytest.fixture
def populated(redis, post, cli_env):
    """3 × 131049 and 1 × 470 alerted, 131026 silenced, a quarantined body, a dead letter."""
    silences.add(redis, {"code": 131026}, time.time() + 3600, comment="known outage")
    for _ in range(3):
        assert post.signed(cloud_status(code=131049)).status_code == 200
    assert post.fixture("on_premises/failed_470.json").status_code == 200
    assert post.fixture("invalid/unknown_status.json").get_json()["quarantined"]
    work(redis)
    deadletters.put(redis, "alert", {"group_key": "g"}, "receiver down")
    worker = Worker([queues.get_queue(redis, name) for name in queues.ALL], connection=redis,
                    name="ops-test-worker")  # fmt: skip
    worker.register_birth()
    yield redis
    worker.register_death()


def status_json(*args: str) -> dict:
    result = CliRunner().invoke(main, ["status", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


class TestStatusJson:
    def test_failures_of_the_last_hour_come_with_their_explanation(self, populated):
        """Failures are counted by api and code, each explained from the catalog in ja and en."""
        by_code = {(row["api"], row["code"]): row for row in status_json()["failures"]["by_code"]}
        assert by_code[("cloud", 131049)]["count"] == 3
        assert by_code[("on_premises", 470)]["count"] == 1
        entry = catalog.lookup(131049, api="cloud")
        row = by_code[("cloud", 131049)]
        assert row["explanation"] == entry.to_dict()["explanation"]
        assert row["action"]["ja"] and row["action"]["en"]
        assert row["category"] == "policy" and row["retry"] == "after_delay"

    def test_alert_groups_silences_quarantine_and_dead_letters(self, populated):
        """Open groups with their counts, active silences, quarantine and dead-letter counts."""
        report = status_json()
        groups = {group["group_key"]: group for group in report["alert_groups"]}
        assert len(groups) == 2
        assert [g["count"] for g in groups.values() if "131049" in g["group_key"]] == [3]
        assert [s["matchers"] for s in report["silences"]] == [{"code": [131026]}]
        assert report["silences"][0]["silenced"] == 1
        assert report["quarantine"] == 1 and report["dead_letters"] == 1

    def test_queues_inbox_and_workers(self, populated):
        """Every queue by state, the inbox, and the registered workers with their state."""
        report = status_json()
        states = {queue["name"]: queue for queue in report["queues"]}
        assert set(states) == set(queues.ALL)
        assert states["wastatus-events"]["queued"] == 0
        assert states["wastatus-alerts"]["scheduled"] == 2  # one flush per open group
        assert report["inbox"] == {"waiting": 0, "claimed_batches": 0}
        assert [worker["name"] for worker in report["workers"]] == ["ops-test-worker"]
        assert report["workers"][0]["queues"] == list(queues.ALL)

    def test_resends_due_now_later_and_in_flight(self, redis, cli_env):
        """Waiting resends are counted by when they are due, and those a sender holds."""
        now = time.time()
        redis.zadd(schedule.DUE, {"a": now - 1, "b": now + 3600, "c": now + 86400})
        redis.zadd(schedule.INFLIGHT, {"d": now + 60})
        assert status_json()["resends"] == {"due": 1, "later": 2, "in_flight": 1}
        result = CliRunner().invoke(main, ["status"])
        assert "resends: 1 due now, 2 due later, 1 being sent" in result.output

    def test_window_is_configurable(self, populated):
        """--since sets the window reported with the failures."""
        assert status_json("--since", "24h")["failures"]["window_seconds"] == 86400

    def test_empty_redis_reports_zeros(self, redis, cli_env):
        """A fresh service reports no failures, groups, silences or workers, not an error."""
        report = status_json()
        assert report["failures"]["by_code"] == [] and report["alert_groups"] == []
        assert report["silences"] == [] and report["workers"] == []
        assert report["quarantine"] == report["dead_letters"] == 0


class TestStatusFunnel:
    """The last 24 hours' funnel: each status's count, the failure rate and the top codes."""

    @pytest.fixture
    def statuses(self, redis, post, client, cli_env):
        sent = [status(f"s{i}", "sent", tracker="sale") for i in range(6)]
        delivered = [status(f"s{i}", "delivered", tracker="sale") for i in range(4)]
        failed = [status(f"f{i}", "failed", tracker="sale", code=131049) for i in range(2)]
        failed.append(status("f9", "failed", code=131026))
        assert (
            post.signed(body(*sent, *delivered, status("s0", "read"), *failed)).status_code == 200
        )
        assert client.application.extensions["wastatus"].funnel.flush()
        return redis

    def test_json_carries_it(self, statuses):
        found = status_json()["funnel"]
        assert found["window_seconds"] == 86400
        assert {name: found[name] for name in ("sent", "delivered", "read", "failed")} == {
            "sent": 6, "delivered": 4, "read": 1, "failed": 3}  # fmt: skip
        assert found["messages"] == 9 and found["failure_rate"] == round(3 / 9, 4)
        assert [(row["code"], row["count"]) for row in found["codes"]] == [
            ("131049", 2), ("131026", 1)]  # fmt: skip
        assert found["codes"][0]["title"] == catalog.lookup(131049, api="cloud").title

    def test_one_message_sent_then_failed_is_one_message(self, redis, post, client, cli_env):
        """Its sent and its failed make one message, said in the singular."""
        sent, failed = status("m1", "sent"), status("m1", "failed", code=131049)
        assert post.signed(body(sent, failed)).status_code == 200
        assert client.application.extensions["wastatus"].funnel.flush()
        result = CliRunner().invoke(main, ["status"])
        assert "100.0% of 1 message failed" in result.output

    def test_people_get_a_line_and_the_codes(self, statuses):
        result = CliRunner().invoke(main, ["status"])
        assert "funnel, last 24 h: sent 6 · delivered 4 · read 1 · failed 3" in result.output
        assert "33.3% of 9 messages failed" in result.output
        assert "131049×2" in result.output

    def test_no_statuses_says_so(self, redis, cli_env):
        assert status_json()["funnel"]["messages"] == 0
        assert "funnel: no statuses in the last 24 h" in CliRunner().invoke(main, ["status"]).output


class TestStatusTables:
    def test_people_get_tables_with_the_explanation(self, populated):
        """The rich output names the codes, explains them in Japanese and ends with the counts."""
        result = CliRunner().invoke(main, ["status"])
        assert result.exit_code == 0, result.output
        assert "131049" in result.output and "470" in result.output
        assert catalog.lookup(131049, api="cloud").to_dict()["title"] in result.output
        assert "quarantine: 1" in result.output and "dead letters: 1" in result.output
        assert "ops-test-worker" in result.output and "known outage" in result.output

    def test_language_follows_wastatus_lang(self, populated, monkeypatch):
        """WASTATUS_LANG=en shows the English explanation."""
        monkeypatch.setenv("WASTATUS_LANG", "en")
        result = CliRunner().invoke(main, ["status"])
        english = catalog.lookup(131049, api="cloud").to_dict()["action"]["en"]
        assert english.split()[0] in result.output and "Do not resend" in result.output

    def test_says_when_no_worker_runs(self, redis, cli_env):
        """Without a worker the table says failures are stored but not processed."""
        result = CliRunner().invoke(main, ["status"])
        assert "no worker is running" in result.output

    def test_unreachable_redis_is_a_clear_error(self, monkeypatch, cli_env):
        """A Redis that does not answer ends the command with an error, not a traceback."""
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
        result = CliRunner().invoke(main, ["status", "--json"])
        assert result.exit_code == 1 and "cannot reach Redis" in result.output
