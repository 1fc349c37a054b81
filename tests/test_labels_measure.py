"""`labels measure`: blockwise per-object measurements equal a whole-array computation; Parquet with units."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError
from curated.images import add_labels, write_ome_zarr
from curated.images.measure import measure_arrays, measure_labels
from curated.metadata.edit import init_workspace

VS = (8.0, 4.0, 2.0)


def brute_force(lab: np.ndarray, img: np.ndarray, vs=VS) -> dict[int, dict[str, float]]:
    """Every measurement from the whole array at once (the reference)."""
    out = {}
    padded = np.pad(lab, 1)
    area = (vs[1] * vs[2], vs[0] * vs[2], vs[0] * vs[1])
    for v in np.unique(lab[lab != 0]):
        m = lab == v
        idx = np.argwhere(m)
        pm = padded == v
        faces = [int(np.count_nonzero(np.diff(pm.astype(np.int8), axis=a))) for a in range(3)]
        out[int(v)] = {
            "voxels": int(m.sum()),
            "volume": float(m.sum()) * float(np.prod(vs)),
            "surface_area": float(sum(f * a for f, a in zip(faces, area, strict=True))),
            **{f"centroid_{a}": idx[:, i].mean() * vs[i] for i, a in enumerate("zyx")},
            **{f"bbox_start_{a}": int(idx[:, i].min()) for i, a in enumerate("zyx")},
            **{f"bbox_stop_{a}": int(idx[:, i].max()) + 1 for i, a in enumerate("zyx")},
            "mean_intensity": float(img[m].astype(np.float64).mean()),
        }
    return out


def _labels(shape=(18, 40, 34)) -> np.ndarray:
    rng = np.random.default_rng(3)
    z, y, x = np.indices(shape)
    lab = np.zeros(shape, np.uint16)
    lab[((z - 9) ** 2 + (y - 16) ** 2 + (x - 16) ** 2) < 60] = (
        5  # crosses every 8- and 16-block seam
    )
    lab[2:5, 30:40, 0:34] = 9  # touches the volume's far y face and both x faces
    lab[0:18, 0:3, 30:34] = 3  # touches near z, far z, near y, far x
    lab[rng.random(shape) < 0.01] = 65535  # scattered single voxels, top value of the type
    lab[10, 20, 5] = 1
    return lab


def _assert_same(m, ref):
    assert m.columns["label"].tolist() == sorted(ref)
    for i, v in enumerate(m.columns["label"].tolist()):
        for key, want in ref[v].items():
            assert m.columns[key][i] == pytest.approx(want, rel=1e-12), (v, key)


@pytest.mark.parametrize("block", [1, 5, 8, 16, 64])
def test_blockwise_measurements_equal_the_whole_array(block):
    lab = _labels()
    img = np.random.default_rng(0).integers(0, 4000, lab.shape, dtype=np.uint16)
    m = measure_arrays(lab, img, voxel_size=VS, unit="nanometer", block=block)
    _assert_same(m, brute_force(lab, img))


def test_an_empty_label_image_gives_an_empty_table(tmp_path):
    lab = np.zeros((6, 7, 8), np.uint8)
    m = measure_arrays(lab, np.ones(lab.shape), block=4)
    assert m.rows == 0
    from curated.images.measure import write_parquet

    table = pq.read_table(write_parquet(m, tmp_path / "empty.parquet"))
    assert table.num_rows == 0 and "surface_area" in table.column_names


def test_signed_labels_keep_negative_values():
    lab = np.zeros((4, 4, 4), np.int32)
    lab[1, 1, 1] = -2
    lab[2, 2, 2] = 4
    m = measure_arrays(lab, np.ones(lab.shape), block=2)
    assert m.columns["label"].tolist() == [-2, 4]
    assert m.columns["surface_area"].tolist() == [6.0, 6.0]


@pytest.fixture
def image(tmp_path):
    lab = _labels()
    img = np.random.default_rng(0).integers(0, 255, lab.shape, dtype=np.uint8)
    write_ome_zarr(img, tmp_path / "img.ome.zarr", voxel_size=VS, chunks=8, shard=16)
    add_labels(tmp_path / "img.ome.zarr", "cells", lab, kind="truth")
    return tmp_path / "img.ome.zarr", lab, img


def test_measure_writes_parquet_with_units_and_csv(image, tmp_path):
    path, lab, img = image
    res = measure_labels(path, "cells", out=tmp_path / "m.parquet", csv=tmp_path / "m.csv", block=8)
    assert res.status == "ok" and res.details["rows"] == len(np.unique(lab)) - 1
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.schema.field("volume").metadata == {b"unit": b"nanometer^3"}
    assert table.schema.field("centroid_x").metadata == {b"unit": b"nanometer"}
    units = json.loads(table.schema.metadata[b"curated.units"])
    assert units["surface_area"] == "nanometer^2"
    ref = brute_force(lab, img)
    got = table.to_pydict()
    for i, v in enumerate(got["label"]):
        assert got["mean_intensity"][i] == pytest.approx(ref[v]["mean_intensity"])
        assert got["surface_area"][i] == pytest.approx(ref[v]["surface_area"])
    csv = pacsv.read_csv(tmp_path / "m.csv")
    assert csv.column("label").to_pylist() == got["label"]


def test_measure_is_recorded_with_the_outputs_checksum(image, tmp_path):
    path, _, _ = image
    ws = init_workspace(tmp_path / "ws", "measured")
    out = tmp_path / "ws" / "derived" / "m.parquet"
    res = measure_labels(path, "cells", out=out, workspace=ws)
    entry = list(ws.log.entries())[-1]
    assert entry["action"] == "labels-measure" and entry["status"] == "ok"
    (got,) = entry["outputs"]
    assert got["path"] == "derived/m.parquet"
    assert got["digest"].endswith(res.details["outputs"]["parquet"]["sha256"])


def test_label_image_of_another_shape_is_a_clear_error(image, tmp_path):
    path, _, _ = image
    other = np.zeros((10, 40, 34), np.uint8)
    write_ome_zarr(other, tmp_path / "b.ome.zarr", voxel_size=VS, chunks=8, shard=16)
    add_labels(tmp_path / "b.ome.zarr", "cells", other, kind="truth")
    # a label image copied in from an image of another shape (e.g. by hand)
    shutil.rmtree(path / "labels" / "cells")
    shutil.copytree(tmp_path / "b.ome.zarr" / "labels" / "cells", path / "labels" / "cells")
    with pytest.raises(InputError, match=r"shape \(10, 40, 34\) but the image has \(18, 40, 34\)"):
        measure_labels(path, "cells", out=tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()
    r = CliRunner().invoke(
        app,
        ["labels", "measure", str(path), "--labels", "cells", "--out", str(tmp_path / "x.parquet")],
    )
    assert r.exit_code == 1 and "must match voxel for voxel" in r.output
    assert len(r.output.strip().splitlines()) <= 3


def test_unknown_label_name_is_a_clear_error(image, tmp_path):
    path, _, _ = image
    r = CliRunner().invoke(app, ["labels", "measure", str(path), "--labels", "nope"])
    assert r.exit_code == 1 and "no finished label image 'nope'" in r.output


def test_cli_measure_prints_json(image, tmp_path):
    path, lab, _ = image
    out = tmp_path / "cli.parquet"
    r = CliRunner().invoke(
        app, ["labels", "measure", str(path), "--labels", "cells", "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["details"]["rows"] == len(np.unique(lab)) - 1
    assert pq.read_table(out).num_rows == len(np.unique(lab)) - 1
