"""``curated bag WORKSPACE DEST`` and ``curated bag validate BAG``.

Click cannot have a group that takes positional arguments *and* has
subcommands: ``curated bag ws dest`` would look for a subcommand named ``ws``.
:class:`BagGroup` routes: a first argument naming a subcommand (``validate``,
``create``) goes to it; anything else goes to the default ``create`` command.
So both forms of the documented command line work, and ``curated bag --help``
lists both. (A workspace literally named ``validate`` is reached as ``./validate``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

from curated.cli._common import RichProgress, err_console, exit_for, handle_errors, print_results

if TYPE_CHECKING:  # typer >= 0.24 vendors click; these are the classes TyperGroup uses
    from typer._click.core import Context
    from typer._click.formatting import HelpFormatter

DEFAULT_COMMAND = "create"


class BagGroup(TyperGroup):
    """A group whose bare invocation ``bag WORKSPACE DEST`` runs the default ``create`` command."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "WORKSPACE DEST [OPTIONS]")
        formatter.write_usage(
            ctx.command_path, "validate BAG [--profile NAME] [--fast]", prefix="   or: "
        )


bag_app = typer.Typer(
    cls=BagGroup,
    name="bag",
    help=(
        "Pack a workspace into a BagIt bag (RFC 8493) with an RO-Crate: "
        "`curated bag WORKSPACE DEST [OPTIONS]` (same as `curated bag create ...`), "
        "or check one: `curated bag validate BAG [--profile NAME] [--fast]`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _parse_info(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        label, sep, value = item.partition("=")
        if not sep or not label.strip():
            raise typer.BadParameter(f"{item!r} is not LABEL=VALUE", param_hint="--info")
        out[label.strip()] = value.strip()
    return out


@bag_app.command(DEFAULT_COMMAND)
@handle_errors
def create_command(
    workspace: Path = typer.Argument(
        ..., help="The workspace to pack (read only; never modified)."
    ),
    dest: Path = typer.Argument(
        ..., help="The bag folder to create (or DEST.tar / DEST.zip with --serialize)."
    ),
    profile: str = typer.Option(
        "curated",
        "--profile",
        help="BagIt profile: curated, btr, aptrust, chronopolis-like, or a JSON file.",
    ),
    zarr: str = typer.Option(
        "directory",
        "--zarr",
        help="Zarr stores as a 'directory' of chunks or one uncompressed zip 'archive' each.",
    ),
    serialize: str = typer.Option(
        "none", "--serialize", help="none, tar or zip (one top-level folder)."
    ),
    processes: int = typer.Option(1, "--processes", min=1, help="Hashing processes."),
    fetch_base: str | None = typer.Option(
        None,
        "--fetch-base",
        help="URL of institutional storage; large files go to fetch.txt instead of the bag.",
    ),
    fetch_min_size: int = typer.Option(
        1 << 30,
        "--fetch-min-size",
        help="With --fetch-base: files of at least this many bytes are fetched.",
    ),
    follow_symlinks: bool = typer.Option(
        False,
        "--follow-symlinks",
        help="Bag what symbolic links point to (by default they are refused).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing bag at DEST once the new one is complete."
    ),
    copy: bool = typer.Option(
        False, "--copy", help="Always copy payload files (default: hard-link where possible)."
    ),
    info: list[str] | None = typer.Option(
        None, "--info", help="Extra bag-info tag LABEL=VALUE (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pack WORKSPACE into a bag at DEST (the Document step)."""
    from curated.package import make_bag

    if zarr not in ("directory", "archive"):
        raise typer.BadParameter("must be 'directory' or 'archive'", param_hint="--zarr")
    if serialize not in ("none", "tar", "zip"):
        raise typer.BadParameter("must be 'none', 'tar' or 'zip'", param_hint="--serialize")
    with RichProgress(transient=True) as progress:
        result = make_bag(
            workspace,
            dest,
            profile=profile,
            zarr=zarr,  # type: ignore[arg-type]
            serialize=serialize,  # type: ignore[arg-type]
            processes=processes,
            fetch_base=fetch_base,
            fetch_min_size=fetch_min_size,
            follow_symlinks=follow_symlinks,
            overwrite=overwrite,
            bag_info=_parse_info(info),
            link=not copy,
            progress=progress,
        )
    exit_for(print_results([result], title="bag", as_json=as_json))


SHOWN_PROBLEMS = 200
"""Problems printed one a line: a bag from elsewhere can have a million (a manifest of missing files)."""


@bag_app.command("validate")
@handle_errors
def validate_command(
    bag: Path = typer.Argument(..., help="The bag folder, or its .tar / .zip."),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="Profile to check against (default: the one the bag names, if packaged).",
    ),
    fast: bool = typer.Option(
        False, "--fast", help="Check structure and Payload-Oxum only, no checksums."
    ),
    allow_holes: bool = typer.Option(
        False, "--allow-holes", help="Accept files listed in fetch.txt that are not fetched yet."
    ),
    processes: int = typer.Option(1, "--processes", min=1, help="Hashing processes."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check BAG offline: RFC 8493 structure, checksums (or --fast), its BagIt profile and its RO-Crate."""
    from curated.package import validate_bag

    with RichProgress(transient=True) as progress:
        report = validate_bag(
            bag,
            profile=profile,
            fast=fast,
            allow_holes=allow_holes,
            processes=processes,
            progress=progress,
        )
    result = report.to_result()
    if not as_json:
        for w in report.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
        if not report.ok and len(report.problems) > 5:
            for p in report.problems[:SHOWN_PROBLEMS]:
                err_console.print(f"[red]problem:[/] {p}", highlight=False, soft_wrap=True)
            if len(report.problems) > SHOWN_PROBLEMS:
                more = len(report.problems) - SHOWN_PROBLEMS
                err_console.print(
                    f"[red]problem:[/] ... and {more} more (`--json` lists every one)",
                    highlight=False,
                )
    exit_for(print_results([result], title="bag validate", as_json=as_json))


def register(app: typer.Typer) -> None:
    """Add ``bag`` (with its default ``create`` and ``validate``) to the app."""
    app.add_typer(bag_app, name="bag")
