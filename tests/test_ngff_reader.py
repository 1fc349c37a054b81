"""One OME-Zarr reader (curated.images.ngff): the same answers for every caller.

Before there were five readers that disagreed: the voxel size did or did not
include the multiscale-wide transformations, an interrupted store was refused by
one and read by another, and "is a Zarr store" meant the folder's name in one
place and its metadata in another.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curated.document.ngff import read_image_info
from curated.errors import ConversionError, InputError
from curated.images import add_labels, ngff, open_image, validate_ome_zarr, write_ome_zarr
from curated.images.store import INCOMPLETE_KEY, INCOMPLETE_MESSAGE, write_group_attrs
from curated.package import walk
from curated.segment import _store
from curated.segment.volume import open_level0

VOL = (np.arange(8 * 16 * 16) % 251).astype(np.uint8).reshape(8, 16, 16)


def _image(tmp_path: Path, version: str = "0.5", name: str = "cell.ome.zarr") -> Path:
    path = tmp_path / name
    write_ome_zarr(VOL, path, voxel_size=(8, 2, 2), chunks=8, ngff_version=version)
    return path


def _edit_attrs(path: Path, edit) -> None:
    """Change the group attributes of ``path`` in place (v3 ``zarr.json`` or v2 ``.zattrs``)."""
    v3 = path / "zarr.json"
    if v3.is_file():
        meta = json.loads(v3.read_text())
        edit(meta["attributes"].get("ome", meta["attributes"]))
        v3.write_text(json.dumps(meta))
    else:
        attrs = json.loads((path / ".zattrs").read_text())
        edit(attrs)
        (path / ".zattrs").write_text(json.dumps(attrs))


def _add_global_scale(path: Path, scale: list[float], translation: list[float]) -> None:
    def edit(block):
        block["multiscales"][0]["coordinateTransformations"] = [
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": translation},
        ]

    _edit_attrs(path, edit)


# ------------------------------------------------------------- voxel size
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_voxel_size_is_the_levels_scale_followed_by_the_multiscale_wide_one(tmp_path, version):
    image = _image(tmp_path, version)
    _add_global_scale(image, [1.0, 2.0, 2.0], [100.0, 0.0, 0.0])

    img = open_image(image)
    assert img.voxel_size == (8.0, 4.0, 4.0)
    assert _store.voxel_size(image) == (8.0, 4.0, 4.0)
    assert read_image_info(image).voxel_size == {"z": 8.0, "y": 4.0, "x": 4.0}
    # level 1 halves y and x: its own scale (8, 4, 4) and translation (0, 1, 1) compose too
    assert img.scale[1] == [8.0, 8.0, 8.0]
    assert img.translation[1] == [100.0, 2.0, 2.0]
    # composing keeps the pyramid consistent, so the store still validates
    assert validate_ome_zarr(image) == []


# ------------------------------------------------------ interrupted stores
def _interrupt(path: Path, zarr_format: int = 3) -> None:
    """What an interrupted conversion leaves: the group marked incomplete, no multiscales."""
    write_group_attrs(path, {INCOMPLETE_KEY: INCOMPLETE_MESSAGE}, zarr_format)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_interrupted_store_is_refused_for_computation_with_one_message(tmp_path, version):
    image = _image(tmp_path, version)
    _interrupt(image, 3 if version == "0.5" else 2)
    readers = {
        "open_image": lambda: open_image(image),
        "segment image": lambda: _store.image_level0(image),
        "segment voxel size": lambda: _store.voxel_size(image),
        "evaluate": lambda: open_level0(image, "image"),
        "strict read": lambda: ngff.read_ngff(image),
    }
    for who, read in readers.items():
        with pytest.raises(ConversionError) as err:
            read()
        assert err.value.message == INCOMPLETE_MESSAGE, who
        assert str(err.value) == f"{image}: {INCOMPLETE_MESSAGE}", who
        assert "\n" not in str(err.value)


def test_interrupted_store_is_described_not_refused_by_documents(tmp_path):
    image = _image(tmp_path)
    _interrupt(image)
    meta = ngff.read_ngff(image, tolerant=True)
    assert meta.incomplete and meta.levels == () and meta.problems == (INCOMPLETE_MESSAGE,)
    info = read_image_info(image)
    assert info.problem == INCOMPLETE_MESSAGE and info.levels == []
    assert validate_ome_zarr(image) == [f"{image}: unfinished conversion ({INCOMPLETE_MESSAGE})"]


def test_unfinished_label_image_still_says_what_it_is_but_is_not_computed_on(tmp_path):
    image = _image(tmp_path)
    add_labels(image, "pred", (VOL > 100).astype(np.uint8), kind="prediction", ai_generated=True)
    label = image / "labels" / "pred"
    block = json.loads((label / "zarr.json").read_text())["attributes"]["curated"]
    write_group_attrs(label, {"curated": block, INCOMPLETE_KEY: INCOMPLETE_MESSAGE}, 3)

    assert _store.label_curated_attrs(image, "pred")["kind"] == "prediction"
    with pytest.raises(ConversionError, match="interrupted"):
        _store.label_level0(image, "pred")
    with pytest.raises(ConversionError, match="interrupted"):
        open_level0(label, "prediction")


# --------------------------------------------------------- is_zarr_store
def test_a_zarr_store_is_known_by_its_metadata_everywhere_not_by_its_name(tmp_path):
    assert walk.is_zarr_store is ngff.is_zarr_store
    from curated.document import ngff as document_ngff

    assert document_ngff.is_zarr_store is ngff.is_zarr_store

    root = tmp_path / "ws"
    derived = root / "derived"
    _image(derived, name="cell")  # a store whose name does not end in .zarr
    notes = derived / "notes.zarr"  # a folder named like a store, holding no Zarr metadata
    notes.mkdir()
    (notes / "read me.txt").write_text("not a store\n")
    v2 = derived / "old"
    v2.mkdir()
    (v2 / ".zgroup").write_text('{"zarr_format": 2}')

    assert ngff.is_zarr_store(derived / "cell") and ngff.is_zarr_store(v2)
    assert not ngff.is_zarr_store(notes) and not ngff.is_zarr_store(derived)
    assert not ngff.is_zarr_store(notes / "read me.txt")

    items = list(walk.walk_groups(root, zarr_archives=True))
    zipped = sorted(i.rel for i in items if isinstance(i, walk.ZarrStore))
    assert zipped == ["derived/cell", "derived/old"]
    files = [i.prefix + n for i in items if isinstance(i, walk.FileGroup) for n in i.names]
    assert "derived/notes.zarr/read me.txt" in files
    # the progress total counts each store's zip once (nested groups are not stores of their own)
    in_stores = sum(1 for p in (derived / "cell").rglob("*") if p.is_file()) + 1
    assert walk.count_files(root, zarr_archives=True) == len(files) + in_stores + 2


# ------------------------------------------------------------ bad inputs
def test_hostile_level_path_is_refused_before_anything_is_opened(tmp_path):
    image = _image(tmp_path)
    _edit_attrs(image, lambda b: b["multiscales"][0]["datasets"][0].update(path="../../etc"))
    with pytest.raises(InputError) as err:
        open_image(image)
    assert err.value.field == "multiscales[0].datasets[0].path"
    assert "relative path inside the store" in err.value.message
    meta = ngff.read_ngff(image, tolerant=True)  # the other levels are still described
    assert meta.levels and all(".." not in lv.path for lv in meta.levels)
    assert any("datasets[0].path" in p for p in meta.problems)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda b: b.pop("multiscales"), "multiscales"),
        (lambda b: b["multiscales"][0].update(axes="zyx"), "multiscales[0].axes"),
        (
            lambda b: b["multiscales"][0]["datasets"][0].update(
                coordinateTransformations=[{"type": "scale", "scale": [8, "x", 2]}]
            ),
            "multiscales[0].datasets[0].coordinateTransformations[0].scale",
        ),
        (
            lambda b: b["multiscales"][0]["datasets"][0].update(
                coordinateTransformations=[{"type": "scale", "scale": [8, 2]}]
            ),
            "multiscales[0].datasets[0].coordinateTransformations[0].scale",
        ),
        (
            lambda b: b["multiscales"][0]["datasets"][1].update(coordinateTransformations=[]),
            "multiscales[0].datasets[1]",
        ),
        (lambda b: b["multiscales"][0].update(datasets=[]), "multiscales[0].datasets"),
        (
            lambda b: b["multiscales"][0].update(
                coordinateTransformations=[{"type": "scale", "scale": [1, 10**400, 1]}]
            ),
            "multiscales[0].coordinateTransformations[0].scale",
        ),
    ],
)
def test_malformed_multiscales_get_one_line_naming_the_field(tmp_path, edit, field):
    image = _image(tmp_path)
    _edit_attrs(image, edit)
    with pytest.raises(InputError) as err:
        open_image(image)
    assert err.value.field == field and "\n" not in str(err.value)
    meta = ngff.read_ngff(image, tolerant=True)  # describing never raises
    assert meta.problems and meta.problems[0].startswith(field)
    info = read_image_info(image)
    assert info.problem or info.levels


def test_unreadable_metadata_is_one_line_and_nothing_changes(tmp_path):
    image = _image(tmp_path)
    (image / "zarr.json").write_text("{not json")
    before = sorted((p.relative_to(image), p.read_bytes()) for p in image.rglob("*") if p.is_file())
    with pytest.raises(InputError, match="cannot read the store") as err:
        open_image(image)
    assert "\n" not in str(err.value)
    assert read_image_info(image).problem.startswith("cannot read the store")
    assert validate_ome_zarr(image)[0].startswith(f"{image}: not a zarr group")
    after = sorted((p.relative_to(image), p.read_bytes()) for p in image.rglob("*") if p.is_file())
    assert before == after


def test_not_a_store_and_missing_path(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is not an OME-Zarr image"):
        open_image(tmp_path / "plain")
    with pytest.raises(InputError, match="does not exist"):
        ngff.read_ngff(tmp_path / "nowhere")
    assert ngff.read_ngff(tmp_path / "nowhere", tolerant=True).problems


def test_level_with_other_dimensions_than_axes_is_refused(tmp_path):
    image = _image(tmp_path)
    _edit_attrs(
        image,
        lambda b: b["multiscales"][0].update(
            axes=[{"name": "c", "type": "channel"}, *b["multiscales"][0]["axes"]],
            datasets=[
                {
                    "path": d["path"],
                    "coordinateTransformations": [
                        {
                            "type": "scale",
                            "scale": [1.0, *d["coordinateTransformations"][0]["scale"]],
                        }
                    ],
                }
                for d in b["multiscales"][0]["datasets"]
            ],
        ),
    )
    with pytest.raises(InputError, match="3 dimensions but 4 axes"):
        open_image(image)
    assert "3 dimensions but 4 axes" in read_image_info(image).problem


# ------------------------------------------------------------- the view
def test_one_typed_view_for_both_versions(tmp_path):
    a = ngff.read_ngff(_image(tmp_path / "a", "0.5"))
    b = ngff.read_ngff(_image(tmp_path / "b", "0.4"))
    assert (a.version, a.zarr_format, b.version, b.zarr_format) == ("0.5", 3, "0.4", 2)
    for meta in (a, b):
        assert meta.axis_names == ("z", "y", "x") and meta.unit == "nanometer"
        assert meta.axes[0] == ngff.Axis("z", "space", "nanometer")
        assert meta.level_paths[0] == "0" and meta.voxel_size == (8.0, 2.0, 2.0)
        assert meta.zyx() == (0, 1, 2) and not meta.is_label and meta.problems == ()


def test_label_view_reads_names_colours_and_unannotated_values(tmp_path):
    image = _image(tmp_path)
    add_labels(
        image,
        "crops",
        (VOL % 3).astype(np.uint8),
        kind="annotation",
        properties=[
            {"label-value": 1, "name": "mitochondrion"},
            {"label-value": 2, "name": "not annotated", "curated:unannotated": True},
        ],
    )
    meta = ngff.read_ngff(image)
    assert meta.labels == ("crops",) and ngff.label_names(image) == ["crops"]
    lab = ngff.read_ngff(image / "labels" / "crops")
    assert lab.is_label and lab.curated["kind"] == "annotation"
    assert lab.image_label.names[1] == "mitochondrion"
    assert lab.image_label.unannotated == {2}
    assert {1, 2} <= lab.image_label.values
    assert _store.class_names(image, "crops") == {1: "mitochondrion"}


def test_malformed_image_label_entries_are_left_out_not_fatal(tmp_path):
    image = _image(tmp_path)
    add_labels(image, "m", (VOL > 100).astype(np.uint8), kind="truth")
    label = image / "labels" / "m"

    def edit(block):
        block["image-label"] = {
            "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}, {"rgba": "red"}],
            "properties": [{"label-value": "x"}, {"label-value": 1, "name": "mito"}],
        }

    _edit_attrs(label, edit)
    lab = ngff.read_ngff(label)  # strict still reads it: the entries describe, they do not compute
    assert lab.image_label.colors == {1: (255, 0, 0, 255)}
    assert lab.image_label.names == {1: "mito"}
    assert len(lab.problems) == 2
    assert _store.class_names(image, "m") == {1: "mito"}


def test_a_label_image_being_written_does_not_stop_naming_structures(tmp_path):
    """Describing skips an unfinished label image; before, the refusal was an InputError it caught."""
    from curated.segment.export import _structure_name

    image = _image(tmp_path)
    add_labels(
        image,
        "truth",
        (VOL > 100).astype(np.uint8),
        kind="truth",
        properties=[{"label-value": 1, "name": "mitochondrion"}],
    )
    (image / "labels" / "a-pred").mkdir()
    _interrupt(image / "labels" / "a-pred")  # sorted before "truth": met first
    assert _structure_name(image, None, 1) == "mitochondrion"
