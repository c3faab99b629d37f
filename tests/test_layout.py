"""The package's layout: no import cycle anywhere, and imports between layers point downward only.

The layers and what each may import are the architecture (docs/architecture.md); a change that needs an
import not listed here is a change of architecture and should be made here on purpose, not by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lpmbench"

# Layer -> the layers it may import. Lower layers know nothing of the ones above them.
ALLOWED: dict[str, set[str]] = {
    "dataplane": {"platform"},  # capabilities decide which send methods the twin offers
    "platform": set(),
    "protocol": set(),
    "analysis": set(),
    "net": {"platform"},
    "agent": {"protocol", "net", "platform", "dataplane"},
    "metrics": {"analysis", "platform"},
    "orchestrator": {"protocol", "net", "analysis"},
    "render": {"analysis"},
    "cli": {"protocol", "net", "platform", "dataplane", "agent", "analysis", "metrics", "orchestrator", "render"},
    # A development tool on top of everything (the AIX personality launches the CLI); nothing imports it.
    "lab": {"protocol", "net", "platform", "dataplane", "agent", "analysis", "metrics", "orchestrator", "render",
            "cli"},
}
TOP_LEVEL_MODULES = {"__init__", "__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that ``name`` imports (relative imports resolved)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + [node.module] if node.module else base)
            found.update(t for t in [target] + [f"{target}.{a.name}" for a in node.names] if t in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    # A module's own package (its __init__) is imported first by Python anyway: not an edge.
    return {t for t in found if t != name and not name.startswith(t + ".")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_layers_import_downward_only():
    wrong = []
    for module, targets in _graph().items():
        layer = _layer(module)
        if layer is None or layer not in ALLOWED:
            continue
        for target in targets:
            other = _layer(target)
            if other is not None and other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module} imports {target} ({layer} may import only {sorted(ALLOWED[layer])})")
    assert wrong == []


def test_every_module_sits_in_a_layer():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    layers = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert top == TOP_LEVEL_MODULES
    assert layers == set(ALLOWED)


@pytest.mark.parametrize("entry", ["lpmbench", "lpmbench.lab"])
def test_module_entry_points_still_run(entry):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()
