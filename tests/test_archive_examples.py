"""The golden examples in examples/archive/ validate against the archives' schemas and PREMIS 3.0."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from curated.archive import validate_deposition, validate_premis
from curated.archive.bia import FILE_COLUMNS, validate_submission
from curated.archive.pagetab import pagetab_submission

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "archive"


def test_golden_empiar_deposition_validates() -> None:
    deposition = json.loads((EXAMPLES / "empiar" / "deposition.json").read_text())
    assert validate_deposition(deposition) == []
    dirs = [s["directory"] for s in deposition["imagesets"]]
    assert any(d.endswith("/labels/mito-pred") for d in dirs)
    assert "- [ ]" in (EXAMPLES / "empiar" / "checklist.md").read_text()


def test_golden_bia_submission_and_file_lists_agree() -> None:
    submission = json.loads((EXAMPLES / "bia" / "submission.json").read_text())
    assert validate_submission(submission) == []
    lists = submission["file_lists"]
    assert set(lists["annotations"]) == set(submission["annotations"])
    rows = []
    for names in [lists["study_component"], *lists["annotations"].values()]:
        tsv = (EXAMPLES / "bia" / names["tsv"]).read_text()
        part = list(csv.DictReader(io.StringIO(tsv), delimiter="\t"))
        assert tuple(part[0]) == FILE_COLUMNS
        listed = json.loads((EXAMPLES / "bia" / names["json"]).read_text())
        assert [e["path"] for e in listed] == [r["Files"] for r in part]
        # the TSV columns are the JSON list's attribute names (one Files Table, two spellings)
        assert [{k: v for k, v in r.items() if k != "Files" and v} for r in part] == [
            {a["name"]: a["value"] for a in e["attributes"]} for e in listed
        ]
        rows += part
    assert {r["annotation"] for r in rows if "/labels/" in r["Files"]} >= {"truth", "mito-pred"}
    # the PageTab submission is the one the export writes from submission.json
    pagetab = json.loads((EXAMPLES / "bia" / "submission.pagetab.json").read_text())
    assert pagetab == pagetab_submission(submission)
    # BIA's ingest resolves "source image" among the listed paths
    assert {r["source image"] for r in rows if r["source image"]} <= {r["Files"] for r in rows}


def test_golden_premis_validates() -> None:
    assert validate_premis(EXAMPLES / "premis.xml") == []
