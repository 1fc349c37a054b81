"""An EMPIAR deposition package: ``deposition.json``, the image sets under ``data/``, a checklist.

EMPIAR (the Electron Microscopy Public Image Archive) takes volume EM raw data
through its depositor tool, which sends a deposition JSON and uploads a ``data``
folder. This module maps ``curated.yaml`` and the workspace's images onto that
JSON and validates it, offline, against the schema EMPIAR publishes in its own
``empiar-depositor`` package (``empiar_depositor/empiar_deposition.schema.json``).

Layout of the package::

    DEST/
      deposition.json     what empiar-depositor sends (validated against EMPIAR's schema)
      data/<set>/...      one folder per image set: the original stack(s), each OME-Zarr image
      checklist.md        what a person must still supply or decide before depositing

Image sets: the original files named in ``images[].path`` (TIFF family), each
OME-Zarr image under ``derived/`` (with its labels inside), and each label image
as a segmentation set whose ``micrographs_file_pattern`` points at the images it
segments. Voxel sizes go into EMPIAR's pixel width/height in ångström; the z step
is in the set's details (EMPIAR has no field for it).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curated._io import atomic_write_text, write_json
from curated.archive._common import (
    LINK,
    Missing,
    PackageKind,
    building,
    check_destination,
    check_mode,
    files_under,
    initials,
    items,
    label_dtype,
    orcid_id,
    place,
    read_record,
    text,
    top_level_visible,
    workspace_images,
)
from curated.curation.formats import identify_format
from curated.errors import InputError, MetadataError
from curated.images.units import length_unit, to_unit
from curated.metadata.identifiers import check_orcid
from curated.results import Result
from curated.workspace import Workspace, as_workspace, recorder

RELEASE_MEANING = {
    "RE": "directly after processing",
    "EP": "with the related EMDB entry",
    "HP": "when the primary citation is published",
    "HO": "held for one year",
}
RELEASE_OPTIONS = tuple(RELEASE_MEANING)
"""EMPIAR release options (the ``release_date`` values of its deposition JSON)."""

EXPERIMENT_TYPES: tuple[tuple[tuple[str, ...], int, str], ...] = (
    (("fib-sem", "fibsem", "focused ion beam", "fbbi:00050000"), 5, "FIB-SEM"),
    (("sbf-sem", "sbfsem", "sbem", "serial block", "3view"), 4, "SBF-SEM"),
    (("atum",), 11, "ATUM-SEM"),
    (("sset", "serial section electron tomography", "serial-section et"), 13, "ssET"),
    (("soft x-ray", "sxt"), 1, "soft X-ray tomography"),
    (("microct", "micro-ct", "hard x-ray", "x-ray micro"), 12, "hard X-ray / microCT"),
    (("clem", "correlative light"), 7, "CLEM"),
)
"""Words of an imaging method name (or FBbi id) and the EMPIAR experiment type they mean."""

VOXEL_TYPES = {
    "uint8": "('T1', '')",
    "int8": "('T2', '')",
    "uint16": "('T3', '')",
    "int16": "('T4', '')",
    "uint32": "('T5', '')",
    "int32": "('T6', '')",
    "float32": "('T7', '')",
    "bool": "('T8', '')",
    "uint64": "('OT', 'UNSIGNED 64 BIT INTEGER')",
    "int64": "('OT', 'SIGNED 64 BIT INTEGER')",
    "float64": "('OT', '64 BIT FLOAT')",
}
"""NumPy data types as EMPIAR voxel types (T1 unsigned byte ... T7 32-bit float; others 'OT')."""

EMPIAR_PACKAGE = PackageKind("EMPIAR", ("deposition.json", "checklist.md"))
TIFF = "('T3', '')"
OME_ZARR = "('OT', 'OME ZARR')"


@functools.cache
def empiar_schema() -> dict[str, Any]:
    """EMPIAR's deposition JSON schema, as its ``empiar-depositor`` package ships it."""
    from importlib.resources import files

    return json.loads(
        (files("empiar_depositor") / "empiar_deposition.schema.json").read_text(encoding="utf-8")
    )


