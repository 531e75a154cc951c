"""The package layout (docs/architecture.md): lazy entry points and no import circles."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("netmob", "cube", "geo", "estimate", "validation", "render", "synth", "config")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """cpc_core modules imported by ``path`` (``from cpc_core.x import y`` counts x.y if a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cpc_core")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cpc_core"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if _exists(sub) else node.module)
    return found


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    files = [p for p in (ROOT / "cpc_core").rglob("*.py") if "__pycache__" not in p.parts]
    graph = {_module_name(p): _imports(p, top_level_only=top_level_only) for p in files}
    # a package __init__ re-exporting lazily imports nothing: drop the parent-package edges
    # that `from cpc_core.x import y` implies (importing cpc_core.x.y runs cpc_core.x first).
    return {m: {d for d in deps if d != m and d in graph} for m, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "with-function-level"])
def test_no_import_circle(top_level_only):
    graph = _graph(top_level_only)
    assert len(graph) > 40  # the walk found the library
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", SUBPACKAGES[:-1])
def test_every_entry_point_resolves_to_its_home(package):
    pkg = importlib.import_module(f"cpc_core.{package}")
    assert pkg.__all__, package
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        home = getattr(obj, "__module__", None)
        if home is not None and callable(obj):
            # defined inside the subpackage, not re-exported from elsewhere
            assert home.startswith(f"cpc_core.{package}."), (name, home)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = pkg.nonexistent


def test_importing_a_subpackage_imports_nothing_heavy():
    code = ("import sys\n"
            "import cpc_core.estimate, cpc_core.validation, cpc_core.render, cpc_core.geo, cpc_core.cube\n"
            "heavy = [m for m in ('numpy', 'pandas', 'xarray', 'zarr', 'geopandas', 'matplotlib') if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
