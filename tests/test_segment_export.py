"""bioimage.io export: a valid RDF 0.5 package whose model test passes, with an honest model card."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from curated.errors import InputError, IntegrityError, SegmentationError
from curated.segment.export import ascii_name, export_bioimageio
from curated.workspace import Workspace

MITCHELL_SECTIONS = (
    "## Model details",
    "## Intended use",
    "## Out-of-scope use",
    "## Factors",
    "## Metrics",
    "## Evaluation data",
    "## Training data",
    "## Quantitative analyses",
    "## Ethical considerations",
    "## Caveats and recommendations",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny sample, a tiny model trained on it, a fine-tuned child, and an evaluation of the child."""
    from curated.segment.annotate import annotate_from_truth
    from curated.segment.evaluate import evaluate
    from curated.segment.predict import predict
    from curated.segment.sample import make_fibsem_sample
    from curated.segment.train import finetune, train

    root = tmp_path_factory.mktemp("export")
    ws = Workspace.create(
        root / "Arbeitsbereich-Ω",
        record={
            "study": {
                "title": "Mitochondrien in Hefezellen — ein Test",
                "license": "CC-BY-4.0",
                "authors": [
                    {
                        "family_name": "Müller",
                        "given_name": "Zoë",
                        "orcid": "0000-0002-1825-0097",
                        "affiliation": {"name": "Universität Zürich"},
                    },
                    {"family_name": "Øyelaran", "given_name": "Ada"},
                ],
            }
        },
    )
    image = ws.derived_dir / "zelle.ome.zarr"
    make_fibsem_sample(image, shape=(32, 80, 80), seed=1, shading=0.3)
    annotate_from_truth(image, crops=1, size=(20, 20, 20), seed=2, name="anno-ä", region="x<0.5")
    common = {"device": "cpu", "validate_every": 5, "checkpoint_every": 1000, "workspace": ws}
    parent = ws.models_dir / "eltern-é"
    train(
        image,
        labels="anno-ä",
        label_value=1,
        out=parent,
        iterations=6,
        depth=1,
        base_features=2,
        patch=12,
        # the default's σ needs a bigger volume; box3 is the default kernel on integer images
        preprocessing={"local_contrast_sigma": 2.0, "local_contrast_kernel": "box3"},
        **common,
    )
    annotate_from_truth(image, crops=1, size=(20, 20, 20), seed=3, name="anno-ä", region="x>=0.5")
    child = ws.models_dir / "kind-ü"
    finetune(parent, image, labels="anno-ä", out=child, iterations=4, precision="bf16", **common)
    predict(child, image, name="vorhersage", device="cpu", workers=1, workspace=ws)
    evaluate(
        image,
        pred="vorhersage",
        truth="truth",
        label_value=1,
        blocks=2,
        block_size=12,
        seed=0,
        exclude_training=child,
        workspace=ws,
        name="bewertung-ß",
    )
    return {"ws": ws.root, "image": image, "parent": parent, "child": child}


def test_ascii_name_keeps_bioimageio_rules():
    assert ascii_name("Mitochondrien-Modell für Zellen ß") == "Mitochondrien-Modell fur Zellen"
    assert len(ascii_name("µ")) >= 5
    assert set(ascii_name("a/b:c*Ω d")) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()"
    )


