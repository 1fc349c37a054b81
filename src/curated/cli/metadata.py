"""``curated init`` and ``curated metadata validate|import-ome|set``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from curated.cli._common import (
    EXIT_BAD_INPUT,
    JSON_OPTION,
    console,
    err_console,
    exit_for,
    handle_errors,
    print_json,
    print_results,
)
from curated.errors import MetadataError
from curated.results import ImportOmeDetails, Result, SetFieldDetails, details_as

metadata_app = typer.Typer(
    help="Describe the dataset: validate curated.yaml, import image headers, set fields.",
    no_args_is_help=True,
)

_LEVEL_STYLE = {"error": "bold red", "alert": "magenta", "warning": "yellow", "info": "cyan"}


@handle_errors
def init(
    directory: Path = typer.Argument(..., help="Folder of the new workspace (created if absent)."),
    title: str = typer.Option(
        ..., "--title", help="Title of the study, as it should appear in a citation."
    ),
    curator: str = typer.Option(
        None,
        "--curator",
        help="Your name, recorded as the agent of every log entry (asked once: kept in ~/.config/curated/config.yaml).",
    ),
    orcid: str = typer.Option(None, "--orcid", help="Your ORCID iD, recorded with your name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a workspace with a curated.yaml skeleton (D: init)."""
    from curated.metadata import init_workspace, validate_record
    from curated.provenance.agent import current_agent

    ws = init_workspace(directory, title, curator=curator, orcid=orcid)
    if not current_agent()["name"]:
        console.print(
            "nobody is recorded as the curator of these steps: run `curated init DIR --title T "
            '--curator "Your Name" --orcid 0000-...` once (or set CURATED_AGENT_NAME)',
            highlight=False,
            soft_wrap=True,
        )
    report = validate_record(ws.metadata_path)
    missing = [e.field for e in report.missing_required]
    result = Result("init", "ok", str(ws.root), "workspace created", {"still_missing": missing})
    print_results([result], as_json=as_json)
    if as_json:
        return
    console.print(
        escape(f"still missing (required): {', '.join(missing)}"), highlight=False, soft_wrap=True
    )
    console.print(
        escape(
            f"Fill it in with `curated metadata set {directory} FIELD VALUE`; check it with `curated metadata validate {directory}`."
        ),
        highlight=False,
        soft_wrap=True,
    )


@metadata_app.command("validate")
@handle_errors
def validate(
    path: Path = typer.Argument(
        ..., help="A workspace folder, a YAML/JSON record file, or an OME-Zarr image."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print errors only (no warnings, no table)."
    ),
    spec_only: bool = typer.Option(
        False,
        "--spec-only",
        help="OME-Zarr: leave out curated's own pyramid convention (the half-voxel translation "
        "of windowed-mean levels), which the specification does not require.",
    ),
) -> None:
    """Check a record: errors (exit 1) with field paths, graded warnings, completeness per REMBI module.

    Given an OME-Zarr image, run ome-zarr-models, yaozarrs and curated's own checks on it
    and its label images instead (exit 1 when any finds a problem)."""
    from curated.images import is_zarr_store
    from curated.metadata import validate_record

    if not path.exists():
        raise MetadataError(
            "not found; give a workspace folder, a YAML/JSON record or an OME-Zarr image",
            path=path,
        )
    if path.is_dir() and is_zarr_store(path):
        _validate_ome_zarr(path, as_json=as_json, conventions=not spec_only)
        return
    report = validate_record(path)
    where = report.path or str(path)
    if as_json:
        print_json(report.to_dict())
        raise typer.Exit(0 if report.valid else EXIT_BAD_INPUT)
    for issue in report.errors:
        err_console.print(
            f"[bold red]error:[/] {escape(where)}: {escape(str(issue))}",
            highlight=False,
            soft_wrap=True,
        )
    if not quiet:
        for issue in report.warnings:
            style = _LEVEL_STYLE.get(issue.severity, "")
            console.print(
                f"[{style}]{issue.severity}:[/] {escape(where)}: {escape(str(issue))}",
                highlight=False,
                soft_wrap=True,
            )
        table = Table(title="Completeness (required + recommended fields filled)")
        table.add_column("REMBI module")
        table.add_column("filled", justify="right")
        table.add_column("%", justify="right")
        for m in report.completeness.values():
            pct = f"{100 * m.fraction:.0f}" if m.present else "absent"
            table.add_row(m.module, f"{m.filled}/{m.expected}", pct)
        console.print(table)
    if report.valid:
        console.print(
            f"[green]valid[/]: {escape(where)} ({len(report.warnings)} warning(s))", highlight=False
        )
        return
    err_console.print(
        f"[bold red]invalid[/]: {escape(where)}: {len(report.errors)} error(s)", highlight=False
    )
    raise typer.Exit(EXIT_BAD_INPUT)


