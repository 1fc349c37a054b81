"""Metadata text written to break the documents made from it: HTML, script links, line breaks, invisible characters."""

from __future__ import annotations

import re

import pytest
from document_workspaces import complete_record, make_complete_workspace

from curated._text import markdown_cell, markdown_safe
from curated.document import write_readme
from curated.metadata.identifiers import check_doi, check_orcid, check_ror
from curated.metadata.validate import validate_record

EVIL = (
    "Evil <script>alert(1)</script> <img src=x onerror=alert(2)> "
    "[click](javascript:alert(3)) [ok](https://example.org)\n# Injected heading\n| a | b |\x07"
)


def test_hostile_record_text_reaches_the_readme_as_text(tmp_path):
    ws = make_complete_workspace(tmp_path / "ws")
    rec = complete_record()
    rec["study"]["title"] = EVIL
    rec["dataset"]["name"] = EVIL
    rec["study"]["authors"][0]["family_name"] = "Doe\u202egpj.exe"
    rec["images"][0]["processing"] = EVIL
    ws.write_metadata(rec)
    write_readme(ws, figures=False)
    text = (ws.root / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"<(script|img|/script)", text, re.IGNORECASE)
    assert "](javascript:" not in text
    assert "[ok](https://example.org)" in text  # ordinary Markdown in the text is kept
    assert not re.search(r"^#+ Injected", text, re.MULTILINE)
    assert "\x07" not in text and "\u202e" not in text
    assert "Doe⟨U+202E⟩gpj.exe" in text
    assert "<TODO: " in text  # the README's own markers stay
    for line in text.splitlines():  # table rows keep their column count
        if line.startswith("| cell |"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("<b>bold</b>", "&lt;b>bold&lt;/b>"),
        ("a < b and c > d", "a < b and c > d"),
        ("[x](JavaScript:alert(1))", "[x]\\(JavaScript:alert(1))"),
        ("[x]( <data:text/html,hi>)", "[x]\\( &lt;data:text/html,hi>)"),
        ("<TODO: study.doi>", "<TODO: study.doi>"),
        ("bell\x07 nul\x00", "bell nul"),
        ("zero\u200bwidth", "zero⟨U+200B⟩width"),
    ],
)
def test_markdown_safe(value, shown):
    assert markdown_safe(value) == shown


def test_markdown_cell_is_one_line_with_pipes_escaped():
    assert markdown_cell("a|b\r\nc\u2028d<i>") == "a\\|b c d&lt;i>"


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (check_orcid, "0000-0002-1825-0097\u200b"),
        (check_orcid, "\u20660000-0002-1825-0097"),
        (check_doi, "10.1234/abc\u200bdef"),
        (check_doi, "10.1234/abc\u00addef"),
        (check_ror, "https://ror.org/03mstc592\u200d"),
    ],
)
def test_identifiers_with_invisible_characters_are_refused_and_named(check, value):
    problem = check(value)
    assert problem and "invisible character, U+" in problem


def test_validate_refuses_a_doi_with_a_zero_width_space():
    rec = complete_record()
    rec["study"]["doi"] = "10.1234/organelles\u200b.2026"
    report = validate_record(rec)
    assert any(e.field == "study.doi" and "U+200B" in e.message for e in report.errors)
