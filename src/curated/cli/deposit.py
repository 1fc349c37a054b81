"""``curated deposit``: send a bag to a repository (or show what would be sent)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from curated.cli._common import (
    RichProgress,
    console,
    err_console,
    exit_for,
    handle_errors,
    print_json,
    print_results,
)
from curated.results import Result


def _shown(result: Result) -> Result:
    """``result`` as the written receipt has it (:func:`curated.deposit.core.public_receipt`)."""
    from curated.deposit.core import public_receipt

    d = public_receipt(result.to_dict())
    return Result(d["action"], d["status"], d["path"], d["message"], d["details"])


def _ensure_credentials(to: str, token_env: str | None) -> None:
    """Ask for a missing credential on a terminal; it lives only in this process's environment."""
    from curated.deposit.core import DEFAULT_TOKEN_ENV, DSPACE_USER_ENV

    if to == "directory" or not sys.stdin.isatty():
        return
    if to == "dspace" and not os.environ.get(DSPACE_USER_ENV):
        os.environ[DSPACE_USER_ENV] = typer.prompt(
            f"DSpace account e-mail ({DSPACE_USER_ENV} is not set)"
        )
    var = token_env or DEFAULT_TOKEN_ENV[to]
    if not os.environ.get(var):
        os.environ[var] = typer.prompt(
            f"{var} is not set; paste the credential (not shown)", hide_input=True
        )


def _show_plan(receipt) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"planned requests to {receipt.target} (dry run: nothing sent)")
    table.add_column("#", justify="right")
    table.add_column("method")
    table.add_column("url", overflow="fold")
    table.add_column("note", overflow="fold")
    for i, call in enumerate(receipt.planned, 1):
        table.add_row(str(i), call["method"], call["url"], call["note"])
    console.print(table)
    bodies = [c for c in receipt.planned if isinstance(c["body"], dict | list)]
    if bodies:
        console.print(f"[bold]metadata payload[/] ({bodies[0]['method']} {bodies[0]['url']}):")
        console.print_json(json.dumps(bodies[0]["body"], default=str, ensure_ascii=False))
    for c in receipt.planned:
        if isinstance(c["body"], str) and c["body"].startswith("<"):
            console.print(
                f"  {c['method']} {c['url']}  {c['body']}", highlight=False, soft_wrap=True
            )


def _show_problems(receipt, *, dry_run: bool = False) -> None:  # type: ignore[no-untyped-def]
    if dry_run:
        if receipt.problems:
            err_console.print(
                f"[bold]what {receipt.target} would refuse, or what will not be carried over:[/]",
                highlight=False,
            )
        else:
            err_console.print(
                f"nothing {receipt.target} would refuse was found in the payload above",
                highlight=False,
            )
    for p in receipt.problems:
        style = "red" if p["blocking"] else "yellow"
        label = "blocking" if p["blocking"] else "warning"
        err_console.print(
            f"[{style}]{label}:[/] {p['what']} → {p['advice']}", highlight=False, soft_wrap=True
        )


def register(app: typer.Typer) -> None:
    """Add ``curated deposit``."""

    @app.command("deposit")
    @handle_errors
    def deposit_cmd(
        bag: Path = typer.Argument(
            ..., help="The bag folder or serialized bag (.zip/.tar) to deposit."
        ),
        to: str = typer.Option(
            ..., "--to", help="invenio | zenodo | dataverse | dspace | figshare | directory"
        ),
        url: str = typer.Option(
            ..., "--url", help="The repository's API root, or the folder for --to directory."
        ),
        target: str | None = typer.Option(
            None,
            "--target",
            help="Community (InvenioRDM), collection alias (Dataverse) or UUID (DSpace), project (Figshare), sub-folder.",
        ),
        token_env: str | None = typer.Option(
            None,
            "--token-env",
            help="Environment variable with the credential (default: ZENODO_TOKEN, DATAVERSE_TOKEN, ...).",
        ),
        publish: bool = typer.Option(
            False, "--publish", help="Publish (or submit for review) after uploading."
        ),
        dry_run: bool = typer.Option(
            False,
            "--dry-run",
            help="Show the planned requests, the payload as the target will get it, and what its "
            "form or schema would refuse; writes nothing (with a credential set, reads the "
            "target's form, licences and vocabularies).",
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue an interrupted deposit of this bag."
        ),
        workspace: Path | None = typer.Option(
            None, "--workspace", help="Workspace for the receipt and the curator log."
        ),
        limits: str | None = typer.Option(
            None, "--limits", help="Limits profile to check against (e.g. ecommons, zenodo, none)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the receipt as JSON."),
    ) -> None:
        """Deposit a bag into InvenioRDM/Zenodo, Dataverse, DSpace 7, Figshare or a folder."""
        from curated.deposit import TARGETS, deposit

        if to not in TARGETS:
            raise typer.BadParameter(f"choose one of {', '.join(TARGETS)}", param_hint="--to")
        if not dry_run:
            _ensure_credentials(to, token_env)
        with RichProgress() as progress:
            receipt = deposit(
                bag,
                to=to,
                url=url,
                target=target,
                token_env=token_env,
                publish=publish,
                dry_run=dry_run,
                resume=resume,
                workspace=workspace,
                progress=progress,
                limits=limits,
            )
        if dry_run:
            if as_json:
                print_json(receipt.to_dict())
            else:
                _show_plan(receipt)
            _show_problems(receipt, dry_run=True)
            exit_for([receipt.to_result()])
            return
        _show_problems(receipt)
        shown = _shown(receipt.to_result())
        if as_json:
            print_json(shown.details)
        else:
            print_results([shown], title="deposit")
            if receipt.receipt_path:
                console.print(f"receipt: {receipt.receipt_path}", highlight=False)
