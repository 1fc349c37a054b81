"""`curated init` and `curated metadata validate|import-ome|set` as a curator uses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "metadata" / "fibsem.yaml"
BAD = REPO / "tests" / "data" / "metadata"


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # keep rich from wrapping messages
    return CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_init_then_validate_lists_what_is_missing(runner, tmp_path):
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws), "--title", "FIB-SEM of mouse cortex"])
    assert result.exit_code == 0, result.output
    assert (ws / "curated.yaml").is_file()
    assert "study.description, study.authors" in flat(result.output)
    result = runner.invoke(app, ["metadata", "validate", str(ws)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(
        line.startswith("error:")
        and "curated.yaml: study.authors: required field is missing" in line
        for line in lines
    )
    assert any(line.startswith("alert:") and "study.license" in line for line in lines)
    assert "Completeness" in result.output and "absent" in result.output


def test_init_twice_exits_1_and_keeps_the_first(runner, tmp_path):
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws), "--title", "First"])
    result = runner.invoke(app, ["init", str(ws), "--title", "Second"])
    assert result.exit_code == 1 and "already exists" in result.output
    assert "First" in (ws / "curated.yaml").read_text()


def test_init_without_title_is_a_usage_error(runner, tmp_path):
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == 2


def test_validate_the_example_exits_0(runner):
    result = runner.invoke(app, ["metadata", "validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "study" in result.output and "100" in result.output


@pytest.mark.parametrize(
    ("name", "field", "rule"),
    [
        ("bad_orcid.yaml", "study.authors[1].orcid", "orcid"),
        ("bad_ror.yaml", "study.authors[0].affiliation.ror", "ror"),
        ("bad_doi.yaml", "study.publications[0].doi", "doi"),
        ("bad_spdx.yaml", "study.license", "spdx"),
        ("unknown_field.yaml", "study.licence", "unknown-field"),
        ("wrong_type.yaml", "images[0].size_x", "type"),
        ("bad_enum.json", "images[0].dtype", "enum"),
    ],
)
def test_validate_prints_each_error_with_file_and_field(runner, name, field, rule):
    result = runner.invoke(app, ["metadata", "validate", str(BAD / name)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{BAD / name}: {field}: " in errors[0] and f"(rule: {rule})" in errors[0]


def test_validate_syntax_error_and_missing_path_exit_1(runner, tmp_path):
    result = runner.invoke(app, ["metadata", "validate", str(BAD / "syntax_error.yaml")])
    assert result.exit_code == 1 and "syntax_error.yaml: YAML syntax error at line" in flat(
        result.output
    )
    result = runner.invoke(app, ["metadata", "validate", str(tmp_path / "nothing.yaml")])
    assert result.exit_code == 1 and "not found" in result.output


def test_validate_json_output(runner):
    import json

    result = runner.invoke(app, ["metadata", "validate", "--json", str(BAD / "bad_orcid.yaml")])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False and report["errors"][0]["field"] == "study.authors[1].orcid"


def test_set_and_import_ome_from_the_command_line(runner, tmp_path):
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws), "--title", "t"])
    result = runner.invoke(
        app, ["metadata", "set", str(ws), "study.authors[0].family_name", "Carberry"]
    )
    assert result.exit_code == 0, result.output
    assert "still missing (required): study.description" in flat(result.output)
    result = runner.invoke(
        app, ["metadata", "set", str(ws), "study.authors[0].orcid", "0000-0002-1825-0098"]
    )
    assert result.exit_code == 1
    assert "study.authors[0].orcid" in result.output and "checksum digit does not match" in flat(
        result.output
    )
    assert "0000-0002-1825-0098" not in (ws / "curated.yaml").read_text()

    image = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        image,
        np.zeros((5, 8, 8), np.uint8),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.01,
            "PhysicalSizeY": 0.01,
            "PhysicalSizeZ": 0.02,
        },
    )
    result = runner.invoke(app, ["metadata", "import-ome", str(ws), str(image)])
    assert result.exit_code == 0, result.output
    assert "images[0].voxel_size_z: None -> 20.0" in result.output
    runner.invoke(app, ["metadata", "set", str(ws), "images[0].voxel_size_z", "25"])
    result = runner.invoke(app, ["metadata", "import-ome", str(ws), str(image)])
    assert result.exit_code == 0 and "kept images[0].voxel_size_z: 25" in flat(result.output)
    result = runner.invoke(app, ["metadata", "import-ome", "--force", str(ws), str(image)])
    assert result.exit_code == 0 and "images[0].voxel_size_z: 25 -> 20.0" in result.output


def test_import_ome_bad_inputs_exit_1_and_name_the_file(runner, tmp_path):
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws), "--title", "t"])
    before = (ws / "curated.yaml").read_bytes()
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, np.zeros((5, 8, 8), np.uint8))
    result = runner.invoke(app, ["metadata", "import-ome", str(ws), str(bare)])
    assert result.exit_code == 1 and f"{bare}: images[].voxel_size_*: no physical metadata" in flat(
        result.output
    )
    broken = tmp_path / "broken.ome.tif"
    tifffile.imwrite(
        broken,
        np.zeros((8, 8), np.uint8),
        description=b'<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels',
        metadata=None,
    )
    result = runner.invoke(app, ["metadata", "import-ome", str(ws), str(broken)])
    assert (
        result.exit_code == 1
        and f"{broken}: OME-XML: the OME-XML in this file is broken" in flat(result.output)
    )
    assert (ws / "curated.yaml").read_bytes() == before
    result = runner.invoke(
        app, ["metadata", "import-ome", "--allow-no-metadata", str(ws), str(bare)]
    )
    assert result.exit_code == 0 and "no physical metadata" in flat(result.output)


def test_commands_on_a_folder_that_is_not_a_workspace_exit_1(runner, tmp_path):
    result = runner.invoke(app, ["metadata", "set", str(tmp_path), "study.title", "x"])
    assert result.exit_code == 1 and "not a curated workspace" in flat(result.output)


def test_validate_an_ome_zarr_image_runs_the_ngff_validators(runner, tmp_path):
    import json

    import zarr

    from curated.images import write_ome_zarr

    vol = np.random.default_rng(0).integers(0, 255, (12, 40, 40), dtype=np.uint8)
    store = tmp_path / "i.ome.zarr"
    write_ome_zarr(vol, store, voxel_size=(8, 4, 4), chunks=16, shard=32)
    ok = runner.invoke(app, ["metadata", "validate", str(store)])
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output and "yaozarrs" in ok.output

    meta = json.loads((store / "zarr.json").read_text())
    ms = meta["attributes"]["ome"]["multiscales"][0]
    ms["datasets"][1]["coordinateTransformations"][1]["translation"] = [0.0, 0.0, 0.0]
    (store / "zarr.json").write_text(json.dumps(meta))
    bad = runner.invoke(app, ["metadata", "validate", str(store)])
    assert bad.exit_code == 1 and "translation 0.0 should be" in flat(bad.output)
    # the half-voxel translation is curated's convention, not the specification's
    spec = runner.invoke(app, ["metadata", "validate", str(store), "--spec-only"])
    assert spec.exit_code == 0, spec.output

    for a in ms["axes"]:
        a["unit"] = "nm"
    (store / "zarr.json").write_text(json.dumps(meta))
    js = runner.invoke(app, ["metadata", "validate", str(store), "--spec-only", "--json"])
    report = json.loads(js.stdout)
    assert js.exit_code == 1 and report["valid"] is False
    assert any("UDUNITS" in p for p in report["problems"])

    plain = tmp_path / "plain.zarr"  # a Zarr group with no NGFF metadata
    zarr.open_group(str(plain), mode="w", zarr_format=3)
    res = runner.invoke(app, ["metadata", "validate", str(plain)])
    assert res.exit_code == 1 and "does not contain an 'ome' key" in flat(res.output)