PERSON_FIELDS = {
    "name": "family_name",
    "first_name": "given_name",
    "middle_name": "given_name",
    "last_name": "family_name",
    "email": "email",
    "country": "affiliation.country",
    "organization": "affiliation.name",
    "author_orcid": "orcid",
}
CITATION_FIELDS = {"title": "title", "doi": "doi", "year": "year", "details": "authors"}
IMAGE_FIELDS = {
    "name": "name",
    "voxel_type": "dtype",
    "image_width": "size_x",
    "image_height": "size_y",
    "pixel_width": "voxel_size_x",
    "pixel_height": "voxel_size_y",
    "frames_per_image": "size_z",
}
Origins = dict[str, tuple[str, dict[str, str]]]
"""Where parts of the deposition JSON come from: JSON path -> (curated.yaml field, key map)."""


def _origin(parts: list[str], origins: Origins) -> str | None:
    """The ``curated.yaml`` field a deposition JSON path was written from (``None`` if unknown)."""
    for n in range(len(parts), 0, -1):
        found = origins.get("/".join(parts[:n]))
        if found is not None:
            base, keys = found
            rest = parts[n:]
            if not rest:
                return base
            return f"{base}.{keys[rest[0]]}" if rest[0] in keys else base
    return None


def _explain(err: Any) -> str:
    """A schema error in one short line (a long enum is summarised, not listed)."""
    if err.validator == "enum" and len(err.validator_value) > 12:
        msg = f"{err.instance!r} is not one of the {len(err.validator_value)} values EMPIAR accepts"
        if "country" in err.absolute_path:
            msg += " (ISO 3166-1 alpha-2 codes" + (
                "; the United Kingdom is GB)" if err.instance == "UK" else ")"
            )
        return msg
    return str(err.message)[:200]


def schema_problems(
    deposition: dict[str, Any], origins: Origins | None = None
) -> list[dict[str, str]]:
    """Each place a deposition JSON breaks EMPIAR's schema: JSON path, curated.yaml field, problem."""
    from jsonschema import Draft7Validator, FormatChecker

    validator = Draft7Validator(empiar_schema(), format_checker=FormatChecker())
    problems = []
    for err in sorted(validator.iter_errors(deposition), key=lambda e: list(e.absolute_path)):
        parts = [str(p) for p in err.absolute_path]
        field = _origin(parts, origins or {})
        where = "/".join(parts) or "(top level)"
        problems.append({"where": where, "field": field or where, "problem": _explain(err)})
    return problems


def validate_deposition(deposition: dict[str, Any]) -> list[str]:
    """Problems of a deposition JSON under EMPIAR's schema (``[]`` when valid), one line each."""
    return [f"{p['where']}: {p['problem']}" for p in schema_problems(deposition)]


