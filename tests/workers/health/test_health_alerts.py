"""Health events end to end: signed webhooks over loopback HTTP, a real RQ worker, a receiver."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import APP_SECRET, app_env, load_fixture
from tests.workers.alerting import drive, drive_for
from webhook import create_app
from webhook.signature import sign
from workers.alerting import text as alert_text
from workers.health import tracker
from workers.inbox import intake
from workers.outcomes import ledger

PROBLEMS = {
    "cloud/health_template_paused.json": ("message_template_status_update", "PAUSED", "error"),
    "cloud/health_template_disabled.json": ("message_template_status_update", "DISABLED", "error"),
    "cloud/health_template_rejected.json": ("message_template_status_update", "REJECTED", "error"),
    "cloud/health_template_quality_yellow.json": ("message_template_quality_update", "YELLOW",
                                                  "warning"),
    "cloud/health_template_category_scheduled.json": ("template_category_update",
                                                      "RECATEGORIZATION_SCHEDULED", "warning"),
    "cloud/health_number_flagged.json": ("phone_number_quality_update", "FLAGGED", "warning"),
    "cloud/health_number_downgrade.json": ("phone_number_quality_update", "DOWNGRADE", "warning"),
    "cloud/health_account_restriction.json": ("account_update", "ACCOUNT_RESTRICTION", "critical"),
    "cloud/health_account_disabled.json": ("account_update", "DISABLE", "critical"),
    "cloud/health_account_violation.json": ("account_update", "ACCOUNT_VIOLATION", "error"),
    "cloud/health_security_pin_reset.json": ("security", "PIN_RESET_REQUEST", "error"),
    "cloud/health_name_rejected.json": ("phone_number_name_update", "REJECTED", "error"),
    "cloud/health_account_alert.json": ("account_alerts",
                                        "INCREASED_CAPABILITIES_ELIGIBILITY_NEED_MORE_INFO",
                                        "warning"),
    "cloud/health_account_review_rejected.json": ("account_review_update", "REJECTED", "critical"),
}  # fmt: skip


@pytest.fixture
def served(redis_url, redis, receiver, monkeypatch):
    """The app on a threaded loopback HTTP server; alerts to the receiver, sent at once."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
    for name in ("WASTATUS_ALERT_URLS", "WASTATUS_RULES", "WASTATUS_RETRY_URL"):
        monkeypatch.delenv(name, raising=False)
    server = make_server("127.0.0.1", 0, create_app(app_env(redis_url)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def send(url: str, body: bytes | dict) -> dict:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    headers = {"X-Hub-Signature-256": sign(body, APP_SECRET)}
    reply = requests.post(f"{url}/webhook", data=body, headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def alerts_of(receiver) -> list[dict]:
    return [request.json() for request in receiver.requests]


def settle(redis, receiver, count: int) -> list[dict]:
    """Run the worker until `count` notifications arrived and the inbox is empty."""
    drive(redis, lambda: len(receiver.requests) >= count and redis.llen(intake.INBOX) == 0)
    return alerts_of(receiver)


class TestProblems:
    @pytest.mark.parametrize("name", sorted(PROBLEMS))
    def test_each_problem_is_alerted_once_with_ja_and_en(self, served, redis, receiver, name):
        """One notification of kind health naming field, event and entity, in both languages."""
        send(served, load_fixture(name))
        [alert] = settle(redis, receiver, 1)
        field, value, severity = PROBLEMS[name]
        assert (alert["kind"], alert["status"], alert["field"], alert["event"]) == (
            "health", "firing", field, value)  # fmt: skip
        item = alert["alerts"][0]
        assert item["severity"] == severity and item["known"] is True
        assert item["explanation"]["ja"] and item["explanation"]["en"]
        assert item["action"]["ja"] and item["action"]["en"]
        assert alert["entity"]["id"] and "previous" in alert and alert["current"]
        send(served, load_fixture(name))  # Meta's redelivery
        drive_for(redis, 0.5)
        assert len(receiver.requests) == 1

    def test_a_quality_drop_says_what_changed(self, served, redis, receiver):
        """GREEN → YELLOW is in the alert JSON and in the title for people."""
        send(served, load_fixture("cloud/health_template_quality_yellow.json"))
        [alert] = settle(redis, receiver, 1)
        assert (alert["previous"], alert["current"]) == (
            {"quality": "GREEN"},
            {"quality": "YELLOW"},
        )
        assert "GREEN → YELLOW" in alert["title"]
        assert "order_update (ja)" in alert_text.title(alert, "en")

    def test_a_tier_drop_says_from_and_to(self, served, redis, receiver):
        """A downgrade shows the tiers: tier 10K → tier 1K."""
        send(served, load_fixture("cloud/health_number_downgrade.json"))
        [alert] = settle(redis, receiver, 1)
        assert "tier 10K → tier 1K" in alert_text.title(alert, "en")

    def test_a_restriction_alert_gives_its_end_date(self, served, redis, receiver):
        """The restriction's end is in the item (`ends`) and in the text for people."""
        send(served, load_fixture("cloud/health_account_restriction.json"))
        [alert] = settle(redis, receiver, 1)
        assert alert["alerts"][0]["ends"] == "2027-12-28T13:20:00Z"
        assert "2027-12-28T13:20:00Z" in alert_text.body(alert, "ja")
        assert "RESTRICTED_BIZ_INITIATED_MESSAGING until 2027-12-28" in alert_text.body(alert, "en")

    def test_an_unknown_event_value_alerts_as_unknown_health_event(self, served, redis, receiver):
        """A value the catalog does not hold alerts with its raw value, known false."""
        send(served, load_fixture("cloud/health_unknown_event.json"))
        [alert] = settle(redis, receiver, 1)
        item = alert["alerts"][0]
        assert (item["title"], item["event"], item["known"]) == (
            "Unknown health event", "SOMETHING_NEW", False)  # fmt: skip
        assert "SOMETHING_NEW" in alert_text.body(alert, "en")


class TestBenign:
    def test_benign_events_alert_nothing_and_are_counted(self, served, redis, receiver):
        """VERIFIED_ACCOUNT, PARTNER_ADDED, APPROVED …: no notification, counts, dropped."""
        reply = send(served, load_fixture("cloud/health_benign_batch.json"))
        drive(redis, lambda: redis.llen(intake.INBOX) == 0)
        drive_for(redis, 0.5)
        assert receiver.requests == []
        counts = tracker.summary(redis)["events"]
        assert counts["account_update/VERIFIED_ACCOUNT"] == 1
        assert counts["message_template_status_update/APPROVED"] == 1
        assert reply["stored"] == 5
        assert ledger.summary(redis)["outcomes"]["dropped"] == 5

    def test_a_lowered_business_limit_alerts_with_both_limits(self, served, redis, receiver):
        """A capability update below the limit kept is LIMIT_DECREASED: 10000 → 2000."""
        send(served, load_fixture("cloud/health_benign_batch.json"))
        drive(redis, lambda: redis.llen(intake.INBOX) == 0)
        send(served, load_fixture("cloud/health_capability_lowered.json"))
        [alert] = settle(redis, receiver, 1)
        assert (alert["field"], alert["event"]) == ("business_capability_update", "LIMIT_DECREASED")
        key = "max_daily_conversations_per_business"
        assert (alert["previous"][key], alert["current"][key]) == ("10000", "2000")
        assert "10000 → 2000" in alert["title"]


class TestResolved:
    @pytest.mark.parametrize(
        ("problem", "recovery", "previous"),
        [("cloud/health_template_paused.json", "cloud/health_template_reinstated.json",
          {"status": "PAUSED", "category": "UTILITY"}),
         ("cloud/health_template_quality_yellow.json", "cloud/health_template_quality_green.json",
          {"quality": "YELLOW"}),
         ("cloud/health_number_flagged.json", "cloud/health_number_unflagged.json",
          {"tier": "TIER_10K", "flag": "FLAGGED"}),
         ("cloud/health_account_disabled.json", "cloud/health_account_reinstated.json",
          {"ban": "DISABLE"})],
    )  # fmt: skip
    def test_a_recovery_sends_resolved_for_the_open_alert(
        self, served, redis, receiver, problem, recovery, previous
    ):
        """Problem: firing; recovery: resolved, same group, saying what the state was."""
        send(served, load_fixture(problem))
        [firing] = settle(redis, receiver, 1)
        send(served, load_fixture(recovery))
        resolved = settle(redis, receiver, 2)[1]
        assert (resolved["status"], resolved["kind"]) == ("resolved", "health")
        assert resolved["group_key"] == firing["group_key"]
        assert resolved["previous"] == previous
        assert tracker.open_problems(redis) == []
        drive_for(redis, 0.5)
        assert len(receiver.requests) == 2

    def test_a_recovery_with_nothing_open_says_nothing(self, served, redis, receiver):
        """REINSTATED with no open problem is counted, not sent."""
        send(served, load_fixture("cloud/health_template_reinstated.json"))
        drive(redis, lambda: redis.llen(intake.INBOX) == 0)
        drive_for(redis, 0.5)
        assert receiver.requests == []

    def test_a_restriction_resolves_when_it_ends(self, served, redis, receiver):
        """The restriction's end passing sends resolved with RESTRICTION_EXPIRED."""
        body = json.loads(load_fixture("cloud/health_account_restriction.json"))
        end = int(time.time()) + 2
        for item in body["entry"][0]["changes"][0]["value"]["restriction_info"]:
            item["expiration"] = end
        send(served, body)
        [firing] = settle(redis, receiver, 1)
        assert firing["status"] == "firing"
        resolved = settle(redis, receiver, 2)[1]
        assert (resolved["status"], resolved["event"]) == ("resolved", "RESTRICTION_EXPIRED")
        assert time.time() >= end


class TestBatch:
    def test_several_fields_in_one_post_alert_each_and_join_the_failure(
        self, served, redis, receiver
    ):
        """Four problems and a 132015 failure: five notifications; the failure names the
        paused template; the benign PARTNER_ADDED alerts nothing."""
        send(served, load_fixture("cloud/health_batch_mixed.json"))
        found = settle(redis, receiver, 5)
        drive_for(redis, 0.5)
        assert len(receiver.requests) == 5
        kinds = sorted((a["kind"], a.get("event") or str(a["alerts"][0]["code"])) for a in found)
        assert kinds == [("failure", "132015"), ("health", "ACCOUNT_VIOLATION"),
                         ("health", "FLAGGED"), ("health", "PAUSED"),
                         ("health", "PIN_RESET_REQUEST")]  # fmt: skip
        [failure] = [a for a in found if a["kind"] == "failure"]
        assert failure["alerts"][0]["health"]["templates"][0]["name"] == "promo_nov"
        assert {a["group_key"] for a in found if a["kind"] == "health"}.__len__() == 4


class TestRules:
    def test_rules_route_and_silence_health_events_by_field_and_template(
        self, served, redis, receiver, tmp_path, monkeypatch
    ):
        """A route drops one template's events; a silence on field holds another back."""
        rules = tmp_path / "rules.yaml"
        rules.write_text(
            "routes:\n"
            "  - {matchers: {kind: health, template_name: order_update}, action: drop}\n"
            "silences:\n"
            "  - {matchers: {field: security}, until: 2099-01-01T00:00:00Z}\n"
        )
        monkeypatch.setenv("WASTATUS_RULES", str(rules))
        send(served, load_fixture("cloud/health_template_paused.json"))
        send(served, load_fixture("cloud/health_security_pin_reset.json"))
        send(served, load_fixture("cloud/health_number_flagged.json"))
        [alert] = settle(redis, receiver, 1)
        drive_for(redis, 0.5)
        assert len(receiver.requests) == 1 and alert["event"] == "FLAGGED"
        assert ledger.summary(redis)["outcomes"]["silenced"] == 1


class TestJoinedFailure:
    def test_a_131031_failure_carries_the_accounts_ban(self, served, redis, receiver):
        """After DISABLE, a failure with 131031 on that account names the ban in its alert."""
        send(served, load_fixture("cloud/health_account_disabled.json"))
        settle(redis, receiver, 1)
        failure = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1065"},
                "statuses": [{"id": "wamid.J1", "status": "failed", "timestamp": "1764400100",
                              "recipient_id": "819012345678",
                              "errors": [{"code": 131031, "title": "Account locked"}]}]}}]}],
        }  # fmt: skip
        send(served, failure)
        alert = settle(redis, receiver, 2)[1]
        assert alert["kind"] == "failure"
        assert alert["alerts"][0]["health"]["waba"]["ban"] == "DISABLE"


