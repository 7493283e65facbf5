"""The seed (Meta's Japanese On-Premises error page) is fully and faithfully in the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import catalog

FIXTURE = Path(__file__).parents[1] / "fixtures" / "catalog" / "seed_rows.json"
SHARED = Path(__file__).parents[2].parent / "shared"
SEED_ROWS = json.loads(FIXTURE.read_text(encoding="utf-8"))
ERROR_ROWS = sorted(SEED_ROWS["errors"].items(), key=lambda kv: int(kv[0]))
TEXT_ROWS = [(line, row) for line, row in ERROR_ROWS if row["text"]]


def seed_cell(line: str) -> str:
    """The table cell on one seed line, pipes and surrounding blanks stripped."""
    text = line.strip()
    text = text.removeprefix("|").removesuffix("|")
    return text.strip()


class TestSeedRows:
    @pytest.mark.parametrize(("line", "row"), TEXT_ROWS, ids=[f"line{ln}" for ln, _ in TEXT_ROWS])
    def test_japanese_explanation_holds_seed_text(self, line, row):
        """Every seed line with text appears verbatim in its code's Japanese explanation."""
        entry = catalog.lookup(row["code"], "on_premises")

        assert entry.api == "on_premises"
        assert entry.known
        assert row["text"] in entry.explanation.ja

    def test_every_seed_row_is_an_on_premises_entry(self):
        """The On-Premises data holds exactly the 77 codes of the seed's error table."""
        seed_codes = {row["code"] for row in SEED_ROWS["errors"].values()}

        assert len(seed_codes) == 77
        assert {e.code for e in catalog.entries("on_premises")} == seed_codes

    def test_seed_rows_are_in_page_order(self):
        """Codes rise with seed lines, as on Meta's page (the alignment relies on it)."""
        codes = [row["code"] for _, row in ERROR_ROWS]

        assert codes == sorted(codes)

    @pytest.mark.parametrize("code", [429, 1000, 1005, 1011, 1013, 1014, 1023, 2066, 2067])
    def test_empty_seed_rows_get_a_written_explanation(self, code):
        """Rows the seed left empty still get a Japanese explanation of their own."""
        texts = [row["text"] for row in SEED_ROWS["errors"].values() if row["code"] == code]

        assert texts and not any(texts)
        assert len(catalog.lookup(code, "on_premises").explanation.ja) >= 10

    @pytest.mark.parametrize("code", [2016, 2036, 2060, 2061, 2062])
    def test_cut_rows_are_completed(self, code):
        """Rows cut at an inline-code element go on past the seed's last words."""
        (text,) = [row["text"] for row in SEED_ROWS["errors"].values() if row["code"] == code]
        explanation = catalog.lookup(code, "on_premises").explanation.ja

        assert explanation.startswith(text)
        assert len(explanation) > len(text) + 5
        assert explanation.endswith("。")


class TestHttpTable:
    def test_http_rows_match_the_seed(self):
        """Every row of the seed's HTTP table is present, same code and Japanese text, in order."""
        rows = sorted(SEED_ROWS["http"].items(), key=lambda kv: int(kv[0]))
        expected = [(row["code"], row["text"]) for _, row in rows]

        assert [(s.code, s.explanation.ja) for s in catalog.http_statuses()] == expected

    def test_classes_and_statuses(self):
        """The three class rows are marked as classes, everything else as statuses."""
        classes = [s.code for s in catalog.http_statuses() if s.kind == "class"]

        assert classes == ["2XX", "4XX", "5XX"]

    def test_unsure_numbers_carry_a_doubt(self):
        """Rows whose number is only inferred (302, 420, 504) say so."""
        doubts = {s.code for s in catalog.http_statuses() if s.confidence == "low"}

        assert doubts == {"302", "420", "504"}
        assert all(s.doubt for s in catalog.http_statuses() if s.confidence != "high")


@pytest.mark.skipif(
    not (SHARED / SEED_ROWS["seed"]).is_file(),
    reason="../shared/seed is not beside this checkout; the committed fixture is used alone",
)
class TestFixtureAgainstSeedFile:
    def test_fixture_copies_the_seed(self):
        """The committed fixture holds exactly what the seed file says on each line."""
        lines = (SHARED / SEED_ROWS["seed"]).read_text(encoding="utf-8").splitlines()

        for table in ("errors", "http"):
            for number, row in SEED_ROWS[table].items():
                assert seed_cell(lines[int(number) - 1]) == row["text"], number

    def test_fixture_covers_every_table_line(self):
        """No line of either table in the seed is left out of the fixture."""
        lines = (SHARED / SEED_ROWS["seed"]).read_text(encoding="utf-8").splitlines()
        table_lines = {
            str(n)
            for n, line in enumerate(lines, start=1)
            if line.startswith("|") or line.endswith("|")
        }
        header_lines = {
            str(n)
            for n, line in enumerate(lines, start=1)
            if line.startswith(("エラー", "HTTP", "---"))
        }

        covered = set(SEED_ROWS["errors"]) | set(SEED_ROWS["http"])
        assert table_lines - header_lines - covered == set()
