"""EMPIAR and BioImage Archive exports: valid under the archives' own schemas, refusals that name
every missing field, logged steps, and a workspace left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from archive_helpers import build_archive_workspace
from swap_helpers import assert_only_bystanders_left, leave_killed_swap, remove_bystanders
from test_bag_helpers import assert_untouched, snapshot
from typer.testing import CliRunner

from curated._io import temps_of
from curated.archive import export_bia, export_empiar, plan_bia, plan_empiar
from curated.archive.bia import (
    FILE_COLUMNS,
    mifa_schema,
    read_file_list,
    rembi_schemas,
    validate_submission,
)
from curated.archive.empiar import empiar_schema, validate_deposition
from curated.cli import app
from curated.errors import InputError, MetadataError
from curated.provenance.log import CuratorLog
from curated.workspace import Workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    build_archive_workspace(root)
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Workspace:
    import shutil

    shutil.copytree(template, tmp_path / "t", symlinks=True)
    ws = Workspace(tmp_path / "t" / "ws")
    record = ws.read_metadata()
    record["images"][0]["path"] = str(tmp_path / "t" / "raw" / "stack.ome.tif")
    ws.write_metadata(record)
    return ws


def _edit(ws: Workspace, edit) -> None:  # type: ignore[no-untyped-def]
    record = ws.read_metadata()
    edit(record)
    ws.write_metadata(record)


# ---------------------------------------------------------------- EMPIAR
def test_empiar_package_validates_against_empiars_own_schema(ws: Workspace, tmp_path: Path) -> None:
    from jsonschema import Draft7Validator

    dest = tmp_path / "empiar"
    before = snapshot(ws.root)
    result = export_empiar(ws, dest)
    assert result.ok
    deposition = json.loads((dest / "deposition.json").read_text())
    # the schema is the one EMPIAR ships in empiar-depositor, read from the installed package
    import empiar_depositor

    shipped = Path(empiar_depositor.__file__).parent / "empiar_deposition.schema.json"
    assert empiar_schema() == json.loads(shipped.read_text())
    assert list(Draft7Validator(json.loads(shipped.read_text())).iter_errors(deposition)) == []
    assert deposition["experiment_type"] == 5  # FIB-SEM
    assert deposition["authors"][0] == {
        "name": "('Carberry', 'J')",
        "order_id": 0,
        "author_orcid": "0000-0002-1825-0097",
    }
    assert deposition["corresponding_author"]["country"] == "DE"
    assert deposition["principal_investigator"][0]["last_name"] == "Carberry"
    assert deposition["citation"][0]["doi"] == "10.1234/example.fibsem.paper"
    sets = {s["directory"]: s for s in deposition["imagesets"]}
    raw = sets["/data/raw"]
    assert raw["data_format"] == raw["header_format"] == "('T3', '')"  # TIFF
    assert raw["voxel_type"] == "('T3', '')"  # unsigned 16-bit
    assert (raw["image_width"], raw["image_height"], raw["frames_per_image"]) == (24, 20, 12)
    assert raw["pixel_width"] == raw["pixel_height"] == 80.0  # 8 nm in ångström
    assert "voxel size z 10.0 nanometer" in raw["details"]
    seg = sets["/data/cell.ome.zarr/labels/truth"]
    assert seg["category"] == "('OT', 'segmentation')"
    assert (
        seg["micrographs_file_pattern"] == "/data/raw/*"
    )  # the segmentation names its micrographs
    # the image sets are laid out under data/ as the JSON says
    assert (dest / "data" / "raw" / "stack.ome.tif").read_bytes() == Path(
        ws.read_metadata()["images"][0]["path"]
    ).read_bytes()
    assert (dest / "data" / "cell.ome.zarr" / "labels" / "truth" / "zarr.json").is_file()
    checklist = (dest / "checklist.md").read_text()
    assert "thumbnail" in checklist and "- [ ]" in checklist
    # empiar-depositor's Globus path splits DATA at its last "/" (a bare "data" fails to unpack)
    assert "deposition.json ./data`" in checklist
    # a logged step whose output digest verifies; the workspace's files are unchanged
    assert_untouched(before, ws.root)
    last = ws.log.last()
    assert last["action"] == "export-empiar" and last["status"] == "ok"
    assert last["outputs"][0]["digest"].startswith("sha256-tree:")
    assert ws.log.verify(files=True).ok


def test_empiar_image_set_folder_of_an_odd_zarr_name_is_a_plain_name(
    ws: Workspace, tmp_path: Path
) -> None:
    # an original stack's folder was always a plain name (letters, digits, - . _); an
    # OME-Zarr image's folder took the store's name as it was, line breaks included
    (ws.derived_dir / "cell.ome.zarr").rename(ws.derived_dir / "=cell #1\n\x01.ome.zarr")
    dest = tmp_path / "empiar"
    assert export_empiar(ws, dest).ok
    deposition = json.loads((dest / "deposition.json").read_text())
    assert validate_deposition(deposition) == []
    dirs = {s["directory"] for s in deposition["imagesets"]}
    assert {
        "/data/raw",
        "/data/cell__1__.ome.zarr",
        "/data/cell__1__.ome.zarr/labels/truth",
    } <= dirs
    assert all(d.startswith(("/data/raw", "/data/cell__1__.ome.zarr")) for d in dirs)
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["cell__1__.ome.zarr", "raw"]
    assert (dest / "data" / "cell__1__.ome.zarr" / "labels" / "truth" / "zarr.json").is_file()
    # a second store whose plain name is the same gets a folder of its own
    import shutil

    shutil.copytree(
        ws.derived_dir / "=cell #1\n\x01.ome.zarr", ws.derived_dir / "cell #1\t\t.ome.zarr"
    )
    plan = plan_empiar(ws)
    zarr_dirs = [s.directory for s in plan.image_sets if s.directory.endswith(".ome.zarr")]
    assert len(zarr_dirs) == len(set(zarr_dirs)) == 2


def test_empiar_refuses_naming_every_missing_field_at_once(ws: Workspace, tmp_path: Path) -> None:
    def strip(record):  # type: ignore[no-untyped-def]
        record["study"]["title"] = "short"
        for person in record["study"]["authors"]:
            person.pop("role", None)
            person.pop("contact", None)
            person["affiliation"].pop("country", None)
        record["study"]["authors"][1]["orcid"] = "0000-0002-1825-0098"  # bad check digit
        record["dataset"]["imaging_method_name"] = "light sheet"
        record["acquisition_protocols"][0]["imaging_method_name"] = "light sheet"
        record["acquisition_protocols"][0]["fbbi_id"] = "FBbi:00000369"

    _edit(ws, strip)
    dest = tmp_path / "empiar"
    entries = len(list(ws.log.entries()))
    with pytest.raises(MetadataError) as info:
        export_empiar(ws, dest)
    message = str(info.value)
    fields = [m["field"] for m in info.value.details["missing"]]
    assert fields == [
        "study.title",
        "acquisition_protocols[0].imaging_method_name",
        "study.authors[1].orcid",
        "study.authors[].contact",
        "study.authors[].role",
    ]
    for field in fields:
        assert f"{field}: " in message  # field path first, then why
    assert "\n" not in message
    assert not dest.exists()  # nothing written
    assert len(list(ws.log.entries())) == entries  # refused before the step began


@pytest.mark.parametrize(
    ("field", "value", "plan"),
    [
        ("study.keywords", "FIB-SEM", plan_bia),  # was exported as keywords F, I, B, -, ...
        ("study.authors[0].role", "ProjectLeader", plan_empiar),  # was "no PI" (a set of letters)
        ("images[0].size_x", "24px", plan_empiar),  # was ValueError
        ("study", "a string", plan_bia),  # was AttributeError
    ],
)
def test_exports_refuse_a_value_of_the_wrong_type_naming_it(
    ws: Workspace, tmp_path: Path, field: str, value: str, plan
) -> None:  # type: ignore[no-untyped-def]
    def edit(record):  # type: ignore[no-untyped-def]
        *parents, last = field.replace("[0]", ".0").split(".")
        node = record
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    _edit(ws, edit)
    with pytest.raises(MetadataError) as info:
        plan(ws)
    assert field in [m["field"] for m in info.value.details["missing"]]
    assert f"{field}: " in str(info.value)
    result = CliRunner().invoke(
        app, ["export", "bia" if plan is plan_bia else "empiar", str(ws.root), str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and not (tmp_path / "x").exists()


def test_empiar_refusal_from_the_cli_is_one_line_and_exit_1(ws: Workspace, tmp_path: Path) -> None:
    _edit(ws, lambda r: r["study"]["authors"][0]["affiliation"].pop("country"))
    result = CliRunner().invoke(app, ["export", "empiar", str(ws.root), str(tmp_path / "e")])
    assert result.exit_code == 1
    assert result.output.count("error:") == 1
    assert (
        "study.authors[0].affiliation.country: EMPIAR needs the corresponding author's country"
        in " ".join(result.output.split())
    )


def test_empiar_validator_rejects_what_empiar_would(ws: Workspace) -> None:
    deposition = plan_empiar(ws).deposition
    assert validate_deposition(deposition) == []
    broken = json.loads(json.dumps(deposition))
    broken["imagesets"][0]["voxel_type"] = "('T42', '')"
    broken["authors"][0]["author_orcid"] = "not-an-orcid"
    del broken["citation"]
    problems = validate_deposition(broken)
    assert any(p.startswith("imagesets/0/voxel_type") for p in problems)
    assert any(p.startswith("authors/0/author_orcid") for p in problems)
    assert any("'citation' is a required property" in p for p in problems)


def test_export_refuses_a_full_or_overlapping_destination(ws: Workspace, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        export_empiar(ws, full)
    assert (full / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="overlaps"):
        export_bia(ws, ws.derived_dir / "cell.ome.zarr" / "export")
    assert not (ws.derived_dir / "cell.ome.zarr" / "export").exists()


def test_an_interrupted_export_leaves_no_package_and_reruns(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curated.archive.empiar as empiar

    real_place = empiar.place
    calls = {"n": 0}

    def failing_place(*args, **kwargs):  # type: ignore[no-untyped-def]
        for item in real_place(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 5:
                raise OSError(28, "No space left on device")
            yield item

    monkeypatch.setattr(empiar, "place", failing_place)
    dest = tmp_path / "empiar"
    with pytest.raises(OSError):
        export_empiar(ws, dest)
    assert not dest.exists()  # never a package that looks complete
    assert not temps_of(dest)  # nor a half copy left lying about
    assert ws.log.last()["status"] == "error"
    monkeypatch.setattr(empiar, "place", real_place)
    assert export_empiar(ws, dest).ok
    assert not temps_of(dest)
    assert ws.log.verify(files=True).ok


KILL_WHILE_DELETING = """
import os, shutil, signal, sys
from pathlib import Path
from curated.archive import export_empiar

