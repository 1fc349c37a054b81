"""Prediction into an object store finds its finished units with one listing of their
markers, not a request or two per unit (a terabyte image has ~10^5 units)."""

from __future__ import annotations

import s3_server
from s3_faults import fault_proxy

from curated.objstore import StorePath
from curated.segment.predict import BlockPlan, marker_name, units_to_do

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1


def test_the_units_left_to_predict_are_found_with_one_listing(s3, tmp_path):
    plan = BlockPlan(shape=(64, 64, 64), unit=(8, 8, 8), tile=(8, 8, 8))  # 512 units
    done = plan.units()[::3]
    bucket = s3.make_bucket("predict-markers")
    prefix = "cell.ome.zarr/labels/pred/.curated-predict"
    s3.put_many(bucket, {f"{prefix}/{marker_name(idx)}": b"" for idx in done})
    with fault_proxy(s3) as proxy:
        todo = units_to_do(plan, StorePath(f"s3://{bucket}/{prefix}"))
        asked = [s.op for s in proxy.seen]
    assert todo == [idx for idx in plan.units() if idx not in done]
    assert asked == ["list"]
    # the same answer from a local folder of markers
    (tmp_path / "m").mkdir()
    for idx in done:
        (tmp_path / "m" / marker_name(idx)).touch()
    assert units_to_do(plan, tmp_path / "m") == todo
    assert units_to_do(plan, tmp_path / "missing") == plan.units()


def test_a_predictions_settings_go_into_the_object_store(s3, tmp_path, monkeypatch):
    """The settings a prediction records beside its markers (checked when it resumes) were
    written by a local-file writer to ``./s3:/BUCKET/…`` in the current folder: never in
    the store, so a resumed run with another threshold mixed two in one label image."""
    import importlib
    from types import SimpleNamespace

    import pytest

    from curated.errors import SegmentationError

    predict = importlib.import_module("curated.segment.predict")

    monkeypatch.chdir(tmp_path)
    bucket = s3.make_bucket("predict-settings")
    markers = StorePath(f"s3://{bucket}/cell.ome.zarr/labels/pred/.curated-predict")
    plan = BlockPlan(shape=(16, 16, 16), unit=(8, 8, 8), tile=(8, 8, 8))
    run = SimpleNamespace(
        markers=markers,
        dest=markers.parent,
        name="pred",
        names=["pred"],
        threshold=0.5,
        precision="fp32",
    )
    predict._claim_markers(run, plan)
    assert list(tmp_path.iterdir()) == []
    assert '"threshold": 0.5' in (markers / predict.RUN_SETTINGS).read_text()
    predict._claim_markers(run, plan)  # the same settings: resumed
    run.threshold = 0.7
    with pytest.raises(SegmentationError, match="other settings"):
        predict._claim_markers(run, plan)
