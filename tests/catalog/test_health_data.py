"""The health entries: schema, vocabularies, the issue's severities, unknown values, serving."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import catalog
from catalog import health
from catalog.store import CatalogError
from webhook.cli import main

ENTRIES = catalog.health_entries()


def _raw(entry: health.HealthEntry) -> dict:
    raw = entry.to_dict()
    raw.pop("known")
    return raw


class TestHealthData:
    def test_every_field_has_entries_and_each_entry_both_languages(self):
        """Each health field has entries, each with Japanese and English text."""
        assert {entry.field for entry in ENTRIES} == set(health.FIELDS)
        for entry in ENTRIES:
            for text in (entry.explanation, entry.action):
                assert text.ja.strip() and text.en.strip(), entry.key

    def test_every_entry_names_metas_page_for_its_field_first(self):
        """The first source of each entry is Meta's webhook reference page of its field."""
        for entry in ENTRIES:
            assert entry.source[0] == health.REFERENCE + entry.field, entry.key

    @pytest.mark.parametrize(
        "key",
        ["account_update/DISABLE", "account_update/SCHEDULE_FOR_DISABLE",
         "account_update/ACCOUNT_RESTRICTION"],
    )  # fmt: skip
    def test_a_ban_or_restriction_is_critical(self, key):
        """An account ban or restriction is critical."""
        assert catalog.health_lookup(*key.split("/")).severity == "critical"

    @pytest.mark.parametrize(
        "key",
        ["message_template_status_update/PAUSED", "message_template_status_update/DISABLED",
         "message_template_quality_update/RED", "phone_number_quality_update/FLAGGED",
         "security/PIN_RESET_REQUEST"],
    )  # fmt: skip
    def test_the_issues_problems_are_warnings_or_worse(self, key):
        """Paused or disabled templates, RED quality, a flagged number, a PIN reset alert."""
        entry = catalog.health_lookup(*key.split("/"))
        assert entry.known and entry.effect == "problem"
        assert entry.severity in ("warning", "error", "critical")

    @pytest.mark.parametrize(
        ("key", "effect"),
        [("account_update/VERIFIED_ACCOUNT", "benign"), ("account_update/PARTNER_ADDED", "benign"),
         ("message_template_status_update/APPROVED", "recovery"),
         ("message_template_quality_update/GREEN", "recovery"),
         ("message_template_status_update/REINSTATED", "recovery"),
         ("account_update/REINSTATE", "recovery"), ("phone_number_quality_update/UNFLAGGED",
                                                    "recovery")],
    )  # fmt: skip
    def test_benign_and_recovery_events_do_not_alert(self, key, effect):
        """Benign events and recoveries are info and never alert on their own."""
        entry = catalog.health_lookup(*key.split("/"))
        assert (entry.effect, entry.severity, entry.alerts) == (effect, "info", False)


class TestHealthValidation:
    def test_a_problem_marked_info_is_refused(self):
        """The loader refuses a problem with severity info (it would alert as nothing)."""
        raw = _raw(catalog.health_lookup("account_update", "DISABLE")) | {"severity": "info"}
        with pytest.raises(CatalogError, match="problem"):
            health._entry(raw, 0)

    def test_an_unknown_vocabulary_value_is_refused(self):
        """A category outside the catalog's vocabulary is refused, naming the entry."""
        raw = _raw(catalog.health_lookup("security", "PIN_CHANGED")) | {"category": "misc"}
        with pytest.raises(CatalogError, match="security/PIN_CHANGED"):
            health._entry(raw, 0)

    def test_a_source_not_starting_with_metas_page_is_refused(self):
        """An entry must rest on Meta's page of its field first."""
        raw = _raw(catalog.health_lookup("security", "PIN_CHANGED")) | {"source": ["x"]}
        with pytest.raises(CatalogError, match="source"):
            health._entry(raw, 0)


class TestUnknownHealthEvent:
    def test_an_unknown_value_of_a_known_field_carries_the_raw_value(self):
        """An unknown value gives the unknown health event entry with the value, alerting."""
        entry = catalog.health_lookup("account_update", "BRAND_NEW_EVENT")
        assert (entry.known, entry.event, entry.title) == (False, "BRAND_NEW_EVENT",
                                                          "Unknown health event")  # fmt: skip
        assert entry.alerts and entry.entity == "waba"

    def test_parse_key_takes_field_slash_event(self):
        """`field/EVENT` is read as a pair; an error code is not."""
        assert health.parse_key("account_update/disable") == ("account_update", "DISABLE")
        assert health.parse_key("131049") is None


class TestServing:
    def test_explain_prints_a_health_entry_as_json(self):
        """`wastatus explain field/EVENT --json` prints the health entry."""
        result = CliRunner().invoke(
            main, ["explain", "account_update/ACCOUNT_RESTRICTION", "--json"]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["severity"] == "critical"

    def test_explain_card_shows_both_languages(self):
        """The card is in the language asked for."""
        runner = CliRunner()
        ja = runner.invoke(main, ["explain", "security/PIN_RESET_REQUEST", "--lang", "ja"])
        en = runner.invoke(main, ["explain", "security/PIN_RESET_REQUEST", "--lang", "en"])
        assert "PIN" in ja.output and "乗っ取り" in ja.output
        assert "takeover" in en.output

    def test_catalog_endpoint_lists_and_shows_health_entries(self, client):
        """GET /catalog/health lists every entry; one entry and an unknown value answer 200."""
        listed = client.get("/catalog/health")
        assert listed.status_code == 200 and len(listed.json) == len(ENTRIES)
        one = client.get("/catalog/health/message_template_status_update/PAUSED")
        assert one.json["severity"] == "error" and one.json["known"] is True
        odd = client.get("/catalog/health/security/SOMETHING_NEW")
        assert odd.status_code == 200 and odd.json["known"] is False
        assert client.get("/catalog/health/nofield/X").status_code == 404
