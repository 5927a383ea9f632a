"""The architecture on disk stays the architecture: imports run one way, no cycles, small modules.

    cli -> server -> agent -> tools -> booking / integrations -> store -> core (and prompts)

`integrations` may use the booking domain's types (the Calendly calendar implements `booking.calendar.Calendar`);
`booking` never imports a third party's adapter, nor LangChain. Only `cli` imports `evals`, which sits beside
`server` and may use the agent and everything below it. Lazy imports inside functions count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "prompts", "store", "booking", "integrations", "tools", "agent", "server", "evals", "cli")
LAYER = {
    "core": 0,
    "prompts": 0,
    "store": 1,
    "booking": 2,
    "integrations": 3,
    "tools": 4,
    "agent": 5,
    "server": 6,
    "evals": 6,
    "cli": 7,
}
# Same-level packages that must not see each other.
FORBIDDEN = {("server", "evals"), ("evals", "server"), ("core", "prompts")}
NO_LANGCHAIN = ("booking", "integrations", "store", "core")
MAX_LINES = 300

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (relative imports are not used here)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> Graph:
    """Module -> project modules it imports (names that are not modules, e.g. `from x import Class`, dropped)."""
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph: Graph = {}
    for name, path in modules.items():
        graph[name] = {target for target in imports_of(path) if target in modules and target != name}
    return graph


def layer_violations(graph: Graph) -> list[str]:
    """Imports that run upward or sideways between packages that must not see each other."""
    problems = []
    for source, targets in graph.items():
        src = source.split(".")[0]
        for target in targets:
            dst = target.split(".")[0]
            if src == dst:
                continue
            if LAYER[dst] > LAYER[src] or (src, dst) in FORBIDDEN or (dst == "evals" and src != "cli"):
                problems.append(f"{source} imports {target}")
    return sorted(problems)


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), i.e. import cycles; a package's `__init__`
    re-exporting its own submodules is not a cycle with them."""
    edges = {
        source: {t for t in targets if not (t.startswith(source + ".") or source.startswith(t + "."))}
        for source, targets in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_imports_run_one_way() -> None:
    assert layer_violations(project_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(project_graph()) == []


def test_lower_layers_do_not_import_langchain() -> None:
    offenders = [
        f"{module_name(path)} imports {target}"
        for package in NO_LANGCHAIN
        for path in (ROOT / package).rglob("*.py")
        for target in imports_of(path)
        if target.split(".")[0] in {"langchain", "langchain_core", "langchain_openai", "langgraph"}
    ]
    assert offenders == []


def test_modules_stay_small() -> None:
    sizes = {
        module_name(path): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_checks_catch_what_they_forbid() -> None:
    """The rules above, shown able to fail: an upward import, a sideways one, evals outside cli, and a cycle."""
    bad: Graph = {
        "store.appointments": {"tools.booking"},
        "server.app": {"evals.runner"},
        "agent.graph": {"evals.dataset"},
        "booking.calendar": {"integrations.calendly.client"},
        "integrations.calendly.client": {"booking.calendar"},
        "tools.booking": {"store.appointments"},
    }
    assert layer_violations(bad) == [
        "agent.graph imports evals.dataset",
        "booking.calendar imports integrations.calendly.client",
        "server.app imports evals.runner",
        "store.appointments imports tools.booking",
    ]
    assert sorted(cycles(bad)) == [
        ["booking.calendar", "integrations.calendly.client"],
        ["store.appointments", "tools.booking"],
    ]
    assert cycles(project_graph() | {"store.database": {"store.sqlite"}, "store.sqlite": {"store.database"}})
