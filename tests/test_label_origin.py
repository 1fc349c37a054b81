"""Honest label origins and class names: who made each label image, and what its values are."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.document.ngff import read_image_info
from curated.errors import InputError
from curated.images import add_labels
from curated.images.labels import curated_block, parse_class_names
from curated.segment import (
    UNANNOTATED,
    _store,
    annotate_from_truth,
    import_annotation,
    make_fibsem_sample,
    read_annotation_rois,
)

SHAPE = (16, 48, 48)


@pytest.fixture
def image(tmp_path):
    dest = tmp_path / "cell.ome.zarr"
    make_fibsem_sample(dest, shape=SHAPE, voxel_size=(16, 8, 8), seed=0)
    return dest


def _crop(tmp_path, value: int = 1):
    crop = np.full((4, 6, 8), UNANNOTATED, np.uint8)
    crop[:, :3] = 0
    crop[:, 3:, :4] = value
    f = tmp_path / "crop.npy"
    np.save(f, crop)
    return f


def test_the_simulators_truth_is_simulated_and_named(image) -> None:
    assert _store.label_origin(image, "truth") == "simulated"
    assert _store.class_names(image, "truth") == {1: "mitochondrion", 2: "nucleus"}


def test_crops_copied_from_truth_are_never_called_human(image) -> None:
    annotate_from_truth(image, crops=2, size=8, seed=1, name="ann")
    attrs = _store.label_curated_attrs(image, "ann")
    assert attrs["origin"] == "derived-from-truth" and attrs["ai_generated"] is False
    assert {r["origin"] for r in read_annotation_rois(image, "ann")} == {"derived-from-truth"}
    # the truth's class names travel with the crops: no "class 1"
    names = _store.class_names(image, "ann")
    assert set(names.values()) <= {"mitochondrion", "nucleus"} and names
    info = read_image_info(image)
    ann = next(lab for lab in info.labels if lab.name == "ann")
    assert ann.origin == "derived-from-truth" and ann.origins == {"derived-from-truth": 2}


def test_an_imported_crop_is_human_unless_said_and_mixing_is_recorded(image, tmp_path) -> None:
    f = _crop(tmp_path)
    import_annotation(image, source_file=f, offset=(0, 0, 0), name="mine", class_names={1: "mito"})
    assert _store.label_origin(image, "mine") == "human"
    assert _store.class_names(image, "mine") == {1: "mito"}
    annotate_from_truth(image, crops=1, size=8, seed=5, name="mine")
    attrs = _store.label_curated_attrs(image, "mine")
    assert attrs["origin"] == "mixed"
    assert [r["origin"] for r in read_annotation_rois(image, "mine")] == [
        "human",
        "derived-from-truth",
    ]
    # the truth's names win over the curator's shorthand for the same value
    assert _store.class_names(image, "mine")[1] == "mitochondrion"


def test_a_bad_origin_is_refused_and_nothing_is_written(image, tmp_path) -> None:
    f = _crop(tmp_path)
    with pytest.raises(InputError, match="origin must be one of"):
        import_annotation(image, source_file=f, offset=(0, 0, 0), name="x", origin="people")
    assert "x" not in _store.label_names(image)
    with pytest.raises(InputError, match="contradicts"):
        curated_block("truth", True, None, "human")
    with pytest.raises(InputError, match="contradicts"):
        curated_block("prediction", False, None, "model-prediction")


def test_cli_import_takes_origin_and_class_names(image, tmp_path) -> None:
    f = _crop(tmp_path, value=3)
    res = CliRunner().invoke(
        app,
        [
            "annotate",
            "import",
            str(image),
            "--from",
            str(f),
            "--offset",
            "0",
            "0",
            "0",
            "--name",
            "corr",
            "--origin",
            "model-prediction",
            "--class-name",
            "3=lipid droplet",
        ],
    )
    assert res.exit_code == 0, res.output
    attrs = _store.label_curated_attrs(image, "corr")
    assert attrs["origin"] == "model-prediction" and attrs["ai_generated"] is True
    assert _store.class_names(image, "corr") == {3: "lipid droplet"}
    bad = CliRunner().invoke(
        app,
        ["annotate", "import", str(image), "--from", str(f), "--offset", "0", "0", "0"]
        + ["--name", "bad", "--class-name", "three=x"],
    )
    assert bad.exit_code != 0 and "VALUE=NAME" in bad.output


def test_labels_add_cli_records_origin(image, tmp_path) -> None:
    arr = tmp_path / "t.npy"
    np.save(arr, np.zeros(SHAPE, np.uint8))
    res = CliRunner().invoke(
        app,
        ["labels", "add", str(image), "--name", "sim", "--from", str(arr), "--kind", "truth"]
        + ["--origin", "simulated", "--class-name", "1=mitochondrion"],
    )
    assert res.exit_code == 0, res.output
    assert _store.label_origin(image, "sim") == "simulated"
    assert _store.label_properties(image, "sim") == [{"label-value": 1, "name": "mitochondrion"}]


def test_older_labels_without_origin_read_honestly(image) -> None:
    add_labels(image, "old-pred", np.zeros(SHAPE, np.uint8), kind="prediction", ai_generated=True)
    g = _store.label_group(image, "old-pred", mode="r+")
    block = dict(g.attrs["curated"])
    block.pop("origin")
    g.attrs["curated"] = block
    assert _store.label_origin(image, "old-pred") == "model-prediction"
    g2 = _store.label_group(image, "truth", mode="r+")
    block = dict(g2.attrs["curated"])
    block.pop("origin")
    g2.attrs["curated"] = block
    # nobody knows who made an old truth: unknown, never "human" by default
    assert _store.label_origin(image, "truth") is None
    info = {lab.name: lab for lab in read_image_info(image).labels}
    assert info["truth"].origin is None and info["old-pred"].origin == "model-prediction"


def test_parse_class_names() -> None:
    assert parse_class_names(["2=nucleus", " 1 = mito "]) == [
        {"label-value": 1, "name": "mito"},
        {"label-value": 2, "name": "nucleus"},
    ]
    for bad in ("1", "=x", "-1=x", "1="):
        with pytest.raises(InputError, match="VALUE=NAME"):
            parse_class_names([bad])


def _prediction(image, name: str = "pred") -> None:
    pred = np.zeros(SHAPE, np.uint8)
    pred[4:8, 10:20, 10:20] = 1
    add_labels(
        image,
        name,
        pred,
        kind="prediction",
        ai_generated=True,
        model={"id": "net@abc", "sha256": "ab" * 32, "card": None},
    )


def test_a_copied_prediction_is_never_called_human_by_default(image, tmp_path) -> None:
    """`labels add --from IMAGE/labels/pred` once made a model's output "human"."""
    _prediction(image)
    add_labels(image, "copy", image / "labels" / "pred")
    attrs = _store.label_curated_attrs(image, "copy")
    assert attrs["origin"] == "model-prediction" and attrs["ai_generated"] is True
    assert attrs["kind"] == "prediction" and attrs["model"]["sha256"] == "ab" * 32
    # the CLI path, from the level array inside the label image
    r = CliRunner().invoke(
        app, ["labels", "add", str(image), "--name", "copy2", "--from", str(image / "labels" / "pred" / "0")]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert _store.label_origin(image, "copy2") == "model-prediction"
    # the simulator's truth copied stays simulated; an explicit origin still wins
    add_labels(image, "truth2", image / "labels" / "truth")
    assert _store.label_origin(image, "truth2") == "simulated"
    add_labels(image, "checked", image / "labels" / "pred", origin="human")
    assert _store.label_origin(image, "checked") == "human"
    # a plain array knows nothing: people's, as before
    np.save(tmp_path / "plain.npy", np.zeros(SHAPE, np.uint8))
    add_labels(image, "plain", tmp_path / "plain.npy")
    assert _store.label_origin(image, "plain") == "human"


def test_a_crop_imported_from_a_prediction_keeps_its_origin(image) -> None:
    _prediction(image)
    r = import_annotation(
        image, source_file=image / "labels" / "pred", offset=(0, 0, 0), name="ann"
    )
    assert r.details["origin"] == "model-prediction"
    attrs = _store.label_curated_attrs(image, "ann")
    assert attrs["origin"] == "model-prediction" and attrs["ai_generated"] is True
    cli = CliRunner().invoke(
        app,
        ["annotate", "import", str(image), "--from", str(image / "labels" / "pred"),
         "--offset", "0", "0", "0", "--name", "ann2"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert {r["origin"] for r in read_annotation_rois(image, "ann2")} == {"model-prediction"}


def test_crops_copied_from_a_models_prediction_are_a_models_output(image) -> None:
    """annotate from-truth --truth PRED once called a model's output derived-from-truth."""
    pred = np.zeros(SHAPE, np.uint8)
    pred[:, :24] = 1
    add_labels(image, "pred", pred, kind="prediction", model={"id": "net@abc"})
    r = annotate_from_truth(image, truth="pred", crops=2, size=8, seed=1, name="pseudo")
    assert "origin model-prediction" in r.message
    attrs = _store.label_curated_attrs(image, "pseudo")
    assert attrs["origin"] == "model-prediction" and attrs["ai_generated"] is True
    assert {r["origin"] for r in read_annotation_rois(image, "pseudo")} == {"model-prediction"}


def test_a_crop_cut_from_another_pyramid_level_is_refused(image, tmp_path) -> None:
    """Its offset and shape would put annotations on the wrong level-0 voxels."""
    from curated.images import write_ome_zarr

    crop = np.zeros((4, 8, 8), np.uint8)
    crop[1:3, 2:6, 2:6] = 1
    write_ome_zarr(crop, tmp_path / "coarse.ome.zarr", voxel_size=(32.0, 16.0, 16.0))
    with pytest.raises(InputError, match="not the image's level-0 voxel size"):
        import_annotation(image, source_file=tmp_path / "coarse.ome.zarr", offset=(0, 0, 0))
    write_ome_zarr(crop, tmp_path / "fine.ome.zarr", voxel_size=(16.0, 8.0, 8.0))
    r = import_annotation(image, source_file=tmp_path / "fine.ome.zarr", offset=(0, 0, 0))
    assert r.details["annotated_voxels"] == crop.size
