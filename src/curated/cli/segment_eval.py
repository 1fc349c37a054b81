"""``curated segment evaluate`` and ``curated segment export`` (added to the ``segment`` group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from curated.cli._common import (
    JSON_OPTION,
    RichProgress,
    console,
    exit_for,
    handle_errors,
    local_image,
    print_results,
)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _signed(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def _ci(v: Any) -> str:
    return "n/a" if not v else f"{v[0]:.3f}–{v[1]:.3f}"


def print_evaluation(report: dict[str, Any]) -> None:
    """Scores overall and per factor group as rich tables."""
    ov, ci = report["overall"], report["ci95"]
    held = report["held_out"]
    table = Table(
        title=f"{report['name']}: {len(held['blocks'])} {'held-out' if report.get('model') else 'random'} blocks of {'×'.join(map(str, held['block_size']))}, seed {held['seed']}"
    )
    table.add_column("metric")
    table.add_column("raw", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("boundary excluded", justify="right")
    for key, label in (
        ("dice", "Dice"),
        ("iou", "IoU"),
        ("precision", "precision"),
        ("recall", "recall"),
    ):
        table.add_row(
            label, _fmt(ov["raw"][key]), _ci(ci.get(key)), _fmt(ov["boundary_excluded"][key])
        )
    table.add_row(
        "instance F1 @ IoU 0.5", _fmt(ov["instance"]["f1"]), _ci(ci.get("instance_f1")), ""
    )
    table.add_row(
        "TP / FP / FN", f"{ov['raw']['tp']} / {ov['raw']['fp']} / {ov['raw']['fn']}", "", ""
    )
    console.print(table)
    wv = report.get("whole_volume")
    if wv:
        wt = Table(
            title=f"whole volume {'outside training regions' if report.get('model') else '(training regions not left out)'}: {wv['overall']['scored_voxels']} voxels"
        )
        for col in ("x range", "Dice", "95% CI", "CI blocks", "precision", "recall"):
            wt.add_column(col, justify="left" if col == "x range" else "right")
        for b in [{"x_start": "all", "x_stop": "", **wv["overall"]}, *wv["x_curve"]]:
            wt.add_row(
                f"{b['x_start']}–{b['x_stop']}" if b["x_stop"] != "" else "all",
                _fmt(b["raw"]["dice"]),
                _ci(b["ci95"].get("dice")),
                str(b.get("bootstrap_blocks", "")),
                _fmt(b["raw"]["precision"]),
                _fmt(b["raw"]["recall"]),
            )
        console.print(wt)
        base = wv.get("threshold_baseline")
        if base:
            lead = base["model_minus_baseline"]
            console.print(
                f"against a grey-level threshold tuned on the training crops ({base['polarity']} "
                f"{base['level']:.4g}, smoothed σ {', '.join(f'{v:g}' for v in base['sigma_voxels'])} "
                f"voxels): its Dice {_fmt(base['dice'])} (95% CI {_ci(base['ci95']['dice'])}); "
                f"model − threshold {_signed(lead['dice'])} (95% CI {_ci(lead['ci95'])})"
            )
    conf = (report.get("confusion") or {}).get("whole_volume") or (
        report.get("confusion") or {}
    ).get("blocks")
    for sentence in (conf or {}).get("sentences", []):
        console.print(f"what it gets wrong: {sentence}")
    for fname, groups in report["factors"].items():
        ft = Table(title=f"by {fname}")
        for col in ("group", "blocks", "Dice", "95% CI", "precision", "recall", "instance F1"):
            ft.add_column(col, justify="left" if col == "group" else "right")
        empty = {
            g for g, s in groups.items() if s["raw"]["tp"] + s["raw"]["fp"] + s["raw"]["fn"] == 0
        }
        for g, s in groups.items():
            ft.add_row(
                g,
                str(s["blocks"]),
                _fmt(s["raw"]["dice"]) + (" (empty)" if g in empty else ""),
                _ci(s["ci95"].get("dice")),
                _fmt(s["raw"]["precision"]),
                _fmt(s["raw"]["recall"]),
                _fmt(s["instance"]["f1"]),
            )
        console.print(ft)
        if empty:
            console.print(
                "empty: no voxel of the class in truth or prediction in those blocks; "
                "they have no Dice (n/a): nothing was measured there."
            )
    for w in report.get("warnings") or []:
        console.print(f"[yellow]Warning: {w}.[/]")
    rejected = held.get("rejected_training", 0)
    if report.get("model"):
        console.print(
            f"{rejected} draw(s) refused for touching a training region of the model or its ancestors."
        )
    else:
        console.print(
            "[yellow]No --exclude-training model given: blocks were not checked against training regions.[/]"
        )


_TILE_HELP = (
    "Tile edge of the whole-volume pass [default: 64, halved down to 16 while the image holds "
    "fewer than 64 tiles]."
)


def register_eval_commands(segment_app: typer.Typer) -> None:
    """Add the evaluate/export commands to the ``segment`` sub-app."""

    @segment_app.command("evaluate")
    @handle_errors
    def evaluate_cmd(
        image: Path = typer.Argument(
            ..., parser=local_image, help="OME-Zarr image holding both label images."
        ),
        pred: str = typer.Option(..., "--pred", help="Label image with the prediction."),
        truth: str = typer.Option(..., "--truth", help="Label image with the ground truth."),
        label_value: int = typer.Option(
            ..., "--label-value", help="Truth value of the structure to score."
        ),
        pred_value: int | None = typer.Option(
            None,
            "--pred-value",
            help="Prediction value of the structure (default: the model's, else --label-value).",
        ),
        blocks: int = typer.Option(8, "--blocks", min=1, help="Number of random held-out blocks."),
        block_size: int = typer.Option(
            32, "--block-size", min=1, help="Edge of each block in voxels."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the block draw and the bootstrap."),
        same_blocks: Path | None = typer.Option(
            None,
            "--same-blocks",
            help="Score the held-out blocks of this earlier evaluation JSON again.",
        ),
        exclude_training: Path | None = typer.Option(
            None,
            "--exclude-training",
            help="Model folder: refuse blocks touching its (and its ancestors') training ROIs.",
        ),
        factor: list[str] = typer.Option(
            ["shading_side"],
            "--factor",
            help="Factor to break scores down by (shading_side, x_half, y_half, z_half).",
        ),
        boundary_band: int = typer.Option(
            1, "--boundary-band", min=0, help="Voxels around truth edges excluded."
        ),
        name: str | None = typer.Option(None, "--name", help="Evaluation name (file stem)."),
        out: Path | None = typer.Option(
            None, "--out", help="JSON path when no workspace is given."
        ),
        workspace: Path | None = typer.Option(
            None, "--workspace", help="Workspace to write into and record in."
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace an evaluation of the same name."
        ),
        whole_volume: bool | None = typer.Option(
            None,
            "--whole-volume/--blocks-only",
            help="Also score every voxel outside training regions (default: when the truth is complete).",
        ),
        tile: int | None = typer.Option(None, "--tile", min=1, help=_TILE_HELP),
        as_json: bool = typer.Option(
            False, "--json", help="Print the evaluation JSON instead of tables."
        ),
    ) -> None:
        """Score a prediction on seeded random held-out blocks (E)."""
        from curated.segment.evaluate import evaluate

        with RichProgress(transient=True) as progress:
            report = evaluate(
                image,
                pred=pred,
                truth=truth,
                label_value=label_value,
                pred_value=pred_value,
                blocks=same_blocks if same_blocks is not None else blocks,
                block_size=block_size,
                seed=seed,
                exclude_training=exclude_training,
                factors=[f for f in factor if f],
                boundary_band=boundary_band,
                name=name,
                workspace=workspace,
                out=out,
                overwrite=overwrite,
                whole_volume=whole_volume,
                tile=tile,
                progress=progress,
            )
        data = report.to_dict()
        if as_json:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
            return
        print_evaluation(data)
        print_results([report.result()])

    @segment_app.command("export")
    @handle_errors
    def export_cmd(
        model: Path = typer.Argument(..., help="Model folder (model.json + weights.pt)."),
        dest: Path = typer.Argument(..., help="Package to write: *.zip, or a folder."),
        workspace: Path | None = typer.Option(
            None, "--workspace", help="Workspace for authors/licence; records a D step."
        ),
        image: Path | None = typer.Option(
            None, "--image", help="Image to cut the test input from (default: the training image)."
        ),
        license: str | None = typer.Option(
            None, "--license", help="SPDX licence of the weights (default: the workspace's)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing package."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Export a model as a bioimage.io package with a model card (D)."""
        from curated.segment.export import export_bioimageio

        result = export_bioimageio(
            model, dest, workspace=workspace, image=image, license=license, overwrite=overwrite
        )
        exit_for(print_results([result], as_json=as_json))
