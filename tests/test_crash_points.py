"""Crash-point harness: long commands killed (``os._exit``, like ``kill -9``) at each phase
boundary, then re-run. After the kill the log still verifies and nothing looks complete
that is not; the re-run finishes, and the result equals an uninterrupted run's.

The hook is ``CURATED_CRASH_AT=<point>`` (:mod:`curated._crash`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_helpers import run_killable
from test_bag_helpers import build_workspace, copy_workspace

from curated._crash import EXIT_CODE
from curated.package import validate_bag
from curated.workspace import Workspace

_run = run_killable


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "ws"
    build_workspace(root)
    return root


def _assert_log_true(ws: Path) -> None:
    report = Workspace(ws).log.verify(files=True)
    assert report.ok, report.problems


def _log_true_about_bag(ws: Path, dest: Path) -> None:
    """After a kill: the chain verifies, and the files check passes exactly when the bag the
    log last recorded for ``dest`` is there (it never verifies while claiming a missing bag)."""
    log = Workspace(ws).log
    assert log.verify().ok
    report = log.verify(files=True)
    if not report.ok:
        assert all(f"bag {dest.relative_to(ws).as_posix()}" in p for p in report.problems), (
            report.problems
        )
        assert not (dest.is_dir() and validate_bag(dest).ok and _is_recorded(ws, dest))


def _is_recorded(ws: Path, dest: Path) -> bool:
    entries = [e for e in Workspace(ws).log if e["action"] == "bag" and e["status"] == "ok"]
    info = (dest / "bag-info.txt").read_text()
    return bool(entries) and entries[-1]["details"]["external_identifier"] in info


def _no_false_bag(dest: Path) -> None:
    """A bag at ``dest`` is either absent or complete and valid."""
    if dest.exists():
        report = validate_bag(dest)
        assert report.ok, report.problems


def _manifest(dest: Path) -> str:
    """The payload manifest without the RO-Crate and the bag's FAIR checklist, which describe
    the log's history (and so, truthfully, the interrupted attempt too: the checklist counts
    the log's entries)."""
    lines = (dest / "manifest-sha256.txt").read_text().splitlines(keepends=True)
    history = ("ro-crate-metadata.json", "data/curation/fair.json", "data/curation/fair.md")
    return "".join(line for line in lines if not line.rstrip().endswith(history))


BAG = "from curated.package import make_bag; make_bag({ws!r}, {dest!r}, overwrite={ow})"


@pytest.fixture(scope="module")
def reference_manifest(template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    ws = copy_workspace(template, tmp_path_factory.mktemp("ref") / "ws")
    dest = ws.package_dir / "bag"
    r = _run(BAG.format(ws=str(ws.root), dest=str(dest), ow=False))
    assert r.returncode == 0, r.stderr
    return _manifest(dest)


@pytest.mark.parametrize("point", ["bag-entry-written", "bag-tag-manifests", "log-append"])
def test_bag_killed_then_rerun(template, tmp_path, reference_manifest, point):
    ws = copy_workspace(template, tmp_path / "ws")
    dest = ws.package_dir / "bag"
    code = BAG.format(ws=str(ws.root), dest=str(dest), ow=False)
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    _log_true_about_bag(ws.root, dest)
    assert not dest.exists()  # nothing looks complete
    r = _run(code)
    assert r.returncode == 0, r.stderr
    _no_false_bag(dest)
    _assert_log_true(ws.root)
    assert _manifest(dest) == reference_manifest
    bag_entries = [e for e in Workspace(ws.root).log if e["action"] == "bag"]
    if point != "log-append":
        # the interrupted run's "ok" is corrected, so the log does not claim a bag never made
        assert [e["status"] for e in bag_entries] == ["ok", "error", "ok"]
        assert not Workspace(ws.root).log.verify(files=True).problems


@pytest.mark.parametrize(
    "point", ["bag-swap-aside", "bag-swap-in", "bag-entry-written", "bag-tag-manifests"]
)
def test_bag_overwrite_killed_keeps_one_complete_bag(template, tmp_path, reference_manifest, point):
    ws = copy_workspace(template, tmp_path / "ws")
    dest = ws.package_dir / "bag"
    first = _run(BAG.format(ws=str(ws.root), dest=str(dest), ow=False))
    assert first.returncode == 0, first.stderr
    code = BAG.format(ws=str(ws.root), dest=str(dest), ow=True)
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    _log_true_about_bag(ws.root, dest)
    r = _run(code)
    assert r.returncode == 0, r.stderr
    _no_false_bag(dest)
    _assert_log_true(ws.root)
    assert _manifest(dest) == reference_manifest
    assert not list(dest.parent.glob(".bag.curated-replaced*"))


DEPOSIT = (
    "from curated.deposit import deposit; "
    "deposit({bag!r}, to='directory', url={repo!r}, publish=True, resume={resume})"
)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("index.json", ".index.lock", "record.json")
    }