class TestAtAGlance:
    def test_health_status_and_metrics_show_the_open_problems(
        self, served, redis, receiver, monkeypatch
    ):
        """`wastatus health --json`, `status --json` and /metrics agree on what is open."""
        from click.testing import CliRunner
        from prometheus_client.parser import text_string_to_metric_families

        from webhook.cli import main

        send(served, load_fixture("cloud/health_template_paused.json"))
        send(served, load_fixture("cloud/health_account_restriction.json"))
        send(served, load_fixture("cloud/health_number_downgrade.json"))
        settle(redis, receiver, 3)

        result = CliRunner().invoke(main, ["health", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        states = {item["key"]: item["state"] for item in report["entities"]}
        assert states["template:1689556908129832"]["status"] == "PAUSED"
        assert states["phone_number:15550783881"]["tier"] == "TIER_1K"
        assert states["waba:102290129340398"]["restrictions"][0]["expiration"] == 1830000000
        assert [p["severity"] for p in report["open_problems"]] == ["critical", "error", "warning"]
        assert report["open_problems"][0]["ends"] == 1830000000
        people = CliRunner().invoke(main, ["health"], env={"COLUMNS": "300"})
        assert "account_update/ACCOUNT_RESTRICTION" in people.output

        status = json.loads(CliRunner().invoke(main, ["status", "--json"]).output)
        assert status["health"]["open"] == 3
        assert status["health"]["by_severity"] == {"critical": 1, "error": 1, "warning": 1}

        text = requests.get(f"{served}/metrics", timeout=10).text
        [family] = [f for f in text_string_to_metric_families(text)
                    if f.name == "wastatus_health_problems_open"]  # fmt: skip
        values = {(s.labels["field"], s.labels["severity"]): s.value for s in family.samples}
        assert values[("account_update", "critical")] == 1
        assert values[("message_template_status_update", "error")] == 1
        assert values[("phone_number_quality_update", "warning")] == 1
        assert values[("security", "error")] == 0
