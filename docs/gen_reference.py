"""Generate the CLI reference (from the typer app) and one API page per package (from ``__all__``)."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

PACKAGES = (
    "curated",
    "curated.metadata",
    "curated.curation",
    "curated.images",
    "curated.segment",
    "curated.document",
    "curated.package",
    "curated.deposit",
    "curated.provenance",
    "curated.archive",
    "curated.bench",
)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def api_page(package: str) -> str:
    """An rst page documenting every name in ``package.__all__`` (functions, classes, data)."""
    module = importlib.import_module(package)
    names = list(getattr(module, "__all__", []))
    title = f"``{package}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {package}", "   :no-members:", ""]
    lines += [f".. currentmodule:: {package}", ""]
    for name in names:
        obj = getattr(module, name)
        if isinstance(obj, type):
            directive = "autoclass"
        elif callable(obj):
            directive = "autofunction"
        else:
            lines += [f".. py:data:: {name}", f"   :type: {type(obj).__name__}", ""]
            doc = _attribute_doc(package, name)
            lines += [f"   {ln}" if ln else "" for ln in doc.splitlines()] + [""]
            continue
        lines += [f".. {directive}:: {name}", ""]
        if directive == "autoclass":
            lines += ["   :members:", ""]
    return "\n".join(lines)


def _attribute_doc(package: str, name: str) -> str:
    """The docstring written under a module-level name, in whichever module of ``package`` defines it."""
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(package)
    candidates = [package]
    if hasattr(module, "__path__"):
        candidates += [
            m.name
            for m in pkgutil.walk_packages(module.__path__, package + ".")
            if not m.name.endswith("__main__")  # importing it would run the CLI
        ]
    for mod in candidates:
        try:
            docs = ModuleAnalyzer.for_module(mod).find_attr_docs()
        except Exception:  # a module that cannot be analysed holds no docs for us
            continue
        if ("", name) in docs:
            return "\n".join(docs[("", name)]).strip()
    return f"A ``{type(getattr(module, name)).__name__}`` (see the module's source)."


def _cli_command(path: list[str], cmd: object, out: list[str]) -> None:
    subs = getattr(cmd, "commands", None)
    name = " ".join(["curated", *path])
    if subs and path:
        out += [f"## `{name}`", "", (cmd.help or "").strip(), ""]
    if subs:
        for sub_name, sub in subs.items():
            _cli_command([*path, sub_name], sub, out)
        return
    heading = "###" if len(path) > 1 else "##"
    out += [f"{heading} `{name}`", "", (cmd.help or "").strip(), ""]
    args = [p for p in cmd.params if getattr(p, "param_type_name", "") == "argument"]
    opts = [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]
    usage = " ".join([name, *[a.name.upper() for a in args], "[OPTIONS]" if opts else ""])
    out += ["```text", usage.strip(), "```", ""]
    if args or opts:
        out += ["| argument / option | help | default |", "|---|---|---|"]
    for p in args + opts:
        label = p.name.upper() if p in args else ", ".join(f"`{o}`" for o in p.opts)
        default = "" if p.required or p.default in (None, False) else f"`{p.default}`"
        helptext = (getattr(p, "help", "") or "").replace("|", "\\|").replace("\n", " ")
        if p.required:
            helptext += " (required)"
        out.append(f"| {label} | {helptext} | {default} |")
    out.append("")


def cli_page() -> str:
    """The CLI reference, one section per command, from the same objects ``--help`` prints."""
    from curated.cli import app

    root = typer.main.get_command(app)
    out = [
        "# Command-line reference",
        "",
        "Generated from the typer app (`docs/gen_reference.py`); `curated COMMAND --help`",
        "prints the same. Global options: `--quiet/-q`, `--verbose/-v`, `--version`.",
        "",
    ]
    _cli_command([], root, out)
    return "\n".join(out) + "\n"


def write_all(docs: Path) -> None:
    api = docs / "api"
    api.mkdir(exist_ok=True)
    for package in PACKAGES:
        _write_if_changed(api / f"{package}.rst", api_page(package))
    index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {package}" for package in PACKAGES]
    _write_if_changed(api / "index.rst", "\n".join(index) + "\n")
    _write_if_changed(docs / "cli.md", cli_page())
