"""The packaged data files keep the documented schema, vocabularies and cross-references."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

import catalog
from catalog import store

ALL = catalog.entries()
DOCS = Path(__file__).parents[2] / "docs" / "catalog.md"


def raw_file(name: str) -> dict:
    return json.loads(resources.files("catalog").joinpath("data", name).read_text("utf-8"))


class TestDataFiles:
    @pytest.mark.parametrize("name", ["cloud.json", "on_premises.json"])
    def test_codes_unique_and_sorted(self, name):
        """Each api file lists every code once, in ascending order."""
        codes = [e["code"] for e in raw_file(name)["entries"]]

        assert codes == sorted(set(codes))

    def test_counts(self):
        """All 77 On-Premises seed codes and all 92 Cloud reference codes are loaded."""
        assert len(catalog.entries("on_premises")) == 77
        assert len(catalog.entries("cloud")) == 92

    @pytest.mark.parametrize(
        "code",
        [0, 4, 131000, 131026, 131047, 131049, 131056, 132001, 133004, 2388019, 2593108],
    )
    def test_reference_cloud_codes_present(self, code):
        """Cloud codes across every range of the reference are present."""
        entry = catalog.lookup(code, "cloud")

        assert (entry.api, entry.code, entry.known) == ("cloud", code, True)


class TestEveryEntry:
    @pytest.mark.parametrize("entry", ALL, ids=[f"{e.api}-{e.code}" for e in ALL])
    def test_entry_is_complete(self, entry):
        """Both languages, a documented category/severity/policy, a Meta href and a source."""
        assert entry.explanation.ja.strip() and entry.explanation.en.strip()
        assert entry.action.ja.strip() and entry.action.en.strip()
        # Japanese fields must actually be Japanese, not a pasted English string.
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", entry.explanation.ja)
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", entry.action.ja)
        assert entry.category in catalog.CATEGORIES and entry.category != "unknown"
        assert entry.severity in catalog.SEVERITIES
        assert entry.retry.policy in catalog.RETRY_POLICIES
        assert entry.retry.why.strip()
        assert entry.confidence in catalog.CONFIDENCES
        assert entry.href.startswith("https://developers.facebook.com/")
        assert entry.source and entry.href in entry.source

    @pytest.mark.parametrize("entry", ALL, ids=[f"{e.api}-{e.code}" for e in ALL])
    def test_delay_only_with_after_delay(self, entry):
        """after_delay carries a positive minimum delay; the other policies carry none."""
        if entry.retry.policy == "after_delay":
            assert entry.retry.min_delay_seconds and entry.retry.min_delay_seconds > 0
        else:
            assert entry.retry.min_delay_seconds is None

    def test_unsure_entries_say_why(self):
        """Every medium- or low-confidence entry records its doubt."""
        assert [e.code for e in ALL if e.confidence != "high" and not e.doubt] == []

    def test_titles_carry_no_source_notes(self):
        """Notes like '(legacy)' live in doubt/deprecated, not in Meta's title."""
        assert [
            e.code for e in ALL if re.search(r"\((legacy|title|deprecated)", e.title, re.I)
        ] == []


class TestEquivalents:
    @pytest.mark.parametrize("entry", ALL, ids=[f"{e.api}-{e.code}" for e in ALL])
    def test_equivalents_point_both_ways(self, entry):
        """An equivalent is an existing entry of the other api that points back."""
        other = "on_premises" if entry.api == "cloud" else "cloud"
        for code in entry.equivalent:
            twin = catalog.lookup(code, other)
            assert (twin.api, twin.known) == (other, True)
            assert entry.code in twin.equivalent

    @pytest.mark.parametrize(
        ("onprem", "cloud"),
        [(470, 131047), (429, 130429), (472, 130472), (2068, 132068), (1026, 131026)],
    )
    def test_known_pairs(self, onprem, cloud):
        """The matching On-Premises and Cloud codes name each other."""
        assert cloud in catalog.lookup(onprem, "on_premises").equivalent
        assert onprem in catalog.lookup(cloud, "cloud").equivalent