@dataclass
class ImageSet:
    """One EMPIAR image set and the files that go into its folder."""

    name: str
    directory: str
    category: str
    data_format: str
    header_format: str
    voxel_type: str
    num_images: int
    frames_per_image: int
    image_width: int | None = None
    image_height: int | None = None
    pixel_width: float | None = None
    pixel_height: float | None = None
    details: str | None = None
    micrographs_file_pattern: str | None = None
    sources: list[tuple[Path, str]] = field(default_factory=list)
    """``(source file or folder, place under data/)``; empty for a set inside another set's folder."""
    slices: bool = False
    """The source is a folder of slices: only its own visible files go into the set."""
    origin: str = ""
    """What the set was made from: ``images[i]`` of curated.yaml, or the workspace path of the image."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name[:200],
            "directory": "/" + self.directory,
            "category": self.category,
            "header_format": self.header_format,
            "data_format": self.data_format,
            "num_images_or_tilt_series": self.num_images,
            "frames_per_image": self.frames_per_image,
            "frame_range_min": None,
            "frame_range_max": None,
            "voxel_type": self.voxel_type,
            "pixel_width": self.pixel_width,
            "pixel_height": self.pixel_height,
            "details": self.details,
            "micrographs_file_pattern": self.micrographs_file_pattern,
            "image_width": self.image_width,
            "image_height": self.image_height,
        }


@dataclass
class EmpiarPlan:
    """What :func:`plan_empiar` worked out: the deposition JSON, the image sets, the checklist."""

    deposition: dict[str, Any]
    image_sets: list[ImageSet]
    checklist: list[str]


def _angstrom(value: Any, unit: str | None) -> float | None:
    if value in (None, "") or unit is None:
        return None
    return round(to_unit(float(value), unit, "angstrom"), 6)


def _unit(value: Any) -> str | None:
    try:
        return length_unit(str(value)) if value else None
    except InputError:
        return None


def _safe(name: str) -> str:
    """A folder name EMPIAR and every file system accept (letters, digits, ``-._``)."""
    cleaned = "".join(c if c.isalnum() or c in "-._" else "_" for c in name).strip("._")
    return cleaned or "images"


def experiment_type(record: dict[str, Any]) -> tuple[int, str] | None:
    """EMPIAR experiment type from the imaging method names and FBbi ids in ``curated.yaml``."""
    words = [text((record.get("dataset") or {}).get("imaging_method_name")).lower()]
    for proto in items(record, "acquisition_protocols"):
        words += [
            text(proto.get("imaging_method_name")).lower(),
            text(proto.get("fbbi_id")).lower(),
        ]
    for keys, number, label in EXPERIMENT_TYPES:
        if any(k in w for w in words for k in keys):
            return number, label
    return None


def _author_entries(
    record: dict[str, Any], missing: Missing
) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any]]]]:
    authors = []
    people = list(enumerate(items(record.get("study") or {}, "authors")))
    if not people:
        missing.need("study.authors", "EMPIAR needs at least one author")
    for i, p in people:
        family, given = text(p.get("family_name")), text(p.get("given_name"))
        if not family:
            missing.need(f"study.authors[{i}].family_name", "EMPIAR names every author")
        if not initials(given):
            missing.need(
                f"study.authors[{i}].given_name", "EMPIAR writes authors as surname and initials"
            )
        orcid = orcid_id(p.get("orcid"))
        if orcid and check_orcid(orcid):
            missing.need(
                f"study.authors[{i}].orcid", f"not a valid ORCID iD ({check_orcid(orcid)})"
            )
        authors.append(
            {
                "name": f"('{family[:60]}', '{initials(given)[:20]}')",
                "order_id": len(authors),
                "author_orcid": orcid,
            }
        )
    return authors, people


def _contact(p: dict[str, Any], i: int, role: str, missing: Missing) -> dict[str, Any]:
    aff = p.get("affiliation") if isinstance(p.get("affiliation"), dict) else {}
    for key, value, why in (
        ("given_name", p.get("given_name"), f"the {role}'s first name"),
        ("email", p.get("email"), f"the {role}'s e-mail address"),
        ("affiliation.name", aff.get("name"), f"the {role}'s organisation"),
        ("affiliation.country", aff.get("country"), f"the {role}'s country (ISO 3166-1 alpha-2)"),
    ):
        if not text(value):
            missing.need(f"study.authors[{i}].{key}", f"EMPIAR needs {why}")
    return {
        "author_orcid": orcid_id(p.get("orcid")),
        "first_name": text(p.get("given_name")),
        "middle_name": None,
        "last_name": text(p.get("family_name")),
        "organization": text(aff.get("name"))[:255],
        "street": None,
        "state_or_province": None,
        "telephone": None,
        "fax": None,
        "email": text(p.get("email")),
        "country": text(aff.get("country")).upper(),
        # town_or_city and post_or_zip are strings when present (null is refused): left out
    }


PI_ROLES = ("ProjectLeader", "Supervisor")


def _people(record: dict[str, Any], missing: Missing, origins: Origins) -> dict[str, Any]:
    authors, people = _author_entries(record, missing)
    for k, (i, _) in enumerate(people):
        origins[f"authors/{k}"] = origins[f"citation/0/authors/{k}"] = (
            f"study.authors[{i}]",
            PERSON_FIELDS,
        )
    contacts = [(i, p) for i, p in people if p.get("contact") is True]
    contacts = contacts or [(i, p) for i, p in people if "ContactPerson" in (p.get("role") or [])]
    pis = [(i, p) for i, p in people if set(p.get("role") or []) & set(PI_ROLES)]
    out: dict[str, Any] = {"authors": authors}
    if people and not contacts:
        missing.need(
            "study.authors[].contact", "mark EMPIAR's corresponding author with contact: true"
        )
    elif contacts:
        origins["corresponding_author"] = (f"study.authors[{contacts[0][0]}]", PERSON_FIELDS)
        out["corresponding_author"] = _contact(
            contacts[0][1], contacts[0][0], "corresponding author", missing
        )
    if people and not pis:
        missing.need(
            "study.authors[].role",
            "give EMPIAR's principal investigator the role ProjectLeader (or Supervisor)",
        )
    out["principal_investigator"] = [
        _contact(p, i, "principal investigator", missing) for i, p in pis
    ]
    for k, (i, _) in enumerate(pis):
        origins[f"principal_investigator/{k}"] = (f"study.authors[{i}]", PERSON_FIELDS)
    return out


def _citation(
    record: dict[str, Any], authors: list[dict[str, Any]], checklist: list[str]
) -> dict[str, Any]:
    study = record.get("study") or {}
    pubs = items(study, "publications")
    base = {
        "authors": authors,
        "editors": [],
        "j_or_nj_citation": True,
        "volume": None,
        "country": None,
        "first_page": None,
        "last_page": None,
        "language": None,
        "pubmedid": None,
        "details": None,
        "book_chapter_title": None,
        "publisher": None,
        "publication_location": None,
        "journal": None,
        "journal_abbreviation": None,
        "issue": None,
    }
    if pubs:
        pub = pubs[0]
        doi = text(pub.get("doi")).removeprefix("https://doi.org/") or None
        year = pub.get("year")
        return {
            **base,
            "published": bool(doi or year),
            "title": text(pub.get("title"))[:255],
            "year": int(year) if str(year or "").isdigit() else None,
            "doi": doi,
            "details": text(pub.get("authors")) or None,
        }
    checklist.append(
        "Citation: curated.yaml names no publication (study.publications), so the citation is this "
        "entry's own title marked unpublished; replace it with the journal reference once published."
    )
    year = study.get("publication_year")
    return {
        **base,
        "published": False,
        "title": text(study.get("title"))[:255],
        "year": int(year) if str(year or "").isdigit() else None,
        "doi": None,
    }


TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


@dataclass
class Stack:
    """What an original image path holds: a TIFF file, or a folder of TIFF slices (and other files)."""

    first: Path | None = None
    """A TIFF slice (the file itself for a single file; ``None`` when nothing is there)."""
    count: int = 0
    """TIFF slices (every file when none is named as a TIFF)."""
    others: int = 0
    """Files in the folder that are not named as TIFF slices."""
    examples: list[str] = field(default_factory=list)
    """Up to three of those files' names."""


