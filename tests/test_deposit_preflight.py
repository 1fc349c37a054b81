"""Limits as data: what each target refuses, and the advice given, before any upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from curated.deposit.preflight import GB, LIMITS, MiB, check, limits_for
from curated.deposit.protocol import UploadItem
from curated.errors import InputError


def items(*sizes: int) -> list[UploadItem]:
    return [UploadItem(f"data/f{i}.bin", Path(f"/nowhere/f{i}"), s) for i, s in enumerate(sizes)]


def test_dspace_default_request_cap():
    problems = check(items(600 * MiB), LIMITS["dspace"], single_request=True)
    assert len(problems) == 1 and problems[0].blocking
    assert "request cap" in problems[0].what and "holey" in problems[0].advice


def test_request_cap_does_not_apply_to_part_uploads():
    assert check(items(600 * MiB), LIMITS["dspace"], single_request=False) == []


def test_ecommons_policy_two_gigabytes_per_file():
    problems = check(items(3 * GB), LIMITS["ecommons"], single_request=True)
    assert any("per file" in p.what for p in problems)
    assert any("split the bag" in p.advice for p in problems)


def test_zenodo_files_and_size():
    problems = check(
        items(*([1] * 150)),
        LIMITS["zenodo"],
        single_request=False,
        zarr_stores=["data/img.ome.zarr"],
    )
    assert "at most 100" in problems[0].what and "curated bag --zarr archive" in problems[0].advice
    problems = check(items(30 * GB, 30 * GB), LIMITS["zenodo"], single_request=False)
    assert any("per record" in p.what for p in problems)


def test_unarchived_zarr_is_a_warning_where_the_count_fits():
    problems = check(
        items(10), LIMITS["figshare"], single_request=False, zarr_stores=["data/a.zarr"]
    )
    assert [p.blocking for p in problems] == [False]


def test_missing_metadata_is_blocking():
    problems = check(
        items(10), LIMITS["invenio"], single_request=False, missing_metadata=["study.title"]
    )
    assert problems[0].blocking and "study.title" in problems[0].what


def test_profiles_by_host_kind_or_name():
    assert limits_for("invenio", "https://zenodo.org").name == "zenodo"
    assert limits_for("dspace", "https://ecommons.cornell.edu/server").name == "ecommons"
    assert limits_for("dspace", "https://vtechworks.lib.vt.edu/server").name == "dspace"
    assert limits_for("figshare", "https://api.figshare.com/v2").name == "figshare"
    assert limits_for("zenodo", "https://sandbox.example", "none").name == "none"
    with pytest.raises(InputError, match="unknown limits profile"):
        limits_for("zenodo", "https://x", "bogus")


def test_free_space_for_a_folder_repository(tmp_path):
    problems = check(
        items(10**18), LIMITS["directory"], single_request=False, dest_dir=tmp_path / "repo"
    )
    assert problems and "free" in problems[0].what