class TestRetryJudgements:
    @pytest.mark.parametrize(
        ("api", "code"),
        [
            ("cloud", 131000),
            ("cloud", 131016),
            ("cloud", 133004),
            ("cloud", 131057),
            ("cloud", 1),
            ("cloud", 2),
            ("on_premises", 500),
            ("on_premises", 1011),
            ("on_premises", 1014),
            ("on_premises", 1017),
        ],
    )
    def test_transient_codes_may_be_resent(self, api, code):
        """Temporary failures are resent, at once or after a delay."""
        assert catalog.lookup(code, api).retry.policy in ("immediate", "after_delay")

    def test_131049_waits_a_day(self):
        """Meta says to wait at least 24 hours before resending 131049."""
        retry = catalog.lookup(131049).retry

        assert (retry.policy, retry.min_delay_seconds) == ("after_delay", 86400)

    @pytest.mark.parametrize(("api", "code"), [("cloud", 130429), ("cloud", 131056),
                                               ("cloud", 4), ("cloud", 80007),
                                               ("on_premises", 429)])  # fmt: skip
    def test_rate_limits_wait_at_least_a_minute(self, api, code):
        """Rate-limited sends wait at least 60 seconds before the next try."""
        retry = catalog.lookup(code, api).retry

        assert retry.policy == "after_delay"
        assert retry.min_delay_seconds >= 60

    @pytest.mark.parametrize(
        "code", [131026, 131047, 131048, 131050, 132001, 132015, 131042, 190, 368]
    )
    def test_permanent_codes_are_never_resent(self, code):
        """Failures a resend cannot fix (recipient, template, account, policy) are never retried."""
        assert catalog.lookup(code, "cloud").retry.policy == "never"


class TestDocumentedVocabulary:
    @pytest.mark.parametrize(
        "words",
        [catalog.CATEGORIES, catalog.SEVERITIES, catalog.RETRY_POLICIES],
        ids=["categories", "severities", "retry-policies"],
    )
    def test_docs_list_every_value(self, words):
        """docs/catalog.md and the package docstring name every allowed value."""
        docs = DOCS.read_text(encoding="utf-8")
        for word in words:
            assert f"`{word}`" in docs, word
            assert word in catalog.__doc__, word

    def test_every_category_is_used(self):
        """No documented category is dead (except unknown, which only guesses use)."""
        used = {e.category for e in ALL}

        assert used == set(catalog.CATEGORIES) - {"unknown"}


class TestValidation:
    def test_rejects_bad_entry(self, monkeypatch):
        """A data file with an undocumented category fails to load, naming the code."""
        bad = raw_file("cloud.json")
        bad["entries"][0]["category"] = "auth/certificate"
        original = store._read_json
        monkeypatch.setattr(
            store, "_read_json", lambda name: bad if name == "cloud.json" else original(name)
        )
        store.load.cache_clear()
        try:
            with pytest.raises(catalog.CatalogError, match=r"cloud\.json code 0: category"):
                store.load()
        finally:
            store.load.cache_clear()

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda e: e["retry"].update(min_delay_seconds=None), "positive min_delay"),
            (lambda e: e["explanation"].pop("ja"), "exactly ja and en"),
            (lambda e: e.update(code=True), "non-negative integer"),
            (lambda e: e.update(extra=1), "unexpected keys"),
        ],
        ids=["delay-missing", "language-missing", "bool-code", "typo-key"],
    )
    def test_parse_entry_rejects(self, change, message):
        """Schema mistakes in an entry raise CatalogError with a useful message."""
        raw = next(e for e in raw_file("cloud.json")["entries"] if e["code"] == 131049)
        change(raw)

        with pytest.raises(catalog.CatalogError, match=message):
            store._parse_entry(raw, "cloud.json")

    def test_unsorted_file_is_rejected(self, monkeypatch):
        """Entries out of code order are refused, so reviews stay easy."""
        doc = raw_file("on_premises.json")
        doc["entries"].reverse()
        monkeypatch.setattr(store, "_read_json", lambda name: doc)

        with pytest.raises(catalog.CatalogError, match="sorted"):
            store._load_api("on_premises")
