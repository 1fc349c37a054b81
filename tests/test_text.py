"""Shared text helpers: sizes in bag-info and README, Markdown cells, templates."""

from __future__ import annotations

import pytest

from curated._text import binary_size, fmt_interval, fmt_number, markdown_cell, render_template


def test_binary_size_is_bag_size_wording() -> None:
    assert binary_size(512) == "512 B"
    assert binary_size(1536) == "1.5 KiB"
    assert binary_size(3 * 2**40 + 2**39) == "3.5 TiB"
    assert binary_size(None) == ""


def test_markdown_cells_cannot_break_a_table() -> None:
    assert markdown_cell("a|b\r\nc") == "a\\|b c"  # CRLF is one line break
    assert markdown_cell(None) == ""


def test_numbers_and_intervals() -> None:
    assert fmt_number(0.12345) == "0.123" and fmt_number(7) == "7" and fmt_number(None) == "n/a"
    assert fmt_interval([0.5, 0.75]) == "0.500–0.750" and fmt_interval(None) == "n/a"


def test_strict_templates_refuse_missing_values() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render_template("evaluation.md.j2", ev={})
