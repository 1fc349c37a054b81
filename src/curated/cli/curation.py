"""``curated check``, ``curated request`` and ``curated log``: the Check and Request steps and the curator log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from curated.cli._common import (
    JSON_OPTION,
    RichProgress,
    console,
    err_console,
    fail,
    handle_errors,
    print_json,
    print_results,
)
from curated.results import RequestDetails, details_as

if TYPE_CHECKING:
    from curated.provenance.log import CuratorLog
    from curated.workspace import Workspace

SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}
ANSWER_STYLE = {True: "green", False: "red", None: "yellow"}
STATUS_STYLE = {"ok": "green", "notneeded": "cyan", "impossible": "yellow", "error": "red"}


def check_command(
    workspace: Path = typer.Argument(..., help="The dataset's workspace (holds curated.yaml)."),
    sources: list[Path] | None = typer.Argument(
        None, help="Files or folders to check; default: images[].path in curated.yaml."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON instead of tables."
    ),
    processes: int | None = typer.Option(
        None,
        "--processes",
        "-p",
        min=1,
        help="Processes that hash and identify files (default: the CPUs available, at most 8).",
    ),
) -> None:
    """Check the depositor's files: inventory, DCN checklist C1-C8, red flags (writes curation/check.json)."""
    from curated.curation.check import check

    with RichProgress(transient=True) as progress:
        report = check(workspace, list(sources or []), progress=progress, processes=processes)
    if as_json:
        print_json(report.to_dict())
        return
    checklist = Table(title="DCN Check checklist")
    checklist.add_column("item")
    checklist.add_column("question")
    checklist.add_column("answer")
    checklist.add_column("evidence", overflow="fold")
    for a in report.checklist:
        checklist.add_row(a.id, a.question, f"[{ANSWER_STYLE[a.ok]}]{a.answer}[/]", a.evidence)
    console.print(checklist)
    if report.flags:
        flags = Table(title=f"Red flags ({len(report.flags)})")
        flags.add_column("severity")
        flags.add_column("flag")
        flags.add_column("message", overflow="fold")
        flags.add_column("paths", overflow="fold")
        for f in report.flags:
            shown = ", ".join(f.paths[:3]) + (
                f" (+{len(f.paths) - 3} more)" if len(f.paths) > 3 else ""
            )
            flags.add_row(
                f"[{SEVERITY_STYLE[f.severity]}]{f.severity}[/]",
                f.code,
                f.message,
                shown,
                style=None,
            )
        console.print(flags)
    else:
        console.print("[green]No red flags.[/]")
    print_results([report.to_result()])