def _validate_ome_zarr(path: Path, *, as_json: bool, conventions: bool) -> None:
    from curated.images import validate_ome_zarr

    problems = validate_ome_zarr(path, conventions=conventions)
    if as_json:
        print_json({"path": str(path), "valid": not problems, "problems": problems})
        raise typer.Exit(EXIT_BAD_INPUT if problems else 0)
    for p in problems:
        err_console.print(f"[bold red]error:[/] {escape(p)}", highlight=False, soft_wrap=True)
    if problems:
        err_console.print(
            f"[bold red]invalid[/]: {escape(str(path))}: {len(problems)} problem(s)",
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    console.print(
        f"[green]valid[/]: {escape(str(path))} (ome-zarr-models, yaozarrs, curated's checks)",
        highlight=False,
    )


@metadata_app.command("import-ome")
@handle_errors
def import_ome_cmd(
    workspace: Path = typer.Argument(..., help="The workspace folder."),
    image: Path = typer.Argument(
        ...,
        help="OME-TIFF, vendor/ImageJ TIFF, a folder of TIFF slices, OME-XML or companion file, HDF5 dataset (FILE.h5:/path), MRC, Zarr/N5 array or OME-Zarr image (only the header is read).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite values the curator wrote."),
    allow_no_metadata: bool = typer.Option(
        False,
        "--allow-no-metadata",
        help="Import sizes and pixel type from a TIFF without physical metadata.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Merge an image's header metadata into curated.yaml, keeping curator values unless --force (A)."""
    from curated.metadata import import_ome

    result = import_ome(workspace, image, force=force, require_metadata=not allow_no_metadata)
    if as_json:
        exit_for(print_results([result], as_json=True))
        return
    details = details_as(result, ImportOmeDetails)
    for warning in details.get("warnings", []):
        console.print(
            f"[yellow]warning:[/] {escape(str(image))}: {escape(warning)}",
            highlight=False,
            soft_wrap=True,
        )
    for change in details.get("changes", []):
        console.print(
            escape(f"  {change['field']}: {change['old']!r} -> {change['new']!r}"),
            highlight=False,
            soft_wrap=True,
        )
    for kept in details.get("kept", []):
        console.print(
            "  [cyan]kept[/] "
            + escape(f"{kept['field']}: {kept['old']!r} (header says {kept['new']!r})"),
            highlight=False,
            soft_wrap=True,
        )
    exit_for(print_results([result]))


@metadata_app.command("set")
@handle_errors
def set_cmd(
    workspace: Path = typer.Argument(..., help="The workspace folder."),
    field: str = typer.Argument(
        ..., help="Field path, e.g. study.license or study.authors[0].orcid."
    ),
    value: str = typer.Argument(
        ..., help="New value, read as YAML (8.0, true, [a, b], {k: v}); null removes it."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set one field of curated.yaml; refused when it would make the record invalid (A)."""
    from curated.metadata import set_field

    result = set_field(workspace, field, value)
    print_results([result], as_json=as_json)
    missing = details_as(result, SetFieldDetails).get("still_missing")
    if missing and not as_json:
        console.print(
            escape(f"still missing (required): {', '.join(missing)}"),
            highlight=False,
            soft_wrap=True,
        )
    exit_for([result])


def register(app: typer.Typer) -> None:
    """Add ``init`` and the ``metadata`` group to ``app``."""
    app.command("init")(init)
    app.add_typer(metadata_app, name="metadata")