def _stack(path: Path) -> Stack:
    """What an original image holds; a folder of slices is counted as it is walked, never listed.

    Memory stays the same for ten or a million slices. Links are refused as on export.
    """
    if path.is_symlink():
        raise InputError("is a symbolic link; exports never follow links", path=path)
    if path.is_file():
        return Stack(path, 1)
    out = Stack()
    if not path.is_dir():
        return out
    for full, _ in files_under(path, top_level_visible):
        if full.suffix.lower() in TIFF_SUFFIXES:
            out.first = out.first or full
            out.count += 1
        else:
            out.others += 1
            if len(out.examples) < 3:
                out.examples.append(full.name)
    if (
        out.first is None and out.others
    ):  # nothing named as TIFF: let the format check say what it is
        out.first = path / out.examples[0]
        out.count, out.others, out.examples = out.others, 0, []
    return out


def _original_sets(
    ws: Workspace, record: dict[str, Any], missing: Missing, checklist: list[str]
) -> list[ImageSet]:
    sets = []
    for i, img in enumerate(items(record, "images")):
        fmt = text(img.get("image_format"))
        raw = text(img.get("path"))
        if not raw or "zarr" in fmt.lower() or raw.rstrip("/").endswith(".zarr"):
            continue  # OME-Zarr images are taken from derived/
        path = Path(raw) if Path(raw).is_absolute() else ws.root / raw
        stack = _stack(path)
        if stack.first is None:
            checklist.append(
                f"Original image images[{i}] ({raw}) is not on this machine: copy it into "
                f"data/{_safe(text(img.get('name')) or f'image{i}')}/ before uploading."
            )
            continue
        kind = identify_format(stack.first)
        if kind.puid not in ("fmt/353", "fmt/1917"):
            checklist.append(
                f"Original image images[{i}] ({raw}) is {kind.name}, not TIFF: add it as an image set by hand."
            )
            continue
        unit = _unit(img.get("voxel_size_unit"))
        for key in ("dtype", "size_x", "size_y", "voxel_size_x", "voxel_size_y", "voxel_size_unit"):
            if img.get(key) in (None, ""):
                missing.need(f"images[{i}].{key}", "EMPIAR describes each image set with it")
        if img.get("voxel_size_unit") and unit is None:
            missing.need(f"images[{i}].voxel_size_unit", "not a unit of length")
        name = text(img.get("name")) or path.name
        folder = f"data/{_safe(name)}"
        if any(s.directory == folder for s in sets):
            folder = f"{folder}_{i}"
        z = img.get("voxel_size_z")
        details = f"{fmt or kind.profile or kind.name} stored as {kind.name} (PRONOM {kind.puid})"
        details += f"; {img.get('size_z') or 1} slices" + (
            f"; voxel size z {z} {unit}" if z else ""
        )
        processing = text(img.get("processing"))
        if stack.others:
            checklist.append(
                f"Original image images[{i}] ({raw}) also holds {stack.others} file(s) that are not "
                f"TIFF slices (e.g. {', '.join(stack.examples)}): they go into {folder}/ with the "
                "slices but are not counted as images; move them out if they are not part of the set."
            )
        sets.append(
            ImageSet(
                name=f"{name}: volume EM image stack",
                directory=folder,
                category="('OT', 'volume EM image stack')",
                data_format=TIFF,
                header_format=TIFF,
                voxel_type=VOXEL_TYPES.get(text(img.get("dtype")), "('OT', 'OTHER')"),
                num_images=stack.count,
                frames_per_image=1 if path.is_dir() else int(img.get("size_z") or 1),
                image_width=int(img["size_x"]) if img.get("size_x") else None,
                image_height=int(img["size_y"]) if img.get("size_y") else None,
                pixel_width=_angstrom(img.get("voxel_size_x"), unit),
                pixel_height=_angstrom(img.get("voxel_size_y"), unit),
                details="; ".join(x for x in (details, processing) if x) or None,
                sources=[(path, folder if path.is_dir() else f"{folder}/{path.name}")],
                slices=path.is_dir(),
                origin=f"images[{i}]",
            )
        )
    return sets