def test_zip_package_validates_and_passes_the_model_test(trained: dict[str, Path], tmp_path: Path):
    from bioimageio.core import test_model
    from bioimageio.spec import load_description

    ws = Workspace(trained["ws"])
    dest = ws.models_dir / "kind-ü.bioimageio.zip"
    res = export_bioimageio(trained["child"], dest, workspace=ws)
    assert res.status == "ok" and res.details["evaluated"] is True
    descr = load_description(dest, perform_io_checks=False)
    assert descr.validation_summary.status == "valid-format", descr.validation_summary.format()
    summary = test_model(dest, devices=["cpu"])
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed

    with zipfile.ZipFile(dest) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        card = zf.read("documentation.md").decode("utf-8")
        names = set(zf.namelist())
    assert {
        "weights.pt",
        "weights_torchscript.pt",
        "curated_unet.py",
        "test_input.npy",
        "test_output.npy",
        "cover.png",
    } <= names
    assert any(n.startswith("evaluations/") and n.endswith("bewertung-ß.json") for n in names)
    # the valid-padding offset and the fixed normalisation are expressed in bioimage.io terms
    child = json.loads((trained["child"] / "model.json").read_text(encoding="utf-8"))
    ctx = child["architecture"]["context"]
    out_axes = rdf["outputs"][0]["axes"][2:]
    halo = (0, 6, 6)  # the fixture's local contrast normalisation (σ 2: radius 6 in y and x)
    assert [a["size"]["offset"] for a in out_axes] == [
        -2 * (c + h) for c, h in zip(ctx, halo, strict=True)
    ]
    # the normalisation runs inside the shipped network, so its input carries the halo too
    assert [a["size"]["min"] for a in rdf["inputs"][0]["axes"][2:]] == [
        m + 2 * h for m, h in zip(child["architecture"]["input_shape_min"], halo, strict=True)
    ]
    # bioimage.io has no local-contrast step: normalisation and clipping run inside the network
    assert [p["id"] for p in rdf["inputs"][0]["preprocessing"]] == ["ensure_dtype"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "PreprocessedUNet3D"
    assert rdf["license"] == "CC-BY-4.0"
    assert [a["name"] for a in rdf["authors"]] == ["Zoë Müller", "Ada Øyelaran"]
    assert rdf["authors"][0]["orcid"] == "0000-0002-1825-0097"
    # the card: Mitchell's sections, the scores, the lineage
    for section in MITCHELL_SECTIONS:
        assert section in card
    assert "shading_side" in card and "Dice" in card
    assert child["parent"]["sha256"] in card
    # lineage: the parent's crop, then the child's new crop
    # the parent's crop and the new one, each once
    assert len(child["lineage_rois"]) == 2 and card.count("shape 20×20×20") >= 2
    assert "not been evaluated" not in card
    # its CIs speak for these weights, not for the training: the card says so
    assert "These weights are one training draw" in card and "(`--seed`)" in card
    # the card says what the network is and how its output was calibrated
    assert child["architecture"]["norm"] == "batch" and "batch normalisation" in card
    assert "no normalisation layers" not in card
    assert "Arithmetic: bfloat16 mixed precision on cpu (asked for: bf16)" in card
    adj = child["training"]["logit_adjustment"]
    assert adj != 0 and f"({round(adj, 3)} on the logit)" in card
    entry = list(ws.log.entries())[-1]
    assert (
        entry["step"] == "D" and entry["action"] == "export-bioimageio" and entry["status"] == "ok"
    )


def test_model_without_evaluation_says_so_in_a_folder_package(
    trained: dict[str, Path], tmp_path: Path
):
    from bioimageio.spec import load_description

    dest = tmp_path / "paket-ä"
    res = export_bioimageio(trained["parent"], dest)
    assert res.details["evaluated"] is False and "no evaluation" in res.message
    card = (dest / "documentation.md").read_text(encoding="utf-8")
    assert "**This model has not been evaluated.**" in card
    assert "None: the model has no evaluation of these weights." in card
    assert "Parent: none" in card
    descr = load_description(dest / "rdf.yaml", perform_io_checks=False)
    assert descr.validation_summary.status == "valid-format"
    # no workspace: licence falls back to curated's, and the card says why
    rdf = yaml.safe_load((dest / "rdf.yaml").read_text(encoding="utf-8"))
    assert rdf["license"] == "MIT" and "No licence was recorded" in card


def test_existing_destination_and_corrupt_weights_are_refused(
    trained: dict[str, Path], tmp_path: Path
):
    dest = tmp_path / "x.zip"
    dest.write_bytes(b"keep me")
    with pytest.raises(InputError, match="exists"):
        export_bioimageio(trained["parent"], dest)
    assert dest.read_bytes() == b"keep me"

    import shutil

    broken = tmp_path / "kaputt"
    shutil.copytree(trained["parent"], broken)
    with open(broken / "weights.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(IntegrityError, match="sha256"):
        export_bioimageio(broken, tmp_path / "y.zip")
    assert not (tmp_path / "y.zip").exists()
    with pytest.raises(InputError, match="model.json"):
        export_bioimageio(tmp_path, tmp_path / "z.zip")


def test_model_of_another_architecture_version_is_refused(trained: dict[str, Path], tmp_path: Path):
    import shutil

    old = tmp_path / "alt"
    shutil.copytree(trained["parent"], old)
    meta = json.loads((old / "model.json").read_text(encoding="utf-8"))
    meta["format"] = "curated-unet/0"
    (old / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(SegmentationError, match="architecture version"):
        export_bioimageio(old, tmp_path / "alt.zip")
    assert not (tmp_path / "alt.zip").exists()


def test_shading_correction_runs_inside_the_shipped_network(
    trained: dict[str, Path], tmp_path: Path
):
    """bioimage.io has no shading-correction step, so the exported network carries it (and still reproduces curated)."""
    import shutil

    from bioimageio.core import test_model

    shaded = tmp_path / "schattiert"
    shutil.copytree(trained["parent"], shaded)
    meta = json.loads((shaded / "model.json").read_text(encoding="utf-8"))
    meta["preprocessing"].update(
        {"shading_sigma": 3.0, "shading_reference": 120.0, "denoise_sigma": 0.7}
    )
    (shaded / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    dest = tmp_path / "s.zip"
    export_bioimageio(shaded, dest)
    with zipfile.ZipFile(dest) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        card = zf.read("documentation.md").decode("utf-8")
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "PreprocessedUNet3D"
    assert [p["id"] for p in rdf["inputs"][0]["preprocessing"]] == ["ensure_dtype"]
    # denoise radius 2 on every axis, shading radius 9 and local contrast radius 6 in y and x
    halo = (2, 2 + 9 + 6, 2 + 9 + 6)
    ctx = meta["architecture"]["context"]
    assert [a["size"]["offset"] for a in rdf["outputs"][0]["axes"][2:]] == [
        -2 * (c + h) for c, h in zip(ctx, halo, strict=True)
    ]
    assert "inside the network" in card
    summary = test_model(dest, devices=["cpu"], weight_format="pytorch_state_dict")
    assert summary.status == "passed", [d.name for d in summary.details if d.status == "failed"]


def test_cli_export(trained: dict[str, Path], tmp_path: Path):
    from curated.cli import app

    dest = tmp_path / "cli.zip"
    res = CliRunner().invoke(app, ["segment", "export", str(trained["parent"]), str(dest)])
    assert res.exit_code == 0, res.output
    assert dest.is_file() and "export" in res.output
    again = CliRunner().invoke(app, ["segment", "export", str(trained["parent"]), str(dest)])
    assert again.exit_code == 1 and "exists" in again.output


def test_card_names_the_class_the_origins_and_whole_volume_scores(
    trained: dict[str, Path], tmp_path: Path
):
    ws = Workspace(trained["ws"])
    dest = tmp_path / "card-pkg"
    export_bioimageio(trained["child"], dest, workspace=ws)
    card = (dest / "documentation.md").read_text(encoding="utf-8")
    rdf = yaml.safe_load((dest / "rdf.yaml").read_text(encoding="utf-8"))
    # the structure by name, never the label image's name or "class 1"
    assert "Structure: **mitochondrion**" in card and "class 1" not in card
    assert rdf["config"]["bioimageio"]["target_structure"] == ["mitochondrion"]
    # honest origins: crops copied from a simulated truth, never "made by people"
    assert "Origin of the training labels: **derived-from-truth**" in card
    assert "origin **simulated**" in card and "made by people" not in card
    assert rdf["config"]["curated"]["training_labels"]["origin"] == "derived-from-truth"
    # whole-volume scores next to the blocks, and what the model gets wrong
    assert "whole volume outside training regions" in card and "Along x" in card
    # the whole-volume picture travels with the package and the card shows it
    picture = "evaluations/00-bewertung-ß-whole.png"
    assert (dest / picture).is_file() and f"]({picture})" in card
    assert picture in [a["source"] for a in rdf["attachments"]]
    assert "## What the model gets wrong" in card
    assert any(
        s in card
        for s in (
            "of false-positive voxels are",
            "no false-positive voxel",
            "Every false-positive voxel",
        )
    )
    entry = rdf["config"]["curated"]["evaluations"][0]
    assert entry["whole_volume_dice"] is not None and entry["truth"]["origin"] == "simulated"
    # a threshold tuned on the same crops, scored on the same voxels, beside the model
    assert "grey-level threshold tuned on the training crops" in card
    base = entry["threshold_baseline"]
    assert base["dice"] is not None and base["model_minus_baseline_dice"] is not None
    assert entry["truth"]["classes"] == {"1": "mitochondrion", "2": "nucleus"}


def test_export_killed_before_its_log_entry_is_rerun(trained: dict[str, Path], tmp_path: Path):
    """A package written but not on record (killed before the log entry) is replaced by the
    re-run, which records it; a recorded package is still never replaced."""
    import os
    import shutil
    import subprocess
    import sys

    from curated._crash import ENV, EXIT_CODE

    ws = tmp_path / "ws"
    shutil.copytree(trained["ws"], ws)
    model = ws / trained["child"].relative_to(trained["ws"])
    dest = ws / "derived" / "models" / "kind.bioimageio.zip"
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = (
        "from curated.segment.export import export_bioimageio; "
        f"export_bioimageio({str(model)!r}, {str(dest)!r}, workspace={str(ws)!r})"
    )
    env = {
        **os.environ,
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
        ENV: "log-append",
    }
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == EXIT_CODE, r.stderr
    assert dest.is_file()
    res = export_bioimageio(model, dest, workspace=ws)
    assert res.status == "ok"
    log = Workspace(ws).log
    assert log.recorded_output(dest) is not None
    assert log.verify(files=True).ok
    with pytest.raises(InputError, match="exists"):
        export_bioimageio(model, dest, workspace=ws)


KILLED_AT_RENAME = (
    "import os; real = os.replace; seen = []\n"
    "def replace(src, dst, **kw):\n"
    "    seen.append(dst)\n"
    "    if len(seen) == {at}:\n"
    "        os._exit(137)  # as kill -9 just before this rename\n"
    "    return real(src, dst, **kw)\n"
    "os.replace = replace\n"
    "from curated.segment.export import export_bioimageio\n"
    "export_bioimageio({model!r}, {dest!r}, overwrite={overwrite})\n"
)


def _killed_export(model: Path, dest: Path, at: int, overwrite: bool) -> None:
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = KILLED_AT_RENAME.format(at=at, model=str(model), dest=str(dest), overwrite=overwrite)
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 137, r.stderr


def test_folder_export_killed_before_its_rename_leaves_nothing_a_bag_or_rerun_keeps(
    trained: dict[str, Path], tmp_path: Path
):
    """A folder package killed before its rename leaves a temporary folder: bags leave it out,
    and the next export to the same place removes it."""
    import shutil

    from curated._io import is_temp_name
    from curated.package import make_bag

    ws = tmp_path / "ws"
    shutil.copytree(trained["ws"], ws)
    model = ws / trained["child"].relative_to(trained["ws"])
    dest = ws / "derived" / "models" / "kind.bioimageio"
    _killed_export(model, dest, at=1, overwrite=False)
    left = [p for p in dest.parent.iterdir() if p.name.startswith(".kind.bioimageio.")]
    assert len(left) == 1 and left[0].is_dir() and is_temp_name(left[0].name)
    assert (left[0] / "rdf.yaml").is_file()  # written whole, only the rename was missing
    assert not dest.exists()

    bag = tmp_path / "bag"
    make_bag(Workspace(ws), bag)
    manifest = (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert ".kind.bioimageio." not in manifest

    assert export_bioimageio(model, dest).status == "ok"
    assert (dest / "rdf.yaml").is_file()
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".kind")] == []


def test_folder_export_killed_between_its_two_renames_is_finished_by_a_rerun(
    trained: dict[str, Path], tmp_path: Path
):
    """Replacing a package moves the old one aside, then the new one in; killed in between, the
    next export puts the old package back before anything (it is never lost: without
    overwrite it is refused as any existing package), and the re-run replaces it."""
    dest = tmp_path / "pkg.bioimageio"
    assert export_bioimageio(trained["child"], dest).status == "ok"
    old_rdf = (dest / "rdf.yaml").read_bytes()
    _killed_export(trained["child"], dest, at=2, overwrite=True)
    assert not dest.exists() and (tmp_path / ".pkg.bioimageio.old.tmp").is_dir()
    with pytest.raises(InputError, match="exists already"):
        export_bioimageio(trained["child"], dest)
    assert (dest / "rdf.yaml").read_bytes() == old_rdf  # the old package, back in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.bioimageio"]
    assert export_bioimageio(trained["child"], dest, overwrite=True).status == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.bioimageio"]


def test_folder_export_leftovers_of_a_kill_are_cleared_as_every_build_clears_them(
    trained: dict[str, Path], tmp_path: Path
):
    """The same leftovers as for `curated bag` and the archive exports (tests/swap_helpers.py)."""
    from swap_helpers import assert_only_bystanders_left, leave_killed_swap, remove_bystanders

    dest = tmp_path / "pkg.bioimageio"
    assert export_bioimageio(trained["child"], dest).status == "ok"
    old_rdf = (dest / "rdf.yaml").read_bytes()
    leave_killed_swap(dest)
    with pytest.raises(InputError, match="exists already"):  # the old package is back in place
        export_bioimageio(trained["child"], dest)
    assert (dest / "rdf.yaml").read_bytes() == old_rdf
    assert_only_bystanders_left(dest)
    leave_killed_swap(dest)
    assert export_bioimageio(trained["child"], dest, overwrite=True).status == "ok"
    assert_only_bystanders_left(dest)
    remove_bystanders(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.bioimageio"]


@pytest.mark.parametrize("what", ["folder", "file"])
def test_overwrite_replaces_only_an_earlier_package(trained: dict[str, Path], tmp_path: Path, what):
    """`segment export MODEL ~/Documents --overwrite` must not delete the documents."""
    dest = tmp_path / ("docs" if what == "folder" else "notes.zip")
    if what == "folder":
        dest.mkdir()
        (dest / "thesis.pdf").write_text("years of work")
    else:
        dest.write_text("not a zip")
    with pytest.raises(InputError, match="not a bioimage.io package"):
        export_bioimageio(trained["child"], dest, overwrite=True)
    assert (dest / "thesis.pdf").is_file() if what == "folder" else dest.read_text() == "not a zip"
    package = tmp_path / "pkg.zip"
    assert export_bioimageio(trained["child"], package).status == "ok"
    assert export_bioimageio(trained["child"], package, overwrite=True).status == "ok"