def request_command(
    workspace: Path = typer.Argument(..., help="The dataset's workspace."),
    show: bool = typer.Option(False, "--show", help="Also print the e-mail."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write curation/request.md: an e-mail to the depositor with at most four ranked asks."""
    from curated.curation.request import request

    result = request(workspace)
    if as_json:
        print_results([result], as_json=True)
        return
    table = Table(title="Asks for the depositor")
    table.add_column("#")
    table.add_column("priority")
    table.add_column("question", overflow="fold")
    table.add_column("reply")
    for i, ask in enumerate(details_as(result, RequestDetails)["asks"], start=1):
        table.add_row(str(i), ask["priority"], ask["question"], ask["answer"])
    console.print(table)
    if show and result.path:
        console.print(
            (Path(workspace) / result.path).read_text(encoding="utf-8"),
            markup=False,
            highlight=False,
        )
    print_results([result])


def log_command(
    workspace: Path = typer.Argument(..., help="The dataset's workspace."),
    verify: bool = typer.Option(
        False, "--verify", help="Recompute the hash chain; exit 1 naming the first bad seq."
    ),
    files: bool = typer.Option(
        False, "--files", help="With --verify: also recompute each recorded output's digest."
    ),
    repair: bool = typer.Option(
        False, "--repair", help="Set a line cut by a crash aside so the chain can continue."
    ),
    prov: Path | None = typer.Option(
        None, "--prov", help="Export the log as W3C PROV-JSON to this file."
    ),
    ro_crate: Path | None = typer.Option(
        None, "--ro-crate", help="Export the log as a Process Run Crate into this folder."
    ),
    premis: Path | None = typer.Option(
        None,
        "--premis",
        help="Export the log as PREMIS 3 events, objects and agents (XML) to this file.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON lines."),
    head: bool = typer.Option(
        False,
        "--head",
        help="Print SEQ:HASH of the last entry, to keep outside the workspace (see --anchor).",
    ),
    anchor: str | None = typer.Option(
        None,
        "--anchor",
        help="With --verify: a SEQ:HASH printed earlier by --head, or a bag (or log file) whose log copy "
        "is the anchor; entries cut from the log's end are then detected.",
    ),
) -> None:
    """Show the curator log; verify, repair or export it."""
    from curated.workspace import Workspace

    if files and not verify:
        raise typer.BadParameter("--files only works together with --verify", param_hint="--files")
    if anchor is not None and not verify:
        raise typer.BadParameter(
            "--anchor only works together with --verify", param_hint="--anchor"
        )
    ws = Workspace(workspace)
    if head:
        _print_head(ws.log)
        return
    if repair:
        _repair_log(ws)
    if verify:
        _verify_log(ws.log, files=files, anchor=anchor)
    _export_log(ws.log, prov=prov, ro_crate=ro_crate, premis=premis)
    if verify or repair or prov is not None or ro_crate is not None or premis is not None:
        return
    _show_entries(ws, as_json=as_json)


def _print_head(log: CuratorLog) -> None:
    mark = log.anchor()
    if mark is None:
        raise fail("the curator log is empty: there is no head to print")
    console.print(mark, highlight=False, soft_wrap=True)


def _repair_log(ws: Workspace) -> None:
    aside = ws.log.repair()
    if aside is None:
        console.print("nothing to repair: the log's last line is complete")
    else:
        console.print(
            f"the cut last line was set aside in {ws.relative(aside)}; appends continue from the last good entry"
        )


def _verify_log(log: CuratorLog, *, files: bool, anchor: str | None) -> None:
    """Exit 1 naming the first bad seq, or say what was verified."""
    if anchor is not None and (Path(anchor).exists() or ":" not in anchor):
        from curated.provenance.log import anchor_from

        anchor = anchor_from(anchor)
    report = log.verify(files=files, anchor=anchor)
    if not report.ok:
        for p in report.problems:
            err_console.print(f"[red]{p}[/]", highlight=False)
        raise fail(
            f"the curator log does not verify: first bad seq {report.first_bad_seq} ({report.entries} intact entries before it)"
        )
    what = "chain and output digests" if files else "chain"
    if anchor is not None:
        what += f" and anchor seq {anchor.partition(':')[0]}"
    console.print(f"[green]ok[/]: {report.entries} entries, {what} verified")


def _export_log(
    log: CuratorLog, *, prov: Path | None, ro_crate: Path | None, premis: Path | None
) -> None:
    if prov is not None:
        from curated.provenance.export import write_prov_json

        out = write_prov_json(log, prov)
        console.print(f"PROV-JSON written to {out}")
    if ro_crate is not None:
        from curated.provenance.export import write_ro_crate

        out = write_ro_crate(log, ro_crate)
        console.print(f"Process Run Crate written to {out}")
    if premis is not None:
        from curated.archive.premis import write_premis

        out = write_premis(log, premis)
        console.print(f"PREMIS 3 XML written to {out} (validated against the PREMIS 3.0 schema)")


def _show_entries(ws: Workspace, *, as_json: bool) -> None:
    """The entries as a table (or JSON lines), with a warning when the last line is cut."""
    log = ws.log
    entries = list(log.entries())
    if as_json:
        for e in entries:
            print_json(e)
        return
    table = Table(title=f"Curator log: {ws.relative(log.path)} ({len(entries)} entries)")
    for col in ("seq", "step", "action", "time", "status", "agent", "outputs", "message"):
        table.add_column(col, overflow="fold")
    for e in entries:
        outs = e.get("outputs") or []
        shown = ", ".join(str(o.get("path")) for o in outs[:2]) + (
            f" (+{len(outs) - 2})" if len(outs) > 2 else ""
        )
        agent = (e.get("agent") or {}).get("name") or ""
        status = str(e.get("status"))
        table.add_row(
            str(e.get("seq")),
            str(e.get("step")),
            str(e.get("action")),
            str(e.get("time", ""))[:19].replace("T", " "),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            agent,
            shown,
            str(e.get("message") or ""),
        )
    console.print(table)
    if log.verify().cut_tail:
        err_console.print(
            "[yellow]warning:[/] the last line is cut (a crash during a write); run `curated log WORKSPACE --repair`"
        )


def register(app: typer.Typer) -> None:
    """Add ``check``, ``request`` and ``log`` to ``app``."""
    app.command("check")(handle_errors(check_command))
    app.command("request")(handle_errors(request_command))
    app.command("log")(handle_errors(log_command))
