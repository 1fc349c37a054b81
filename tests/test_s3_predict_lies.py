"""A prediction written into an object store that lies: a shard's PUT answered ``200 OK``
and nothing kept, or fewer bytes kept than sent (its checksum ignored).

zarr writes no shard that is all background and reads a missing one as zeros, so a
dropped level-0 shard looked like background: the prediction finished, was logged ok, and
a re-run found every unit marked done. Now the write units record what they wrote beside
their markers, one listing is compared with that before the label image is finished, and
the units whose objects are not there are computed again by the re-run. The pyramid levels
(written through the converter's shard writer) are checked the same way.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import s3_server
from s3_faults import Fault, fault_proxy
from s3_server import local_files
from segment_helpers import train_tiny

from curated.errors import ConversionError, SegmentationError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.store import is_incomplete
from curated.metadata import init_workspace
from curated.objstore import url_digest
from curated.segment import make_fibsem_sample, predict
from curated.workspace import Workspace

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1
SHAPE = (16, 16, 32)
PARAMS = {"voxel_size": (8, 8, 8), "chunks": 8, "shard": 16, "workers": 1}
THRESHOLDS = (0.3, 0.5)
"""The tiny model's probability is about 0.36 everywhere: every voxel foreground at 0.3
(every label shard written), none at 0.5 (no label shard written: its units record that)."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A FIB-SEM-like sample, a tiny model trained on its truth, and the reference: the
    sample converted into a folder and predicted there (with the probability image)."""
    from curated.segment import annotate_from_truth

    root = tmp_path_factory.mktemp("lies")
    image = root / "cell.ome.zarr"
    make_fibsem_sample(image, shape=SHAPE, voxel_size=(8, 8, 8), seed=3, chunks=8, shard=16)
    annotate_from_truth(image, crops=2, size=10, seed=0, name="ann")
    train_tiny(image, root / "model")
    converted = root / "converted.ome.zarr"
    convert_to_ome_zarr(image, converted, **PARAMS)
    refs = {}
    for threshold in THRESHOLDS:
        refs[threshold] = root / f"local-{threshold}.ome.zarr"
        shutil.copytree(converted, refs[threshold])
        predict(
            root / "model",
            refs[threshold],
            name="pred",
            probabilities=True,
            threshold=threshold,
            device="cpu",
            workers=1,
        )
    return converted, root / "model", refs


def _lying(bucket: str, key: str, lie: str, client):
    """A fault that answers the PUT of ``key`` ``200 OK`` and keeps nothing, or 5 bytes."""

    def store_short(_: bytes) -> bytes:
        if lie == "shorter":
            client.put_object(Bucket=bucket, Key=key, Body=b"short")
        return b""

    return Fault(
        lambda s: s.method == "PUT" and s.key == f"{bucket}/{key}", "answer", rewrite=store_short
    )


def _statuses(ws) -> list[str]:
    return [e["status"] for e in Workspace(ws).log.entries() if e["action"] == "predict"]


@pytest.mark.parametrize(
    ("where", "threshold", "lie", "error", "logged"),
    [
        # level 0, written by zarr in a unit task
        ("pred/0/c/0/0/1", 0.3, "nothing", SegmentationError, True),
        # the probability image's level 0, beside label units that are all background
        ("pred-probability/0/c/0/0/1", 0.5, "shorter", SegmentationError, False),
        # a pyramid level, built when the label image is finished
        ("pred/1/c/0/0/0", 0.3, "shorter", ConversionError, True),
        ("pred-probability/1/c/0/0/0", 0.5, "nothing", ConversionError, False),
    ],
    ids=["level0-nothing", "probability-shorter", "pyramid-shorter", "probability-pyramid-nothing"],
)
def test_a_prediction_shard_acknowledged_but_not_kept_fails_and_the_rerun_repairs_it(
    s3, sample, tmp_path, where, threshold, lie, error, logged
):
    """``logged``: the runs are given a curator log (which digests the S3 image: slow)."""
    image, model, refs = sample
    local = refs[threshold]
    assert (local / "labels" / where).is_file()  # not all background: it is PUT
    ws = tmp_path / "ws"
    init_workspace(ws, "Lying store")
    bucket = s3.make_bucket(f"{where.split('/')[0]}-{where.split('/')[1]}-{lie}")
    url = f"s3://{bucket}/cell.ome.zarr"
    # the converted image, straight into the server's backend (a conversion's PUTs take seconds)
    s3.put_many(bucket, {f"cell.ome.zarr/{k}": v for k, v in local_files(image).items()})
    names = ["pred", "pred-probability"] if where.startswith("pred-probability") else ["pred"]
    args = {"name": "pred", "probabilities": len(names) > 1, "threshold": threshold}
    args |= {"device": "cpu", "workers": 1}
    with fault_proxy(s3) as proxy:
        proxy.add(_lying(bucket, f"cell.ome.zarr/labels/{where}", lie, s3.client()))
        with pytest.raises(error, match=f"{where.split('/', 1)[1]}.*did not keep") as err:
            predict(model, url, workspace=ws if logged else None, **args)
        assert proxy.faults[0].hits == 1
    assert f"{url}/labels/pred" in str(err.value)
    assert _statuses(ws) == (["error"] if logged else [])  # nothing recorded ok
    assert where.split("/")[0] not in open_image(url).label_names()
    assert is_incomplete(f"{url}/labels/{where.split('/')[0]}")

    res = predict(model, url, workspace=ws if logged else None, **args)  # the store honest now
    assert res.status == "ok"
    if logged:  # recorded ok, with the digests of the label images as they are in the store
        assert _statuses(ws) == ["error", "ok"]
        outputs = Workspace(ws).log.last()["outputs"]
        assert {o["path"]: o["digest"] for o in outputs} == {
            f"{url}/labels/{n}": url_digest(f"{url}/labels/{n}") for n in names
        }
    # only the unit whose shard went is computed again (a pyramid shard needs none)
    assert res.details["units_computed"] == (1 if where.split("/")[1] == "0" else 0)
    for name in names:  # byte for byte the local prediction's objects
        prefix = f"cell.ome.zarr/labels/{name}"
        assert s3.objects(bucket, prefix) == local_files(local / "labels" / name)


def test_reports_asked_into_an_object_store_are_refused_not_written_locally(tmp_path, monkeypatch):
    """``segment evaluate --out s3://B/r`` and ``annotate suggest --out s3://B/r`` wrote their
    reports with local-file writers to ``./s3:/B/r/…`` in the current folder: reported as
    written, never in the store. Now the URL is refused before any work, and nothing is
    written."""
    from curated.errors import InputError
    from curated.images import add_labels
    from curated.segment import evaluate, suggest_crops

    image = tmp_path / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(16, 16, 16), voxel_size=(8, 8, 8), seed=0, chunks=8, shard=16)
    truth = open_image(image).open_label("truth").levels[0][:]
    add_labels(image, "pred", truth, kind="prediction", ai_generated=True)
    value = int(np.unique(truth)[-1])
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    out = "s3://reports-bucket/reports"
    with pytest.raises(InputError, match="object store URL.*local --out") as err:
        evaluate(image, pred="pred", truth="truth", label_value=value, blocks=1, out=out)
    assert out in str(err.value)
    with pytest.raises(InputError, match="object store URL.*local --out"):
        suggest_crops(image, model=tmp_path / "no-model", pred="pred", n=1, out=out)
    assert list((tmp_path / "cwd").iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["segment", "train", "{url}", "--labels", "ann", "--label-value", "1", "--out", "m"],
        ["segment", "finetune", "m", "{url}", "--labels", "ann", "--out", "m2"],
        ["segment", "evaluate", "{url}", "--pred", "p", "--truth", "t", "--label-value", "1"],
        ["annotate", "suggest", "{url}", "--model", "m", "--pred", "p", "--n", "1"],
        ["annotate", "from-truth", "{url}", "--truth", "t", "--crops", "1", "--size", "8"],
        ["annotate", "import", "{url}", "crop.tif", "--offset", "0", "0", "0"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_object_store_image_is_refused_by_name_where_only_local_images_are_read(
    tmp_path, monkeypatch, args
):
    """These steps read the image with local-file readers: ``s3://B/cell.ome.zarr`` became the
    local ``./s3:/B/cell.ome.zarr`` and was refused as "does not exist" under a name the
    user never gave. Now the URL is named and the steps that do read object stores too."""
    from typer.testing import CliRunner

    from curated.cli import app

    monkeypatch.chdir(tmp_path)
    url = "s3://a-bucket/cell.ome.zarr"
    got = CliRunner().invoke(app, [a.replace("{url}", url) for a in args])
    text = " ".join(got.output.replace("│", " ").split())  # rich's error box, unwrapped
    assert got.exit_code != 0, text
    assert url in text and "object store URL" in text and "segment predict" in text, text
    assert "s3:/a-bucket" not in text.replace(url, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_library_steps_name_an_object_store_image_too(tmp_path):
    from curated.errors import InputError
    from curated.segment import annotate_from_truth, evaluate, suggest_crops, train

    url = "s3://a-bucket/cell.ome.zarr"
    calls = [
        lambda: train(url, labels="ann", label_value=1, out=tmp_path / "m"),
        lambda: evaluate(url, pred="p", truth="t", label_value=1),
        lambda: suggest_crops(url, model=tmp_path / "m", pred="p", n=1),
        lambda: annotate_from_truth(url, truth="t", crops=1, size=8),
    ]
    for call in calls:
        with pytest.raises(InputError, match="object store URL") as err:
            call()
        assert url in str(err.value)
