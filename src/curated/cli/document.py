"""``curated readme`` and ``curated fair``: the dataset README and the FAIR checklist."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from curated.cli._common import RichProgress, console, err_console, handle_errors, print_results
from curated.results import ReadmeDetails, details_as

STATUS_STYLE = {"pass": "green", "fail": "red", "pending-deposit": "cyan", "needs-human": "yellow"}


def register(app: typer.Typer) -> None:
    """Add ``readme`` and ``fair`` to the app."""

    @app.command("readme")
    @handle_errors
    def readme_cmd(
        workspace: Path = typer.Argument(..., help="The workspace to document."),
        no_figures: bool = typer.Option(
            False, "--no-figures", help="Do not draw orthogonal views of the images."
        ),
        max_dim: int = typer.Option(
            512,
            "--max-dim",
            min=16,
            help="Draw the finest pyramid level whose largest side is at most this.",
        ),
        no_digests: bool = typer.Option(
            False,
            "--no-digests",
            help="Do not compute checksums the curator log has not recorded (faster on huge stores).",
        ),
        force: bool = typer.Option(
            False,
            "--force",
            help="Replace a README.md curated did not write (a copy is kept in curation/).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result record as JSON."),
    ) -> None:
        """Write README.md (Cornell sections, DCN take-away block, pictures, curation history). [D]

        Every fact the workspace lacks is written as <TODO: field>; the command says how many.
        """
        from curated.document import write_readme
        from curated.workspace import Workspace

        with RichProgress() as progress:
            res = write_readme(
                Workspace(workspace),
                figures=not no_figures,
                max_dim=max_dim,
                compute_digests=not no_digests,
                force=force,
                progress=progress,
            )
        print_results([res], as_json=as_json)
        todo = details_as(res, ReadmeDetails)
        fields = todo.get("todo_fields") or []
        if fields and not as_json:
            err_console.print(
                f"[yellow]{todo['todo_count']} TODO marker(s)[/] for: " + "; ".join(fields)
            )

    @app.command("fair")
    @handle_errors
    def fair_cmd(
        workspace: Path = typer.Argument(..., help="The workspace to assess."),
        as_json: bool = typer.Option(False, "--json", help="Print the result record as JSON."),
    ) -> None:
        """Evaluate the FAIR checklist offline; write curation/fair.json and fair.md. [E]

        Each metric (F-UJI id, RDA indicators) is pass, fail, pending-deposit or needs-human, with evidence.
        """
        from curated.document import fair_checklist
        from curated.workspace import Workspace

        report = fair_checklist(Workspace(workspace))
        if not as_json:
            table = Table(title="FAIR checklist")
            for col in ("metric", "RDA", "status", "score", "what was found"):
                table.add_column(col, overflow="fold")
            for m in report.metrics:
                style = STATUS_STYLE.get(m.status, "")
                table.add_row(
                    m.fuji or m.id,
                    ", ".join(m.rda),
                    f"[{style}]{m.status}[/]",
                    f"{m.score:g}/{m.total_score:g}",
                    m.message,
                )
            console.print(table)
        print_results([report.result()], as_json=as_json)
