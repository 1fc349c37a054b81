"""The dataset README: sections, TODO markers, pictures, file list, AI marking, history."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from document_workspaces import (
    SHAPE,
    VOXEL,
    bare_record,
    complete_record,
    make_complete_workspace,
    recorded_digest,
    sphere_mask,
    write_tiny_ome_zarr,
)
from PIL import Image
from typer.testing import CliRunner

from curated.cli import app
from curated.document import todo_fields, write_readme
from curated.document.figures import ortho_geometry, slug
from curated.errors import InputError
from curated.workspace import Workspace, recorder

CORNELL_SECTIONS = (
    "## 1. General information",
    "## 2. Sharing and access information",
    "## 3. Data and file overview",
    "## 4. Methodological information",
    "## 5. Data-specific information",
)


@pytest.fixture
def complete(tmp_path: Path) -> Workspace:
    return make_complete_workspace(tmp_path / "ws")


def _readme(ws: Workspace) -> str:
    return (ws.root / "README.md").read_text(encoding="utf-8")


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_complete_workspace_readme_has_every_section_and_only_the_deposit_gap(complete):
    res = write_readme(complete)
    text = _readme(complete)
    for heading in (
        *CORNELL_SECTIONS,
        "> **At a glance**",
        "## Curation history",
        "### Imaging",
        "### Processing (from the curator log)",
    ):
        assert heading in text
    # the DOI is the one fact only deposit can supply
    assert set(todo_fields(text)) == {"study.doi (assigned at deposit)"}
    assert res.details["todo_count"] == len(todo_fields(text)) == len(re.findall(r"<TODO: ", text))
    assert (
        "Doe, J. & Roe, R. (2026). Mitochondria of HeLa cells by FIB-SEM [Data set]. Zenodo."
        in text
    )
    assert "Jane Doe (jane.doe@example.org)" in text
    assert "[CC-BY-4.0](https://creativecommons.org/licenses/by/4.0/legalcode)" in text
    assert "European Research Council, award ERC-2026-123456" in text
    assert "Zeiss Crossbeam 550" in text and "FBbi:00050000" in text and "1.5 kV" in text
    assert "| cell | OME-Zarr 0.5 | 56 × 40 × 12 | 5.0 × 5.0 × 20.0 nanometer | uint8 |" in text


def test_ai_generated_labels_are_marked_and_link_model_card_and_scores(complete):
    write_readme(complete)
    text = _readme(complete)
    assert (
        "**cell / mito-pred** (prediction; origin: model-prediction): **AI-generated** by model `mito-v1`"
        in text
    )
    assert (
        "(model card: [derived/models/mito-v1.bioimageio.zip](derived/models/mito-v1.bioimageio.zip))"
        in text
    )
    assert (
        "Dice 0.812 (95% CI 0.770–0.850), IoU 0.684, instance F1 0.750 on 8 random held-out blocks"
        in text
    )
    assert "shading = shaded: Dice 0.740 (4 blocks)" in text
    truth_line = next(line for line in text.splitlines() if "**cell / mito-truth**" in line)
    assert "AI-generated" not in truth_line and "manual painting in napari" in truth_line


def test_file_list_counts_a_zarr_store_once_with_its_tree_digest(complete):
    write_readme(complete)
    text = _readme(complete)
    store_digest = recorded_digest(complete, "derived/cell.ome.zarr")
    n_files = sum(1 for p in (complete.root / "derived/cell.ome.zarr").rglob("*") if p.is_file())
    row = next(line for line in text.splitlines() if line.startswith("| `derived/cell.ome.zarr`"))
    assert f"| {n_files} |" in row and f"`{store_digest}` (log seq 0)" in row
    assert "derived/cell.ome.zarr/0" not in text  # no chunk listed
    weights = next(
        line for line in text.splitlines() if "`derived/models/mito-v1/weights.pt`" in line
    )
    assert (
        recorded_digest(complete, "derived/models/mito-v1/weights.pt") in weights
        and "(computed)" in weights
    )
    assert "| `curation/log.jsonl` | curator log |" in text
    assert "`README.md`" not in text


def test_figures_are_png_orthoviews_of_the_expected_size_with_overlays(complete):
    res = write_readme(complete)
    figs = sorted(Path(p).name for p in res.details["figures"])
    assert figs == ["cell--mito-pred.png", "cell--mito-truth.png", "cell.png"]
    shape = dict(zip("zyx", SHAPE, strict=True))
    voxel = dict(zip("zyx", VOXEL, strict=True))
    expected = ortho_geometry(shape, voxel).size
    for name in figs:
        assert _png_size(complete.root / "figures" / name) == expected
    plain = np.asarray(Image.open(complete.root / "figures/cell.png").convert("RGB")).astype(int)
    over = np.asarray(
        Image.open(complete.root / "figures/cell--mito-truth.png").convert("RGB")
    ).astype(int)
    geom = ortho_geometry(shape, voxel)
    # centre of the xy panel lies inside the sphere: the overlay tints it magenta (R and B up, G down)
    (ox, oy), _ = geom.panel("xy")
    cy, cx = oy + geom.height_y // 2 + 3, ox + geom.width_x // 2 + 3  # beside the dashed cut lines
    assert over[cy, cx, 0] > plain[cy, cx, 0] and over[cy, cx, 1] < plain[cy, cx, 1] + 1
    # a corner of the xy panel (below its letter tag) is outside every label: untouched
    assert (over[oy + geom.height_y - 2, ox + 1] == plain[oy + geom.height_y - 2, ox + 1]).all()
    text = _readme(complete)
    for name in figs:
        assert f"](figures/{name})" in text


def test_small_max_dim_draws_the_coarser_level(complete):
    res = write_readme(complete, max_dim=30)
    level1 = {"z": SHAPE[0], "y": SHAPE[1] // 2, "x": SHAPE[2] // 2}
    voxel1 = {"z": VOXEL[0], "y": VOXEL[1] * 2, "x": VOXEL[2] * 2}
    assert _png_size(Path(res.details["figures"][0])) == ortho_geometry(level1, voxel1).size
    assert "of level 1" in _readme(complete)


def test_readme_is_a_d_entry_with_its_outputs_and_reruns_replace_it(complete):
    write_readme(complete)
    first = _readme(complete)
    write_readme(complete)
    entries = list(complete.log.entries())
    d = [e for e in entries if e["step"] == "D" and e["action"] == "readme"]
    assert len(d) == 2
    outs = {o["path"] for o in d[-1]["outputs"]}
    assert {"README.md", "figures/cell.png", "figures/cell--mito-pred.png"} <= outs
    assert all(o["digest"] for o in d[-1]["outputs"])
    assert d[-1]["details"]["todo_count"] == 3
    again = _readme(complete)
    assert again.count("## 1. General information") == 1
    # the history now also shows the first readme run
    assert "| D Document | readme | ok |" in again and "| D Document | readme | ok |" not in first
    assert complete.log.verify(files=True).ok


def test_processing_comes_from_the_transform_entries(complete):
    write_readme(complete)
    text = _readme(complete)
    row = next(line for line in text.splitlines() if "| convert |" in line)
    assert "derived/cell.ome.zarr" in row and "unit=nanometer" in row and "zarr 3." in row


def test_bare_workspace_gets_a_readme_full_of_todo_markers(tmp_path):
    ws = Workspace.create(tmp_path / "bare", record=bare_record())
    res = write_readme(ws)
    text = _readme(ws)
    fields = set(todo_fields(text))
    for f in (
        "study.title",
        "study.description",
        "study.license",
        "study.authors",
        "study.funding",
        "study.keywords",
        "biosamples",
    ):
        assert f in fields
    assert res.details["todo_count"] >= 20
    assert res.details["todo_count"] == len(todo_fields(text))
    for heading in CORNELL_SECTIONS:
        assert heading in text
    assert res.details["figures"] == []
    assert not (ws.root / "figures").exists()


def test_unreadable_store_and_broken_evaluation_become_todos_not_crashes(complete):
    broken = complete.root / "derived" / "broken.ome.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json", encoding="utf-8")
    (complete.root / "derived/evaluations/garbage.json").write_text("[1, 2", encoding="utf-8")
    res = write_readme(complete)
    text = _readme(complete)
    assert any(f.startswith("image broken: cannot read the store") for f in todo_fields(text))
    assert res.status == "ok"


def test_model_without_card_or_evaluation_is_said_so(tmp_path):
    ws = make_complete_workspace(tmp_path / "ws")
    (ws.root / "derived/models/mito-v1.bioimageio.zip").unlink()
    (ws.root / "derived/evaluations/mito-eval.json").unlink()
    model_json = ws.root / "derived/models/mito-v1/model.json"
    meta = json.loads(model_json.read_text())
    meta["evaluations"] = []
    model_json.write_text(json.dumps(meta))
    write_readme(ws)
    fields = set(todo_fields(_readme(ws)))
    assert "model card for mito-v1 (run `curated segment export`)" in fields
    assert (
        "evaluation of model mito-v1 (run `curated segment evaluate --exclude-training`)" in fields
    )
    assert "evaluation of mito-pred (run `curated segment evaluate`)" in fields


def test_non_ascii_names_and_text_everywhere(tmp_path):
    root = tmp_path / "Datensatz α"
    ws = Workspace.create(root, record=complete_record(non_ascii=True))
    store = root / "derived" / "Zellkern-α ß.ome.zarr"
    with recorder(ws, "T", "convert") as step:
        write_tiny_ome_zarr(
            store,
            labels={
                "Mitochondrien-μ": (
                    sphere_mask(),
                    {"kind": "annotation", "ai_generated": False, "model": None},
                )
            },
        )
        step.add_output(store)
    res = write_readme(ws)
    text = _readme(ws)
    assert "# Mitochondrien in Zellkernnähe — ミトコンドリア α/β" in text
    assert "Zoë Ångström Müller-Łukasiewicz" in text and "太郎 山田" in text
    assert "Müller-Łukasiewicz, Z. Å. & 山田, 太. (2026)" in text
    # a pipe in free text must not break the table it lands in
    assert "données « propres » \\| mit Pipe" in text
    assert "| `derived/Zellkern-α ß.ome.zarr` | OME-Zarr store |" in text
    names = sorted(Path(p).name for p in res.details["figures"])
    assert names == [
        f"{slug('Zellkern-α ß')}--{slug('Mitochondrien-μ')}.png",
        f"{slug('Zellkern-α ß')}.png",
    ]
    assert all(n.isascii() for n in names)
    for p in res.details["figures"]:
        _png_size(Path(p))


def test_cli_readme_reports_the_marker_count(tmp_path):
    ws = Workspace.create(tmp_path / "bare", record=bare_record())
    runner = CliRunner()
    result = runner.invoke(app, ["readme", str(ws.root)])
    assert result.exit_code == 0, result.output
    n = len(todo_fields(_readme(ws)))
    assert f"{n} TODO marker(s)" in result.output


def test_cli_readme_on_a_folder_that_is_not_a_workspace_exits_1(tmp_path):
    result = CliRunner().invoke(app, ["readme", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a curated workspace" in result.output
    assert not (tmp_path / "README.md").exists()


def test_unannotated_voxels_and_alpha_zero_colours_are_not_painted(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record=complete_record())
    sparse = np.full(SHAPE, 255, dtype=np.uint8)
    sparse[4:8, 16:24, 24:32] = sphere_mask()[4:8, 16:24, 24:32]
    block = {
        "kind": "annotation",
        "ai_generated": False,
        "model": None,
        "annotation": {"unannotated": 255},
    }
    write_tiny_ome_zarr(ws.root / "derived" / "cell.ome.zarr", labels={"crops": (sparse, block)})
    res = write_readme(ws)
    plain = np.asarray(Image.open(ws.root / "figures/cell.png").convert("RGB")).astype(int)
    over = np.asarray(Image.open(ws.root / "figures/cell--crops.png").convert("RGB")).astype(int)
    geom = ortho_geometry(
        dict(zip("zyx", SHAPE, strict=True)), dict(zip("zyx", VOXEL, strict=True))
    )
    (ox, oy), _ = geom.panel("xy")
    # outside the crop every voxel is 255 = unannotated: the picture is untouched there
    bottom = oy + geom.height_y
    assert (
        over[bottom - 10 : bottom, ox : ox + 10] == plain[bottom - 10 : bottom, ox : ox + 10]
    ).all()
    cy, cx = oy + geom.height_y // 2 + 3, ox + geom.width_x // 2 + 3
    assert (over[cy, cx] != plain[cy, cx]).any()  # inside the crop, the mitochondrion is painted
    assert (
        "- **Label image `crops`:** annotation; values 1 (rgba 255,0,255,255), 255 (not drawn), 0 = background"
        in _readme(ws)
    )
    assert res.status == "ok"


def test_long_or_private_parameters_stay_out_of_the_processing_table(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record=complete_record())
    with recorder(
        ws,
        "T",
        "train",
        params={
            "iterations": 150,
            "out": "/home/someone/models/m",
            "augmentation": {"flips": True},
            "patch": [24, 24, 24],
        },
    ):
        pass
    write_readme(ws)
    row = next(line for line in _readme(ws).splitlines() if "| train |" in line)
    assert "iterations=150" in row and "patch=[24, 24, 24]" in row
    assert "/home/someone" not in row and "flips" not in row


def test_oddly_shaped_record_does_not_crash_the_readme(tmp_path):
    rec = complete_record()
    rec["biosamples"] = "HeLa, see the paper"
    rec["study"]["funding"] = [None, {"funder": "DFG"}]
    rec["images"] = [42]
    ws = Workspace.create(tmp_path / "ws", record=rec)
    res = write_readme(ws)
    fields = set(todo_fields(_readme(ws)))
    assert "biosamples" in fields
    assert {
        "study.funding[0].funder",
        "study.funding[0].award_id",
        "study.funding[1].award_id",
        "images[0].image_format",
    } <= fields
    assert res.status == "ok"


def test_scores_are_attached_to_the_right_image_only(tmp_path):
    ws = make_complete_workspace(tmp_path / "ws")
    twin = ws.root / "derived" / "cell2.ome.zarr"
    write_tiny_ome_zarr(
        twin,
        labels={
            "mito-pred": (
                sphere_mask(),
                {"kind": "prediction", "ai_generated": True, "model": {"id": "other"}},
            )
        },
    )
    write_readme(ws)
    text = _readme(ws)
    assert (
        "**cell / mito-pred** (prediction; origin: model-prediction): **AI-generated** by model `mito-v1`"
        in text
    )
    twin_line = next(
        line for line in text.splitlines() if line.startswith("- **cell2 / mito-pred**")
    )
    assert "AI-generated** by model `other`" in twin_line
    after = text.split("- **cell2 / mito-pred**", 1)[1].split("\n- **", 1)[0]
    assert "Dice 0.812" not in after and "evaluation of mito-pred" in after


def test_a_hand_written_readme_is_never_lost(complete):
    mine = "# Our dataset\n\nWritten by hand — bitte nicht überschreiben.\n"
    (complete.root / "README.md").write_text(mine, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        write_readme(complete)
    assert "--force" in str(exc.value)
    assert (complete.root / "README.md").read_text(encoding="utf-8") == mine
    res = write_readme(complete, force=True)
    assert res.status == "ok" and "## 1. General information" in _readme(complete)
    kept = list((complete.root / "curation").glob("README.before-*.md"))
    assert len(kept) == 1 and kept[0].read_text(encoding="utf-8") == mine
    # curated's own README is replaced without --force from now on
    assert write_readme(complete).status == "ok"
    # ... but an edit to it is noticed
    (complete.root / "README.md").write_text(_readme(complete) + "\nA note.\n", encoding="utf-8")
    with pytest.raises(InputError):
        write_readme(complete)


def test_cli_readme_refuses_a_foreign_readme_with_exit_1(complete):
    (complete.root / "README.md").write_text("mine\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["readme", str(complete.root)])
    assert result.exit_code == 1 and "README.md" in result.output
    assert (complete.root / "README.md").read_text(encoding="utf-8") == "mine\n"
    assert CliRunner().invoke(app, ["readme", str(complete.root), "--force"]).exit_code == 0


def test_pictures_of_a_removed_image_are_removed_but_other_files_stay(complete):
    write_readme(complete)
    (complete.root / "figures" / "my-sketch.png").write_bytes(b"\x89PNG hand made")
    import shutil

    shutil.rmtree(complete.root / "derived" / "cell.ome.zarr")
    res = write_readme(complete)
    assert res.details["figures"] == []
    assert sorted(p.name for p in (complete.root / "figures").iterdir()) == ["my-sketch.png"]


def test_pictures_read_three_planes_only(complete, monkeypatch):
    import zarr

    from curated.document import ngff

    reads: list[tuple] = []
    real_open = zarr.open_array

    class Spy:
        def __init__(self, arr):
            self.arr = arr

        def __getitem__(self, index):
            reads.append(index)
            return self.arr[index]

    monkeypatch.setattr(ngff, "_open_array", lambda path: Spy(real_open(path, mode="r")))
    write_readme(complete, figures=True)
    # one image (3 planes) plus two label images (3 planes each)
    assert len(reads) == 9
    for index in reads:
        assert (
            sum(isinstance(i, int) for i in index) == 1
        )  # each read is one plane, never the volume


def test_original_files_are_named_without_the_curators_folders(tmp_path):
    """Originals are named by file name: the curator's local folders never reach a deposit."""
    record = complete_record()
    record["sources"] = [
        {
            "field": "images[0].voxel_size_x",
            "source_file": "/home/someone/private/raw/cell01_fibsem.ome.tif",
            "source_kind": "ome-xml",
            "source_key": "Pixels@PhysicalSizeX",
        }
    ]
    ws = Workspace.create(tmp_path / "ws", record=record)
    write_readme(ws)
    text = _readme(ws)
    assert "cell01_fibsem.ome.tif" in text and "/home/someone" not in text


