"""The CLI's rich progress bar: what a curator sees during long work."""

from __future__ import annotations

import io

from rich.console import Console

from curated._text import decimal_size
from curated.cli._common import RichProgress


def _render(unit: str, steps: list[tuple[float, dict]]) -> str:
    buf = io.StringIO()
    bar = RichProgress(Console(file=buf, force_terminal=False, width=160))
    bar.start("hashing payload", 10, unit)
    for amount, info in steps:
        bar.advance(amount, **info)
    bar.finish()
    return buf.getvalue()


def test_files_phase_shows_bytes_read_and_rate() -> None:
    out = _render("files", [(1, {"bytes": 1_500_000})] * 10)
    assert "10/10 files" in out
    assert "read=15.0 MB (" in out and "/s)" in out


def test_other_info_is_kept_beside_the_byte_count() -> None:
    out = _render("iterations", [(1, {"loss": 0.25})] * 10)
    assert "loss=0.25" in out and "read=" not in out


def test_human_bytes_uses_decimal_units() -> None:
    assert decimal_size(999) == "999 B"
    assert decimal_size(1500) == "1.5 kB"
    assert decimal_size(3.2e12) == "3.2 TB"
