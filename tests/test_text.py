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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("The whole volume", "The whole volume."),
        ("The whole volume.", "The whole volume."),
        ("Six crops (of 32³).  ", "Six crops (of 32³)."),
        ('He said "done."', 'He said "done."'),
        ("Is it?", "Is it?"),
        ("3 of 5 (see notes)", "3 of 5 (see notes)."),
    ],
)
def test_a_sentence_ends_with_one_full_stop(text, shown) -> None:
    from curated._text import end_sentence

    assert end_sentence(text) == shown


def test_record_text_ending_in_a_full_stop_is_not_given_a_second(tmp_path) -> None:
    from document_workspaces import complete_record, make_complete_workspace

    from curated.document import write_readme

    ws = make_complete_workspace(tmp_path / "ws")
    rec = complete_record()
    ann = (rec.get("annotations") or [{}])[0]
    ann["annotation_coverage"] = "Every mitochondrion in the volume."
    rec["annotations"] = [ann, *rec.get("annotations", [])[1:]]
    ws.write_metadata(rec)
    write_readme(ws, figures=False)
    text = (ws.root / "README.md").read_text(encoding="utf-8")
    assert "Every mitochondrion in the volume." in text
    assert ".." not in text.replace("...", "")
