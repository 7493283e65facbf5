"""`wastatus console hash-password` makes a line WASTATUS_CONSOLE_USERS takes."""

from __future__ import annotations

from click.testing import CliRunner

from webhook.cli import main
from webhook.console.auth import check_user
from workers.settings import read


class TestHashPassword:
    """The printed user:hash is accepted by the settings and checks the password given."""

    def test_line_is_a_working_user(self):
        result = CliRunner().invoke(
            main, ["console", "hash-password", "bob"], input="s3cret pass\ns3cret pass\n"
        )
        assert result.exit_code == 0, result.output
        line = result.output.strip().splitlines()[-1]
        assert "s3cret" not in line
        settings = read({"WASTATUS_CONSOLE_USERS": line, "WASTATUS_CONSOLE_SECRET": "k" * 32})
        assert check_user(settings, "bob", "s3cret pass")
        assert not check_user(settings, "bob", "s3cret")

    def test_a_name_with_a_colon_is_refused(self):
        result = CliRunner().invoke(main, ["console", "hash-password", "a:b"], input="x\nx\n")
        assert result.exit_code == 2