def _zarr_sets(ws: Workspace, missing: Missing, raw_pattern: str | None) -> list[ImageSet]:
    sets = []
    for info in workspace_images(ws.root):
        rel = ws.relative(info.path)
        if info.problem or not info.levels:
            missing.need(rel, f"the OME-Zarr image cannot be read ({info.problem})")
            continue
        unit = _unit(info.unit)
        shape, voxel = info.shape, info.voxel_size
        folder = f"data/{_safe(info.path.name)}"  # "a b\x01.ome.zarr" as data/a_b_.ome.zarr
        if any(s.directory == folder for s in sets):
            folder = f"data/{len(sets)}_{_safe(info.path.name)}"
        n_levels = len(info.levels)
        base = dict(
            data_format=OME_ZARR,
            header_format=OME_ZARR,
            num_images=1,
            frames_per_image=int(shape.get("z", 1)),
            image_width=int(shape["x"]) if "x" in shape else None,
            image_height=int(shape["y"]) if "y" in shape else None,
            pixel_width=_angstrom(voxel.get("x"), unit),
            pixel_height=_angstrom(voxel.get("y"), unit),
        )
        zstep = f"voxel size z {voxel.get('z')} {unit}" if voxel.get("z") is not None else ""
        labelled = " with segmentation labels" if info.labels else ""
        details = [f"OME-NGFF {info.ngff_version} multiscale image", zstep]
        details.append("labels under labels/" if info.labels else "")
        sets.append(
            ImageSet(
                name=f"{info.name}: OME-Zarr image ({n_levels} resolution levels)",
                directory=folder,
                category=f"('OT', 'OME-Zarr multiscale image{labelled}')",
                voxel_type=VOXEL_TYPES.get(info.dtype or "", "('OT', 'OTHER')"),
                details="; ".join(d for d in details if d),
                micrographs_file_pattern=raw_pattern,
                sources=[(info.path, folder)],
                origin=rel,
                **base,
            )
        )
        for label in info.labels:
            if label.problem or not label.levels:
                missing.need(
                    f"{rel}/labels/{label.name}",
                    f"the label image cannot be read ({label.problem})",
                )
                continue
            dtype = label_dtype(label.path, label.levels[0].path) or ""
            how = {
                "truth": "ground-truth segmentation",
                "annotation": "sparse manual annotations",
                "prediction": "AI-generated segmentation",
            }.get(label.kind or "", "segmentation")
            model = (
                f" by model {label.model.get('id')}"
                if label.model and label.model.get("id")
                else ""
            )
            names = ", ".join(f"{v} {n}" for v, n in sorted(label.names.items()))
            sets.append(
                ImageSet(
                    name=f"{info.name}: {label.name} ({how})",
                    directory=f"{folder}/labels/{label.name}",
                    category="('OT', 'segmentation')",
                    voxel_type=VOXEL_TYPES.get(dtype, "('OT', 'OTHER')"),
                    details=(
                        f"{how}{model}; OME-Zarr label image of {info.path.name}"
                        + (f"; label values: {names}" if names else "")
                        + (f"; {zstep}" if zstep else "")
                    ),
                    micrographs_file_pattern=raw_pattern or f"{folder}/0",
                    origin=f"{rel}/labels/{label.name}",
                    **base,
                )
            )
    return sets


