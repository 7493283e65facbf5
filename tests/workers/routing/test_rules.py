"""Loading and validating routing rules files, and the `wastatus rules` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from webhook.cli import main
from workers.routing.rules import Route, RulesError, load_rules
from workers.settings import parse_duration, read

RULES = Path(__file__).parents[2] / "fixtures" / "rules"
FIXTURES = RULES.parent


class TestLoadRules:
    def test_full_file(self):
        """Every setting of the example file lands in the routes, defaults included."""
        rules = load_rules(RULES / "full.yaml", read({"WASTATUS_RETRY_URL": "http://x"}))
        by_name = {route.name: route for route in rules.routes}
        assert list(by_name) == [
            "ignore-experiment", "japan-ops", "resend-transient", "marketing-window"
        ]  # fmt: skip
        jp = by_name["japan-ops"]
        assert jp.continue_ and jp.receivers == ("ops-jp",) and jp.group_by == ("waba_id", "code")
        assert (jp.group_wait, jp.group_interval, jp.repeat_interval) == (10, 120, 21600)
        resend = by_name["resend-transient"].retry
        assert (resend.attempts, resend.base_delay, resend.max_delay, resend.jitter) == (
            6, 5, 600, "equal"
        )  # fmt: skip
        assert by_name["marketing-window"].matcher_dict == {"code": [131049, 131026]}
        assert rules.silences[0]["until"] == "2030-01-01T00:00:00+00:00"
        assert rules.silences[0]["matchers"] == {
            "code": [131026], "phone_number_id": ["1234567890"]
        }  # fmt: skip
        assert [r["name"] for r in rules.receivers] == ["ops-jp", "marketing"]

    def test_bad_file_lists_every_problem_with_its_path(self):
        """Each mistake is reported with the path of its key, not just the first."""
        with pytest.raises(RulesError) as caught:
            load_rules(RULES / "bad.yaml", read({}))
        problems = "\n".join(caught.value.problems)
        for path in (
            "defaults.group_wiat: unknown key",
            "routes[0].matchers.severity: 'critcal'",
            "routes[0].matchers.colour: unknown matcher",
            "routes[1].action",
            "routes[2].receivers: only an alert route",
            "routes[3].retry.attempts",
            "routes[3].retry.base_delay",
            "silences[0].matchers.code",
            "silences[0].until",
        ):
            assert path in problems
        assert len(caught.value.problems) == 9

    def test_not_yaml(self, tmp_path):
        """A file that is not YAML is a RulesError, not a crash."""
        path = tmp_path / "r.yaml"
        path.write_text("routes: [\n")
        with pytest.raises(RulesError, match="not valid YAML"):
            load_rules(path, read({}))

    def test_defaults_from_settings(self):
        """Group timings and the retry schedule default from the environment."""
        env = {"WASTATUS_GROUP_WAIT": "0", "WASTATUS_GROUP_INTERVAL": "2m",
               "WASTATUS_REPEAT_INTERVAL": "1h", "WASTATUS_RETRY_ATTEMPTS": "2",
               "WASTATUS_RETRY_BASE_DELAY": "0.5", "WASTATUS_RETRY_URL": "http://x"}  # fmt: skip
        retry_route, alert_route = load_rules(None, read(env)).fallback
        assert (alert_route.group_wait, alert_route.group_interval) == (0, 120)
        assert alert_route.repeat_interval == 3600
        assert (retry_route.retry.attempts, retry_route.retry.base_delay) == (2, 0.5)

    def test_rules_from_env_var(self):
        """With no path, WASTATUS_RULES names the file."""
        rules = load_rules(None, read({"WASTATUS_RULES": str(RULES / "full.yaml")}))
        assert rules.source.endswith("full.yaml") and len(rules.routes) == 4

    def test_route_round_trips_through_json(self):
        """A route survives to_dict → JSON → from_dict (it travels in RQ job arguments)."""
        rules = load_rules(RULES / "full.yaml", read({"WASTATUS_RETRY_URL": "http://x"}))
        for route in rules.all_routes():
            assert Route.from_dict(json.loads(json.dumps(route.to_dict()))) == route

    @pytest.mark.parametrize(
        ("text", "seconds"), [("30s", 30), ("5m", 300), ("4h", 14400), ("1d", 86400), (2, 2)]
    )
    def test_durations(self, text, seconds):
        """Durations are numbers of seconds or have an s, m, h or d suffix."""
        assert parse_duration(text) == seconds


class TestRulesCommand:
    def test_check_valid(self):
        """`rules check` on a valid file exits 0 and lists its routes."""
        result = CliRunner().invoke(
            main,
            ["rules", "check", str(RULES / "full.yaml")],
            env={"WASTATUS_RETRY_URL": "http://127.0.0.1:9/r"},
        )
        assert result.exit_code == 0, result.output
        assert "japan-ops" in result.output

    def test_check_invalid_exits_1_with_paths(self):
        """`rules check` on a bad file exits 1 and names the bad keys."""
        result = CliRunner().invoke(main, ["rules", "check", str(RULES / "bad.yaml")])
        assert result.exit_code == 1
        assert "routes[1].action" in result.output

    def test_test_with_raw_webhook_payload(self):
        """`rules test` reads a raw Cloud webhook and prints each failure's routes as JSON."""
        result = CliRunner().invoke(
            main,
            ["rules", "test", str(RULES / "full.yaml"),
             str(FIXTURES / "cloud" / "batch_mixed.json"), "--json"],
            env={"WASTATUS_RETRY_URL": "http://127.0.0.1:9/r"},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        routed = {(item["code"], tuple(r["name"] for r in item["routes"]))
                  for item in json.loads(result.output)}  # fmt: skip
        assert (131000, ("resend-transient",)) in routed
        assert (131016, ("default",)) in routed  # value-level error: nothing to resend

    def test_test_with_normalized_event(self, tmp_path):
        """`rules test` also takes one normalized event."""
        event = {"kind": "status", "api": "cloud", "message_id": "m", "recipient_id": "8190",
                 "status": "failed", "errors": [{"code": 130472}]}  # fmt: skip
        path = tmp_path / "event.json"
        path.write_text(json.dumps(event))
        result = CliRunner().invoke(main, ["rules", "test", str(RULES / "full.yaml"), str(path)])
        assert result.exit_code == 0, result.output
        assert "ignore-experiment: drop" in result.output
