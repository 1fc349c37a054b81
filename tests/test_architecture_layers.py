"""The shape of the code: layers, one way to do a thing, functions that fit on a screen.

docs/architecture.md describes what these tests hold in place.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

import curated
from curated.provenance import STEPS

SRC = Path(curated.__file__).parent

LAYERS: dict[str, int] = {
    # 0 base: no curated imports above it
    **dict.fromkeys(
        (
            "_io",
            "_crash",
            "_secrets",
            "_s3session",
            "_text",
            "_version",
            "_parallel",
            "errors",
            "results",
        ),
        0,
    ),
    "progress": 0,
    "walk": 0,  # the one directory walker (no curated imports)
    "_json_outline": 0,
    "provenance": 1,
    "objstore": 1,  # where bytes go (folder or s3://); imports errors, _secrets, provenance.digest
    "workspace": 2,
    "__init__": 2,  # the facade re-exports Workspace, recorder, Result, CuratedError
    "metadata": 3,
    "images": 3,
    # 4: the verbs (curation, document, segment, package, deposit, archive, and any new package)
    "demo": 5,
    "cli": 6,
    "__main__": 6,
}
VERBS = 4

ALLOWED_UPWARD = {
    # save_agent checks an ORCID's checksum: a pure function with no curated imports
    ("provenance.agent", "metadata.identifiers"),
}


@functools.cache
def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__") or "__init__"
        out.append((name, ast.parse(path.read_text(encoding="utf-8"))))
    return out


def _layer(module: str) -> int:
    return LAYERS.get(module.split(".")[0], VERBS)


def _curated_imports(tree: ast.Module) -> Iterator[str]:
    """Every ``curated.*`` module imported, at the top or inside a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "curated":
                yield "__init__"
            elif name.startswith("curated."):
                yield name.removeprefix("curated.")


def test_inner_layers_never_import_outer_ones():
    upward = []
    for module, tree in _modules():
        for imported in _curated_imports(tree):
            if _layer(imported) > _layer(module):
                pair = (module, ".".join(imported.split(".")[:2]))
                if pair not in ALLOWED_UPWARD:
                    upward.append(f"{module} (layer {_layer(module)}) imports {imported}")
    assert upward == []


def test_the_layer_check_catches_an_upward_import():
    tree = ast.parse("def f():\n    from curated.cli import app\n")
    assert [_layer(m) for m in _curated_imports(tree)] == [6]
    assert _layer("provenance.log") < _layer("cli._common")


def test_one_redact():
    defined = [
        module
        for module, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "redact"
    ]
    assert defined == ["_secrets"]


@pytest.mark.parametrize("letter", sorted(STEPS))
def test_steps_are_opened_only_with_recorder(letter):
    """``x.step("T", ...)`` (the deprecated Workspace.step / CuratorLog.step) is used nowhere in src."""
    calls = [
        module
        for module, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "step"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == letter
    ]
    assert calls == []
