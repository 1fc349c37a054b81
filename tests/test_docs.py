"""The documentation site's generated reference covers the code (the build itself runs in CI)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(DOCS))

gen_reference = pytest.importorskip("gen_reference")


def _packages_with_all() -> list[str]:
    out = ["curated"]
    for init in sorted((SRC / "curated").glob("*/__init__.py")):
        package = f"curated.{init.parent.name}"
        if hasattr(importlib.import_module(package), "__all__"):
            out.append(package)
    return out


def test_every_package_with_a_public_api_has_a_reference_page():
    assert set(_packages_with_all()) <= set(gen_reference.PACKAGES)


@pytest.mark.parametrize("package", _packages_with_all())
def test_reference_page_documents_every_name_in_all(package):
    page = gen_reference.api_page(package)
    for name in importlib.import_module(package).__all__:
        assert any(line.strip().endswith(f":: {name}") for line in page.splitlines()), (
            f"{package}.{name} is missing from the API reference"
        )


def test_cli_reference_lists_every_command():
    import typer

    from curated.cli import app

    page = gen_reference.cli_page()
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        assert f"`curated {name}" in page
        for sub in getattr(cmd, "commands", {}):
            assert f"`curated {name} {sub}`" in page
    # a default written into help survives (escaped for Rich, which Markdown reads as "[")
    assert "Training iterations \\[default:" in page


@pytest.mark.parametrize(
    "page",
    [
        "deposit-directory",
        "deposit-invenio",
        "deposit-dataverse",
        "deposit-dspace",
        "deposit-figshare",
    ],
)
def test_each_deposit_target_has_a_how_to(page):
    text = (DOCS / "howto" / f"{page}.md").read_text(encoding="utf-8")
    target = page.removeprefix("deposit-")
    assert f"--to {target}" in text or (target == "invenio" and "--to zenodo" in text)
    assert page in (DOCS / "index.md").read_text(encoding="utf-8")
