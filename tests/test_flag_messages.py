"""Refusals the CLI shows name its flags as the CLI spells them (``--overwrite``), never a
library keyword (``pass overwrite``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from typer.testing import CliRunner

import curated
from curated.cli import app

SRC = Path(curated.__file__).parent
KEYWORD = re.compile(r"\b(?:pass|with|or|use|set)\s+(overwrite|force|resume)\b(?!-)")


def _literals(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_no_message_names_an_option_by_its_keyword():
    found = [
        f"{p.relative_to(SRC)}:{line}: {text.strip()[:90]}"
        for p in sorted(SRC.rglob("*.py"))
        for line, text in _literals(p)
        if KEYWORD.search(text) or "overwrite=True (" in text
    ]
    assert found == []


def test_sample_fibsem_refusal_names_the_overwrite_flag(tmp_path):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine", encoding="utf-8")
    r = CliRunner().invoke(app, ["sample", "fibsem", str(dest), "--shape", "8", "16", "16"])
    assert r.exit_code != 0
    assert "pass --overwrite" in " ".join(r.output.split())
    assert (dest / "notes.txt").read_text(encoding="utf-8") == "mine"
