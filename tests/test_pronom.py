"""Format identification with PRONOM identifiers: the sniffer's table, fido, and where each is used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from curated.curation.check import check
from curated.curation.formats import PRONOM_BASE, _Fido, identify_format, pronom_for
from curated.package.crate import build_crate, file_entity, store_entity


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("formats")
    img = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8)
    out = {
        "tiff": d / "slice.tif",
        "bigtiff": d / "stack.tif",
        "ome_tiff": d / "stack.ome.tif",
        "png": d / "figure.png",
        "json": d / "check.json",
        "yaml": d / "curated.yaml",
        "markdown": d / "README.md",
        "zarr_json": d / "zarr.json",
        "chunk": d / "0",
    }
    tifffile.imwrite(out["tiff"], img[0], photometric="minisblack")
    tifffile.imwrite(out["bigtiff"], img, bigtiff=True, photometric="minisblack")
    tifffile.imwrite(out["ome_tiff"], img, photometric="minisblack", metadata={"axes": "ZYX"})
    Image.fromarray(img[0]).save(out["png"])
    out["json"].write_text(json.dumps({"flags": []}))
    out["yaml"].write_text("study:\n  title: A volume\n")
    out["markdown"].write_text("# A dataset\n\nSome text.\n")
    out["zarr_json"].write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    out["chunk"].write_bytes(bytes(range(256)) * 4)
    return out


EXPECTED = {
    "tiff": ("fmt/353", None),
    "bigtiff": ("fmt/1917", None),
    "ome_tiff": ("fmt/353", "OME-TIFF"),
    "png": ("fmt/11", None),
    "json": ("fmt/817", None),
    "yaml": ("fmt/818", None),
    "markdown": ("fmt/1149", None),
    "zarr_json": ("fmt/817", "Zarr"),
    "chunk": (None, None),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_format_of_a_dataset_gets_its_pronom_identifier(
    samples: dict[str, Path], kind: str
) -> None:
    fid = identify_format(samples[kind])
    assert (fid.puid, fid.profile) == EXPECTED[kind], fid
    if fid.puid:
        assert fid.uri == PRONOM_BASE + fid.puid
    assert fid.basis


def test_the_table_agrees_with_fidos_pronom_signatures(samples: dict[str, Path]) -> None:
    """Where fido's bundled signatures know a format by its bytes, our table says the same."""
    assert _Fido.identify(samples["tiff"])[0][:1] == ("fmt/353",)
    assert _Fido.identify(samples["tiff"])[0][3] == "signature"
    # fido names text formats by extension only; the PUIDs match ours for YAML and Markdown
    assert _Fido.identify(samples["yaml"])[0][0] == "fmt/818"
    assert _Fido.identify(samples["markdown"])[0][0] == "fmt/1149"


def test_fido_bigtiff_and_json_mistakes_are_worked_around(samples: dict[str, Path]) -> None:
    """fido 1.6.1's signatures (PRONOM v109, 2022) predate BigTIFF (fmt/1917, v115).

    If a newer fido gets these right, this test fails: drop the workaround then.
    """
    fido_says = _Fido.identify(samples["bigtiff"])
    assert fido_says and fido_says[0][0] == "fmt/898"  # Zoomify: the only signature that matches
    assert identify_format(samples["bigtiff"]).puid == "fmt/1917"
    # JSON: fido matches by extension only and prefers "Tweet JSON"
    assert _Fido.identify(samples["json"])[0][:2] == ("fmt/1311", "Tweet JSON")
    assert identify_format(samples["json"]).puid == "fmt/817"


