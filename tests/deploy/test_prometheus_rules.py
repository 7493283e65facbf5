"""deploy/prometheus: the alerting rules pass `promtool check rules` and their unit tests."""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.conftest import DEPLOY, tool

RULES = DEPLOY / "prometheus" / "wastatus-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "wastatus-rules.test.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


class TestPrometheusRules:
    """The rules file is valid for Prometheus and behaves as its unit tests say."""

    def test_promtool_check_rules(self):
        """promtool parses every rule and its PromQL."""
        result = _promtool("check", "rules", str(RULES))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(_alert_names())} rules found" in result.stdout

    def test_promtool_test_rules(self):
        """Each bad day fires its alert with the expected labels and text; a healthy hour none."""
        result = _promtool("test", "rules", str(RULE_TESTS))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_alert_is_tested_firing_and_quiet(self):
        """A new rule without a unit test that fires it, and one that does not, fails here."""
        tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
        cases = [case for test in tests for case in test.get("alert_rule_test", [])]
        fired = {case["alertname"] for case in cases if case["exp_alerts"]}
        quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
        assert fired == _alert_names()
        assert quiet == _alert_names()

    def test_the_rules_file_is_not_tested_on_its_own_copy(self):
        """The unit tests load the shipped rules file, not a copy that could drift."""
        assert yaml.safe_load(RULE_TESTS.read_text())["rule_files"] == [RULES.name]
