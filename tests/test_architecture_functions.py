"""Architecture rules of issue 19 that a parser can check: short functions, private names kept private.

- No function (or method, or nested function) in ``src/`` is longer than
  :data:`MAX_LINES` lines, from its ``def`` line to its last line, docstring included.
- No module imports a private (``_name``) module or name that belongs to another
  package: ``curated.segment._store`` is private to ``curated.segment``, so
  ``curated.document`` may not import it; a private module of ``curated`` itself
  (``curated._io``) serves the whole library.

"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "curated"
MAX_LINES = 120


# ------------------------------------------------------------------ function length
def function_lengths(root: Path) -> dict[str, int]:
    """``"<path>::<qualified name>"`` → lines, for every function under ``root``."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, rel: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                out[f"{rel}::{name}"] = child.end_lineno - child.lineno + 1  # type: ignore[operator]
                visit(child, f"{name}.", rel)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", rel)
            else:
                visit(child, prefix, rel)

    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent if root.name == "curated" else root).as_posix()
        visit(ast.parse(path.read_text(encoding="utf-8")), "", rel)
    return out


def long_functions(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    return {k: n for k, n in function_lengths(root).items() if n > limit}


def test_no_function_in_src_is_longer_than_120_lines():
    too_long = long_functions(PACKAGE)
    assert not too_long, (
        f"functions longer than {MAX_LINES} lines (split them along their phases): "
        + ", ".join(f"{k} ({n})" for k, n in sorted(too_long.items()))
    )


# ------------------------------------------------------------------ private names
def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path, root: Path) -> str:
    name = _module_name(path, root)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _owner(parts: list[str], root: Path) -> str | None:
    """The package a dotted import target's first private part belongs to (``None``: all public)."""
    for i, part in enumerate(parts):
        if _is_private(part):
            prefix = parts[:i]
            # a private module or name inside a package belongs to that package; a private
            # name inside a module belongs to the module's package
            if root.joinpath(*prefix).is_dir():
                return ".".join(prefix)
            return ".".join(prefix[:-1])
    return None


def private_imports_across_packages(root: Path, top: str = "curated") -> list[str]:
    """``"<module>:<line> imports <target>"`` for every private import from another package.

    ``root`` holds the top-level package folder (``src``). An import is allowed when the
    importer's package is the owner of the private part or lies inside it.
    """
    found = []
    for path in sorted((root / top).rglob("*.py")):
        package = _package_of(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [[*base.split("."), alias.name] for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name.split(".") for alias in node.names]
            else:
                continue
            for target in targets:
                if target[0] != top:
                    continue
                owner = _owner(target, root)
                if owner is None or package == owner or package.startswith(owner + "."):
                    continue
                found.append(f"{_module_name(path, root)}:{node.lineno} imports {'.'.join(target)}")
    return found


def test_no_module_imports_a_private_name_of_another_package():
    found = private_imports_across_packages(SRC)
    assert not found, "private names used across packages (expose them publicly): " + "; ".join(
        found
    )


def private_names_from_other_modules(root: Path, under: str) -> list[str]:
    """``from curated.x.y import _z`` in the modules under ``root/under``: another module's
    private name (a private *module* of the same package, ``from curated.x import _y``, is fine)."""
    found = []
    for path in sorted((root / under).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            module = node.module or ""
            if not module.startswith("curated") or root.joinpath(*module.split(".")).is_dir():
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(
                        f"{_module_name(path, root)}:{node.lineno} imports {module}.{alias.name}"
                    )
    return found


@pytest.mark.parametrize("under", ["curated/segment", "curated/demo.py"])
def test_segment_modules_use_each_others_public_names_only(under: str):
    target = SRC / under
    paths = [target] if target.is_file() else sorted(target.rglob("*.py"))
    found = [
        f
        for f in private_names_from_other_modules(SRC, "curated")
        if any(f.startswith(_module_name(p, SRC) + ":") for p in paths)
    ]
    assert not found, "; ".join(found)


# ------------------------------------------------------------------ the checks can fail
def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def test_a_long_function_and_a_long_method_are_found(tmp_path: Path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    _write(tmp_path / "curated", "a.py", f"def long():\n{body}\ndef short():\n    return 1\n")
    _write(
        tmp_path / "curated",
        "b.py",
        f"class C:\n    def m(self):\n{'    ' + body.replace(chr(10), chr(10) + '    ')}",
    )
    found = long_functions(tmp_path / "curated")
    assert set(found) == {"curated/a.py::long", "curated/b.py::C.m"}
    assert found["curated/a.py::long"] == MAX_LINES + 1


@pytest.mark.parametrize(
    ("importer", "line", "bad"),
    [
        ("curated/document/readme.py", "from curated.segment._store import GENERIC_NAME", True),
        ("curated/document/readme.py", "import curated.segment._store", True),
        ("curated/segment/export.py", "from curated.images.reader import _open", True),
        ("curated/segment/export.py", "from curated.images import _helper", True),
        ("curated/segment/train.py", "from curated.segment import _store", False),
        ("curated/segment/train.py", "from ._store import GENERIC_NAME", False),
        ("curated/segment/train.py", "from .._io import write_json", False),
        ("curated/segment/train.py", "from curated._io import write_json", False),
        ("curated/segment/train.py", "from curated._version import __version__", False),
        ("curated/segment/train.py", "from curated.images.reader import open_image", False),
    ],
)
def test_private_imports_across_packages_are_found(
    tmp_path: Path, importer: str, line: str, bad: bool
):
    for pkg in ("curated", "curated/segment", "curated/images", "curated/document"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    for mod in ("curated/_io.py", "curated/_version.py", "curated/segment/_store.py"):
        _write(tmp_path, mod, "")
    _write(tmp_path, "curated/images/reader.py", "")
    _write(tmp_path, importer, line + "\n")
    found = private_imports_across_packages(tmp_path)
    assert bool(found) is bad, found


def test_a_private_name_of_a_sibling_module_is_found(tmp_path: Path):
    for pkg in ("curated", "curated/segment"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    _write(tmp_path, "curated/segment/evaluate.py", "def _open_level0(): ...\n")
    _write(tmp_path, "curated/segment/_store.py", "")
    _write(
        tmp_path,
        "curated/segment/export.py",
        "from curated.segment import _store\nfrom curated.segment.evaluate import Box, _open_level0\n",
    )
    found = private_names_from_other_modules(tmp_path, "curated")
    assert found == ["curated.segment.export:2 imports curated.segment.evaluate._open_level0"]
