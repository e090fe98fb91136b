"""The shape of providers/: backends below, selection above, no import circles.

Imports inside functions count too: a lazy import is still a dependency, and a circle of them
is what made the modules hard to follow (endpoint -> probe -> select -> endpoint).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "avatargen" / "providers"
PREFIX = "avatargen.providers."
# Modules that choose among backends; no backend may import them.
ABOVE_BACKENDS = {"select", "status_report"}


def provider_imports() -> dict[str, set[str]]:
    """{module: providers modules it imports anywhere in its body}."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__init__":
            continue
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith(PREFIX):
                    found.add(node.module[len(PREFIX) :].split(".")[0])
                elif node.module == "avatargen.providers":
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PREFIX):
                        found.add(alias.name[len(PREFIX) :].split(".")[0])
        graph[path.stem] = found - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_in_providers():
    assert find_cycle(provider_imports()) is None


def test_no_backend_imports_the_selection():
    graph = provider_imports()
    offenders = {m: sorted(deps & ABOVE_BACKENDS) for m, deps in graph.items() if m not in ABOVE_BACKENDS}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_each_backend_owns_its_probe():
    graph = provider_imports()
    assert "probe" not in graph  # the old grab-bag module is gone: each probe lives with its backend
    for backend in ("endpoint", "inference"):
        # handler_check: the endpoint's own probe of which handler answers (issue 23).
        allowed = {"base", "http_client", "http_provider", "retry", "gate", "hub", "handler_check"}
        assert graph[backend] <= allowed, backend


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