real_rmtree = shutil.rmtree

def dying_rmtree(path, *args, **kwargs):
    path = Path(path)
    if (path / "deposition.json").is_file() and (path / "data").is_dir():
        real_rmtree(path / "data")  # part of the old package is gone...
        os.kill(os.getpid(), signal.SIGKILL)  # ...when the machine dies
    return real_rmtree(path, *args, **kwargs)

shutil.rmtree = dying_rmtree
export_empiar(sys.argv[1], sys.argv[2], overwrite=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_kill_while_replacing_a_package_never_leaves_a_half_deleted_one(
    ws: Workspace, tmp_path: Path
) -> None:
    import subprocess

    dest = tmp_path / "empiar"
    export_empiar(ws, dest)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = subprocess.run(
        [sys.executable, "-c", KILL_WHILE_DELETING, str(ws.root), str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == -9, run.stderr
    # DEST is the old package whole or the new one whole, never one with its data half gone
    deposition = json.loads((dest / "deposition.json").read_text())
    for image_set in deposition["imagesets"]:
        assert (dest / image_set["directory"].lstrip("/")).is_dir(), image_set["directory"]
    # a re-run replaces it and removes what the killed run left under hidden names
    assert export_empiar(ws, dest, overwrite=True).ok
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_empiar_schema_problems_name_the_curated_yaml_field(ws: Workspace) -> None:
    def edit(record):  # type: ignore[no-untyped-def]
        record["study"]["authors"][0]["affiliation"]["country"] = "UK"  # EMPIAR wants GB
        record["study"]["authors"][1]["family_name"] = "Example (née Sample)"
        record["study"]["publications"][0]["doi"] = "10.1002/(SICI)1097-0258<1::AID>3.0.CO;2-X"

    _edit(ws, edit)
    with pytest.raises(MetadataError) as info:
        plan_empiar(ws)
    message = str(info.value)
    assert "study.authors[0].affiliation.country (corresponding_author/country)" in message
    assert "GB" in message and "'AD', 'AE'" not in message  # a hint, not EMPIAR's country list
    assert "study.authors[1].family_name (authors/1/name)" in message
    assert "study.publications[0].doi (citation/0/doi)" in message
    fields = [p["field"] for p in info.value.details["schema_errors"]]
    assert "study.authors[0].affiliation.country" in fields


def test_overwrite_replaces_only_a_previous_export_of_the_same_kind(
    ws: Workspace, tmp_path: Path
) -> None:
    # --overwrite on a folder of other work (a mistyped DEST: home, a data folder) used to
    # delete it; like `curated bag`, only an earlier package of this kind is replaced
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not an earlier EMPIAR export"):
        export_empiar(ws, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    bia = tmp_path / "bia"
    export_bia(ws, bia)
    with pytest.raises(InputError, match="not an earlier EMPIAR export"):
        export_empiar(ws, bia, overwrite=True)  # a BIA package is not an EMPIAR one
    empiar = tmp_path / "empiar"
    export_empiar(ws, empiar)
    assert export_empiar(ws, empiar, overwrite=True).ok


def test_a_hidden_folder_not_made_by_an_export_is_never_deleted(
    ws: Workspace, tmp_path: Path
) -> None:
    for hidden in (".empiar.n0tmine_.tmp", ".empiar.old.tmp"):
        folder = tmp_path / hidden
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        with pytest.raises(InputError, match="not made by `curated export`"):
            export_empiar(ws, tmp_path / "empiar")
        assert (folder / "notes.txt").read_text() == "mine"
        assert not (tmp_path / "empiar").exists()
        (folder / "notes.txt").unlink()
        folder.rmdir()


def test_export_refuses_a_destination_that_is_a_symbolic_link(
    ws: Workspace, tmp_path: Path
) -> None:
    # the package would be built beside the link and the link replaced: the folder it
    # names stays empty, and a later run cannot clear the moved-aside link
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "empiar"
    link.symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="symbolic link"):
            export_empiar(ws, link, overwrite=overwrite)
    assert link.is_symlink() and list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_refuses_a_symbolic_link_inside_an_image(ws: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the workspace")
    os.symlink(secret, ws.derived_dir / "cell.ome.zarr" / "leak.txt")
    with pytest.raises(InputError, match="symbolic link"):
        export_bia(ws, tmp_path / "bia")
    assert not (tmp_path / "bia").exists()


@pytest.mark.parametrize("linked", ["derived", "derived/cell.ome.zarr"])
@pytest.mark.parametrize("export", [export_empiar, export_bia])
def test_export_refuses_a_linked_derived_folder_or_image_before_writing(
    ws: Workspace, tmp_path: Path, linked: str, export
) -> None:  # type: ignore[no-untyped-def]
    # as `curated bag` does: nothing outside the workspace enters a package through a link
    real = tmp_path / "elsewhere"
    (ws.root / linked).rename(real)
    (ws.root / linked).symlink_to(real)
    entries = len(list(ws.log.entries()))
    with pytest.raises(InputError, match="symbolic link") as info:
        export(ws, tmp_path / "out")
    assert str(info.value.path) == str(ws.root / linked)
    assert not (tmp_path / "out").exists() and not temps_of(tmp_path / "out")
    assert len(list(ws.log.entries())) == entries  # refused before the step began


def test_copy_mode_gives_independent_files(ws: Workspace, tmp_path: Path) -> None:
    dest = tmp_path / "empiar"
    export_empiar(ws, dest, files="copy")
    src = ws.derived_dir / "cell.ome.zarr" / "zarr.json"
    assert (dest / "data" / "cell.ome.zarr" / "zarr.json").stat().st_ino != src.stat().st_ino
    entries = len(list(ws.log.entries()))
    for export in (export_empiar, export_bia):
        with pytest.raises(InputError, match="files must be one of"):
            export(ws, tmp_path / "other", files="move")
    assert len(list(ws.log.entries())) == entries  # a usage mistake is no failed step in the log
    assert not temps_of(tmp_path / "other")


# ---------------------------------------------------------------- BioImage Archive
def test_bia_submission_validates_against_the_archives_models(
    ws: Workspace, tmp_path: Path
) -> None:
    from jsonschema import Draft7Validator

    dest = tmp_path / "bia"
    before = snapshot(ws.root)
    result = export_bia(ws, dest)
    assert result.ok
    sub = json.loads((dest / "submission.json").read_text())
    assert validate_submission(sub) == []
    models = rembi_schemas()
    assert list(Draft7Validator(models["Study"]).iter_errors(sub["study"])) == []
    assert sub["study"]["rembi_version"] == "1.5"
    assert sub["study"]["license"]["name"] == "CC BY 4.0"
    assert sub["study"]["authors"][0]["affiliation"]["url"] == "https://ror.org/0xmp1e079"
    assert sub["biosamples"]["biosample-1"]["organism"]["ncbi_taxon"] == "NCBITaxon:10090"
    acq = sub["image_acquisitions"]["acquisition-1"]
    assert acq["imaging_method"]["ontology_id"] == "http://purl.obolibrary.org/obo/FBbi_00050000"
    assert "milling step 8 nm" in acq["image_acquisition_parameters"]
    truth = sub["annotations"]["cell.ome.zarr/labels/truth"]
    assert truth["annotation_method"].startswith("Drawn slice by slice")
    assert truth["file_metadata"][0]["annotation_type"] == ["segmentation_mask"]
    assert sub["associations"][0]["image"] == "files/cell.ome.zarr"
    # a related DOI becomes a link a reader can follow, not a bare identifier
    assert sub["study"]["links"][0]["link_url"] == "https://doi.org/10.1234/example.fibsem.raw"
    # the file lists: one row per file under files/, with its real size and checksum
    rows = _all_rows(dest, sub)
    assert tuple(rows[0]) == FILE_COLUMNS
    on_disk = sorted(
        p.relative_to(dest / "files").as_posix() for p in (dest / "files").rglob("*") if p.is_file()
    )
    assert sorted(r["Files"] for r in rows) == on_disk
    sizes = {
        e["path"]: e["size"]
        for name in _list_names(sub, "json")
        for e in json.loads((dest / name).read_text())
    }
    for r in rows[:: max(1, len(rows) // 10)]:
        data = (dest / "files" / r["Files"]).read_bytes()
        assert sizes[r["Files"]] == len(data)
        assert r["sha256"] == hashlib.sha256(data).hexdigest()
    by_path = {r["Files"]: r for r in rows}
    assert by_path["cell.ome.zarr/zarr.json"]["PRONOM"] == "fmt/817"
    assert by_path["cell.ome.zarr/zarr.json"]["annotation"] == "annotations;truth"
    label_rows = [r for r in rows if r["Files"].startswith("cell.ome.zarr/labels/truth/")]
    assert label_rows and all(r["annotation"] == "truth" for r in label_rows)
    assert all(r["source image"] == "cell.ome.zarr/zarr.json" for r in label_rows)
    assert {r["image type"] for r in label_rows} == {"label image", "label image metadata"}
    listed = [
        e["path"]
        for name in _list_names(sub, "json")
        for e in json.loads((dest / name).read_text())
    ]
    assert listed == [r["Files"] for r in rows]
    assert_untouched(before, ws.root)
    assert ws.log.last()["action"] == "export-bia"
    assert ws.log.verify(files=True).ok


def _list_names(sub: dict, kind: str) -> list[str]:  # type: ignore[type-arg]
    lists = sub["file_lists"]
    return [lists["study_component"][kind]] + [a[kind] for a in lists["annotations"].values()]


def _all_rows(dest: Path, sub: dict) -> list[dict[str, str]]:  # type: ignore[type-arg]
    return [r for name in _list_names(sub, "tsv") for r in read_file_list(dest / name)]


def test_bia_source_image_names_a_listed_file(ws: Workspace, tmp_path: Path) -> None:
    # BIA's ingest (bia-ingest, v4/file_reference.get_source_image) links an annotation row to
    # its image by looking the "source image" value up among the file-list paths; a value that
    # is no listed path leaves the annotation unlinked ("could not find source image at path")
    dest = tmp_path / "bia"
    export_bia(ws, dest)
    sub = json.loads((dest / "submission.json").read_text())
    images = [
        r["Files"] for r in read_file_list(dest / sub["file_lists"]["study_component"]["tsv"])
    ]
    rows = _all_rows(dest, sub)
    assert {r["source image"] for r in rows if r["source image"]} == {"cell.ome.zarr/zarr.json"}
    assert "cell.ome.zarr/zarr.json" in images  # listed with the study component's images
    for name in _list_names(sub, "json"):
        for e in json.loads((dest / name).read_text()):
            for a in e["attributes"]:
                if a["name"] == "source image":
                    assert a["value"] in images


def test_bia_tsv_and_json_file_lists_name_the_same_attributes(
    ws: Workspace, tmp_path: Path
) -> None:
    # PageTab (EBIBioStudies/page-tab-specification): a file list is an externalised Files
    # Table whose columns after "Files" are the file attributes' names, so a list submitted as
    # TSV must give the archive the attributes the JSON list gives (they were "source_image",
    # "pronom", "image_type" and an extra "size_bytes" in the TSV, "source image", "PRONOM",
    # "image type" in the JSON)
    dest = tmp_path / "bia"
    export_bia(ws, dest)
    sub = json.loads((dest / "submission.json").read_text())
    for tsv, js in zip(_list_names(sub, "tsv"), _list_names(sub, "json"), strict=True):
        rows = read_file_list(dest / tsv)
        entries = json.loads((dest / js).read_text())
        assert rows and len(rows) == len(entries)
        for row, entry in zip(rows, entries, strict=True):
            assert row["Files"] == entry["path"]
            from_tsv = {k: v for k, v in row.items() if k != "Files" and v}
            assert from_tsv == {a["name"]: a["value"] for a in entry["attributes"]}


def _attr(section: dict, name: str) -> list[str]:  # type: ignore[type-arg]
    return [a["value"] for a in section.get("attributes", []) if a["name"] == name]


def test_bia_package_holds_a_pagetab_submission_as_the_bias_ingest_reads_it(
    ws: Workspace, tmp_path: Path
) -> None:
    # BioStudies takes PageTab (EBIBioStudies/page-tab-specification); the BIA's ingest
    # (bia-integrator/bia-ingest) finds REMBI sections by type and reads named attributes.
    # The export used to write only its own submission.json, which no archive tool reads.
    dest = tmp_path / "bia"
    export_bia(ws, dest)
    sub = json.loads((dest / "submission.json").read_text())
    page = json.loads((dest / "submission.pagetab.json").read_text())
    assert page["type"] == "submission" and "accno" not in page  # BioStudies assigns it
    assert _attr(page, "Title") == [sub["study"]["title"]]
    assert _attr(page, "ReleaseDate") == [sub["study"]["private_until_date"]]
    assert _attr(page, "AttachTo") == ["BioImages"]
    study = page["section"]
    assert study["type"] == "Study"
    assert _attr(study, "Keywords") == sub["study"]["keywords"]
    # bia-ingest get_licence: spaces to _, dots dropped, then a Licence enum name
    licence = _attr(study, "License")[0].replace(" ", "_").replace(".", "").replace("-", "_")
    assert licence in {"CC0", "CC_BY_40"}
    by_type: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for s in study["subsections"]:
        by_type.setdefault(s["type"], []).append(s)
    orgs = {o["accno"] for o in by_type["organization"]}
    assert len(by_type["author"]) == len(sub["study"]["authors"])
    for author in by_type["author"]:
        refs = [a for a in author["attributes"] if a["name"] == "affiliation"]
        assert refs and all(a["reference"] is True and a["value"] in orgs for a in refs)
    assert _attr(by_type["author"][0], "ORCID") == ["0000-0002-1825-0097"]
    (organism,) = by_type["Biosample"][0]["subsections"]
    assert organism["type"] == "Organism" and _attr(organism, "NCBI taxon ID")
    assert _attr(by_type["Specimen"][0], "Sample preparation protocol")
    (method,) = by_type["Image acquisition"][0]["subsections"]
    assert _attr(method, "Ontology Term ID") == ["http://purl.obolibrary.org/obo/FBbi_00050000"]
    # each Annotations section and the study component name a file list in the package
    annotations = {_attr(a, "Title")[0]: a for a in by_type["Annotations"]}
    assert set(annotations) == set(sub["annotations"])
    for key, section in annotations.items():
        (listed,) = _attr(section, "File List")
        assert listed == sub["file_lists"]["annotations"][key]["json"]
        assert (dest / listed).is_file()
        assert _attr(section, "Annotation method")
    (component,) = by_type["Study Component"]
    assert _attr(component, "File List") == ["file_list.json"]
    # the Associations name the Biosample, Specimen and Image acquisition sections by Title
    (assoc,) = component["subsections"]
    assert assoc["type"] == "Associations"
    for kind, name in (
        ("Biosample", "Biosample"),
        ("Specimen", "Specimen"),
        ("Image acquisition", "Image acquisition"),
    ):
        titles = [_attr(s, "Title")[0] for s in by_type[kind]]
        assert _attr(assoc, name)[0] in titles


def test_bia_file_list_paths_are_never_quoted(ws: Workspace, tmp_path: Path) -> None:
    # a BioStudies file list is one path per line, tab separated: a path the TSV writer would
    # have to quote ("a""b") names no uploaded file, so such a name is refused by name
    odd = ws.derived_dir / 'cell "v2".ome.zarr'
    (ws.derived_dir / "cell.ome.zarr").rename(odd)
    with pytest.raises(InputError, match="tab, line break or double quote") as info:
        export_bia(ws, tmp_path / "bia")
    assert str(info.value.path).startswith(str(odd))
    assert not (tmp_path / "bia").exists() and not temps_of(tmp_path / "bia")


def test_bia_each_annotation_has_its_own_file_list(ws: Workspace, tmp_path: Path) -> None:
    # the BIA's file-list guide: each study component and each annotation section has one
    # file list, and an annotations file list has a source image column
    dest = tmp_path / "bia"
    export_bia(ws, dest)
    sub = json.loads((dest / "submission.json").read_text())
    lists = sub["file_lists"]
    assert set(lists["annotations"]) == set(sub["annotations"])
    images = read_file_list(dest / lists["study_component"]["tsv"])
    assert images and not any(r["Files"].startswith("cell.ome.zarr/labels/truth/") for r in images)
    for key, names in lists["annotations"].items():
        rows = read_file_list(dest / names["tsv"])
        assert rows and "source image" in rows[0]
        assert all(r["Files"].startswith(key + "/") for r in rows), key
        assert all(r["source image"] == "cell.ome.zarr/zarr.json" for r in rows)
        assert [e["path"] for e in json.loads((dest / names["json"]).read_text())] == [
            r["Files"] for r in rows
        ]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE")
def test_bia_many_labels_do_not_hold_a_file_open_each(ws: Workspace, tmp_path: Path) -> None:
    import resource

    import numpy as np

    from curated.images import add_labels

    image = ws.derived_dir / "cell.ome.zarr"
    names = [f"organelle{i:02d}" for i in range(40)]
    for name in names:
        add_labels(image, name, np.zeros((12, 20, 24), np.uint8), kind="truth")
    entry = ws.read_metadata()["annotations"][0]
    _edit(ws, lambda r: r["annotations"].extend({**entry, "name": n} for n in names))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 40, hard))  # fewer than 2 per label
    try:
        export_bia(ws, tmp_path / "bia")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    sub = json.loads((tmp_path / "bia" / "submission.json").read_text())
    assert len(sub["file_lists"]["annotations"]) == 42
    for names_ in sub["file_lists"]["annotations"].values():
        assert read_file_list(tmp_path / "bia" / names_["tsv"])
        json.loads((tmp_path / "bia" / names_["json"]).read_text())


def test_bia_refuses_naming_every_missing_field(ws: Workspace, tmp_path: Path) -> None:
    def strip(record):  # type: ignore[no-untyped-def]
        record["study"]["license"] = "MIT"
        record["study"]["keywords"] = []
        record["annotations"] = []
        del record["specimens"][0]["sample_preparation"]
        del record["acquisition_protocols"][0]["fbbi_id"]

    _edit(ws, strip)
    with pytest.raises(MetadataError) as info:
        export_bia(ws, tmp_path / "bia")
    fields = [m["field"] for m in info.value.details["missing"]]
    assert fields == [
        "study.keywords",
        "study.license",
        "specimens[0].sample_preparation",
        "acquisition_protocols[0].fbbi_id",
        "annotations[]",
    ]
    assert "add an entry named 'truth'" in str(info.value)
    assert not (tmp_path / "bia").exists()


def test_bia_schema_problems_name_the_curated_yaml_field(ws: Workspace) -> None:
    def edit(record):  # type: ignore[no-untyped-def]
        record["annotations"][0]["annotation_type"] = ["mask"]  # MIFA: segmentation_mask
        record["study"]["authors"][1]["email"] = "ada at example"

    _edit(ws, edit)
    with pytest.raises(MetadataError) as info:
        plan_bia(ws)
    message = str(info.value)
    assert "annotations[0].annotation_type (annotations/cell.ome.zarr/labels/truth/" in message
    assert "study.authors[1].email (" in message
    fields = {p["field"] for p in info.value.details["schema_errors"]}
    assert fields == {"annotations[0].annotation_type", "study.authors[1].email"}


def test_bia_annotation_of_sparse_crops_is_derived_from_the_label(ws: Workspace) -> None:
    plan = plan_bia(ws)
    sparse = plan.submission["annotations"]["cell.ome.zarr/labels/annotations"]
    assert "Sparse manual annotations" in sparse["annotation_overview"]
    assert any("annotations" in item and "annotated" in item for item in plan.checklist)


def test_vendored_mifa_schema_accepts_the_archives_own_example() -> None:
    """A real BIA annotation record (S-BIAD634, from bia-mifa-models' examples) validates."""
    from jsonschema import Draft7Validator

    example = yaml.safe_load(
        (Path(__file__).parent / "data" / "archive" / "Annotations_S-BIAD634.yaml").read_text()
    )
    schema = mifa_schema()
    validator = Draft7Validator({"$defs": schema["$defs"], "$ref": "#/$defs/Annotations"})
    # The example writes one value where the model's slot is multivalued (role, annotation_type):
    # LinkML loaders wrap such a value in a list; its generated JSON Schema wants the list.
    assert {e.message for e in validator.iter_errors(example)} == {
        "'data annotation' is not of type 'array'",
        "'segmentation_mask' is not of type 'array'",
    }
    for author in example["authors"]:
        author["role"] = [author["role"]]
    for entry in example["file_metadata"]:
        entry["annotation_type"] = [entry["annotation_type"]]
    assert list(validator.iter_errors(example)) == []
    del example["annotation_method"]
    assert [e.message for e in validator.iter_errors(example)] == [
        "'annotation_method' is a required property"
    ]


def test_vendored_rembi_schemas_match_the_archives_models() -> None:
    """Regenerate the schemas from bia-rembi-models when it can be imported (it pins pydantic < 2)."""
    try:
        import pydantic.v1 as v1
    except ImportError:  # pragma: no cover
        pytest.skip("pydantic.v1 unavailable")
    real = sys.modules["pydantic"]
    sys.modules["pydantic"] = v1  # the models import `pydantic`, written for its version 1
    try:
        from bia_rembi_models.study import Study
        from bia_rembi_models.study_component import StudyComponent
    except ImportError:
        pytest.skip("bia-rembi-models is not installed (pip install --no-deps bia-rembi-models)")
    finally:
        sys.modules["pydantic"] = real
    assert rembi_schemas()["Study"] == json.loads(json.dumps(Study.schema()))
    assert rembi_schemas()["StudyComponent"] == json.loads(json.dumps(StudyComponent.schema()))


def test_rembi_schemas_enforce_the_models_required_fields() -> None:
    from jsonschema import Draft7Validator

    study = {
        "title": "t",
        "description": "d",
        "keywords": [],
        "authors": [],
        "rembi_version": "1.5",
    }
    errors = [e.message for e in Draft7Validator(rembi_schemas()["Study"]).iter_errors(study)]
    assert errors == ["'private_until_date' is a required property"]
    study["rembi_version"] = "1.4"
    study["private_until_date"] = "2026-01-01"
    assert [e.message for e in Draft7Validator(rembi_schemas()["Study"]).iter_errors(study)] == [
        "'1.4' is not one of ['1.5']"
    ]


def test_bia_cli_writes_the_submission(ws: Workspace, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "bia", str(ws.root), str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "submission.json").is_file()
    log = CuratorLog(ws.log.path, root=ws.root)
    assert log.last()["action"] == "export-bia"


def test_empiar_takes_a_folder_of_slices_as_one_image_set(ws: Workspace, tmp_path: Path) -> None:
    import numpy as np
    import tifffile

    slices = tmp_path / "slices"
    slices.mkdir()
    for z in range(3):
        tifffile.imwrite(
            slices / f"s{z:03d}.tif", np.full((20, 24), z, np.uint16), photometric="minisblack"
        )

    def use_folder(record):  # type: ignore[no-untyped-def]
        record["images"][0]["path"] = str(slices)
        record["images"][0]["image_format"] = "TIFF stack"

    _edit(ws, use_folder)
    dest = tmp_path / "empiar"
    export_empiar(ws, dest)
    raw = json.loads((dest / "deposition.json").read_text())["imagesets"][0]
    assert (raw["num_images_or_tilt_series"], raw["frames_per_image"]) == (3, 1)
    assert sorted(p.name for p in (dest / "data" / "raw").iterdir()) == [
        "s000.tif",
        "s001.tif",
        "s002.tif",
    ]


def test_empiar_slice_folder_is_streamed_not_listed(ws: Workspace, tmp_path: Path) -> None:
    # a FIB-SEM run is tens of thousands of slices: the plan holds the folder, not a list of
    # every slice, and the curator log records the folder as one input (a tree digest), not
    # one input per slice (an entry that grows with the slice count)
    import numpy as np
    import tifffile

    from curated.archive.empiar import plan_empiar

    slices = tmp_path / "slices"
    slices.mkdir()
    tifffile.imwrite(slices / "s0000.tif", np.zeros((20, 24), np.uint16), photometric="minisblack")
    data = (slices / "s0000.tif").read_bytes()
    for z in range(1, 400):
        (slices / f"s{z:04d}.tif").write_bytes(data)
    (slices / ".DS_Store").write_bytes(b"finder")
    (slices / "thumbs").mkdir()
    (slices / "thumbs" / "t.png").write_bytes(b"png")
    _edit(ws, lambda r: r["images"][0].update(path=str(slices), image_format="TIFF stack"))
    raw = plan_empiar(ws).image_sets[0]
    assert raw.num_images == 400
    assert [src for src, _ in raw.sources] == [slices]
    dest = tmp_path / "empiar"
    export_empiar(ws, dest)
    placed = sorted(p.name for p in (dest / "data" / "raw").iterdir())
    assert len(placed) == 400 and placed[0] == "s0000.tif"  # no hidden file, no sub-folder
    inputs = [a["path"] for a in ws.log.last()["inputs"]]
    assert len(inputs) < 10 and any(p.endswith("slices") for p in inputs)
    assert ws.log.verify(files=True).ok


def test_empiar_image_without_labels_is_not_said_to_have_them(ws: Workspace) -> None:
    import numpy as np

    from curated.images.convert import write_ome_zarr

    plain = ws.derived_dir / "plain.ome.zarr"
    write_ome_zarr(np.zeros((4, 8, 8), np.uint8), plain, voxel_size=(10.0, 8.0, 8.0), chunks=8)
    sets = {s.directory: s for s in plan_empiar(ws).image_sets}
    image = sets["data/plain.ome.zarr"]
    assert "label" not in image.category and "label" not in (image.details or "")
    assert "; ;" not in (image.details or "")
    assert "with segmentation labels" in sets["data/cell.ome.zarr"].category


def test_empiar_slice_folder_counts_its_tiffs_not_its_other_files(
    ws: Workspace, tmp_path: Path
) -> None:
    # instrument folders hold an acquisition log or notes beside the slices: the set stays a
    # TIFF set of as many images as there are TIFFs, and the other files travel with it
    import numpy as np
    import tifffile

    slices = tmp_path / "slices"
    slices.mkdir()
    for z in range(3):
        tifffile.imwrite(slices / f"s{z:03d}.tif", np.zeros((20, 24), np.uint16))
    (slices / "acquisition.log").write_text("beam 2 kV\n")
    _edit(ws, lambda r: r["images"][0].update(path=str(slices), image_format="TIFF stack"))
    plan = plan_empiar(ws)
    raw = plan.image_sets[0]
    assert (raw.directory, raw.data_format, raw.num_images) == ("data/raw", "('T3', '')", 3)
    assert any("acquisition.log" in item for item in plan.checklist)
    dest = tmp_path / "empiar"
    export_empiar(ws, dest)
    assert (dest / "data" / "raw" / "acquisition.log").read_text() == "beam 2 kV\n"


def test_empiar_without_any_image_says_so(tmp_path: Path) -> None:
    from archive_helpers import archive_record

    ws = Workspace.create(tmp_path / "ws", record=archive_record(tmp_path / "absent.tif"))
    with pytest.raises(MetadataError) as info:
        export_empiar(ws, tmp_path / "e")
    assert [m["field"] for m in info.value.details["missing"]] == ["images"]


def test_empiar_release_option(ws: Workspace, tmp_path: Path) -> None:
    assert plan_empiar(ws, release="HP").deposition["release_date"] == "HP"
    with pytest.raises(InputError, match="release must be one of RE, EP, HP, HO"):
        plan_empiar(ws, release="soon")


def test_empiar_author_names_are_surname_and_initials() -> None:
    from curated.archive._common import initials, orcid_id

    assert [initials(g) for g in ("Yi-Wei", "John David", "J. D.", "", "  ", "Ängel")] == [
        "YW",
        "JD",
        "JD",
        "",
        "",
        "Ä",
    ]
    assert orcid_id("https://orcid.org/0000-0002-1825-0097") == "0000-0002-1825-0097"
    assert orcid_id(None) is None


@pytest.mark.parametrize("export", [export_empiar, export_bia])
def test_a_kill_between_the_two_renames_loses_nothing_and_the_next_run_clears_it(
    ws: Workspace, tmp_path: Path, export
) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "out"
    assert export(ws, dest).ok
    before = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    leave_killed_swap(dest)
    with pytest.raises(InputError, match="not empty"):  # the old package is back in place
        export(ws, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == before
    assert_only_bystanders_left(dest)
    leave_killed_swap(dest)
    assert export(ws, dest, overwrite=True).ok
    assert_only_bystanders_left(dest)
    remove_bystanders(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "t"]
