"""`curated demo`: the main job end to end (reduced size), every artefact checked."""

from __future__ import annotations

import json

import bagit
import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.images import validate_ome_zarr
from curated.package import validate_bag
from curated.package.compat import rfc_path_decoding
from curated.provenance import CuratorLog

ARGS = [
    "--shape",
    "40",
    "144",
    "144",
    "--iterations",
    "4",
    "--local-contrast",
    "2",
    "--crops",
    "2",
    "--crop-size",
    "24",
    "--eval-blocks",
    "2",
    "--eval-block-size",
    "20",
]


def test_demo_makes_every_artefact_and_they_all_check_out(tmp_path):
    dest = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(dest), *ARGS])
    assert result.exit_code == 0, result.output

    ws = dest / "workspace"
    image = ws / "derived" / "cell01.ome.zarr"
    # the depositor's files are untouched inputs; the image and its labels validate
    assert (dest / "raw" / "cell01_fibsem.ome.tif").is_file()
    assert validate_ome_zarr(image) == []
    for name in ("truth", "annotations", "mito-pred"):
        assert (image / "labels" / name).is_dir()

    # model, its bioimage.io package, the evaluation, README with pictures, FAIR checklist
    model_json = json.loads((ws / "derived" / "models" / "mito-v1" / "model.json").read_text())
    assert model_json["evaluations"], "the evaluation is linked from the model"
    assert (ws / "derived" / "models" / "mito-v1.bioimageio.zip").is_file()
    assert list((ws / "derived" / "evaluations").glob("*.json"))
    pred_attrs = json.loads((image / "labels" / "mito-pred" / "zarr.json").read_text())[
        "attributes"
    ]
    assert pred_attrs["curated"]["ai_generated"] is True
    assert pred_attrs["curated"]["model"]["card"] == "derived/models/mito-v1.bioimageio.zip"
    readme = (ws / "README.md").read_text(encoding="utf-8")
    assert "AI-generated" in readme or "AI generated" in readme
    # honest evaluation: whole-volume scores next to the blocks, classes named, origins marked
    evaluation = json.loads(next((ws / "derived" / "evaluations").glob("*.json")).read_text())
    assert evaluation["whole_volume"]["overall"]["scored_voxels"] > 0
    assert evaluation["label_name"] == "mitochondrion"
    assert evaluation["truth"] | {"complete": True} == evaluation["truth"]
    assert evaluation["truth"]["origin"] == "simulated"
    assert "whole volume outside training regions Dice" in readme
    assert evaluation["files"]["whole_png"] in readme
    assert "picture=" in result.output  # the summary points at the whole-volume picture
    assert (ws / evaluation["files"]["whole_png"]).is_file()
    assert "A grey-level threshold tuned on the training crops" in readme
    base = evaluation["whole_volume"]["threshold_baseline"]  # the tiny test model may lose to it
    model_dice = evaluation["whole_volume"]["overall"]["raw"]["dice"]
    assert base["model_minus_baseline"]["dice"] == pytest.approx(model_dice - base["dice"])
    assert "held-out blocks Dice" in readme and "Scores for mitochondrion" in readme
    assert "What the model gets wrong" in readme
    origins = {
        name: next(
            line for line in readme.splitlines() if line.startswith(f"- **cell01 / {name}**")
        )
        for name in ("truth", "annotations", "mito-pred")
    }
    assert "origin: simulated" in origins["truth"]
    assert "origin: derived-from-truth" in origins["annotations"]
    assert "origin: model-prediction" in origins["mito-pred"]
    assert "Classes: 1 = mitochondrion, 2 = nucleus" in origins["truth"]
    assert "made by people" not in readme
    assert "**Model mito-v1** (" in readme and "segments **mitochondrion**" in readme
    import zipfile

    with zipfile.ZipFile(ws / "derived" / "models" / "mito-v1.bioimageio.zip") as zf:
        card = zf.read("documentation.md").decode("utf-8")
    assert "Structure: **mitochondrion**" in card
    assert "whole volume outside training regions" in card and "held-out blocks" in card
    assert "origin **simulated**" in card and "**derived-from-truth**" in card
    assert "## What the model gets wrong" in card
    assert list((ws / "figures").glob("*.png"))
    assert (ws / "curation" / "fair.json").is_file()
    assert (ws / "curation" / "request.md").is_file()
    assert (ws / "curation" / "check.json").is_file()

    # the archive submissions validate under the archives' schemas and the README links them
    from curated.archive import validate_deposition
    from curated.archive.bia import validate_submission

    deposition = json.loads((ws / "package" / "empiar" / "deposition.json").read_text())
    assert validate_deposition(deposition) == []
    submission = json.loads((ws / "package" / "bia" / "submission.json").read_text())
    assert validate_submission(submission) == []
    assert "(package/empiar/)" in readme and "(package/bia/)" in readme

    # the bag validates with curated, bagit-python and holds the log up to its own entry
    bag = ws / "package" / "cell01-bag"
    assert validate_bag(bag).ok
    with rfc_path_decoding():
        bagit.Bag(str(bag)).validate()
    bag_log = CuratorLog(bag / "metadata" / "curator-log.jsonl", root=ws)
    assert bag_log.verify().ok
    assert bag_log.last()["action"] == "bag"

    # deposited into the directory repository, with a receipt, and the whole log verifies
    receipt = json.loads((ws / "package" / "receipt.json").read_text())
    assert receipt["target"] == "directory"
    assert any((dest / "repository").iterdir())
    log = CuratorLog(ws / "curation" / "log.jsonl")
    report = log.verify(files=True)
    assert report.ok, report.problems
    actions = [e["action"] for e in log.entries()]
    for action in (
        "init",
        "check",
        "convert",
        "train",
        "predict",
        "evaluate",
        "export-empiar",
        "export-bia",
        "bag",
        "deposit",
    ):
        assert any(a.startswith(action) for a in actions), (action, actions)


def test_demo_refuses_a_non_empty_destination(tmp_path):
    dest = tmp_path / "demo"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", str(dest), *ARGS])
    assert result.exit_code == 1
    assert "not empty" in result.output
    assert (dest / "keep.txt").read_text() == "mine"


def test_demo_overwrite_replaces_only_an_earlier_demo(tmp_path):
    """`curated demo ~ --overwrite` must not delete a home folder: only a folder holding
    nothing but a demo's raw/, workspace/ and repository/ is replaced."""
    dest = tmp_path / "home"
    dest.mkdir()
    (dest / "workspace").mkdir()
    (dest / "thesis.pdf").write_text("years of work")
    result = CliRunner().invoke(app, ["demo", str(dest), "--overwrite", *ARGS])
    assert result.exit_code == 1
    assert "not an earlier demo" in " ".join(result.output.split())
    assert (dest / "thesis.pdf").read_text() == "years of work"
