"""Authenticated webhooks that fail validation: kept whole, answered 200, listed, replayed."""

import json

import pytest
from click.testing import CliRunner

from tests.conftest import load_fixture
from webhook import quarantine
from webhook.cli import main
from workers.inbox import intake


@pytest.fixture
def cli(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


class TestQuarantine:
    def test_an_invalid_status_is_quarantined_and_answered_200(self, post, redis):
        """An unknown status value: 200 with the problems, body kept whole, valid parts taken."""
        body = load_fixture("invalid/unknown_status.json")
        reply = post.signed(body)
        assert reply.status_code == 200
        assert reply.json["quarantined"]
        assert any(
            "exploded" in problem or "status" in problem for problem in reply.json["problems"]
        )
        assert reply.json["stored"] == 1  # the valid failure beside it is not held back
        [entry] = quarantine.entries(redis)
        assert entry.body == body
        assert entry.auth == "signature"

    def test_a_body_that_is_not_json_is_quarantined(self, post, redis):
        """Not JSON at all: kept with the reason, not retried forever by Meta."""
        body = load_fixture("invalid/not_json.txt")
        reply = post.with_token(body)
        assert reply.status_code == 200
        assert "not JSON" in reply.json["problems"][0]
        assert quarantine.entries(redis)[0].body == body

    def test_bad_timestamps_and_fractional_codes_are_rejected(self, post, redis):
        """Timestamps must be unix seconds and error codes whole numbers."""
        reply = post.with_token(load_fixture("invalid/bad_timestamp_and_code.json"))
        problems = " ".join(reply.json["problems"])
        assert "timestamp" in problems and "code" in problems
        assert redis.llen(intake.INBOX) == 0

    def test_a_json_body_of_another_shape_is_quarantined(self, post, redis):
        """A list, or an object of neither API, is authenticated but unknown."""
        assert post.signed(b"[1, 2, 3]").json["quarantined"]
        assert post.signed(b'{"hello": "world"}').json["quarantined"]
        assert quarantine.size(redis) == 2


class TestQuarantineCommands:
    def test_list_json_shows_each_entry(self, post, redis, cli):
        """`wastatus quarantine list --json` lists ids, reasons and sizes."""
        post.signed(b'{"hello": "world"}')
        result = cli("quarantine", "list", "--json")
        [entry] = json.loads(result.output)
        assert entry["problems"] and entry["size"] == len(b'{"hello": "world"}')

    def test_show_prints_the_body(self, post, redis, cli):
        """`show ID --json` returns the stored body as text."""
        post.signed(b'{"hello": "world"}')
        [entry] = quarantine.entries(redis)
        shown = json.loads(cli("quarantine", "show", entry.id, "--json").output)
        assert shown["body"] == '{"hello": "world"}'

    def test_replay_stores_a_fixed_body_and_drops_the_entry(self, post, redis, cli):
        """A body that reads correctly now is stored and leaves the quarantine."""
        body = load_fixture("cloud/failed_131049.json")
        entry_id = quarantine.put(redis, body, ["made up"], "signature", 1700000000.0)
        [result] = json.loads(cli("quarantine", "replay", entry_id, "--json").output)
        assert result == {
            "id": entry_id,
            "replayed": True,
            "stored": 1,
            "duplicates": 0,
            "problems": [],
        }
        assert quarantine.size(redis) == 0
        assert json.loads(redis.lindex(intake.INBOX, 0))["received_at"] == 1700000000.0

    def test_replay_keeps_a_still_invalid_body(self, post, redis, redis_url, monkeypatch):
        """Still invalid: it stays, the problems are shown, and the exit code says so."""
        monkeypatch.setenv("REDIS_URL", redis_url)
        post.signed(b'{"hello": "world"}')
        result = CliRunner().invoke(main, ["quarantine", "replay", "--all"])
        assert result.exit_code == 1
        assert "still invalid" in result.output
        assert quarantine.size(redis) == 1

    def test_replay_does_not_store_a_failure_twice(self, post, redis, cli):
        """The valid part was taken on arrival; replay finds it already seen."""
        post.signed(load_fixture("invalid/unknown_status.json"))
        [entry] = quarantine.entries(redis)
        fixed = entry.body.replace(b'"exploded"', b'"delivered"')
        entry_id = quarantine.put(redis, fixed, entry.problems, entry.auth, entry.received_at)
        [result] = json.loads(cli("quarantine", "replay", entry_id, "--json").output)
        assert (result["stored"], result["duplicates"]) == (0, 1)
        assert redis.llen(intake.INBOX) == 1
