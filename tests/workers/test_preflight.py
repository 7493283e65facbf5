"""The delivery check: what `wastatus rules check` reports and `wastatus worker` refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from webhook.cli import main
from workers import preflight
from workers.routing.rules import parse_rules, route_defaults
from workers.settings import read

RETRY_URL = {"WASTATUS_RETRY_URL": "http://127.0.0.1:9/resend"}


def rules_of(document: dict, env: dict[str, str]):
    settings = read(env)
    return parse_rules(document, "rules.yaml", route_defaults(settings), bool(settings.retry_url))


def problems(document: dict, env: dict[str, str] | None = None) -> list[str]:
    env = env or {}
    return preflight.problems(rules_of(document, env), read(env))


class TestProblems:
    """`preflight.problems` names each thing that would stop a notification or a resend."""

    def test_good_rules_have_none(self):
        """Known receivers, parseable Apprise URLs and a resend URL: nothing to report."""
        document = {
            "receivers": [{"name": "ops", "type": "apprise", "urls": ["json://127.0.0.1/a"]},
                          {"name": "hook", "type": "webhook", "url": "https://ops.example/a"}],
            "routes": [{"name": "page", "action": "alert", "receivers": ["ops", "hook", "log"],
                        "matchers": {"code": 131049}},
                       {"name": "again", "action": "retry", "matchers": {"code": 131000}}],
        }  # fmt: skip
        assert problems(document, RETRY_URL) == []

    def test_a_misspelt_receiver_is_named_with_the_known_ones(self):
        """A route naming a receiver nobody defined is reported with its route and the names."""
        document = {
            "receivers": [{"name": "ops", "type": "log"}],
            "routes": [{"name": "page", "action": "alert", "receivers": ["opps"]}],
        }
        [problem] = problems(document)
        assert problem.startswith("routes[0] (page).receivers: no receiver named 'opps'")
        assert "known: log, ops" in problem

    def test_a_misspelt_default_receiver_is_caught_on_the_built_in_route(self):
        """`defaults.receivers` reaches the built-in alert route, so a typo there is caught."""
        [problem] = problems({"defaults": {"receivers": ["slak"]}})
        assert "built-in route default" in problem and "'slak'" in problem

    def test_receivers_from_the_settings_count_as_known(self):
        """`webhook` and `apprise` exist when their variables are set, not otherwise."""
        document = {"routes": [{"name": "page", "action": "alert", "receivers": ["webhook"]}]}
        assert problems(document, {"WASTATUS_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/a"}) == []
        assert "no receiver named 'webhook'" in problems(document)[0]

    def test_an_apprise_url_apprise_cannot_parse_is_reported_without_the_url(self):
        """Apprise itself decides; the problem says which URL by position, not its secret."""
        env = {"WASTATUS_ALERT_URLS": "json://127.0.0.1/ok, nosuchscheme://hunter2"}
        document = {
            "receivers": [
                {
                    "name": "chat",
                    "type": "apprise",
                    "urls": ["slack://hunter3", "json://127.0.0.1/ok"],
                }
            ]
        }
        found = problems(document, env)
        assert found == [
            "receiver apprise: URL 2 is not one Apprise understands",
            "receiver chat: URL 1 is not one Apprise understands",
        ]

    def test_a_retry_route_without_a_resend_url(self):
        """A retry route with no WASTATUS_RETRY_URL would alert instead: reported."""
        document = {"routes": [{"name": "again", "action": "retry", "matchers": {"code": 131000}}]}
        [problem] = problems(document)
        assert problem.startswith("routes[0] (again): a retry route")
        assert "WASTATUS_RETRY_URL" in problem
        assert problems(document, RETRY_URL) == []

    def test_bad_receiver_entries_and_non_http_webhooks(self):
        """A receiver entry that cannot be made, or a webhook without an http(s) URL."""
        document = {
            "receivers": [
                {"name": "x", "type": "pager"},
                {"name": "y", "type": "webhook", "url": "ftp://a/b"},
            ]
        }
        found = problems(document)
        assert found[0].startswith("receivers[0]: receiver x: type must be one of")
        assert found[1] == "receiver y: its url is not an http(s) URL"


def _file(tmp_path: Path, document: dict) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(document))
    return str(path)


TYPO = {"routes": [{"name": "page", "action": "alert", "receivers": ["opps"]}]}


class TestRulesCheckCommand:
    """`wastatus rules check` exits 0 fine, 1 with problems, 2 when it cannot read."""

    def test_a_typo_exits_1_naming_it(self, tmp_path):
        """A route's unknown receiver fails the check: exit 1, the problem on stderr."""
        result = CliRunner().invoke(main, ["rules", "check", _file(tmp_path, TYPO)])
        assert result.exit_code == 1
        assert "no receiver named 'opps'" in result.output

    def test_unreadable_files_exit_2(self, tmp_path):
        """A missing file or one that is not YAML exits 2."""
        missing = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "none.yaml")])
        assert missing.exit_code == 2 and "cannot read" in missing.output
        (tmp_path / "broken.yaml").write_text("routes: [\n")
        broken = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "broken.yaml")])
        assert broken.exit_code == 2 and "not valid YAML" in broken.output

    def test_unreadable_settings_exit_2(self, tmp_path):
        """A bad setting stops the command before the rules are read."""
        result = CliRunner().invoke(main, ["rules", "check", _file(tmp_path, {})],
                                    env={"WASTATUS_REPEAT_INTERVAL": "0"})  # fmt: skip
        assert result.exit_code == 2 and "WASTATUS_REPEAT_INTERVAL='0'" in result.output

    def test_a_repeat_interval_of_zero_in_the_file_is_out_of_range(self, tmp_path):
        """A rules file's durations share the settings' ranges: 0 would notify in a loop."""
        document = {"defaults": {"repeat_interval": "0s"}}
        result = CliRunner().invoke(main, ["rules", "check", _file(tmp_path, document)])
        assert result.exit_code == 1
        assert "defaults.repeat_interval: '0s' is out of range; use 1m to 30d" in result.output


class TestWorkerRefusesUndeliverableRules:
    """`wastatus worker` does not start on rules that fail the check."""

    def test_exit_2_with_the_problem_and_no_traceback(self, tmp_path, redis_url):
        """A worker whose rules name an unknown receiver exits 2 at once, naming it."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("WASTATUS_")}  # fmt: skip
        env.update({"REDIS_URL": redis_url, "WASTATUS_RULES": _file(tmp_path, TYPO)})
        done = subprocess.run([str(Path(sys.executable).parent / "wastatus"), "worker", "--burst"],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "no receiver named 'opps'" in done.stderr and "Traceback" not in done.stderr