def test_bad_files_get_a_clear_answer_not_a_crash(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    assert identify_format(empty).puid is None and identify_format(empty).name == "empty file"
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")  # signature only, no chunks
    fid = identify_format(cut_png)
    assert fid.puid in (None, "fmt/11", "fmt/12", "fmt/13") and fid.basis
    junk = tmp_path / "weights.bin"
    junk.write_bytes(np.random.default_rng(0).bytes(70_000))
    assert identify_format(junk).basis
    broken_tiff = tmp_path / "broken.ome.tif"
    broken_tiff.write_bytes(b"II*\x00\xff\xff\xff\x7f")  # first IFD far beyond the end
    assert identify_format(broken_tiff).puid == "fmt/353"  # still TIFF by its header
    with pytest.raises(FileNotFoundError):
        identify_format(tmp_path / "missing.tif")


def test_pronom_for_needs_no_file() -> None:
    assert pronom_for("Markdown", "README.md").puid == "fmt/1149"
    assert pronom_for("OME-TIFF", "a.ome.tif", b"II+\x00").puid == "fmt/1917"
    assert pronom_for("JSON", "ro-crate.jsonld").puid == "fmt/880"
    assert pronom_for("PNG", "a.png") is None  # versions: fido decides
    assert pronom_for("text", "log.jsonl") is None


def test_check_records_a_pronom_identifier_per_file(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    from curated.metadata import init_workspace

    ws = init_workspace(tmp_path / "ws", "PRONOM check")
    report = check(ws, [samples["tiff"].parent], processes=1)
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["slice.tif"].pronom == "fmt/353"
    assert (
        by_name["stack.ome.tif"].pronom == "fmt/353"
        and by_name["stack.ome.tif"].format == "OME-TIFF"
    )
    assert by_name["figure.png"].pronom == "fmt/11"
    assert by_name["README.md"].pronom == "fmt/1149"
    assert by_name["0"].pronom is None
    summary = report.to_dict_without_files()["summary"]["pronom"]
    assert summary["fmt/353"] == 2 and summary["unidentified"] == 1
    written = json.loads((ws.curation_dir / "check.json").read_text())
    assert any(f.get("pronom") == "fmt/1917" for f in written["files"])


def test_crate_entities_carry_pronom_uris_and_contextual_entities(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    parts = [
        file_entity("raw/stack.ome.tif", 1, "0" * 64, path=samples["ome_tiff"]),
        file_entity("figures/figure.png", 1, "0" * 64, path=samples["png"]),
        file_entity("README.md", 1, "0" * 64, path=samples["markdown"]),
        file_entity("curated.yaml", 1, "0" * 64, path=samples["yaml"]),
        file_entity("lost.json", 1, "0" * 64, path=tmp_path / "not-here.json"),
    ]
    store = tmp_path / "cell.ome.zarr"
    (store / "0" / "c" / "0").mkdir(parents=True)
    (store / "zarr.json").write_text("{}")
    (store / "0" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"}')
    (store / "0" / "c" / "zarr.json").write_text("{}")  # below an array: a chunk, whatever its name
    (store / "0" / "c" / "0" / "0").write_bytes(b"\x00" * 8)
    ents = store_entity("derived/cell.ome.zarr", 3, 12, path=store)
    assert isinstance(ents, list)
    crate = build_crate(
        {}, identifier="urn:uuid:x", date="2026-01-01", parts=[*parts, *ents], actions=[]
    )
    graph = {e["@id"]: e for e in crate["@graph"]}
    assert graph["raw/stack.ome.tif"]["encodingFormat"] == [
        "image/tiff",
        {"@id": PRONOM_BASE + "fmt/353"},
    ]
    assert graph["raw/stack.ome.tif"]["conformsTo"]["@id"].endswith("/ome-tiff/")
    assert graph["README.md"]["encodingFormat"][1] == {"@id": PRONOM_BASE + "fmt/1149"}
    assert graph["curated.yaml"]["encodingFormat"][1] == {"@id": PRONOM_BASE + "fmt/818"}
    assert graph["figures/figure.png"]["encodingFormat"][1]["@id"].startswith(PRONOM_BASE + "fmt/1")
    assert graph["lost.json"]["encodingFormat"] == "application/json"  # unreadable: MIME type only
    assert graph[PRONOM_BASE + "fmt/353"] == {
        "@id": PRONOM_BASE + "fmt/353",
        "@type": "WebSite",
        "name": "Tagged Image File Format",
    }
    members = sorted(
        i for i in graph if i.startswith("derived/cell.ome.zarr/") and i != "derived/cell.ome.zarr/"
    )
    assert members == [
        "derived/cell.ome.zarr/0/zarr.json",
        "derived/cell.ome.zarr/zarr.json",
    ]  # no chunk
    assert all(graph[m]["encodingFormat"][1] == {"@id": PRONOM_BASE + "fmt/817"} for m in members)
    assert "_pronom" not in json.dumps(crate)


def test_one_fido_call_per_folder_format_and_extension(
    samples: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    calls = []
    real = _Fido.identify

    def counting(path):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_Fido, "identify", counting)
    for i in range(5):
        shutil.copyfile(samples["png"], tmp_path / f"slice_{i}.png")
    memo: dict = {}
    ents = [
        file_entity(
            f"figures/slice_{i}.png", 1, "0" * 64, path=tmp_path / f"slice_{i}.png", memo=memo
        )
        for i in range(5)
    ]
    assert len(calls) == 1
    assert {e["encodingFormat"][1]["@id"] for e in ents} == {PRONOM_BASE + "fmt/11"}


def test_the_bag_crate_names_pronom_formats_of_its_payload(
    tmp_path: Path, samples: dict[str, Path]
) -> None:
    import shutil

    from test_bag_helpers import build_workspace

    from curated.package import make_bag

    ws = build_workspace(tmp_path / "ws")
    shutil.copyfile(samples["ome_tiff"], ws.derived_dir / "stack.ome.tif")
    shutil.copyfile(samples["yaml"], ws.derived_dir / "models" / "unet-1" / "rdf.yaml")
    make_bag(ws, tmp_path / "bag")
    crate = json.loads((tmp_path / "bag" / "data" / "ro-crate-metadata.json").read_text())
    graph = {e["@id"]: e for e in crate["@graph"]}

    def puid(rel: str) -> str:
        return graph[rel]["encodingFormat"][1]["@id"].removeprefix(PRONOM_BASE)

    assert puid("derived/stack.ome.tif") == "fmt/353"
    assert graph["derived/stack.ome.tif"]["conformsTo"]["@id"].endswith("/ome-tiff/")
    assert puid("derived/models/unet-1/rdf.yaml") == "fmt/818"
    assert puid("derived/models/unet-1/model.json") == "fmt/817"
    assert puid("README.md") == "fmt/1149"
    assert puid("derived/cell.ome.zarr/zarr.json") == "fmt/817"
    assert graph[PRONOM_BASE + "fmt/1149"]["@type"] == "WebSite"


def test_an_mrc_map_is_named_mrc_not_a_street_map(tmp_path: Path) -> None:
    """EMDB / tomography maps are MRC files named ``*.map``; fido knows no MRC signature and
    matched them by extension only, as a Mapsforge street map (fmt/915). The sniffer reads the
    MRC ``MAP`` id at byte 208: format MRC, no PUID (PRONOM has no record), fido not asked."""
    import mrcfile

    from curated.metadata import init_workspace

    data = tmp_path / "data"
    data.mkdir()
    for name in ("emd_1234.map", "tomo.rec", "tilt.st"):
        with mrcfile.new(data / name) as m:
            m.set_data(np.zeros((2, 4, 4), np.float32))
    fid = identify_format(data / "emd_1234.map")
    assert (fid.puid, fid.name) == (None, "MRC") and "MAP id" in fid.basis
    ws = init_workspace(tmp_path / "ws", "MRC check")
    report = check(ws, [data], processes=1)
    for f in report.files:
        assert f.format == "MRC" and f.pronom is None, f
    assert not [fl for fl in report.flags if "extension" in fl.code]


def _old_style_mrc(path: Path, data: np.ndarray, big_endian: bool = False) -> None:
    """An MRC file as written before MRC2000: no ``MAP`` id, no machine stamp."""
    import mrcfile

    with mrcfile.new(path) as m:
        m.set_data(data)
    raw = bytearray(path.read_bytes())
    raw[208:216] = bytes(8)  # the MAP id and the machine stamp came with MRC2000
    if big_endian:  # an old file from a big-endian machine: every header word swapped
        words = np.frombuffer(bytes(raw[:1024]), "<i4").astype(">i4").tobytes()
        body = np.frombuffer(bytes(raw[1024:]), data.dtype).astype(data.dtype.newbyteorder(">"))
        raw = bytearray(words + body.tobytes())
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("big_endian", [False, True])
def test_an_old_mrc_without_the_map_id_is_named_mrc_and_opens(tmp_path: Path, big_endian) -> None:
    """Files from before MRC2000 (old IMOD, EMAN) have no ``MAP`` id; with an MRC extension and
    a header that holds together `check` names them MRC (they were unknown binary), and
    `convert` reads their voxels in either byte order."""
    from curated.images import convert_to_ome_zarr, open_image
    from curated.metadata import init_workspace

    data = tmp_path / "data"
    data.mkdir()
    vol = np.arange(2 * 4 * 6, dtype=np.int16).reshape(2, 4, 6)
    _old_style_mrc(data / "old.mrc", vol, big_endian)
    fid = identify_format(data / "old.mrc")
    assert (fid.puid, fid.name) == (None, "MRC") and "without the MAP id" in fid.basis
    report = check(init_workspace(tmp_path / "ws", "old MRC"), [data], processes=1)
    (rec,) = report.files
    assert rec.format == "MRC"
    out = tmp_path / "old.ome.zarr"
    convert_to_ome_zarr(data / "old.mrc", out, voxel_size=(1, 1, 1))
    np.testing.assert_array_equal(open_image(out).levels[0][:], vol)


def test_a_binary_file_is_not_called_mrc_by_its_extension_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert identify_format(junk).name != "MRC"
    old = tmp_path / "old.bin"  # an old MRC header, but nothing says it is one
    _old_style_mrc(old, np.zeros((2, 4, 4), np.float32))
    assert identify_format(old).name != "MRC"
