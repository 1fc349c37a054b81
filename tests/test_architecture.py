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
