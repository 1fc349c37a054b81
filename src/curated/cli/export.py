"""``curated export empiar|bia WORKSPACE DEST``: submissions to the field's image archives."""

from __future__ import annotations

from pathlib import Path

import typer

from curated.cli._common import err_console, handle_errors, print_results
from curated.results import ArchiveExportDetails, details_as

export_app = typer.Typer(
    name="export",
    help=(
        "Prepare a submission to an image archive: `curated export empiar WORKSPACE DEST` "
        "(EMPIAR deposition package) or `curated export bia WORKSPACE DEST` (BioImage Archive)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

FILES_HELP = "How image files reach DEST: link (hard links, copies where refused) or copy."


def _show_checklist(items: list[str], as_json: bool) -> None:
    if as_json or not items:
        return
    err_console.print(
        f"[yellow]{len(items)} item(s) a person must still supply[/] (see checklist.md):"
    )
    for item in items:
        err_console.print(f"  - {item}", highlight=False, soft_wrap=True)


@export_app.command("empiar")
@handle_errors
def empiar_cmd(
    workspace: Path = typer.Argument(..., help="The dataset's workspace."),
    dest: Path = typer.Argument(
        ..., help="New folder for deposition.json, data/ and checklist.md."
    ),
    release: str = typer.Option("RE", "--release", help="EMPIAR release option: RE, EP, HP or HO."),
    files: str = typer.Option("link", "--files", help=FILES_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DEST if it holds anything."),
    as_json: bool = typer.Option(False, "--json", help="Print the result record as JSON."),
) -> None:
    """Write an EMPIAR deposition package, validated against EMPIAR's schema. [D]

    Refuses, naming every missing field, before anything is written.
    """
    from curated.archive import export_empiar

    res = export_empiar(workspace, dest, release=release, files=files, overwrite=overwrite)
    print_results([res], as_json=as_json)
    _show_checklist(details_as(res, ArchiveExportDetails).get("checklist") or [], as_json)


@export_app.command("bia")
@handle_errors
def bia_cmd(
    workspace: Path = typer.Argument(..., help="The dataset's workspace."),
    dest: Path = typer.Argument(
        ..., help="New folder for submission.json, the file lists, files/ and checklist.md."
    ),
    files: str = typer.Option("link", "--files", help=FILES_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DEST if it holds anything."),
    as_json: bool = typer.Option(False, "--json", help="Print the result record as JSON."),
) -> None:
    """Write a BioImage Archive submission (REMBI components, file list, OME-Zarr images). [D]

    Components are validated against the archive's REMBI and MIFA schemas; refuses,
    naming every missing field, before anything is written.
    """
    from curated.archive import export_bia

    res = export_bia(workspace, dest, files=files, overwrite=overwrite)
    print_results([res], as_json=as_json)
    _show_checklist(details_as(res, ArchiveExportDetails).get("checklist") or [], as_json)


def register(app: typer.Typer) -> None:
    """Add ``export empiar`` and ``export bia`` to the app."""
    app.add_typer(export_app)
