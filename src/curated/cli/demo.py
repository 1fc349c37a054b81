"""`curated demo DEST`: the whole pipeline on the built-in synthetic sample."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from curated.cli._common import JSON_OPTION, RichProgress, console, handle_errors, print_json

STYLE = {
    "ok": "green",
    "notneeded": "cyan",
    "error": "red",
    "impossible": "yellow",
    "skipped": "dim",
}


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    from curated.segment.defaults import DEFAULT_DEPTH, DEFAULT_FEATURES, DEFAULT_ITERATIONS

    @app.command("demo")
    @handle_errors
    def demo(
        dest: Path = typer.Argument(..., help="New folder for raw/, workspace/ and repository/."),
        shape: tuple[int, int, int] = typer.Option(
            (0, 0, 0), "--shape", help="Sample size Z Y X (default: the generator's)."
        ),
        iterations: int = typer.Option(
            DEFAULT_ITERATIONS,
            "--iterations",
            min=1,
            help="Training iterations (as curated segment train).",
        ),
        depth: int | None = typer.Option(
            DEFAULT_DEPTH,
            "--depth",
            min=1,
            max=4,
            help="U-Net pooling levels [default: planned from the voxel size, as curated "
            "segment train].",
        ),
        base_features: int = typer.Option(
            DEFAULT_FEATURES,
            "--base-features",
            min=2,
            help="U-Net features at the first level (as curated segment train).",
        ),
        local_contrast: float | None = typer.Option(
            None,
            "--local-contrast",
            min=0.0,
            help="Local contrast normalisation σ in voxels [default: 400 nm, as curated segment train].",
        ),
        shading: float = typer.Option(
            0.0, "--shading", min=0.0, max=0.99, help="Shading strength S of the sample."
        ),
        crops: int = typer.Option(
            6, "--crops", min=1, help="Crops the emulated curator annotates."
        ),
        crop_size: int = typer.Option(
            32, "--crop-size", min=8, help="Edge of each annotated crop (voxels)."
        ),
        eval_blocks: int = typer.Option(
            6, "--eval-blocks", min=1, help="Random held-out blocks to evaluate on."
        ),
        eval_block_size: int = typer.Option(
            32, "--eval-block-size", min=8, help="Edge of each held-out block."
        ),
        seed: int = typer.Option(
            0, "--seed", help="Seed for the sample, crops, training and held-out blocks."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace DEST if it exists."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run the whole pipeline on a synthetic FIB-SEM sample, offline, in minutes.

        init, check, metadata, request, convert, annotate, train, predict, evaluate,
        model export, EMPIAR and BioImage Archive exports, README, FAIR, bag, deposit to a folder, log verify.
        """
        from curated.demo import run_demo

        with RichProgress(transient=True) as progress:
            report = run_demo(
                dest,
                shape=shape if all(shape) else None,
                iterations=iterations,
                depth=depth,
                base_features=base_features,
                local_contrast=local_contrast,
                shading=shading,
                crops=crops,
                crop_size=crop_size,
                eval_blocks=eval_blocks,
                eval_block_size=eval_block_size,
                seed=seed,
                overwrite=overwrite,
                progress=progress,
                on_stage=_quiet if as_json else _print_stage,
            )
        if as_json:
            print_json(
                {"ok": report.ok, "dest": str(dest), "stages": [asdict(st) for st in report.stages]}
            )
            if not report.ok:
                raise typer.Exit(1)
            return
        _print_summary(report, dest)
        if not report.ok:
            raise typer.Exit(1)
        console.print(
            f"[green]done.[/] Open {report.workspace / 'README.md'} to see what was made."
        )


def _quiet(st) -> None:  # type: ignore[no-untyped-def]
    """``--json``: nothing printed while stages run (the JSON comes at the end)."""


def _print_stage(st) -> None:  # type: ignore[no-untyped-def]
    """One line per finished stage, as the demo runs."""
    style = STYLE.get(st.status, "")
    console.print(
        f"[{style}]{st.status:>9}[/]  \\[{st.step}] {st.name}  "
        f"[dim]wall {st.seconds:.1f} s, CPU {st.cpu_seconds:.1f} s[/]"
    )
    if st.status == "error":
        console.print(f"           [red]{st.message}[/]", soft_wrap=True)


def _print_summary(report, dest: Path) -> None:  # type: ignore[no-untyped-def]
    """The table of every stage, its output, key figures and times, then the totals."""
    table = Table(title=f"curated demo → {dest}")
    table.add_column("step")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("output", overflow="fold")
    table.add_column("key figures", overflow="fold")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    for st in report.stages:
        figs = ", ".join(f"{k}={v}" for k, v in st.figures.items())
        out = st.path or ""
        try:
            out = str(Path(out).resolve().relative_to(Path(dest).resolve())) if out else ""
        except ValueError:
            pass
        style = STYLE.get(st.status, "")
        table.add_row(
            st.step,
            st.name,
            f"[{style}]{st.status}[/]",
            out,
            figs,
            f"{st.seconds:.1f}",
            f"{st.cpu_seconds:.1f}",
        )
    console.print(table)
    wall = sum(st.seconds for st in report.stages)
    cpu = sum(st.cpu_seconds for st in report.stages)
    console.print(
        f"total: wall {wall:.1f} s, CPU {cpu:.1f} s (CPU > wall: stages ran on several cores)"
    )