def plan_empiar(workspace: Workspace | str | Path, *, release: str = "RE") -> EmpiarPlan:
    """Map a workspace onto an EMPIAR deposition, refusing when required fields are missing.

    Raises
    ------
    MetadataError
        Naming every missing or unusable field at once (field path first), or every
        place where the deposition JSON breaks EMPIAR's schema.
    """
    ws = as_workspace(workspace)
    assert ws is not None
    if release not in RELEASE_OPTIONS:
        msg = f"release must be one of {', '.join(RELEASE_OPTIONS)}, not {release!r}"
        raise InputError(msg, field="release")
    record = read_record(ws, "EMPIAR")
    study = record.get("study") or {}
    missing = Missing("EMPIAR")
    checklist: list[str] = []
    title = text(study.get("title"))
    if not 10 <= len(title) <= 255:
        missing.need("study.title", "EMPIAR needs a title of 10 to 255 characters")
    kind = experiment_type(record)
    if kind is None:
        missing.need(
            "acquisition_protocols[0].imaging_method_name",
            "name the imaging method (FIB-SEM, SBF-SEM, ATUM-SEM, ssET, CLEM, soft X-ray, microCT) "
            "so the EMPIAR experiment type follows",
        )
    origins: Origins = {"title": ("study.title", {})}
    people = _people(record, missing, origins)
    originals = _original_sets(ws, record, missing, checklist)
    raw_pattern = f"/{originals[0].directory}/*" if originals else None
    sets = originals + _zarr_sets(ws, missing, raw_pattern)
    if not sets:
        missing.need(
            "images",
            "no image to deposit: convert one to OME-Zarr or name the originals in images[].path",
        )
    missing.raise_if_any(ws.metadata_path)
    assert kind is not None
    deposition: dict[str, Any] = {
        "title": title,
        "release_date": release,
        "experiment_type": kind[0],
        **people,
        "imagesets": [s.to_json() for s in sets],
        "citation": [_citation(record, people["authors"], checklist)],
    }
    entity = " ".join(text(b.get("biological_entity")).lower() for b in items(record, "biosamples"))
    scale = next(
        (n for word, n in (("organism", "5"), ("tissue", "4"), ("cell", "3")) if word in entity),
        None,
    )
    if scale:
        deposition["scale"] = scale
    else:
        checklist.append(
            "Scale of the experiment (molecule, virus, cell, tissue, organism): not derivable from biosamples[].biological_entity; add it in the deposition form."
        )
    for k, s in enumerate(sets):
        origins[f"imagesets/{k}"] = (
            s.origin,
            IMAGE_FIELDS if s.origin.startswith("images[") else {},
        )
    if items(study, "publications"):
        origins["citation/0"] = ("study.publications[0]", CITATION_FIELDS)
    else:
        origins["citation/0"] = ("study", {"title": "title", "year": "publication_year"})
    _refuse_if_invalid(deposition, origins, ws.metadata_path)
    checklist[:0] = _standard_checklist(record, kind, release, sets)
    return EmpiarPlan(deposition, sets, checklist)


