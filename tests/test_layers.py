"""The layers of the source tree: the domain imports nothing else of
reelgate, and no two packages import each other (directly or round a loop).
Imports made only for type checking do not count: they never run."""

from __future__ import annotations

import ast
from pathlib import Path

import reelgate

ROOT = Path(reelgate.__file__).parent


def _unit(module: str) -> str | None:
    """`reelgate.store.tasks` -> `store`; `reelgate.config` -> `config`."""
    parts = module.split(".")
    if parts[0] != "reelgate" or len(parts) < 2:
        return None
    return parts[1]


def _runtime_imports(tree: ast.Module) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append(child.module)
            visit(child)

    visit(tree)
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        unit = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if unit == "__init__":
            continue
        targets = graph.setdefault(unit, set())
        for module in _runtime_imports(ast.parse(path.read_text())):
            target = _unit(module)
            if target and target != unit:
                targets.add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_domain_imports_nothing_else_of_reelgate() -> None:
    assert package_graph()["domain"] == set()


def test_no_cycles_between_packages() -> None:
    cycle = _cycle(package_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_dialects_and_engines_never_reach_the_database() -> None:
    graph = package_graph()
    assert "store" not in graph["engines"]
    for path in (ROOT / "api").rglob("*.py"):
        if path.parent.name in ("acedata", "generations", "official"):
            imports = _runtime_imports(ast.parse(path.read_text()))
            assert not [m for m in imports if m.startswith("reelgate.store")], path.name


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
