"""`curated log --verify --files` after label images are written into a recorded image store."""

from __future__ import annotations

import numpy as np

from curated.images import add_labels, write_ome_zarr
from curated.metadata import init_workspace
from curated.workspace import recorder


def _first_chunk_file(folder):
    return next(
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("zarr.json", ".zattrs", ".zgroup", ".zarray")
    )


def test_labels_added_later_do_not_break_file_verification(tmp_path):
    ws = init_workspace(tmp_path / "ws", "nested outputs")
    image = ws.derived_dir / "img.ome.zarr"
    data = np.arange(16 * 32 * 32, dtype=np.uint16).reshape(16, 32, 32)
    write_ome_zarr(data, image, voxel_size=(8, 8, 8), chunks=16, shard=32, workspace=ws)
    add_labels(image, "truth", (data % 3).astype(np.uint8), kind="truth", workspace=ws)

    report = ws.log.verify(files=True)
    assert report.ok, report.problems


def test_tampered_image_chunk_is_still_caught_after_labels_were_added(tmp_path):
    ws = init_workspace(tmp_path / "ws", "nested outputs")
    image = ws.derived_dir / "img.ome.zarr"
    data = np.arange(16 * 32 * 32, dtype=np.uint16).reshape(16, 32, 32)
    write_ome_zarr(data, image, voxel_size=(8, 8, 8), chunks=16, shard=32, workspace=ws)
    add_labels(image, "truth", (data % 3).astype(np.uint8), kind="truth", workspace=ws)

    chunk = _first_chunk_file(image / "0")
    chunk.write_bytes(chunk.read_bytes() + b"x")
    report = ws.log.verify(files=True)
    assert not report.ok
    assert any("img.ome.zarr changed" in p for p in report.problems)


def test_tampered_label_chunk_is_caught(tmp_path):
    ws = init_workspace(tmp_path / "ws", "nested outputs")
    image = ws.derived_dir / "img.ome.zarr"
    data = np.arange(16 * 32 * 32, dtype=np.uint16).reshape(16, 32, 32)
    write_ome_zarr(data, image, voxel_size=(8, 8, 8), chunks=16, shard=32, workspace=ws)
    add_labels(image, "truth", (data % 3).astype(np.uint8), kind="truth", workspace=ws)

    chunk = _first_chunk_file(image / "labels" / "truth" / "0")
    chunk.write_bytes(b"garbage")
    report = ws.log.verify(files=True)
    assert not report.ok
    assert any("labels/truth changed" in p for p in report.problems)


def test_a_step_reading_a_recorded_store_reuses_its_digest_instead_of_rereading(
    tmp_path, monkeypatch
):
    ws = init_workspace(tmp_path / "ws", "inputs")
    image = ws.derived_dir / "img.ome.zarr"
    data = np.zeros((16, 32, 32), dtype=np.uint8)
    write_ome_zarr(data, image, voxel_size=(8, 8, 8), chunks=16, shard=32, workspace=ws)
    written = ws.log.last()

    import curated.provenance.log as logmod

    def no_rereading(*args, **kwargs):
        raise AssertionError("the store was re-read")

    monkeypatch.setattr(logmod, "digest_path", no_rereading)
    with recorder(ws, "T", "predict", inputs=[image]) as step:
        pass
    (inp,) = step.entry["inputs"]
    assert inp["digest"] == written["outputs"][0]["digest"]
    assert inp["recorded_seq"] == written["seq"]
