"""The schema is the source of truth: generated model, packaged copy and SPDX list never drift."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from curated.metadata import generate, identifiers, schema_path
from curated.metadata.io import load_record_dict

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "metadata" / "fibsem.yaml"


@pytest.fixture
def linkml():
    """The generator and the LinkML validator need the full ``linkml`` package (``[dev]`` extra)."""
    return pytest.importorskip("linkml")


def test_committed_model_is_what_the_schema_generates(linkml):
    committed = generate.MODEL_PATH.read_text(encoding="utf-8")
    fresh = generate.generate_model(REPO / "schemas" / "curated.yaml")
    if fresh != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(True), fresh.splitlines(True), "committed", "generated", n=1
            )
        )
        pytest.fail(
            "model.py drifted from schemas/curated.yaml; run `python -m curated.metadata.generate`\n"
            + diff[:4000]
        )


def test_generation_does_not_depend_on_the_working_directory(linkml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "'source_file': 'schemas/curated.yaml'" in generate.generate_model(
        REPO / "schemas" / "curated.yaml"
    )


def test_drift_check_notices_a_changed_schema(linkml, tmp_path):
    schema = (REPO / "schemas" / "curated.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "curated.yaml"
    changed.write_text(
        schema.replace(
            "      image_format:\n        required: true",
            "      image_format:\n        required: false",
        ),
        encoding="utf-8",
    )
    assert changed.read_text(encoding="utf-8") != schema
    stale = generate.drift(changed)
    assert str(generate.MODEL_PATH) in stale and str(generate.PACKAGED_SCHEMA) in stale
    assert generate.drift(REPO / "schemas" / "curated.yaml") == []


def test_packaged_schema_equals_the_repository_schema():
    assert schema_path().read_bytes() == (REPO / "schemas" / "curated.yaml").read_bytes()


def test_shipped_spdx_list_is_packagings_list():
    shipped = json.loads((generate.SPDX_PATH).read_text(encoding="utf-8"))
    from packaging.licenses import _spdx

    if shipped["spdx_version"] != _spdx.VERSION:
        pytest.skip(
            f"installed packaging bundles SPDX {_spdx.VERSION}, shipped list is {shipped['spdx_version']}"
        )
    assert shipped == generate.spdx_list_from_packaging() | {"source": shipped["source"]}
    assert {"CC-BY-4.0", "CC0-1.0", "MIT"} <= set(identifiers.spdx_licenses())


def test_linkml_validator_and_curated_agree_on_the_example(linkml):
    from linkml.validator import validate

    from curated.metadata import validate_record

    data = load_record_dict(EXAMPLE)
    linkml_report = validate(data, str(REPO / "schemas" / "curated.yaml"), "CuratedRecord")
    assert [r.message for r in linkml_report.results] == []
    assert validate_record(data).valid


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("unknown_field.yaml", "licence"),
        ("wrong_type.yaml", "size_x"),
        ("bad_enum.json", "uint12"),
        ("missing_required.yaml", "authors"),
    ],
)
def test_linkml_validator_also_rejects_the_structural_faults(linkml, name, where):
    from linkml.validator import validate

    data = load_record_dict(REPO / "tests" / "data" / "metadata" / name)
    messages = " ".join(
        r.message
        for r in validate(data, str(REPO / "schemas" / "curated.yaml"), "CuratedRecord").results
    )
    assert where in messages
