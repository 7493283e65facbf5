"""lookup() and explain(): known codes, the other api, guesses for unknown codes, webhook text."""

from __future__ import annotations

import json

import pytest

import catalog

FIELDS = {
    "api", "code", "title", "category", "severity", "retry", "explanation", "action",
    "equivalent", "deprecated", "href", "known", "confidence", "doubt",
}  # fmt: skip


class TestLookupKnown:
    @pytest.mark.parametrize("api", ["cloud", "on-premises", "on_premises", "ON-PREMISES", None])
    def test_api_spellings(self, api):
        """Every accepted api spelling finds the same On-Premises entry for 470."""
        entry = catalog.lookup(470, api)

        assert (entry.api, entry.code, entry.known) == ("on_premises", 470, True)

    @pytest.mark.parametrize(
        "code", [131049, "131049", " 131049 ", "131049: Meta chose not", 131049.0]
    )
    def test_code_forms(self, code):
        """Ints, numeric strings, floats and 'code: title' strings all find the entry."""
        entry = catalog.lookup(code, "cloud")

        assert (entry.code, entry.known) == (131049, True)

    def test_same_object_each_time(self):
        """Known entries are built once and shared (lookups stay cheap)."""
        assert catalog.lookup(131026) is catalog.lookup("131026", "cloud")

    def test_entries_are_frozen(self):
        """An entry cannot be changed by one caller under another's feet."""
        with pytest.raises(AttributeError):
            catalog.lookup(131026).title = "changed"  # type: ignore[misc]

    def test_unknown_api_raises(self):
        """A misspelt api is a caller bug and raises ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="on-premises"):
            catalog.lookup(131026, "whatsapp")

    @pytest.mark.parametrize("api", [5, ["cloud"], ""])
    def test_non_string_api_raises(self, api):
        """An api that is not a known name, of whatever type, raises ValueError too."""
        with pytest.raises(ValueError, match="unknown api"):
            catalog.lookup(131026, api)  # type: ignore[arg-type]


class TestLookupOtherApi:
    def test_cloud_code_in_on_premises_payload(self):
        """A Cloud code asked for as On-Premises answers with the Cloud entry, known."""
        entry = catalog.lookup(131047, "on-premises")

        assert (entry.api, entry.code, entry.known) == ("cloud", 131047, True)

    def test_on_premises_code_asked_as_cloud(self):
        """An On-Premises code asked for as Cloud answers with the On-Premises entry."""
        entry = catalog.lookup(1026, "cloud")

        assert (entry.api, entry.code, entry.known) == ("on_premises", 1026, True)


class TestLookupUnknown:
    @pytest.mark.parametrize(
        ("code", "api", "category"),
        [
            (131999, "cloud", "unknown"),
            (132999, "cloud", "template"),
            (133999, "cloud", "registration"),
            (130999, "cloud", "policy"),
            (499, "on_premises", "unknown"),
            (599, "on_premises", "transient"),
            (2059, "on_premises", "template"),
            (2099, "on_premises", "flow"),
        ],
    )
    def test_guess_by_range(self, code, api, category):
        """Unknown codes get a best-guess entry from their range, marked known=False."""
        entry = catalog.lookup(code)

        assert (entry.api, entry.code, entry.known, entry.category) == (api, code, False, category)
        assert entry.confidence == "low" and entry.doubt
        assert entry.explanation.ja and entry.explanation.en

    @pytest.mark.parametrize("code", ["abc", None, "", -5, True, 1.5, [], {}, "12abc"])
    def test_garbage_never_raises(self, code):
        """Garbage codes give the generic unknown entry with no code, not an exception."""
        entry = catalog.lookup(code)  # type: ignore[arg-type]

        assert (entry.code, entry.known, entry.category) == (None, False, "unknown")
        assert entry.retry.policy == "never"

    def test_out_of_every_range(self):
        """A number no range covers keeps its code and the requested api."""
        entry = catalog.lookup(987654321, "on_premises")

        assert (entry.api, entry.code, entry.known) == ("on_premises", 987654321, False)

    def test_graph_permission_range_is_known(self):
        """Meta documents 200-299 as one row: any code in it answers as API Permission."""
        entry = catalog.lookup(250)

        assert (entry.code, entry.known, entry.title) == (250, True, "API Permission")

    def test_unknown_codes_are_not_retried(self):
        """Outside transient ranges a guessed code is never resent automatically."""
        assert catalog.lookup(131999).retry.policy == "never"
        assert catalog.lookup(599).retry.policy == "after_delay"


class TestToDict:
    def test_json_fields(self):
        """The dict holds every documented field and survives JSON as is."""
        data = catalog.lookup(131049).to_dict()

        assert set(data) >= FIELDS
        assert json.loads(json.dumps(data, ensure_ascii=False)) == data
        assert data["retry"] == {
            "policy": "after_delay",
            "min_delay_seconds": 86400,
            "why": data["retry"]["why"],
        }
        assert set(data["explanation"]) == set(data["action"]) == {"ja", "en"}

    def test_fresh_dict_each_call(self):
        """Changing a returned dict does not change the next one."""
        first = catalog.lookup(131049).to_dict()
        first["equivalent"].append(1)
        first["title"] = "x"

        assert catalog.lookup(131049).to_dict()["title"] != "x"
        assert catalog.lookup(131049).to_dict()["equivalent"] == []


class TestEntries:
    def test_filters(self):
        """entries() filters by api and category and keeps code order."""
        templates = catalog.entries(api="on-premises", category="template")

        assert templates and all(e.api == "on_premises" for e in templates)
        assert all(e.category == "template" for e in templates)
        assert [e.code for e in templates] == sorted(e.code for e in templates)

    def test_unknown_category_raises(self):
        """A misspelt category raises ValueError rather than returning nothing."""
        with pytest.raises(ValueError, match="category"):
            catalog.entries(category="auth/certificate")


class TestExplain:
    def test_cloud_error_merges_webhook_words(self):
        """A Cloud error keeps its title, message, details and href under reported."""
        error = {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }
        result = catalog.explain(error, "cloud")

        assert result["code"] == 131026 and result["known"] is True
        assert result["title"] == "Message Undeliverable"
        assert result["reported"] == {
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "details": "Message Undeliverable.",
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }

    def test_on_premises_details_field(self):
        """On-Premises errors carry details at the top level; explain finds them there."""
        error = {"code": 470, "title": "Message failed to send", "details": "24h passed"}
        result = catalog.explain(error, "on-premises")

        assert (result["api"], result["code"]) == ("on_premises", 470)
        assert result["reported"]["details"] == "24h passed"
        assert result["reported"]["message"] is None

    def test_unknown_code_takes_webhook_title(self):
        """For an unknown code the webhook's own title replaces the generic guess."""
        result = catalog.explain({"code": 131999, "title": "Brand new failure"})

        assert (result["known"], result["title"]) == (False, "Brand new failure")

    def test_liberal_input(self):
        """Odd shapes (string code, non-dict error_data, no fields at all) do not raise."""
        assert catalog.explain({"code": "131049", "error_data": "x"})["code"] == 131049
        assert catalog.explain({})["known"] is False
        assert catalog.explain(None)["reported"]["title"] is None  # type: ignore[arg-type]
