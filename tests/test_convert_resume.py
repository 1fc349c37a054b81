"""A killed conversion, re-run with the same command, finishes without redoing shards and
ends bit-identical to an uninterrupted run; meanwhile the store never looks finished."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr, open_image, validate_ome_zarr
from curated.images.shards import ABORT_ENV
from curated.provenance.digest import digest_tree, iter_tree

PARAMS = {"voxel_size": (8, 4, 4), "chunks": 8, "shard": 16, "workers": 1}


@pytest.fixture
def stack(tmp_path):
    vol = np.random.default_rng(3).integers(0, 255, (40, 48, 40), dtype=np.uint8)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, vol, photometric="minisblack", bigtiff=True)
    return src, vol


def _killed_run(src, dest, after: int) -> int:
    code = (
        "import sys; from curated.images import convert_to_ome_zarr; "
        f"convert_to_ome_zarr(sys.argv[1], sys.argv[2], **{PARAMS!r})"
    )
    env = {**os.environ, ABORT_ENV: str(after)}
    return subprocess.run(
        [sys.executable, "-c", code, str(src), str(dest)], env=env, check=False, timeout=120
    ).returncode


def test_interrupted_conversion_resumes_bit_identical(tmp_path, stack):
    src, vol = stack
    dest = tmp_path / "killed.ome.zarr"
    assert _killed_run(src, dest, after=5) == 75  # killed after 5 of 3*3*3 + ... shards

    # the unfinished store does not look finished
    problems = validate_ome_zarr(dest)
    assert problems and "unfinished" in problems[0]
    with pytest.raises(ConversionError, match="being written or was interrupted"):
        open_image(dest)

    res = convert_to_ome_zarr(src, dest, **PARAMS)
    assert res.details["resumed"] is True
    reference = convert_to_ome_zarr(src, tmp_path / "whole.ome.zarr", **PARAMS)
    total = reference.details["shards_written"]
    assert res.details["shards_written"] == total - 5  # finished shards were not redone

    np.testing.assert_array_equal(open_image(dest).levels[0][:], vol)
    a, b = open_image(dest), open_image(tmp_path / "whole.ome.zarr")
    for la, lb in zip(a.levels, b.levels, strict=True):
        np.testing.assert_array_equal(la[:], lb[:])
    # every file (chunks, shards, metadata) is byte-identical, and no journal is left
    assert [r for r, _ in iter_tree(dest)] == [r for r, _ in iter_tree(tmp_path / "whole.ome.zarr")]
    assert digest_tree(dest).digest == digest_tree(tmp_path / "whole.ome.zarr").digest
    assert res.details["store_digest"] == reference.details["store_digest"]
    assert validate_ome_zarr(dest) == []


def test_interrupted_store_with_other_parameters_is_refused(tmp_path, stack):
    src, _ = stack
    dest = tmp_path / "k.ome.zarr"
    assert _killed_run(src, dest, after=2) == 75
    result = CliRunner().invoke(
        app, ["convert", str(src), str(dest), "--voxel-size", "8", "4", "4", "--chunks", "16"]
    )
    assert result.exit_code == 1
    assert "unfinished conversion" in result.output
    # same command as the killed one resumes through the CLI
    ok = CliRunner().invoke(
        app,
        [
            "convert",
            str(src),
            str(dest),
            "--voxel-size",
            "8",
            "4",
            "4",
            "--chunks",
            "8",
            "--shard",
            "16",
            "--workers",
            "1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert validate_ome_zarr(dest) == []
