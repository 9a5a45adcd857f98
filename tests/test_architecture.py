"""The seams issue 14 set, checked on the source: no import circles, layers import only
downwards, and compressor/ reaches targets only through their protocol and registry."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("foundation", "compressor", "targets", "calibration", "benchmarks")
# What each package may import from the others (benchmarks sit on top of everything).
ALLOWED = {
    "foundation": set(),
    "calibration": {"foundation"},
    "targets": {"foundation"},
    "compressor": {"foundation", "calibration", "targets"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """First-party modules path imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in MODULES}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_even_through_function_level_imports():
    assert _cycles(GRAPH) == []


def test_layers_import_only_downwards():
    wrong = [
        f"{module} imports {imported}"
        for module, imported_set in GRAPH.items()
        for imported in imported_set
        if (top := module.split(".")[0]) in ALLOWED
        and (other := imported.split(".")[0]) != top
        and other not in ALLOWED[top]
    ]
    assert wrong == []


def test_compressor_reaches_targets_only_through_the_protocol_and_registry():
    allowed = {"targets", "targets.base", "targets.options", "targets.registry"}
    # The int8 arithmetic model is protocol-level: profiles, host and emulation serve both.
    allowed |= {n for n in MODULES if n.startswith("targets.arithmetic")}
    named = sorted(
        f"{module} imports {imported}"
        for module, imported_set in GRAPH.items()
        if module.startswith("compressor")
        for imported in imported_set
        if imported.startswith("targets") and imported not in allowed
    )
    assert named == []
    sources = "\n".join(p.read_text() for n, p in MODULES.items() if n.startswith("compressor"))
    assert "ai_edge_litert" not in sources and "import tensorrt" not in sources


# compressor/'s rooms, lowest first: each may import only those before it (issue 20).
COMPRESSOR_ORDER = (
    "progress",
    "limits",
    "trust",
    "judging",
    "recipe",
    "report",
    "model",
    "passes",
    "tuning",
    "pipeline",
    "debug",
    "bundle",
    "verify",
    "bench",
    "sweep",
    "cli",
    "__main__",
)


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "compressor" and len(parts) > 1 else None


def test_compressor_rooms_import_only_the_rooms_below_them():
    rank = {room: i for i, room in enumerate(COMPRESSOR_ORDER)}
    rooms = {_room(m) for m in MODULES} - {None}
    assert rooms <= set(rank), f"place {sorted(rooms - set(rank))} in COMPRESSOR_ORDER"
    upward = sorted(
        f"{module} imports {imported}"
        for module, imported_set in GRAPH.items()
        if (room := _room(module))
        for imported in imported_set
        if (other := _room(imported)) and other != room and rank[other] > rank[room]
    )
    assert upward == []


def test_compressor_top_level_fits_at_a_glance():
    top = sorted(p.name for p in (ROOT / "compressor").glob("*.py"))
    assert len(top) <= 8, top
