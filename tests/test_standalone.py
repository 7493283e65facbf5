"""The installed product stands alone: nothing in it imports the checkout's bench/ or tests/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("webhook", "workers", "catalog")
OUTSIDE = {"bench", "tests"}


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every module `path` imports, lazily or not."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


class TestStandalone:
    """No product module imports bench/ or tests/, which a wheel does not carry."""

    def test_no_product_module_imports_bench_or_tests(self):
        offenders = {
            path.relative_to(ROOT).as_posix(): sorted(imported_roots(path) & OUTSIDE)
            for package in PRODUCT
            for path in (ROOT / package).rglob("*.py")
            if imported_roots(path) & OUTSIDE
        }
        assert offenders == {}

    def test_the_check_sees_a_lazy_import(self, tmp_path):
        module = tmp_path / "lazy.py"
        module.write_text("def run():\n    from bench import chaos\n    import tests.conftest\n")
        assert imported_roots(module) >= OUTSIDE
