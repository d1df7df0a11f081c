"""The package's import graph has no cycles (issue 20): every ``import`` in src/wmprobe, at module level or
inside a function, is an edge from the importing module to the module it names (a ``from pkg import name``
names ``pkg.name`` when that is a module, else ``pkg``); imports under ``if TYPE_CHECKING:`` are left out, and so
are the implicit imports of parent packages (``import a.b`` runs ``a/__init__``; that is how Python packages
work, not a dependency a reader must follow).

``ALLOWED`` lists edges that close a known cycle, each with who removes it; it may only shrink: an entry whose
edge no longer exists fails the test, so remove it when its cycle is gone.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "wmprobe"

# (importer, imported): an edge closing a cycle that is still to be removed -> who removes it
ALLOWED: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package (a package is its ``__init__``)."""
    out = {}
    for f in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (see the module doc)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            for child in getattr(node, "orelse", []):
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.add(sub if sub in known else mod)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    # `import a.b.c` names a.b.c; keep the deepest package module each import names
    resolved = set()
    for m in out:
        while m and m not in known:
            m = m.rpartition(".")[0]
        if m.startswith(PACKAGE) and m != name:
            resolved.add(m)
    return resolved


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports_of(n, p, set(mods)) for n, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(g):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(out)


def test_the_package_has_no_import_cycles():
    g = graph()
    stale = [e for e in ALLOWED if e[1] not in g.get(e[0], set())]
    assert not stale, f"allowed edges that no longer exist (remove them from ALLOWED): {stale}"
    for a, b in ALLOWED:
        g[a] = g[a] - {b}
    found = cycles(g)
    assert not found, "import cycles (modules that import each other, directly or through others):\n" + "\n".join(
        "  " + " <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_and_relative_imports_are_edges(tmp_path):
    pkg = tmp_path / "wmprobe" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    f = pkg / "a.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from wmprobe.sub import c\n"
                 "def g():\n    from . import b\n    import wmprobe.sub.d as d\n")
    known = {"wmprobe", "wmprobe.sub", "wmprobe.sub.a", "wmprobe.sub.b", "wmprobe.sub.c", "wmprobe.sub.d"}
    assert imports_of("wmprobe.sub.a", f, known) == {"wmprobe.sub.b", "wmprobe.sub.d"}


def makefile_demo_imports() -> list[str]:
    """The modules of the Makefile's ``DEMO_IMPORTS``: what ``make demo``'s install imports once to write their
    ``.pyc`` files (it installs with ``pip --no-compile``)."""
    text = (SRC.parent / "Makefile").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("DEMO_IMPORTS"))
    return [m.strip() for m in line.split(":=", 1)[1].split(",") if m.strip()]


def test_the_demo_install_imports_modules_that_exist():
    """``make demo`` fails at its install if a module of ``DEMO_IMPORTS`` was renamed or dropped: each must
    resolve here, and the list must hold the demo's entry point and the zoo's optimiser path (torch._dynamo:
    the first optimiser of a process imports it, with sympy)."""
    import importlib.util
    names = makefile_demo_imports()
    assert {"wmprobe.demo", "torch._dynamo"} <= set(names), names
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    assert not missing, f"Makefile DEMO_IMPORTS names modules that do not exist: {missing}"