def _refuse_if_invalid(deposition: dict[str, Any], origins: Origins, metadata_path: Path) -> None:
    """Refuse a deposition EMPIAR's schema rejects, naming the curated.yaml field of each problem."""
    problems = schema_problems(deposition, origins)
    if not problems:
        return
    listed = "; ".join(
        (f"{p['field']} ({p['where']})" if p["field"] != p["where"] else p["where"])
        + f": {p['problem']}"
        for p in problems
    )
    n = len(problems)
    msg = (
        f"the EMPIAR deposition JSON does not validate against EMPIAR's schema "
        f"({n} problem{'s' if n != 1 else ''}): {listed} (correct them with `curated metadata set`)"
    )
    raise MetadataError(msg, path=metadata_path, details={"schema_errors": problems})


def _standard_checklist(
    record: dict[str, Any], kind: tuple[int, str], release: str, sets: list[ImageSet]
) -> list[str]:
    out = [
        "An EMPIAR deposition account and API token; then `pip install empiar-depositor` and run "
        "`empiar-depositor -a ASCP EMPIAR_TOKEN deposition.json ./data` here (Aspera; the image set "
        "directories in deposition.json are under /data/). Write DATA as ./data, not data: with -g "
        "(Globus) empiar-depositor 1.6b30 splits DATA at its last '/' and fails on a bare name, and "
        "places the folder as data/data/ in the entry, so check the directories after a Globus upload.",
        "An entry thumbnail image (the depositor's -e option); a figure from the dataset README can serve.",
        f"Release option: {release} ({RELEASE_MEANING[release]}); pass --release to choose another.",
        f"Experiment type {kind[0]} ({kind[1]}) was derived from the imaging method; check it.",
        "Corresponding author and principal investigator postal address (street, town, post code) if EMPIAR's form asks for them.",
    ]
    instruments = " ".join(
        text(p.get("imaging_instrument")) for p in items(record, "acquisition_protocols")
    ).lower()
    if "simulat" in instruments:
        out.append(
            "curated.yaml says the data are simulated (acquisition_protocols[].imaging_instrument): EMPIAR "
            "takes simulated data (experiment type 2) only with its permission asked before deposition."
        )
    if any(s.data_format == OME_ZARR for s in sets):
        out.append(
            "Image sets in OME-Zarr: EMPIAR's form lists MRC, TIFF and HDF5 among its data formats; "
            "confirm with EMPIAR that OME-Zarr is accepted for this entry, or convert those sets."
        )
    if any(s.category.startswith("('OT'") for s in sets):
        out.append("Image set categories marked 'other' (OT): check that they describe the sets.")
    return out


