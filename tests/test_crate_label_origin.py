"""The RO-Crate in a bag says who made each label image (origin), with the store still one entity."""

from __future__ import annotations

import json

from test_bag_helpers import RECORD

from curated.package import make_bag
from curated.package.crate import LABEL_ORIGIN_PROPERTY, store_entity
from curated.segment import annotate_from_truth, make_fibsem_sample
from curated.workspace import Workspace


def test_crate_states_each_label_images_origin(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record=RECORD)
    image = ws.derived_dir / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(8, 32, 32), seed=0, workspace=ws)
    annotate_from_truth(image, crops=1, size=8, seed=0, name="annotations", workspace=ws)
    bag = tmp_path / "bag"
    make_bag(ws, bag)
    crate = json.loads((bag / "data" / "ro-crate-metadata.json").read_text())
    graph = {e["@id"]: e for e in crate["@graph"]}
    store = graph["derived/cell.ome.zarr/"]
    props = [graph[r["@id"]] for r in store["additionalProperty"]]
    origins = {p["name"]: p["value"] for p in props}
    assert origins == {
        "origin of label image annotations": "derived-from-truth",
        "origin of label image truth": "simulated",
    }
    assert all(
        p["@type"] == "PropertyValue" and p["propertyID"] == LABEL_ORIGIN_PROPERTY for p in props
    )
    assert (
        "labels/truth (truth): origin simulated; classes 1 = mitochondrion, 2 = nucleus"
        in store["description"]
    )
    # still one entity per store: no chunk inside it is listed (only its Zarr metadata
    # documents, each a File with its PRONOM format)
    inside = [
        i for i in graph if i.startswith("derived/cell.ome.zarr/") and i != "derived/cell.ome.zarr/"
    ]
    assert all(i.endswith(("zarr.json", ".zattrs", ".zarray", ".zgroup")) for i in inside)
    assert all("_contextual" not in e for e in crate["@graph"])


def test_unknown_origin_is_said_not_guessed():
    ent = store_entity(
        "a.ome.zarr", 3, 10, labels=[{"name": "old", "kind": "truth", "origin": None}]
    )
    assert ent["_contextual"][0]["value"] == "not recorded"
    assert store_entity("a.ome.zarr", 3, 10).get("additionalProperty") is None
