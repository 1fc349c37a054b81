"""CLI: ``curated bench formats`` (TIFF vs HDF5 vs Zarr vs N5, and Parquet vs CSV, measured)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from curated.cli._common import RichProgress, console, handle_errors, print_json

bench_app = typer.Typer(
    help="Measure storage choices on this machine and this data.", no_args_is_help=True
)


@handle_errors
def bench_formats_command(
    image: Path = typer.Argument(
        ..., help="OME-Zarr image (level 0 is used) or a TIFF/HDF5/MRC/Zarr/N5 source."
    ),
    out: Path = typer.Option(
        Path("bench-formats"),
        "--out",
        help="Folder for bench-formats.json, bench-formats.png and the copies while they are timed.",
    ),
    formats: list[str] | None = typer.Option(
        None,
        "--format",
        help="Time only this format; repeatable (default: all of tiff-contiguous, tiff-tiled, "
        "hdf5, zarr-v2, zarr-v3-sharded, n5).",
    ),
    blocks: int = typer.Option(
        5, "--blocks", min=1, help="Random 64³ blocks timed per format (256³: half as many)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random block positions."),
    labels: str | None = typer.Option(
        None,
        "--labels",
        help="Label image whose measurements time Parquet against CSV (default: the first one).",
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the written copies under OUT/copies (default: deleted)."
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", help="Record the benchmark in this workspace's curator log."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON record instead of tables."),
) -> None:
    """Write IMAGE as TIFF, HDF5, Zarr v2/v3 and N5 and time block, slice and scan reads, writes and sizes."""
    from curated.bench.formats import bench_formats, table_rows

    with RichProgress() as bar:
        result = bench_formats(
            image,
            out,
            formats_=formats or None,
            blocks=blocks,
            seed=seed,
            labels=labels,
            keep=keep,
            workspace=workspace,
            progress=bar,
        )
    d = result.details
    if as_json:
        print_json(result.to_dict())
        return
    header, rows = table_rows(d)
    src = d["source"]
    # formats as columns, measures as rows: fits a terminal of 80 columns
    table = Table(
        title=f"{src['path']}: {'x'.join(map(str, src['shape']))} {src['dtype']} ({src['bytes'] / 1e6:.1f} MB)"
    )
    table.add_column(header[0])
    for r in rows:
        table.add_column(r[0], justify="right", overflow="fold")
    for i, h in enumerate(header[1:], start=1):
        table.add_row(h, *(r[i] for r in rows))
    console.print(table)
    tables = d["tables"]
    if "skipped" in tables:
        console.print(f"Parquet vs CSV: skipped ({tables['skipped']})", highlight=False)
    else:
        pq_, csv = tables["parquet"], tables["csv"]
        console.print(
            f"measurements of {tables['labels']!r} ({tables['rows']} rows): Parquet {pq_['bytes']} B, "
            f"write {pq_['write_ms']} ms, read {pq_['read_ms']} ms; CSV {csv['bytes']} B, "
            f"write {csv['write_ms']} ms, read {csv['read_ms']} ms (CSV loses the units)",
            highlight=False,
        )
    console.print(f"cold: {d['plan']['cold']}", highlight=False)
    console.print(f"report {d['report']}, plot {d['plot']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``bench formats`` to ``app``."""
    bench_app.command("formats")(bench_formats_command)
    app.add_typer(bench_app, name="bench")
