"""`curated demo DEST`: the whole pipeline on the built-in synthetic sample."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from curated.cli._common import RichProgress, console, handle_errors

STYLE = {"ok": "green", "notneeded": "cyan", "error": "red", "impossible": "yellow", "skipped": "dim"}


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command("demo")
    @handle_errors
    def demo(
        dest: Path = typer.Argument(..., help="New folder for raw/, workspace/ and repository/."),
        shape: tuple[int, int, int] = typer.Option((0, 0, 0), "--shape", help="Sample size Z Y X (default: the generator's)."),
        iterations: int = typer.Option(1200, "--iterations", min=1, help="Training iterations."),
        depth: int = typer.Option(1, "--depth", min=1, max=4, help="U-Net pooling levels."),
        base_features: int = typer.Option(16, "--base-features", min=2, help="U-Net features at the first level."),
        shading: float = typer.Option(0.0, "--shading", min=0.0, max=0.99, help="Shading strength S of the sample."),
        crops: int = typer.Option(6, "--crops", min=1, help="Crops the emulated curator annotates."),
        crop_size: int = typer.Option(32, "--crop-size", min=8, help="Edge of each annotated crop (voxels)."),
        eval_blocks: int = typer.Option(6, "--eval-blocks", min=1, help="Random held-out blocks to evaluate on."),
        eval_block_size: int = typer.Option(32, "--eval-block-size", min=8, help="Edge of each held-out block."),
        seed: int = typer.Option(0, "--seed", help="Seed for the sample, crops, training and held-out blocks."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace DEST if it exists."),
    ) -> None:
        """Run the whole pipeline on a synthetic FIB-SEM sample, offline, in minutes.

        init, check, metadata, request, convert, annotate, train, predict, evaluate,
        model export, EMPIAR and BioImage Archive exports, README, FAIR, bag, deposit to a folder, log verify.
        """
        from curated.demo import run_demo

        def on_stage(st) -> None:  # type: ignore[no-untyped-def]
            style = STYLE.get(st.status, "")
            console.print(f"[{style}]{st.status:>9}[/]  [{st.step}] {st.name}  [dim]{st.seconds:.1f}s[/]")
            if st.status == "error":
                console.print(f"           [red]{st.message}[/]", soft_wrap=True)

        with RichProgress(transient=True) as progress:
            report = run_demo(
                dest,
                shape=shape if all(shape) else None,
                iterations=iterations,
                depth=depth,
                base_features=base_features,
                shading=shading,
                crops=crops,
                crop_size=crop_size,
                eval_blocks=eval_blocks,
                eval_block_size=eval_block_size,
                seed=seed,
                overwrite=overwrite,
                progress=progress,
                on_stage=on_stage,
            )
        table = Table(title=f"curated demo → {dest}")
        table.add_column("step")
        table.add_column("stage")
        table.add_column("status")
        table.add_column("output", overflow="fold")
        table.add_column("key figures", overflow="fold")
        table.add_column("s", justify="right")
        for st in report.stages:
            figs = ", ".join(f"{k}={v}" for k, v in st.figures.items())
            out = st.path or ""
            try:
                out = str(Path(out).resolve().relative_to(Path(dest).resolve())) if out else ""
            except ValueError:
                pass
            style = STYLE.get(st.status, "")
            table.add_row(st.step, st.name, f"[{style}]{st.status}[/]", out, figs, f"{st.seconds:.1f}")
        console.print(table)
        if not report.ok:
            raise typer.Exit(1)
        console.print(f"[green]done.[/] Open {report.workspace / 'README.md'} to see what was made.")