def test_annotation_figure_outlines_every_recorded_crop_even_all_background_ones(tmp_path):
    """Issue 16: an all-background crop used to vanish from the picture (background is uncoloured)."""
    ws = Workspace.create(tmp_path / "ws", record=complete_record())
    sparse = np.full(SHAPE, 255, dtype=np.uint8)
    sparse[4:8, 2:10, 2:10] = 0  # crop 1: all background, cut by the xy plane (z = 6)
    sparse[0:2, 28:36, 40:48] = 0  # crop 2: behind the xy plane
    block = {
        "kind": "annotation",
        "origin": "human",
        "ai_generated": False,
        "model": None,
        "annotation": {
            "unannotated": 255,
            "rois": [
                {"offset": [4, 2, 2], "shape": [4, 8, 8], "origin": "human"},
                {"offset": [0, 28, 40], "shape": [2, 8, 8], "origin": "human"},
            ],
        },
    }
    write_tiny_ome_zarr(ws.root / "derived" / "cell.ome.zarr", labels={"crops": (sparse, block)})
    res = write_readme(ws)
    over = np.asarray(Image.open(ws.root / "figures/cell--crops.png").convert("RGB")).astype(int)
    plain = np.asarray(Image.open(ws.root / "figures/cell.png").convert("RGB")).astype(int)
    geom = ortho_geometry(
        dict(zip("zyx", SHAPE, strict=True)), dict(zip("zyx", VOXEL, strict=True))
    )
    (ox, oy), _ = geom.panel("xy")
    z = geom.zoom
    # crop 1's top edge: a solid white line where the picture without labels is grey
    edge = over[oy + 2 * z + 1, ox + 6 * z : ox + 10 * z - 2]
    assert (edge == 255).all() and not (plain[oy + 2 * z + 1, ox + 6 * z] == 255).all()
    # crop 2 lies behind the xy plane: its top edge is dashed (white and not white)
    dashed = over[oy + 28 * z + 1, ox + 40 * z : ox + 48 * z]
    white = (dashed == 255).all(axis=1)
    assert white.any() and not white.all()
    assert res.status == "ok"
    assert "the 2 annotated crops are outlined and numbered" in _readme(ws)
