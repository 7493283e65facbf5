"""Enrichment: the catalog entry of an event's primary error, both languages kept."""

from __future__ import annotations

from workers.inbox.enrich import enrich


def event(errors, api="cloud") -> dict:
    return {"event_id": "e", "api": api, "kind": "status", "errors": errors}


class TestEnrich:
    def test_known_code(self):
        """A known code gets its entry, both languages, and the webhook's own words."""
        error = {"code": 131049, "title": "Meta chose not to deliver", "message": "m",
                 "details": "healthy ecosystem", "href": None}  # fmt: skip
        enriched = enrich(event([error]))
        assert enriched["code"] == 131049
        entry = enriched["catalog"]
        assert entry["known"] and entry["retry"]["min_delay_seconds"] == 86400
        assert entry["explanation"]["ja"] and entry["explanation"]["en"]
        assert entry["reported"] == {"title": "Meta chose not to deliver", "message": "m",
                                     "details": "healthy ecosystem", "href": None}  # fmt: skip

    def test_keeps_the_event(self):
        """Every field of the event is kept beside the added ones."""
        source = event([{"code": 470}], api="on_premises")
        enriched = enrich(source)
        assert {k: enriched[k] for k in source} == source
        assert enriched["catalog"]["api"] == "on_premises"

    def test_primary_error_is_the_first(self):
        """With several errors, the first one decides."""
        assert enrich(event([{"code": 131026}, {"code": 131049}]))["code"] == 131026

    def test_no_error_and_unknown_code(self):
        """No error gives code None and an unknown entry; an unknown code keeps its own title."""
        assert enrich(event([]))["code"] is None
        assert not enrich(event([]))["catalog"]["known"]
        guessed = enrich(event([{"code": 987654321, "title": "Brand new"}]))
        assert not guessed["catalog"]["known"] and guessed["catalog"]["title"] == "Brand new"

    def test_cached_results_are_independent_copies(self):
        """Changing one enriched event's entry does not leak into the next (cache is safe)."""
        first = enrich(event([{"code": 131049}]))
        first["catalog"]["explanation"]["en"] = "changed"
        assert enrich(event([{"code": 131049}]))["catalog"]["explanation"]["en"] != "changed"

    def test_string_code(self):
        """A code sent as text is read as its number."""
        assert enrich(event([{"code": "131049"}]))["code"] == 131049
