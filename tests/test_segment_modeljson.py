"""One reader of ``model.json``: every command that opens a model folder fails the same way on a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curated.errors import InputError, SegmentationError
from curated.segment.evaluate import training_exclusion
from curated.segment.export import export_bioimageio
from curated.segment.modelio import load_model
from curated.segment.modeljson import read_model_json

READERS = {
    "read_model_json": read_model_json,
    "load_model": load_model,
    "training_exclusion": training_exclusion,
    "export_bioimageio": lambda p: export_bioimageio(p, p.parent / "out.zip"),
}

BAD_FILES = {
    "truncated": b'{"format": "curated-unet/2", "weights": {"sha',
    "not json": b"weights.pt\x00\x01",
    "not utf-8": b'{"name": "\xff\xfe"}',
    "a list": b"[1, 2, 3]",
    "a string": b'"model"',
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_folder_without_model_json_is_an_input_error(tmp_path: Path, reader: str):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(InputError, match=r"not a model folder \(no model.json\)") as exc:
        READERS[reader](empty)
    assert exc.value.path is not None and Path(exc.value.path) == empty
    assert not (tmp_path / "out.zip").exists()


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_broken_model_json_is_a_one_line_input_error(tmp_path: Path, reader: str, kind: str):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_bytes(BAD_FILES[kind])
    with pytest.raises(InputError) as exc:
        READERS[reader](folder)
    assert "\n" not in str(exc.value)
    assert "model.json" in str(exc.value)
    assert Path(str(exc.value.path)).name == "model.json"
    # nothing was written and the broken file is left as it was
    assert sorted(p.name for p in folder.iterdir()) == ["model.json"]
    assert (folder / "model.json").read_bytes() == BAD_FILES[kind]


def test_a_readable_model_json_of_another_version_is_still_a_segmentation_error(tmp_path: Path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"format": "curated-unet/0"}), encoding="utf-8")
    assert read_model_json(folder) == (folder, {"format": "curated-unet/0"})
    assert read_model_json(folder / "model.json")[0] == folder
    with pytest.raises(SegmentationError, match="another architecture version"):
        load_model(folder)
