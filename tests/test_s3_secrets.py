"""Credentials that could ride along an object-store URL never reach a bag, the log or a
message: a ``--fetch-base`` with ``user:password@`` or a presigned query is refused, and
presigned-URL signatures are redacted wherever curated writes text."""

from __future__ import annotations

import pytest
from test_bag_helpers import build_workspace

from curated.errors import PackageError
from curated.package import make_bag

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
SIGNED = (
    "https://institutional.s3.amazonaws.com/datasets/hela?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
    f"&X-Amz-Date=20250101T000000Z&X-Amz-Security-Token={SECRET}T"
    f"&X-Amz-Signature={SECRET}S"
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("ws") / "ws")


@pytest.mark.parametrize(
    "base",
    [f"s3://AKIAEXAMPLE:{SECRET}@institutional/datasets", SIGNED, "datasets/hela", "s3:///x"],
    ids=["userinfo", "presigned", "no-scheme", "no-host"],
)
def test_a_fetch_base_with_credentials_or_no_url_is_refused(workspace, tmp_path, base):
    log = workspace.root / "curation" / "log.jsonl"
    before = log.read_text()
    with pytest.raises(PackageError, match="fetch_base") as err:
        make_bag(workspace, tmp_path / "bag", fetch_base=base, fetch_min_size=1)
    assert SECRET not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)
    assert not (tmp_path / "bag").exists()
    assert log.read_text() == before  # refused before anything is recorded


def test_the_cli_refuses_it_in_one_line(workspace, tmp_path):
    from typer.testing import CliRunner

    from curated.cli import app

    base = f"s3://AKIAEXAMPLE:{SECRET}@institutional/datasets"
    r = CliRunner().invoke(
        app, ["bag", str(workspace.root), str(tmp_path / "b"), "--fetch-base", base]
    )
    assert r.exit_code == 1, r.output
    assert SECRET not in r.output and "fetch_base" in r.output


def test_presigned_url_signatures_are_redacted():
    from curated._secrets import redact

    out = redact({"source": SIGNED, "note": f"see {SIGNED} for the data"})
    for value in out.values():
        assert SECRET not in value and "AKIAEXAMPLE" not in value
        assert "X-Amz-Date=20250101T000000Z" in value  # what is no secret stays