@pytest.mark.parametrize(
    "point", ["deposit-draft", "deposit-uploaded", "directory-publish-renamed"]
)
def test_directory_deposit_killed_then_resumed(template, tmp_path, point):
    ws = copy_workspace(template, tmp_path / "ws")
    bag = ws.package_dir / "bag"
    assert _run(BAG.format(ws=str(ws.root), dest=str(bag), ow=False)).returncode == 0
    repo = tmp_path / "repo"
    r = _run(DEPOSIT.format(bag=str(bag), repo=str(repo), resume=False), crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    _assert_log_true(ws.root)
    r = _run(DEPOSIT.format(bag=str(bag), repo=str(repo), resume=True))
    assert r.returncode == 0, r.stderr
    _assert_log_true(ws.root)
    (record,) = [p for p in repo.iterdir() if p.is_dir() and not p.name.startswith(".")]
    published = record / "v1" / "bag"
    assert _tree(published) == _tree(bag)
    import json

    index = json.loads((repo / "index.json").read_text())
    assert index["records"][record.name]["versions"][0]["status"] == "published"


SET = "from curated.metadata.edit import set_field; set_field({ws!r}, 'study.title', 'Crash-tested title')"


@pytest.mark.parametrize("point", ["metadata-set-written", "log-append"])
def test_metadata_set_killed_then_rerun(template, tmp_path, point):
    ref = copy_workspace(template, tmp_path / "ref")
    assert _run(SET.format(ws=str(ref.root))).returncode == 0
    ws = copy_workspace(template, tmp_path / "ws")
    r = _run(SET.format(ws=str(ws.root)), crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    r = _run(SET.format(ws=str(ws.root)))
    assert r.returncode == 0, r.stderr
    _assert_log_true(ws.root)
    assert ws.metadata_path.read_bytes() == ref.metadata_path.read_bytes()


CONVERT = (
    "from curated.images import convert_to_ome_zarr; "
    "convert_to_ome_zarr({src!r}, {dest!r}, voxel_size=(8, 8, 8), chunks=8, shard=16, "
    "workers=1, workspace={ws!r})"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    import tifffile

    path = tmp_path_factory.mktemp("src") / "stack.tif"
    rng = np.random.default_rng(1)
    tifffile.imwrite(path, rng.integers(0, 255, size=(16, 24, 24), dtype=np.uint8))
    return path


@pytest.mark.parametrize("point", ["convert-finished", "log-append", "convert-logged"])
def test_convert_killed_then_rerun(tmp_path, stack, point):
    from curated.metadata.edit import init_workspace
    from curated.provenance.digest import digest_tree

    ref = init_workspace(tmp_path / "ref", "Ref")
    ref_dest = ref.derived_dir / "stack.ome.zarr"
    assert (
        _run(CONVERT.format(src=str(stack), dest=str(ref_dest), ws=str(ref.root))).returncode == 0
    )
    ws = init_workspace(tmp_path / "ws", "Crash")
    dest = ws.derived_dir / "stack.ome.zarr"
    code = CONVERT.format(src=str(stack), dest=str(dest), ws=str(ws.root))
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    _assert_log_true(ws.root)
    r = _run(code)
    assert r.returncode == 0, r.stderr  # resumed, never "already exists"
    _assert_log_true(ws.root)
    assert not (dest / ".curated-progress").exists()
    assert digest_tree(dest).digest == digest_tree(ref_dest).digest
    converts = [e["status"] for e in Workspace(ws.root).log if e["action"] == "convert"]
    # recorded once: killed after its entry, the re-run finds it done and on record
    assert converts == ["ok"] + (["notneeded"] if point == "convert-logged" else [])


def test_resume_needs_space_only_for_what_is_left(template, tmp_path, monkeypatch):
    """A resumed folder deposit is not refused for room its copied files already use."""
    import shutil as _shutil

    from curated.deposit import deposit

    ws = copy_workspace(template, tmp_path / "ws")
    bag = ws.package_dir / "bag"
    assert _run(BAG.format(ws=str(ws.root), dest=str(bag), ow=False)).returncode == 0
    repo = tmp_path / "repo"
    r = _run(DEPOSIT.format(bag=str(bag), repo=str(repo), resume=False), crash="deposit-uploaded")
    assert r.returncode == EXIT_CODE
    real = _shutil.disk_usage

    def tight(path):  # room for a few bytes, far less than the bag
        u = real(path)
        return type(u)(u.total, u.total - 100, 100)

    monkeypatch.setattr("curated.deposit.preflight.shutil.disk_usage", tight)
    receipt = deposit(bag, to="directory", url=str(repo), publish=True, resume=True)
    assert receipt.status == "published"


def test_small_shards_keep_the_progress_journal_small(tmp_path, stack, monkeypatch):
    """The display-window sample is bounded over the whole image, not per shard."""
    from curated.images import convert_to_ome_zarr
    from curated.images import shards as _shards
    from curated.images import store as _store_mod

    monkeypatch.setattr(_shards, "SAMPLE_BUDGET", 512)
    monkeypatch.setattr(_store_mod, "drop_journal", lambda root: None)
    monkeypatch.setattr("curated.images.convert._store.drop_journal", lambda root: None)
    dest = tmp_path / "small-shards.ome.zarr"
    convert_to_ome_zarr(stack, dest, voxel_size=(8, 8, 8), chunks=8, shard=8, workers=1)
    import numpy as np

    samples = dest / ".curated-progress" / "samples"
    total = sum(np.load(p).size for p in samples.iterdir())
    assert 0 < total <= 2 * 512  # 16*24*24 voxels without the bound


HTTP_DEPOSIT = (
    "from curated.deposit import deposit, RetryPolicy; "
    "deposit({bag!r}, to={to!r}, url={url!r}, target={target!r}, publish=True, resume={resume}, "
    "retry=RetryPolicy(attempts=2, backoff=0.001), options={options!r})"
)


def _http_target(to: str):
    from tests.fakes.dataverse import TOKEN as DV_TOKEN
    from tests.fakes.dataverse import FakeDataverse
    from tests.fakes.dspace import COLLECTION, PASSWORD, USER, FakeDSpace
    from tests.fakes.figshare import TOKEN as FS_TOKEN
    from tests.fakes.figshare import FakeFigshare
    from tests.fakes.invenio import TOKEN as INV_TOKEN
    from tests.fakes.invenio import FakeInvenio

    if to == "invenio":
        f = FakeInvenio().start()
        return f, f.url, None, {"INVENIO_TOKEN": INV_TOKEN}, {}
    if to == "dataverse":
        f = FakeDataverse().start()
        return f, f.url, "lab", {"DATAVERSE_TOKEN": DV_TOKEN}, {}
    if to == "dspace":
        f = FakeDSpace().start()
        return (
            f,
            f.url + "/server",
            COLLECTION,
            {"DSPACE_PASSWORD": PASSWORD, "DSPACE_USER": USER},
            {},
        )
    f = FakeFigshare(part_size=64 * 1024).start()
    return f, f.url + "/v2", None, {"FIGSHARE_TOKEN": FS_TOKEN}, {}


@pytest.fixture(scope="module")
def http_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes import bags

    ws = bags.make_workspace(tmp_path_factory.mktemp("http") / "ws", big=150_000)
    bags.bag_workspace(ws)
    return ws


@pytest.mark.parametrize(
    ("to", "point"),
    [
        ("invenio", "deposit-draft"),
        ("invenio", "deposit-uploaded"),
        ("dataverse", "deposit-uploaded"),
        ("dspace", "deposit-draft"),
        ("figshare", "deposit-uploaded"),
    ],
)
def test_http_deposit_killed_then_resumed(http_template, tmp_path, to, point):
    from tests.fakes import bags

    ws = Workspace(bags.copy_workspace(http_template, tmp_path / "ws"))
    bag = ws.package_dir / "bag"
    fake, url, target, env, options = _http_target(to)
    try:
        code = HTTP_DEPOSIT.format(
            bag=str(bag), to=to, url=url, target=target, resume=False, options=options
        )
        r = _run(code, crash=point, env=env)
        assert r.returncode == EXIT_CODE, r.stderr
        _assert_log_true(ws.root)
        code = HTTP_DEPOSIT.format(
            bag=str(bag), to=to, url=url, target=target, resume=True, options=options
        )
        r = _run(code, env=env)
        assert r.returncode == 0, r.stderr
        _assert_log_true(ws.root)
        import json

        receipt = json.loads((ws.package_dir / "receipt.json").read_text())
        assert receipt["status"] in ("published", "submitted")
        assert len(receipt["files"]) >= 1
        for secret in env.values():
            if len(secret) > 8:
                assert secret not in (ws.package_dir / "receipt.json").read_text()
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A workspace with a sample image and a tiny model (trained outside the workspace)."""
    from segment_helpers import train_tiny

    from curated.segment import annotate_from_truth, make_fibsem_sample
    from tests.fakes import bags

    root = tmp_path_factory.mktemp("predict")
    ws = Workspace.create(root / "ws", record=bags.record())
    image = ws.derived_dir / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(16, 24, 24), seed=0, chunks=8, shard=16, workspace=ws)
    annotate_from_truth(image, crops=2, size=8, seed=0, name="ann")
    train_tiny(image, root / "model")
    return ws.root, root / "model"


PREDICT = (
    "import torch; torch.set_num_threads(1); from curated.segment import predict; "
    "predict({model!r}, {image!r}, name='pred', workers=1, device='cpu', workspace={ws!r})"
)


@pytest.fixture(scope="module")
def reference_prediction(trained, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Digest of an uninterrupted prediction (run in this process)."""
    import shutil as _shutil

    import torch

    from curated.provenance.digest import digest_tree
    from curated.segment import predict

    template, model = trained
    ref = tmp_path_factory.mktemp("ref-pred") / "ws"
    _shutil.copytree(template, ref)
    image = ref / "derived" / "cell.ome.zarr"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predict(model, image, name="pred", workers=1, device="cpu", workspace=ref)
    finally:
        torch.set_num_threads(old)
    return digest_tree(image / "labels" / "pred").digest


@pytest.mark.slow
@pytest.mark.parametrize("point", ["predict-finalized", "log-append"])
def test_predict_killed_then_rerun(trained, reference_prediction, tmp_path, point):
    import shutil as _shutil

    from curated.provenance.digest import digest_tree

    template, model = trained
    ws = tmp_path / "ws"
    _shutil.copytree(template, ws)
    image = ws / "derived" / "cell.ome.zarr"
    code = PREDICT.format(model=str(model), image=str(image), ws=str(ws))
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    _assert_log_true(ws)
    r = _run(code)
    assert r.returncode == 0, r.stderr
    _assert_log_true(ws)
    pred = image / "labels" / "pred"
    assert not (pred / ".curated-predict").exists()
    assert Workspace(ws).log.recorded_output(pred) is not None  # the prediction is on record
    assert digest_tree(pred).digest == reference_prediction


TAR_BAG = (
    "from curated.package import make_bag; "
    "make_bag({ws!r}, {dest!r}, serialize='tar', overwrite={ow})"
)


@pytest.mark.parametrize("point", ["bag-entry-written", "bag-tag-manifests"])
def test_serialized_overwrite_killed_after_its_entry_is_not_claimed(template, tmp_path, point):
    """A serialized ``--overwrite`` lands by one rename, so a kill after the new bag's log
    entry leaves the *old* archive in place: the log must not vouch for it as the new bag,
    and the re-run retracts the interrupted entry before it records the bag it makes."""
    from curated.provenance.log import bag_identifier

    ws = copy_workspace(template, tmp_path / "ws")
    dest = ws.package_dir / "bag"
    final = dest.with_name("bag.tar")
    assert _run(TAR_BAG.format(ws=str(ws.root), dest=str(dest), ow=False)).returncode == 0
    old = bag_identifier(final)
    assert old and old.startswith("urn:uuid:")
    code = TAR_BAG.format(ws=str(ws.root), dest=str(dest), ow=True)
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    log = Workspace(ws.root).log
    assert log.verify().ok  # the chain itself is whole
    claimed = [e for e in log if e["action"] == "bag"][-1]["details"]["external_identifier"]
    assert claimed != old and bag_identifier(final) == old  # the old archive stayed
    problems = log.verify(files=True).problems
    assert problems and all("bag package/bag.tar is another bag" in p for p in problems), problems
    r = _run(code)
    assert r.returncode == 0, r.stderr
    entries = [e for e in Workspace(ws.root).log if e["action"] == "bag"]
    assert [e["status"] for e in entries] == ["ok", "ok", "error", "ok"]
    assert entries[2]["details"]["interrupted_seq"] == entries[1]["seq"]
    assert bag_identifier(final) == entries[-1]["details"]["external_identifier"]
    _assert_log_true(ws.root)
