"""Every payload fixture is used by some test, so none rots unnoticed."""

from pathlib import Path

TESTS = Path(__file__).parent
PAYLOAD_FOLDERS = ("cloud", "on_premises", "invalid")


class TestFixtures:
    def test_every_payload_fixture_is_named_in_a_test(self):
        """Each file under tests/fixtures/{cloud,on_premises,invalid} appears in a test module."""
        sources = "\n".join(
            path.read_text() for path in TESTS.rglob("*.py") if path.name != Path(__file__).name
        )
        unused = [
            f"{folder}/{fixture.name}"
            for folder in PAYLOAD_FOLDERS
            for fixture in sorted((TESTS / "fixtures" / folder).iterdir())
            if f"{folder}/{fixture.name}" not in sources
        ]
        assert unused == []
