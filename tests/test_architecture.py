"""The structure holds: layers (import-linter), no import cycle, imports at module top, small modules, lint, no duplicates.

The contracts live in pyproject.toml (``[tool.importlinter]``, ``[tool.ruff]``,
``[tool.pylint.similarities]``); docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ctqc", "gan", "classify", "reports")
MAX_LINES = 400
BIN = Path(sys.executable).parent


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _tool(name: str, *args: str) -> subprocess.CompletedProcess:
    exe = BIN / name
    if not exe.exists():
        pytest.fail(f"{exe} is missing: `make install-dev` installs the dev tools")
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_import_linter_contracts_are_kept():
    result = _tool("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    assert "0 broken" in result.stdout


def test_no_import_cycles():
    """No strongly connected component of more than one module in the first-party import graph."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    cycles = _strongly_connected(modules, edges)
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
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
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_the_cycle_finder_finds_cycles():
    nodes = ["a", "b", "c", "d"]
    assert _strongly_connected(nodes, {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _strongly_connected(nodes, {"a": ["b"], "b": ["c"], "d": ["a"]}) == []


def test_first_party_imports_are_at_module_top():
    """Project modules are imported at the top (the CLI imports its commands' stages lazily, for a fast --help)."""
    inside = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("ctqc/cli/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                names = [sub.module or ""] if isinstance(sub, ast.ImportFrom) else [a.name for a in sub.names] if isinstance(sub, ast.Import) else []
                inside += [f"{rel}:{sub.lineno} {n}" for n in names if n.split(".")[0] in PACKAGES]
    assert not inside, "first-party imports inside functions:\n" + "\n".join(inside)


def test_no_module_over_400_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in _sources() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_ruff_lint_passes():
    result = _tool("ruff", "check", "--no-cache", *PACKAGES)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-1000:]


@pytest.mark.slow
def test_no_duplicate_code():
    """pylint's duplicate-code check (min-similarity-lines = 6, from pyproject.toml) over the packages."""
    result = _tool("pylint", "--disable=all", "--enable=duplicate-code", "--score=n", *PACKAGES)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-1000:]
