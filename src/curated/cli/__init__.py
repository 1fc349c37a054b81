"""The ``curated`` command line: one Typer app, one module per group of commands.

Each module in :data:`COMMAND_MODULES` exposes ``register(app)`` which adds its
commands; modules stay thin and call the Python API.
"""

from __future__ import annotations

import importlib

import typer

from curated._version import __version__
from curated.cli._common import CuratedGroup, set_verbosity

COMMAND_MODULES = (
    "curated.cli.metadata",  # init, metadata validate|import-ome|set
    "curated.cli.curation",  # check, request, log
    "curated.cli.convert",  # convert, labels add
    "curated.cli.segment",  # sample, annotate, segment train|finetune|predict|evaluate|export
    "curated.cli.document",  # readme, fair
    "curated.cli.bag",  # bag, bag validate
    "curated.cli.deposit",  # deposit
    "curated.cli.export",  # export empiar|bia
    "curated.cli.demo",  # demo
    "curated.cli.measure",  # labels measure
    "curated.cli.bench",  # bench formats
)

app = typer.Typer(
    cls=CuratedGroup,
    name="curated",
    help="Curate very large biomedical image datasets into well-described, trustworthy deposits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"curated {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only errors (and JSON when --json is given)."
    ),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="Log each step's progress to stderr; -vv for detail."
    ),
) -> None:
    """curated: Check, Understand, Request, Augment, Transform, Evaluate, Document."""
    set_verbosity(quiet=quiet, verbose=verbose)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()
