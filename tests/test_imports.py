"""No import cycle among mnas's modules (docs/architecture: the layers only import downwards).

The graph is read statically with ``ast``: every ``import``/``from ... import`` anywhere in a
module (top level, inside functions, under ``if TYPE_CHECKING``) is an edge, so a cycle hidden
behind a function-level import counts too. A module's implicit import of its parent package is
not an edge (a package's ``__init__`` re-exporting its submodules would otherwise always be one).
"""

from __future__ import annotations

import ast
import functools
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def module_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package at ``root`` (dotted names from its parent)."""
    mods: dict[str, Path] = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    top = root.name
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"), str(p))):
            if isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x / from ..y import z
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                if base != top and not base.startswith(top + "."):
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    edges[m].add(sub if sub in mods else base)
        edges[m] &= set(mods)
        edges[m].discard(m)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / "pkg" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path / "pkg"


def test_the_checker_finds_a_cycle_hidden_in_a_function_and_one_under_type_checking(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "from pkg.a import f\n",  # a package re-exporting its submodule: not a cycle
        "a.py": "import os\n\ndef f():\n    from pkg.sub.b import g\n    return g\n",
        "sub/__init__.py": "",
        "sub/b.py": "from .. import a\n\ndef g():\n    return a\n",  # relative, back to a: a <-> sub.b
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import D\n",
        "d.py": "from pkg import c\nclass D: ...\n",  # c <-> d through a type-only import
        "e.py": "from pkg.a import f\n",  # imports into a cycle, is not part of one
    })
    edges = module_graph(root)
    assert edges["pkg"] == {"pkg.a"} and edges["pkg.sub.b"] == {"pkg.a"} and edges["pkg.d"] == {"pkg.c"}
    assert sorted(cycles(edges)) == [["pkg.a", "pkg.sub.b"], ["pkg.c", "pkg.d"]]


# Cycles that work in progress elsewhere introduced (each an exact set of modules: one that grows fails).
# Empty this as they are broken; a new cycle is never added here.
KNOWN_CYCLES: list[set[str]] = [
]


@functools.cache
def mnas_graph() -> dict[str, set[str]]:
    return module_graph(REPO / "mnas")


def test_mnas_has_no_import_cycle():
    edges = mnas_graph()
    assert len(edges) > 50 and "mnas.anb.table" in edges  # the package was read (and anb is one)
    found = [c for c in cycles(edges) if set(c) not in KNOWN_CYCLES]
    detail = "; ".join(" <-> ".join(c) + " (" + ", ".join(f"{a} imports {sorted(edges[a] & set(c))}" for a in c) + ")"
                       for c in found)
    assert not found, f"import cycles among mnas modules: {detail}"


def test_protocols_the_data_registry_and_the_anb_package_import_nothing_above_them():
    edges = mnas_graph()
    assert edges["mnas.protocols"] == {"mnas.arch"}  # the seams name only the architecture type
    assert edges["mnas.data.registry"] == {"mnas.errors"}  # where datasets are: known to every loader, so a leaf
    for m in ("mnas.anb.choices", "mnas.anb.table", "mnas.anb.costs", "mnas.anb.surrogate", "mnas.anb.release"):
        assert edges[m] <= {"mnas.errors", "mnas.arch", "mnas.space", "mnas.resolve", "mnas.io", "mnas.data.registry"} | {
            f"mnas.anb.{x}" for x in ("choices", "table", "costs")}, (m, edges[m])


@pytest.mark.slow  # imports torch, optuna, ray, lightgbm, matplotlib...: seconds; the static check above is the fast one
def test_every_module_imports_in_a_shuffled_order():
    mods = sorted(m for m in mnas_graph() if not m.endswith(".__main__"))  # that one runs the CLI
    order = mods[:]
    random.Random(23).shuffle(order)
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\nprint('ok', len(%r))" % (order, order)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["ok", str(len(mods))], r.stderr[-2000:]
