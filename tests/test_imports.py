"""The product's imports run one way: read from the source with `ast`, lazy imports included.

`webhook` -> `workers` -> `catalog`; no circle among the product's modules; `workers` never
imports Flask or `webhook`; `catalog` has no Flask, no Redis and no `workers`; nothing in the
product imports `bench` or `tests`. Inside `workers`, the plumbing imports only plumbing, and
each stage package imports the plumbing, itself and the stages before it in `STAGES`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("webhook", "workers", "catalog")

PLUMBING = {
    "workers", "workers.settings", "workers.connection", "workers.queues", "workers.logs",
    "workers.metrics", "workers.fastjson", "workers.bounds", "workers.jobs",
    "workers.signing", "workers.delivery", "workers.outage", "workers.telemetry",
}  # fmt: skip
"""Top-level `workers` modules the stages share; the other top-level modules run the stages."""

STAGES = ("outcomes", "inbox", "routing", "alerting", "health", "fates", "resend")
"""`workers` sub-packages in import order: each may import the ones before it, never after.
`outcomes` (ledger, dead letters, stats) comes first: every stage records how a failure ended."""


def modules() -> dict[str, Path]:
    """Every product module by dotted name (packages by their own name)."""
    found = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules `name` imports anywhere in its file (inside functions too), resolved to
    product modules where they are ones, else to the top-level name (`flask`, `redis` …).

    Importing `a.b.c` runs the packages `a` and `a.b` first, so those count too, except the
    packages `name` itself sits in (they are running already): `webhook.console.data` importing
    `webhook.cli.status` imports `webhook.cli`, which imports every command module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own = {".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 2)}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]  # fmt: skip
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            found.add(target)
            parts = target.split(".")
            found |= {
                ancestor
                for depth in range(1, len(parts))
                if (ancestor := ".".join(parts[:depth])) in known and ancestor not in own
            }
    return found - {name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def offending(edges: dict[str, set[str]], source: str, banned: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in edges.items()
        if name == source or name.startswith(source + ".")
        for target in targets
        if any(target == ban or target.startswith(ban + ".") for ban in banned)
    )


def stage_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "workers" and parts[1] in STAGES else None


class TestImportGraph:
    """The product's import graph, read from the source, has no circle and runs one way."""

    def test_the_graph_sees_lazy_imports(self):
        """An import inside a function counts (the check would miss lazy circles otherwise)."""
        source = ROOT / "workers" / "runner.py"
        tree = ast.parse(source.read_text())
        lazy = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                for inner in ast.walk(node) if isinstance(inner, ast.ImportFrom)]  # fmt: skip
        assert lazy, "runner.run_worker imports the sender lazily: this test needs one"
        assert "workers.resend.sender" in graph()["workers.runner"]

    def test_no_import_circle(self):
        """No module of webhook, workers or catalog imports itself through others."""
        assert cycles(graph()) == []

    def test_workers_never_import_the_web(self):
        """`workers` imports neither `webhook` nor Flask."""
        assert offending(graph(), "workers", ("webhook", "flask")) == []

    def test_catalog_stands_alone(self):
        """`catalog` imports neither `workers`, `webhook`, Redis nor Flask."""
        banned = ("workers", "webhook", "redis", "flask")
        assert offending(graph(), "catalog", banned) == []

    def test_the_product_never_imports_bench_or_tests(self):
        """No product module imports `bench` or `tests` (neither is packaged)."""
        edges = graph()
        found = [
            line for package in PRODUCT for line in offending(edges, package, ("bench", "tests"))
        ]
        assert found == []

    def test_plumbing_imports_only_plumbing(self):
        """The shared plumbing at the top of `workers` imports no stage nor runner."""
        edges = graph()
        found = sorted(f"{name} imports {target}" for name in PLUMBING & set(edges)
                       for target in edges[name]
                       if target.startswith("workers") and target not in PLUMBING)  # fmt: skip
        assert found == []

    def test_stages_import_only_earlier_stages(self):
        """A stage package imports plumbing, itself and the stages before it, never later."""
        edges = graph()
        found = []
        for name, targets in edges.items():
            stage = stage_of(name)
            if stage is None:
                continue
            allowed = set(STAGES[: STAGES.index(stage) + 1])
            for target in targets:
                if not target.startswith("workers"):
                    continue
                if target in PLUMBING or stage_of(target) in allowed:
                    continue
                found.append(f"{name} imports {target}")
        assert sorted(found) == []
