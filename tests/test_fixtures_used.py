"""Every fixture file is loaded by some test, so none rots unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"


def code_strings(path: Path) -> set[str]:
    """The string literals of a module's code: not its comments, not its docstrings."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    }


def loads(strings: set[str], fixture: Path) -> bool:
    """A module loads `fixture` when its code names it as `folder/file` (`load_fixture`,
    `post.fixture`) or names both the file and its folder (`FIXTURES / "rules" / "full.yaml"`)."""
    relative = fixture.relative_to(FIXTURES)
    if relative.as_posix() in strings:
        return True
    return fixture.name in strings and all(part in strings for part in relative.parts[:-1])


class TestFixtures:
    """Each file anywhere under tests/fixtures is named in a test's code, not in a comment."""

    def test_every_fixture_is_loaded_by_a_test(self):
        modules = [
            code_strings(path)
            for path in TESTS.rglob("*.py")
            if path != Path(__file__) and "fixtures" not in path.relative_to(TESTS).parts
        ]
        unused = [
            fixture.relative_to(FIXTURES).as_posix()
            for fixture in sorted(FIXTURES.rglob("*"))
            if fixture.is_file() and not any(loads(strings, fixture) for strings in modules)
        ]
        assert unused == []

    def test_a_name_in_a_comment_or_docstring_does_not_count(self, tmp_path):
        module = tmp_path / "test_x.py"
        module.write_text(
            '"""Posts cloud/sent_marketing.json."""\n'
            "# load_fixture('rules/full.yaml')\n"
            "BODY = load_fixture('cloud/failed_131049.json')\n"
            'RULES = FIXTURES / "rules" / "bad.yaml"\n'
        )
        strings = code_strings(module)
        assert not loads(strings, FIXTURES / "cloud" / "sent_marketing.json")
        assert not loads(strings, FIXTURES / "rules" / "full.yaml")
        assert loads(strings, FIXTURES / "cloud" / "failed_131049.json")
        assert loads(strings, FIXTURES / "rules" / "bad.yaml")
