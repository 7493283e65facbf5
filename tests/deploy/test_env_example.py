"""`.env.example` lists every setting `workers/settings.py` declares, each with its default."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

from tests.deploy.conftest import env_lines
from workers.settings import Settings, describe, read

SECRET = {spec.metadata["name"] for spec in fields(Settings) if spec.metadata["secret"]}


class TestEnvExample:
    """The example env file and the settings reader name the same settings, with the defaults."""

    def test_every_setting_has_a_line_and_no_line_is_stale(self):
        """A setting added without a line, or a line left after its setting went, fails."""
        listed = Counter(name for name, _, _ in env_lines())
        declared = {row["variable"] for row in describe()}
        assert not [name for name, count in listed.items() if count > 1], "listed twice"
        assert sorted(declared - set(listed)) == [], "settings without a line in .env.example"
        assert sorted(set(listed) - declared) == [], "lines of .env.example for no setting"

    def test_the_file_reads_as_the_defaults(self):
        """The settings reader, given the whole file, gives exactly the declared defaults."""
        assert read({name: value for name, value, _ in env_lines()}) == Settings()

    def test_each_default_is_written_out(self):
        """A setting with a default shows it, rather than a blank line that hides it."""
        values = {name: value for name, value, _ in env_lines()}
        for row in describe():
            if row["default"] not in (None, (), ""):
                assert values[row["variable"]] != "", row["variable"]

    def test_secrets_are_blank_and_said_to_be_secret(self):
        """No secret ships in the example, and its comment says it is one."""
        for name, value, comment in env_lines():
            if name in SECRET:
                assert value == "", name
                assert "(secret)" in comment, name