def render_checklist(plan: EmpiarPlan) -> str:
    """The checklist as Markdown."""
    lines = ["# EMPIAR deposition: what a person must still supply", ""]
    lines += [f"- [ ] {item}" for item in plan.checklist]
    lines += ["", "## Image sets", ""]
    for s in plan.image_sets:
        lines.append(f"- `{s.directory}/`: {s.name}")
    return "\n".join(lines) + "\n"


def export_empiar(
    workspace: Workspace | str | Path,
    dest: str | Path,
    *,
    release: str = "RE",
    files: str = LINK,
    overwrite: bool = False,
) -> Result:
    """Write an EMPIAR deposition package to ``dest`` (a logged ``D`` step).

    Parameters
    ----------
    workspace
        The dataset's workspace.
    dest
        A new folder (refused if it holds anything, unless ``overwrite``).
    release
        EMPIAR release option (:data:`RELEASE_OPTIONS`).
    files
        ``link`` (hard links, copies where the file system refuses) or ``copy``.

    Returns
    -------
    Result
        ``ok`` with the image sets and checklist in ``details``.

    Raises
    ------
    MetadataError
        When required fields are missing (all named at once) or the JSON breaks EMPIAR's schema;
        nothing is written then.
    """
    ws = as_workspace(workspace)
    assert ws is not None
    dest = Path(dest)
    check_mode(files)
    plan = plan_empiar(ws, release=release)
    sources = [src for s in plan.image_sets for src, _ in s.sources]
    replace = check_destination(
        dest, [ws.metadata_path, *sources], overwrite=overwrite, kind=EMPIAR_PACKAGE, ws=ws
    )
    params = {"dest": ws.relative(dest), "release": release, "files": files}
    with recorder(
        ws,
        "D",
        "export-empiar",
        inputs=[ws.metadata_path, *sources],
        params=params,
        libraries=("jsonschema", "empiar-depositor"),
    ) as step:
        nfiles = nbytes = 0
        with building(dest, EMPIAR_PACKAGE, overwrite=replace) as partial:
            for s in plan.image_sets:
                skip = top_level_visible if s.slices else None
                for src, target in s.sources:
                    for placed, _ in place(src, partial / target, mode=files, skip=skip):
                        nfiles += 1
                        nbytes += placed.stat().st_size
            write_json(partial / "deposition.json", plan.deposition)
            atomic_write_text(partial / "checklist.md", render_checklist(plan))
        step.add_output(dest)
        step.details = {"image_sets": len(plan.image_sets), "files": nfiles, "bytes": nbytes}
        step.message = f"{len(plan.image_sets)} image sets, {nfiles} files; {len(plan.checklist)} checklist items"
    return Result(
        "export-empiar",
        "ok",
        str(dest),
        step.message,
        {
            "deposition": str(dest / "deposition.json"),
            "checklist": plan.checklist,
            "image_sets": [s.directory for s in plan.image_sets],
            "files": nfiles,
            "bytes": nbytes,
        },
    )


__all__ = [
    "EmpiarPlan",
    "ImageSet",
    "empiar_schema",
    "experiment_type",
    "export_empiar",
    "plan_empiar",
    "schema_problems",
    "validate_deposition",
]
