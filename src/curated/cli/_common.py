"""What every CLI command shares: the console, error handling, progress bars, result tables."""

from __future__ import annotations

import errno
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from curated._secrets import scrub
from curated._text import decimal_size
from curated.errors import CuratedError
from curated.results import Result

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2

JSON_OPTION = typer.Option(
    False, "--json", help="Print the result record(s) as JSON instead of tables."
)


class _Output:
    """How chatty the CLI is, set once per invocation by the global --quiet / -v options."""

    quiet = False
    verbose = 0


def local_image(value: str) -> Path:
    """Typer parser of an image argument read with local-file readers: an ``s3://`` URL is
    refused by name (as a :class:`~pathlib.Path` it became ``s3:/B/x``, "does not exist")."""
    from curated.errors import InputError
    from curated.objstore import local_only

    try:
        return local_only(value)
    except InputError as exc:
        raise typer.BadParameter(f"{value} {exc.message}") from exc


def set_verbosity(*, quiet: bool, verbose: int) -> None:
    """``--quiet``: errors and JSON only; ``-v``: log curated's steps, ``-vv`` in detail."""
    _Output.quiet = quiet
    _Output.verbose = verbose
    console.quiet = quiet
    logger = logging.getLogger("curated")
    for handler in list(logger.handlers):
        if getattr(handler, "_curated_cli", False):
            logger.removeHandler(handler)
    if verbose and not quiet:
        handler = RichHandler(console=err_console, show_path=False, show_time=False)
        handler._curated_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        logger.setLevel(logging.WARNING)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (also under --quiet: it is the result asked for)."""
    Console(highlight=False).print_json(json.dumps(data, default=str))


def _tidy_help(command: Any) -> None:
    """Make every option's help hold as written, for this command and all below it.

    Typer renders help with Rich markup, which would swallow a literal ``[default: 600]``
    (read as a tag), so brackets in option help are escaped; and typer shows boolean
    flags as ``<bool>`` although they take no value, so flags get an empty metavar.
    """
    if getattr(command, "_curated_tidy", False):
        return
    command._curated_tidy = True
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for param in command.params:
        if param.help if hasattr(param, "help") else None:
            param.help = escape(param.help)
        if getattr(param, "is_bool_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


class CuratedGroup(TyperGroup):
    """The root command group: tidies the help of every command below it (see _tidy_help)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy_help(self)


def fail(message: str, *, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``message`` as an error (without any secret this process holds) and return the
    Exit to raise."""
    message = scrub(message)  # an OS or library error may quote what a server echoed
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


_OS_ADVICE = {
    errno.ENOSPC: "free some space and re-run the same command",
    errno.EDQUOT: "free some space (disk quota) and re-run the same command",
    errno.EROFS: "the file system is read-only; choose a writable place",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
}


def os_error_line(exc: OSError) -> str:
    """One line for an error of the operating system, naming the file."""
    where = exc.filename if exc.filename is not None else "a file"
    what = exc.strerror or type(exc).__name__
    advice = _OS_ADVICE.get(exc.errno or 0, "re-run the same command once it is fixed")
    return f"{where}: {what}; {advice}"


def handle_errors(fn: F) -> F:
    """Turn :class:`CuratedError` into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CuratedError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:  # full disk, read-only file system, permissions
            raise fail(os_error_line(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted; re-run the same command to resume", code=130) from None

    return wrapper  # type: ignore[return-value]


class RichProgress:
    """A :class:`curated.progress.ProgressReporter` drawn with rich: bar, rate, ETA."""

    def __init__(self, console: Console | None = None, *, transient: bool = False) -> None:
        self._console = console or err_console
        self._transient = transient
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._unit = ""
        self._bytes = 0.0
        self._t0 = 0.0

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    def start(self, description: str, total: float | None, unit: str = "") -> None:
        self.finish()
        if _Output.quiet:
            return
        self._unit = unit
        self._bytes = 0.0
        self._t0 = time.perf_counter()
        if unit == "bytes":
            columns: list[Any] = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            ]
        else:
            columns = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(f"{unit}"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            ]
        self._progress = Progress(*columns, console=self._console, transient=self._transient)
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, info="")

    def advance(self, amount: float = 1, **info: object) -> None:
        if self._progress is None or self._task is None:
            return
        nbytes = info.pop("bytes", None)
        if isinstance(nbytes, int | float) and self._unit != "bytes":
            # a phase counted in files that also reports the bytes they held: show volume and rate
            self._bytes += nbytes
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            info = {
                "read": f"{decimal_size(self._bytes)} ({decimal_size(self._bytes / elapsed)}/s)",
                **info,
            }
        text = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
        )
        self._progress.update(self._task, advance=amount, info=text)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._task = None


STATUS_STYLE = {"ok": "green", "notneeded": "cyan", "impossible": "yellow", "error": "red"}


def print_results(
    results: Iterable[Result], *, title: str | None = None, as_json: bool = False
) -> list[Result]:
    """Show results as a table (or JSON lines) and return them."""
    results = list(results)
    if as_json:
        for r in results:
            print_json(r.to_dict())
        return results
    table = Table(title=title, show_lines=False)
    table.add_column("action")
    table.add_column("status")
    table.add_column("path", overflow="fold")
    table.add_column("message", overflow="fold")
    for r in results:
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(r.action, f"[{style}]{r.status}[/]", r.path or "", r.message)
    console.print(table)
    return results


def warn_unrecorded(results: Iterable[Result], target: Any, workspace: Any) -> None:
    """Warn when a command changed ``target`` inside a workspace without ``--workspace``:
    its curator log does not record the step, and verifying the log's files reports the
    image as changed."""
    from curated.workspace import enclosing_workspace

    if workspace is not None or not any(r.status == "ok" for r in results):
        return
    root = enclosing_workspace(target)
    if root is not None:
        console.print(
            f"warning: {target} lies in the workspace {root}, but this step is not in its "
            f"curator log (no --workspace): run it with --workspace {root} to record it; "
            f"until then `curated log {root} --verify --files` reports the image as changed",
            highlight=False,
            style="yellow",
        )


def exit_for(results: Iterable[Result]) -> None:
    """Exit 1 when any result is an error or impossible."""
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_BAD_INPUT)
