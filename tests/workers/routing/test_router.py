"""The routing decision as a table of plain-data cases (no Redis, no clock)."""

from __future__ import annotations

import pytest

from workers.inbox.enrich import enrich
from workers.routing.router import matches, route
from workers.routing.rules import load_rules, parse_rules, route_defaults
from workers.settings import read

ENV_RETRY = {"WASTATUS_RETRY_URL": "http://127.0.0.1:9/resend"}


def failed(code, api="cloud", recipient="818012345678", message_id="wamid.1", **extra) -> dict:
    event = {
        "event_id": f"e-{code}-{recipient}",
        "kind": "status" if message_id else "error",
        "api": api,
        "phone_number_id": "1111",
        "waba_id": "2222",
        "message_id": message_id,
        "recipient_id": recipient,
        "status": "failed",
        "errors": [{"code": code, "title": "t"}] if code is not None else [],
        **extra,
    }
    return enrich(event)


def rules_of(document: dict, env: dict | None = None):
    env = env or {}
    return parse_rules(
        document, "test", route_defaults(read(env)), bool(env.get("WASTATUS_RETRY_URL"))
    )


def names(event, rules) -> list[str]:
    return [chosen.name for chosen in route(event, rules)]


TABLE = {
    "routes": [
        {"name": "drop-experiment", "matchers": {"code": 130472}, "action": "drop"},
        {
            "name": "jp-critical",
            "matchers": {"recipient_prefix": "81", "severity": ["critical", "error"]},
            "action": "alert",
            "receivers": ["ops-jp"],
            "continue": True,
        },
        {"name": "resend", "matchers": {"category": "transient"}, "action": "retry"},
        {"name": "payment", "matchers": {"category": "payment"}, "action": "alert"},
        {"name": "onprem", "matchers": {"api": "on-premises"}, "action": "alert"},
    ]
}


class TestRouteTable:
    @pytest.mark.parametrize(
        ("event", "expected"),
        [
            (failed(130472), ["drop-experiment"]),  # first match wins
            (failed(131042), ["jp-critical", "payment"]),  # continue, then the next match
            (failed(131042, recipient="14155550100"), ["payment"]),  # prefix does not match
            (failed(131000), ["resend"]),  # transient, resend on
            (failed(131047, recipient="14155550100"), ["default"]),  # nothing: fallback alert
            (failed(470, api="on_premises", recipient="1415"), ["onprem"]),  # api alias
        ],
    )
    def test_table(self, event, expected):
        """Each event takes the routes the table says, in order."""
        assert names(event, rules_of(TABLE, ENV_RETRY)) == expected

    def test_continue_alone_stops_at_the_fallback(self):
        """An event only a `continue` route took does not also go to the fallback."""
        event = failed(131047)  # 81…, severity error, no other route
        assert names(event, rules_of(TABLE, ENV_RETRY)) == ["jp-critical"]

    def test_retry_alerts_when_no_resend_url(self):
        """Without WASTATUS_RETRY_URL a retry route sends the event to the default alert."""
        taken = route(failed(131000, recipient="1415"), rules_of(TABLE, {}))
        assert [(r.name, r.action) for r in taken] == [("default", "alert")]

    def test_retry_alerts_without_a_message(self):
        """A failure with no message (value-level error) cannot be resent, so it alerts."""
        taken = route(failed(131000, message_id=None), rules_of(TABLE, ENV_RETRY))
        assert [r.action for r in taken] == ["alert"]


class TestBuiltinRoutes:
    def test_transient_codes_resend(self):
        """With a resend URL and no file, codes the catalog says can be resent go to retry."""
        rules = load_rules(None, read(ENV_RETRY))
        for code in (131000, 131016, 1014, 131049, 130429):
            assert [r.action for r in route(failed(code), rules)] == ["retry"], code

    def test_permanent_codes_alert(self):
        """Codes that resending cannot fix alert."""
        rules = load_rules(None, read(ENV_RETRY))
        for code in (131047, 131026, 100, None):
            assert [r.action for r in route(failed(code), rules)] == ["alert"], code

    def test_everything_alerts_without_resend_url(self):
        """Zero configuration and no resend endpoint: every failure alerts."""
        rules = load_rules(None, read({}))
        assert [r.action for r in route(failed(131000), rules)] == ["alert"]

    def test_unmatched_events_in_a_file_follow_the_builtins(self):
        """A file's routes are exceptions: what none takes is resent or alerted as built in."""
        rules = rules_of({"routes": [{"matchers": {"code": 1}, "action": "drop"}]}, ENV_RETRY)
        assert [r.name for r in route(failed(131000), rules)] == ["retry-transient"]


class TestMatches:
    @pytest.mark.parametrize(
        ("matchers", "expected"),
        [
            ({}, True),
            ({"code": [131049, 131026]}, True),
            ({"code": [131026]}, False),
            ({"recipient_prefix": ["1", "81"]}, True),
            ({"recipient_prefix": ["818"], "status": "failed"}, True),
            ({"phone_number_id": "1111", "waba_id": "9"}, False),
            ({"retry": "after_delay", "category": "policy"}, True),
        ],
    )
    def test_every_matcher_must_hold_and_lists_are_any_of(self, matchers, expected):
        """All matchers must hold; a list of values matches any one of them."""
        assert matches(matchers, failed(131049)) is expected

    def test_recipient_prefix_ignores_plus(self):
        """A recipient written with a leading + still matches its country prefix."""
        assert matches({"recipient_prefix": "81"}, failed(131049, recipient="+81901"))
