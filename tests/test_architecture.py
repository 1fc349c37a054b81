"""Rules about the shape of src/ that keep one way of doing each thing (issue 19)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "curated"

# ----------------------------------------------------------- one NGFF reader
NGFF_READER = "images/ngff.py"
"""The one module that parses NGFF ``multiscales`` metadata."""

NGFF_WRITERS = {
    "images/convert.py": "writes a converted image's multiscales (from images/layout.py)",
    "images/labels.py": "writes a label image's multiscales and image-label block",
}
"""Modules that build ``multiscales`` metadata as a dict key, to write it; they never read it."""


def _modules() -> dict[str, ast.Module]:
    return {
        p.relative_to(SRC).as_posix(): ast.parse(p.read_text(encoding="utf-8"))
        for p in sorted(SRC.rglob("*.py"))
    }


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (and attribute docstrings) of a module."""
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                out.add(id(stmt.value))
    return out


def _uses(tree: ast.Module, literal: str) -> tuple[int, int]:
    """``(dict-key uses, other uses)`` of the string ``literal`` in code (docstrings left out)."""
    skip = _docstrings(tree)
    keys = {id(k) for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys if k}
    as_key = other = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == literal and id(node) not in skip:
            if id(node) in keys:
                as_key += 1
            else:
                other += 1
    return as_key, other


def test_exactly_one_module_reads_ngff_multiscales():
    readers = sorted(m for m, tree in _modules().items() if _uses(tree, "multiscales")[1])
    assert readers == [NGFF_READER], (
        "NGFF multiscales metadata are read only by curated/images/ngff.py "
        f"(read_ngff / from_group); found reads in {readers}"
    )


def test_only_the_named_writers_build_multiscales():
    writers = sorted(m for m, tree in _modules().items() if _uses(tree, "multiscales")[0])
    unexpected = [m for m in writers if m not in NGFF_WRITERS and m != NGFF_READER]
    assert not unexpected, f"multiscales built outside the named writers: {unexpected}"


def test_the_checker_sees_reads_and_writes():
    reads = ast.parse('x = attrs["multiscales"]\ny = a.get("multiscales")\n"multiscales" in a\n')
    writes = ast.parse('"""multiscales in a docstring"""\nbody = {"multiscales": []}\n')
    assert _uses(reads, "multiscales") == (0, 3)
    assert _uses(writes, "multiscales") == (1, 0)


def test_only_the_reader_unwraps_the_ome_block():
    """NGFF 0.5 keeps its attributes under ``ome``, 0.4 at the top level: one rule, in one place."""
    readers = sorted(m for m, tree in _modules().items() if _uses(tree, "ome")[1])
    assert readers == [NGFF_READER], f"read the 'ome' block with images.ngff.ngff_block: {readers}"


def test_one_definition_of_a_zarr_store():
    defined = sorted(
        m
        for m, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "is_zarr_store"
    )
    assert defined == ["walk.py"]  # the walker's; images.ngff re-exports it


# ----------------------------------------------------------- one tree walker
TREE_WALKER = "walk.py"
"""The one module that walks directory trees (sorted scandir, spill to disk, link policy)."""

WALK_ALLOWED: dict[str, str] = {
    TREE_WALKER: "curated.walk: lists one folder with os.scandir, descends with an explicit stack",
}
"""Modules allowed to walk a tree themselves, each with the reason. Everything else calls
:func:`curated.walk.walk` (single-folder listings such as ``iterdir()`` of one folder are fine)."""

LISTINGS = {"scandir", "iterdir", "listdir"}
"""Calls that list one folder: fine on their own, a tree walk inside a recursive function."""


def _called_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def _calls_itself(call: ast.Call, name: str) -> bool:
    """``name(...)``, ``self.name(...)`` or ``cls.name(...)`` (not ``os.listdir`` in a ``listdir``)."""
    f = call.func
    if isinstance(f, ast.Name):
        return f.id == name
    return (
        isinstance(f, ast.Attribute)
        and f.attr == name
        and isinstance(f.value, ast.Name)
        and f.value.id in ("self", "cls")
    )


def _is_recursive_glob(call: ast.Call) -> bool:
    """``x.glob("**/...")`` or ``glob.glob(..., recursive=True)`` / ``glob.iglob``."""
    if any(kw.arg == "recursive" for kw in call.keywords):
        return True
    return any(
        isinstance(a, ast.Constant) and isinstance(a.value, str) and "**" in a.value
        for a in call.args
    )


def _tree_walks(tree: ast.Module) -> list[str]:
    """Recursive tree walks in a module, as ``"line: what"``.

    Caught: ``os.walk`` / ``os.fwalk`` (called, or imported by name), any ``.rglob(``
    call, a recursive ``glob`` (``**`` pattern or ``recursive=``), and a folder
    listing (``os.scandir``, ``iterdir``, ``os.listdir``) inside a function that
    calls itself (by name, or as ``self.``/``cls.`` method).
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"{node.lineno}: from os import {a.name}"
                for a in node.names
                if a.name in ("walk", "fwalk")
            ]
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        f = node.func
        if isinstance(f.value, ast.Name) and f.value.id == "os" and f.attr in ("walk", "fwalk"):
            found.append(f"{node.lineno}: os.{f.attr}")
        elif f.attr == "rglob":
            found.append(f"{node.lineno}: .rglob(")
        elif f.attr in ("glob", "iglob") and _is_recursive_glob(node):
            found.append(f"{node.lineno}: recursive .{f.attr}(")
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
        if not any(_calls_itself(c, fn.name) for c in calls):
            continue
        found += [
            f"{c.lineno}: {_called_name(c)} in the recursive function {fn.name}"
            for c in calls
            if _called_name(c) in LISTINGS
        ]
    return found


def test_exactly_one_module_walks_directory_trees():
    walkers = {m: w for m, tree in _modules().items() if (w := _tree_walks(tree))}
    unexpected = {m: w for m, w in walkers.items() if m not in WALK_ALLOWED}
    assert not unexpected, (
        "walk folder trees with curated.walk.walk (sorted, bounded memory, one link policy); "
        f"found own walks in {unexpected}"
    )


def test_the_walk_checker_sees_each_kind_of_walk():
    code = """
import os
from os import walk
def a(p):
    for r, d, f in os.walk(p): pass
    list(p.rglob("*.json"))
    list(p.glob("**/x"))
    glob.glob(p, recursive=True)
def b(folder):
    with os.scandir(folder) as it:
        for e in it:
            if e.is_dir():
                b(e.path)
class C:
    def c(self, p):
        for q in p.iterdir():
            self.c(q)
def one_folder(p):
    return sorted(p.iterdir()), list(p.glob("*.tif")), os.scandir(p)
class Sink:
    def listdir(self, p):
        return os.listdir(p)
"""
    hits = _tree_walks(ast.parse(code))
    assert sorted(h.split(": ", 1)[1] for h in hits) == [
        ".rglob(",
        "from os import walk",
        "iterdir in the recursive function c",
        "os.walk",
        "recursive .glob(",
        "recursive .glob(",
        "scandir in the recursive function b",
    ]
