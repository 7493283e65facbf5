"""`wastatus explain` and `wastatus catalog`: cards and tables for people, JSON for scripts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import catalog
from webhook.cli import main


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result

    return invoke


class TestExplainCommand:
    @pytest.mark.parametrize(
        ("code", "api"),
        [("131049", "cloud"), ("470", "on_premises"), ("131026", "cloud"), ("2060", "on_premises")],
    )
    def test_json_is_the_entry(self, run, code, api):
        """--json prints exactly the entry's dict."""
        data = json.loads(run("explain", code, "--json").output)

        assert data == catalog.lookup(int(code), api).to_dict()
        assert (data["api"], data["code"], data["known"]) == (api, int(code), True)

    def test_json_other_api_fallback(self, run):
        """A Cloud code asked for as On-Premises still explains the Cloud entry."""
        data = json.loads(run("explain", "131047", "--api", "on-premises", "--json").output)

        assert (data["api"], data["code"]) == ("cloud", 131047)

    def test_json_unknown_code(self, run):
        """An unknown code prints the best guess with known false, and exits 0."""
        data = json.loads(run("explain", "133999", "--json").output)

        assert (data["known"], data["category"]) == (False, "registration")

    def test_card_in_japanese(self, run):
        """The default card is Japanese and holds the explanation and the action."""
        output = run("explain", "131049").output

        assert "131049" in output and "説明" in output and "対応" in output
        assert "24時間以上あけて" in output

    def test_card_in_english(self, run):
        """--lang en gives English labels and text."""
        output = run("explain", "470", "--lang", "en").output

        assert "Action" in output and "message template" in output
        assert "cloud: 131047" in output

    def test_bad_api_is_refused(self):
        """An api outside the choices is a usage error (exit 2)."""
        result = CliRunner().invoke(main, ["explain", "470", "--api", "sms"])

        assert result.exit_code == 2


class TestCatalogCommand:
    def test_json_lists_entries(self, run):
        """--json prints a list of entry dicts, filtered by api and category."""
        data = json.loads(run("catalog", "--api", "cloud", "--category", "flow", "--json").output)

        assert [(e["api"], e["code"]) for e in data] == [("cloud", 132068), ("cloud", 132069)]

    def test_json_all(self, run):
        """Without filters, --json lists every entry of both apis."""
        data = json.loads(run("catalog", "--json").output)

        assert len(data) == len(catalog.entries())
        assert {e["api"] for e in data} == {"cloud", "on_premises"}

    def test_table(self, run):
        """The table shows the count and the codes of the selection."""
        output = run("catalog", "--api", "on-premises", "--category", "payment").output

        assert "1 codes" in output and "402" in output
