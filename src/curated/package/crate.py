"""The RO-Crate 1.2 metadata file that describes a bag's payload (``data/ro-crate-metadata.json``).

The crate is built from ``curated.yaml`` (name, description, authors, licence,
keywords, funding), from what bagging measured (each payload file with its
``sha256`` and ``contentSize``; each Zarr store as *one* ``Dataset`` with its
size and file count, never one entity per chunk) and from the curator log (one
action per step, via :func:`curated.provenance.export.ro_crate_action_entities`).
It is written by hand rather than with ro-crate-py, which would add one entity
per file of a Zarr store.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring as _encode_str  # type: ignore[attr-defined]
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import quote

from curated._json_outline import Outline
from curated.curation.formats import (
    PRONOM,
    FormatId,
    extension_key,
    identify_by_content,
    identify_format,
    is_ome_tiff,
    sniff_format,
)
from curated.walk import DIR, Files, is_zarr_array, walk

RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.2/context"
RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.2"
PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
OME_ZARR = "https://ngff.openmicroscopy.org/"
OME_TIFF = "https://docs.openmicroscopy.org/ome-model/latest/ome-tiff/"
ZARR_SPEC = "https://zarr-specs.readthedocs.io/"
BAGIT_RFC = "https://www.rfc-editor.org/rfc/rfc8493"


def _ref(id_: str) -> dict[str, str]:
    return {"@id": id_}


def _person(p: dict[str, Any], index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    orcid = p.get("orcid")
    if orcid:
        pid = orcid if str(orcid).startswith("http") else f"https://orcid.org/{orcid}"
    else:
        pid = f"#author-{index + 1}"
    name = " ".join(x for x in (p.get("given_name"), p.get("family_name")) if x) or str(
        p.get("name") or pid
    )
    ent: dict[str, Any] = {"@id": pid, "@type": "Person", "name": name}
    if p.get("family_name"):
        ent["familyName"] = p["family_name"]
    if p.get("given_name"):
        ent["givenName"] = p["given_name"]
    if p.get("email"):
        ent["email"] = p["email"]
    extra: list[dict[str, Any]] = []
    aff = p.get("affiliation") or {}
    if isinstance(aff, dict) and aff.get("name"):
        oid = (
            aff.get("ror")
            or f"#org-{quote(str(aff['name']).strip().lower().replace(' ', '-'), safe='')}"
        )
        if not str(oid).startswith(("http", "#")):
            oid = f"https://ror.org/{oid}"
        ent["affiliation"] = _ref(oid)
        extra.append({"@id": oid, "@type": "Organization", "name": aff["name"]})
    return ent, extra


PRONOM_KEY = "_pronom"
"""Private key on a data entity: the PRONOM formats it refers to, ``{uri: name}``;
:func:`build_crate` turns them into contextual entities and drops the key."""


def encoding_format(fid: FormatId | None, rel: str) -> tuple[Any, dict[str, str]]:
    """``encodingFormat`` for a file: its MIME type and, where identified, its PRONOM URI.

    RO-Crate recommends both: a MIME type string and a reference to a PRONOM
    contextual entity. Returns the value and ``{uri: name}`` of the formats used.
    """
    mime = (fid.mime if fid else None) or mimetypes.guess_type(rel)[0] or "application/octet-stream"
    if fid is None or fid.uri is None:
        return mime, {}
    return [mime, _ref(fid.uri)], {fid.uri: fid.name}


class FormatMemo(dict[tuple[str, str, str], Any]):
    """fido's answers for one bag: per folder, then for the whole bag once they agree.

    :func:`curated.curation.formats.identify_format` keys its memo by (folder,
    sniffed format, extension): a folder of slices costs one fido call. A bag of
    a million files in a thousand folders would still make a thousand calls (fido
    takes most of a second each, recompiling its signature patterns), so once
    :data:`AGREEING_FOLDERS` folders gave the same answer for a (format,
    extension), that answer serves every further folder.
    """

    AGREEING_FOLDERS = 3

    def __init__(self) -> None:
        super().__init__()
        self._answers: dict[tuple[str, str], list[Any]] = {}

    def _settled(self, key: tuple[str, str, str]) -> Any:
        seen = self._answers.get(key[1:])
        if (
            seen is not None
            and len(seen) >= self.AGREEING_FOLDERS
            and seen.count(seen[0]) == len(seen)
        ):
            return seen[0]
        return None

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            return True
        return isinstance(key, tuple) and len(key) == 3 and self._settled(key) is not None

    def __getitem__(self, key: tuple[str, str, str]) -> Any:
        if super().__contains__(key):
            return super().__getitem__(key)
        settled = self._settled(key)
        if settled is None:
            raise KeyError(key)
        return settled

    def __setitem__(self, key: tuple[str, str, str], value: Any) -> None:
        super().__setitem__(key, value)
        seen = self._answers.setdefault(key[1:], [])
        if len(seen) < self.AGREEING_FOLDERS:
            seen.append(value)
            self._settled_all = None

    _settled_all: dict[tuple[str, str], Any] | None = None

    def settled(self) -> dict[tuple[str, str], Any]:
        """The answers that serve every further folder, by (sniffed format, extension).

        A folder with an answer of its own has the same one (once settled, fido is not
        asked again), so these are what :meth:`__getitem__` gives for any folder.
        """
        if self._settled_all is None:
            self._settled_all = {
                k: v
                for k in self._answers
                if (v := self._settled(("", *k))) is not None  # type: ignore[arg-type]
            }
        return self._settled_all


def file_entity(
    rel: str,
    size: int,
    sha256: str,
    *,
    description: str | None = None,
    path: str | Path | None = None,
    memo: dict[tuple[str, str, str], Any] | None = None,
    head: bytes | None = None,
) -> dict[str, Any]:
    """A payload file as a ``File`` data entity (``@id`` relative to ``data/``).

    With ``path`` (where the file can be read), its format is identified with a
    PRONOM identifier (:func:`curated.curation.formats.identify_format`); a
    community profile PRONOM has no record of (OME-TIFF) goes into ``conformsTo``.
    ``memo`` (one dict per bag) lets files of one folder, format and extension
    share one fido answer; ``head`` (its first bytes, read while it was hashed)
    spares reading the file again.
    """
    fid = None
    if path is not None:
        try:
            fid = identify_format(path, name=rel.rsplit("/", 1)[-1], memo=memo, head=head)
        except OSError:
            fid = None  # unreadable here (e.g. completed later from fetch.txt): MIME type only
    return file_entity_for(rel, size, sha256, fid, description)


def file_entity_for(
    rel: str, size: int, sha256: str, fid: FormatId | None, description: str | None = None
) -> dict[str, Any]:
    """:func:`file_entity` with the format already identified (``None``: MIME type only)."""
    fmt, formats = encoding_format(fid, rel)
    ent: dict[str, Any] = {
        "@id": quote(rel, safe="/"),
        "@type": "File",
        "name": rel.rsplit("/", 1)[-1],
        "contentSize": str(size),
        "sha256": sha256,
        "encodingFormat": fmt,
    }
    if fid is not None and fid.profile == "OME-TIFF":
        ent["conformsTo"] = _ref(OME_TIFF)
    if description:
        ent["description"] = description
    if formats:
        ent[PRONOM_KEY] = formats
    return ent


_ZARR_METADATA = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")


def _zarr_metadata_documents(store: Path) -> list[tuple[str, int]]:
    """``(relative path, size)`` of a Zarr store's metadata documents, chunk folders skipped."""
    root = os.fspath(store)
    arrays: dict[str, bool] = {}

    def skip(prefix: str, name: str, kind: str) -> bool:
        # below an array there are only chunks (v3 under c/, v2 nested by number): not walked
        if kind != DIR:
            return False
        if prefix not in arrays:
            folder = os.path.join(root, *prefix.split("/"))
            arrays[prefix] = is_zarr_array(folder)
        return arrays[prefix]

    found: list[tuple[str, int]] = []
    for ev in walk(root, order="files-first", skip=skip):
        if type(ev) is Files:
            for name in ev.names:
                if name in _ZARR_METADATA:
                    size = os.path.getsize(os.path.join(ev.folder, name))
                    found.append((ev.prefix + name, size))
    return found


LABEL_ORIGIN_PROPERTY = "curated:label-origin"
"""``propertyID`` of the PropertyValue saying who made a label image (``curated.origin``)."""


def label_origins(store: str | Path) -> list[dict[str, Any]]:
    """Each label image of an OME-Zarr store: name, kind, origin, AI marking and class names."""
    from curated.document.ngff import read_image_info

    out = []
    for lab in read_image_info(Path(store)).labels:
        if lab.problem:
            continue
        out.append(
            {
                "name": lab.name,
                "kind": lab.kind,
                "origin": lab.origin,
                "ai_generated": bool(lab.ai_generated),
                "classes": {
                    v: n
                    for v, n in sorted(lab.names.items())
                    if v != 0 and v not in lab.unannotated
                },
            }
        )
    return out


def store_entity(
    rel: str,
    files: int,
    size: int,
    *,
    path: str | Path | None = None,
    labels: Sequence[dict[str, Any]] = (),
) -> dict[str, Any] | list[dict[str, Any]]:
    """A Zarr store (a folder of chunks) as one ``Dataset`` entity.

    PRONOM has no record for Zarr. With ``path`` (the store on disk), its metadata
    documents (``zarr.json``...) are listed as ``hasPart`` files with their PRONOM
    identifier (JSON, ``fmt/817``); the chunks are codec output no registry
    identifies, and their checksums stay in the bag's manifests. Returns the
    store entity, followed by its metadata file entities when ``path`` is given.

    ``labels`` (from :func:`label_origins`) adds one ``PropertyValue`` per label
    image saying who made it (origin ``human``, ``derived-from-truth``,
    ``simulated``, ``model-prediction`` or ``not recorded``); the property values
    are contextual entities that :func:`build_crate` puts into the graph.
    """
    store_id = quote(rel, safe="/") + "/"
    ent: dict[str, Any] = {
        "@id": store_id,
        "@type": "Dataset",
        "name": rel.rsplit("/", 1)[-1],
        "description": (
            f"OME-Zarr store: {files} files, {size} bytes; per-file checksums are in the bag's manifests. "
            "PRONOM has no record for Zarr: its metadata documents are JSON (PRONOM fmt/817), "
            "its chunks codec output"
        ),
        "contentSize": str(size),
        "conformsTo": [_ref(OME_ZARR), _ref(ZARR_SPEC)],
    }
    props = []
    lines = []
    for lab in labels:
        origin = lab.get("origin") or "not recorded"
        classes = ", ".join(f"{v} = {n}" for v, n in (lab.get("classes") or {}).items())
        text = f"label image labels/{lab['name']} ({lab.get('kind') or 'labels'}): origin {origin}"
        if lab.get("ai_generated"):
            text += ", AI-generated"
        if classes:
            text += f"; classes {classes}"
        lines.append(text)
        props.append(
            {
                "@id": f"#{quote(rel, safe='')}-labels-{quote(str(lab['name']), safe='')}-origin",
                "@type": "PropertyValue",
                "propertyID": LABEL_ORIGIN_PROPERTY,
                "name": f"origin of label image {lab['name']}",
                "value": origin,
                "description": text,
            }
        )
    if props:
        ent["description"] += ". " + "; ".join(lines)
        ent["additionalProperty"] = [_ref(p["@id"]) for p in props]
        ent["_contextual"] = props
    if path is None:
        return ent
    puid, pname, mime = PRONOM["JSON"]
    fid = FormatId(puid, pname, mime, profile="Zarr")
    fmt, formats = encoding_format(fid, "zarr.json")
    parts = []
    for inner, nbytes in _zarr_metadata_documents(Path(path)):
        parts.append(
            {
                "@id": store_id + quote(inner, safe="/"),
                "@type": "File",
                "name": inner,
                "contentSize": str(nbytes),
                "encodingFormat": fmt,
                "description": "Zarr metadata document",
                PRONOM_KEY: formats,
            }
        )
    if parts:
        ent["hasPart"] = [_ref(p["@id"]) for p in parts]
    return [ent, *parts]


def _inside_store(pid: str, stores: list[str]) -> bool:
    """Whether a part is a member listed by a store entity's own ``hasPart``."""
    return any(pid != s and pid.startswith(s) for s in stores)


_NESTED: dict[tuple[str, int], str] = {}
"""Indented text of the non-string member values met (``encodingFormat`` lists, references),
keyed by their compact JSON and indentation: a bag's entities share a handful of them."""


def _nested(v: Any, pad: str) -> str:
    key = (json.dumps(v, ensure_ascii=False, default=str), len(pad))
    text = _NESTED.get(key)
    if text is None:
        if len(_NESTED) > 4096:
            _NESTED.clear()
        text = json.dumps(v, indent=2, ensure_ascii=False, default=str).replace("\n", "\n" + pad)
        _NESTED[key] = text
    return text


def _dump_at(obj: Any, level: int) -> str:
    """``obj`` as :func:`curated._io.write_json` writes it when nested ``level`` spaces deep.

    A data entity is a flat dict of strings and small lists: its members are written
    here with the json module's C string encoder, and other values go through
    ``json.dumps(indent=2)`` (pure Python, several times slower per entity) once per
    distinct value (:data:`_NESTED`); the text is the same.
    """
    if type(obj) is not dict or not obj:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
        return " " * level + text.replace("\n", "\n" + " " * level)
    pad = " " * (level + 2)
    members = []
    for k, v in obj.items():
        value = _encode_str(v) if type(v) is str else _nested(v, pad)
        members.append(f"{pad}{_encode_str(str(k))}: {value}")
    return " " * level + "{\n" + ",\n".join(members) + "\n" + " " * level + "}"


_GRAPH_LEVEL = 4
"""Indentation of an ``@graph`` item in the crate document (top object 2, its list 4)."""

_HASPART_MARK = "\ue000curated-hasPart\ue000"
"""Stands in the root entity for its ``hasPart`` list until the list is streamed in its place."""


OUTLINE_FIND = ("CreateAction",)
"""Texts :class:`CrateWriter` notes while writing (its :attr:`CrateWriter.outline`): what the
FAIR checks ask :func:`curated._json_outline.json_outline` of a crate."""


class EntityRun(NamedTuple):
    """Consecutive ``File`` entities of a folder, formatted by a hashing worker."""

    parts: bytes
    """Their texts at ``@graph`` level, joined with ``,\\n`` (UTF-8)."""
    tops: bytes
    """Their references in the root's ``hasPart``, likewise."""
    entities: int
    """How many entities (``count`` would shadow ``tuple.count``)."""
    formats: dict[str, str]
    """PRONOM formats they refer to, ``{uri: name}``."""
    met: tuple[str, ...]
    """Their ``@id`` that are among the log's entities (:class:`EntitySpec`)."""
    found: tuple[str, ...]
    """The :data:`OUTLINE_FIND` texts that occur in them."""


class EntitySpec(NamedTuple):
    """What a hashing worker needs to write the entities of the files it hashes (see :func:`entity_runs`)."""

    fetch_base: str | None
    """Base URL (no trailing ``/``) of files left outside a holey bag: their ``url``."""
    wanted: frozenset[str]
    """``@id`` of the log's entities (``action_ids`` of :class:`CrateWriter`)."""


RawEntity = tuple[str, int, str, bool, bytes]
"""``(rel, size, sha256, fetched, head)`` of a file whose format only fido can tell."""


def entity_runs(
    files: Sequence[tuple[str, int, str, bool, bytes, str]],
    spec: EntitySpec,
    settled: dict[tuple[str, str], FormatId],
    folder: str = "",
) -> tuple[EntityRun | RawEntity, ...]:
    """The crate entities of ``files`` (``(rel, size, sha256, fetched, head, path)``), in order.

    ``path`` is where the file was read (relative to ``folder``, or absolute).

    Runs in the hashing workers, which hold each file's first bytes: the format is
    told by content (:func:`curated.curation.formats.identify_by_content`, reading
    the first page of a TIFF for OME-XML) or, when fido would decide, by the bag's
    settled answer for that (format, extension) (``settled``, from
    :meth:`FormatMemo.settled`); the entity is then formatted as :meth:`CrateWriter.add`
    would. A file whose format only fido can tell yet comes back raw, in its place,
    for the main process (which keeps fido's memo) to finish.
    """
    out: list[EntityRun | RawEntity] = []
    parts: list[str] = []
    tops: list[str] = []
    formats: dict[str, str] = {}
    met: list[str] = []

    def flush() -> None:
        if parts:
            text = ",\n".join(parts)
            out.append(
                EntityRun(
                    text.encode("utf-8"),
                    ",\n".join(tops).encode("utf-8"),
                    len(parts),
                    dict(formats),
                    tuple(met),
                    tuple(f for f in OUTLINE_FIND if f in text),
                )
            )
            parts.clear()
            tops.clear()
            formats.clear()
            met.clear()

    for rel, size, sha256, fetched, head, path in files:
        name = rel.rpartition("/")[2]
        fmt = sniff_format(head, name)
        if fmt in ("TIFF", "BigTIFF") and is_ome_tiff(Path(folder, path)):
            fmt = "OME-TIFF"
        fid = identify_by_content(fmt, name, head) or settled.get((fmt, extension_key(name)))
        if fid is None:
            flush()
            out.append((rel, size, sha256, fetched, head))
            continue
        pid = rel if _QUOTE_SAFE(rel) else quote(rel, safe="/")
        tail, fmts = _format_members(fid, rel, name)
        if fetched and spec.fetch_base:
            # RO-Crate in BagIt: a file completed from fetch.txt SHOULD carry the same URL
            tail += ',\n      "url": ' + _encode_str(f"{spec.fetch_base}/{pid}")
        formats.update(fmts)
        if pid in spec.wanted:
            met.append(pid)
        ref = _encode_str(pid)
        # what _dump_at(file_entity_for(...), 4) writes (tests/test_bag_entities.py holds them equal)
        parts.append(
            '    {\n      "@id": ' + ref + ',\n      "@type": "File",\n      "name": '
            + _encode_str(name) + ',\n      "contentSize": "' + str(size)
            + '",\n      "sha256": "' + sha256 + '"' + tail + "\n    }"
        )  # fmt: skip
        tops.append('        {\n          "@id": ' + ref + "\n        }")
    flush()
    return tuple(out)


_QUOTE_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*").fullmatch
"""Paths that ``quote(rel, safe="/")`` leaves as they are."""

_MEMBERS: dict[tuple[FormatId, str | None], tuple[str, dict[str, str]]] = {}


def _format_members(fid: FormatId, rel: str, name: str) -> tuple[str, dict[str, str]]:
    """The text of a file entity's members after ``sha256`` (``encodingFormat``, ``conformsTo``)
    as :func:`_dump_at` writes them, and the PRONOM formats they refer to.

    Kept per format and, where the MIME type comes from the name, per suffixes: a name
    not starting with a dot, in a path whose first part holds no ``:``, gets the same
    :func:`mimetypes.guess_type` answer as any other name with the same suffixes.
    """
    key: str | None = ""
    if not fid.mime:
        dot = name.find(".")
        plain = dot > 0 and ":" not in rel.partition("/")[0]
        key = name[dot:] if plain else None
    found = _MEMBERS.get((fid, key)) if key is not None else None
    if found is None:
        ent = file_entity_for(rel, 0, "", fid)
        formats = ent.pop(PRONOM_KEY, None) or {}
        members = {k: ent[k] for k in ("encodingFormat", "conformsTo") if k in ent}
        pad = " " * (_GRAPH_LEVEL + 2)
        text = "".join(
            f",\n{pad}{_encode_str(k)}: " + (_encode_str(v) if type(v) is str else _nested(v, pad))
            for k, v in members.items()
        )
        found = (text, formats)
        if key is not None:
            if len(_MEMBERS) > 4096:
                _MEMBERS.clear()
            _MEMBERS[(fid, key)] = found
    return found


_TOP_LEVEL = 8
"""Indentation of a reference in the root's ``hasPart`` list."""


class CrateWriter:
    """Writes ``ro-crate-metadata.json`` with the payload's data entities spilled to disk.

    A bag of a million plain files has a million ``File`` entities (and as many
    ``hasPart`` references): :meth:`add` formats each one at once (or
    :meth:`add_run` takes them formatted by the hashing workers) and appends it
    to an anonymous temporary file, and :meth:`write` streams them into the
    document, so memory stays bounded by the few contextual entities (PRONOM
    formats, people, label origins) whatever the file count. The document is
    byte for byte what ``write_json`` makes of :func:`build_crate`'s dict.

    ``action_ids`` are the ``@id`` of the log's entities that will be merged in
    (:func:`curated.provenance.export.ro_crate_action_entities`): the parts
    measured now win over the log's view of the same entity, so the writer notes
    which of them it met instead of keeping every part's id.
    """

    def __init__(
        self, *, spill_dir: str | Path | None = None, action_ids: Iterable[str] = ()
    ) -> None:
        self._parts: IO[bytes] = tempfile.TemporaryFile(dir=spill_dir)  # noqa: SIM115 (closed by close())
        self._top: IO[bytes] = tempfile.TemporaryFile(dir=spill_dir)  # noqa: SIM115 (closed by close())
        self._formats: dict[str, dict[str, Any]] = {}
        self._contextual: list[dict[str, Any]] = []
        self._stores: list[str] = []
        self._wanted = frozenset(action_ids)
        self._met: set[str] = set()
        self._found: set[str] = set()
        self.parts = 0
        self._tops = 0
        self.outline: Outline | None = None
        """What :func:`curated._json_outline.json_outline` would find in the document
        (``keep=("@context",)``, ``find=OUTLINE_FIND``), once :meth:`write` wrote it."""

    @property
    def spec(self) -> EntitySpec:
        """For workers formatting entities (:func:`entity_runs`); ``fetch_base`` left to the caller."""
        return EntitySpec(None, self._wanted)

    def _note(self, formats: dict[str, str]) -> None:
        for uri, fname in formats.items():
            # RO-Crate: a PRONOM format is a contextual entity the encodingFormat refers to
            self._formats.setdefault(uri, {"@id": uri, "@type": "WebSite", "name": fname})

    def add(self, part: dict[str, Any]) -> None:
        """One data entity (from :func:`file_entity` or :func:`store_entity`), in crate order."""
        self._note(part.get(PRONOM_KEY) or {})
        self._contextual.extend(part.get("_contextual", ()))
        pid = part["@id"]
        if pid in self._wanted:
            self._met.add(pid)
        ent = {k: v for k, v in part.items() if k not in (PRONOM_KEY, "_contextual")}
        if pid.endswith("/"):
            self._stores.append(pid)
        if not _inside_store(pid, self._stores):
            self._top.write(
                (("" if not self._tops else ",\n") + _dump_at(_ref(pid), _TOP_LEVEL)).encode()
            )
            self._tops += 1
        text = _dump_at(ent, _GRAPH_LEVEL)
        self._found.update(f for f in OUTLINE_FIND if f in text)
        self._parts.write((("" if not self.parts else ",\n") + text).encode())
        self.parts += 1

    def add_run(self, run: EntityRun) -> None:
        """``File`` entities formatted by a worker (:func:`entity_runs`), in crate order.

        Only files, and only before any store was added (a file after a store
        could be one of the store's own parts, which the root does not list).
        """
        if self._stores:
            raise ValueError("file entities formatted by workers come before the stores")
        self._note(run.formats)
        self._met.update(run.met)
        self._found.update(run.found)
        self._top.write(run.tops if not self._tops else b",\n" + run.tops)
        self._tops += run.entities
        self._parts.write(run.parts if not self.parts else b",\n" + run.parts)
        self.parts += run.entities

    def close(self) -> None:
        self._parts.close()
        self._top.close()

    def __enter__(self) -> CrateWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(
        self,
        out: IO[bytes],
        record: dict[str, Any],
        *,
        identifier: str,
        date: str,
        actions: list[dict[str, Any]],
    ) -> None:
        """Write the whole document to ``out`` (see :func:`build_crate` for the arguments)."""
        root, graph = _root_and_context(record, identifier, date, actions)
        graph = {**self._formats, **graph}
        for c in self._contextual:
            graph.setdefault(c["@id"], c)
        merged = _merge_actions(actions, self._met, graph)
        descriptor = {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "conformsTo": _ref(RO_CRATE_SPEC),
            "about": _ref("./"),
        }
        found = self._found
        head = [descriptor, root, _PROFILE, *graph.values()]
        context = json.dumps(RO_CRATE_CONTEXT)
        out.write(('{\n  "@context": ' + context + ',\n  "@graph": [\n').encode())
        for i, ent in enumerate(head):
            if i:
                out.write(b",\n")
            text = _dump_at(ent, _GRAPH_LEVEL)
            if ent is root:
                before, _, text = text.partition(json.dumps(_HASPART_MARK, ensure_ascii=False))
                found.update(f for f in OUTLINE_FIND if f in before)
                out.write(before.encode())
                if self._tops:
                    out.write(b"[\n")
                    _copy(self._top, out)
                    out.write(b"\n" + b" " * 6 + b"]")
                else:
                    out.write(b"[]")
            found.update(f for f in OUTLINE_FIND if f in text)
            out.write(text.encode())
        if self.parts:
            out.write(b",\n")
            _copy(self._parts, out)
        for ent in merged:
            text = _dump_at(ent, _GRAPH_LEVEL)
            found.update(f for f in OUTLINE_FIND if f in text)
            out.write((",\n" + text).encode())
        out.write(b"\n  ]\n}\n")
        found.update(f for f in OUTLINE_FIND if f in context)
        self.outline = Outline(
            kind="object",
            keys={"@context": "string", "@graph": "array"},
            values={"@context": RO_CRATE_CONTEXT},
            found=set(found),
        )


def _copy(src: IO[bytes], out: IO[bytes]) -> None:
    """Append the spill ``src`` to ``out``: inside the kernel where both are files."""
    src.flush()
    src.seek(0)
    try:
        out_fd = out.fileno()
    except (AttributeError, OSError):  # io.BytesIO (build_crate)
        out_fd = -1
    if out_fd >= 0 and hasattr(os, "copy_file_range"):
        out.flush()
        in_fd = src.fileno()
        try:
            while os.copy_file_range(in_fd, out_fd, 1 << 30):
                pass
            return
        except OSError:  # not supported here: copy through this process from where it stopped
            pass
    shutil.copyfileobj(src, out, 1 << 20)


_PROFILE = {
    "@id": PROCESS_RUN_CRATE,
    "@type": ["CreativeWork", "Profile"],
    "name": "Process Run Crate",
    "version": "0.5",
}


def _root_and_context(
    record: dict[str, Any], identifier: str, date: str, actions: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The root ``Dataset`` (its ``hasPart`` a placeholder) and the contextual entities of the record."""
    study = record.get("study") or {}
    title = study.get("title") or (record.get("dataset") or {}).get("name") or "Untitled dataset"
    description = (
        study.get("description") or (record.get("dataset") or {}).get("description") or title
    )
    graph: dict[str, dict[str, Any]] = {}
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": title,
        "description": description,
        "datePublished": date,
        "identifier": identifier,
        "conformsTo": [_ref(PROCESS_RUN_CRATE)],
        "hasPart": _HASPART_MARK,
    }
    licence = study.get("license")
    if licence:
        licence_id = f"https://spdx.org/licenses/{licence}"
        root["license"] = _ref(licence_id)
        graph[licence_id] = {"@id": licence_id, "@type": "CreativeWork", "name": licence}
    if study.get("keywords"):
        root["keywords"] = [str(k) for k in study["keywords"]]
    if study.get("doi"):
        root["sameAs"] = _ref(f"https://doi.org/{study['doi']}")
    authors = []
    for i, p in enumerate(study.get("authors") or []):
        if not isinstance(p, dict):
            continue
        ent, extra = _person(p, i)
        authors.append(_ref(ent["@id"]))
        graph.setdefault(ent["@id"], ent)
        for x in extra:
            graph.setdefault(x["@id"], x)
    if authors:
        root["author"] = authors
    funders = []
    for i, g in enumerate(study.get("funding") or []):
        if not isinstance(g, dict) or not g.get("funder"):
            continue
        fid = g.get("funder_ror") or f"#funder-{i + 1}"
        graph.setdefault(fid, {"@id": fid, "@type": "Organization", "name": g["funder"]})
        funders.append(_ref(fid))
    if funders:
        root["funder"] = funders
    action_refs = [
        _ref(a["@id"]) for a in actions if a.get("@type") in ("CreateAction", "UpdateAction")
    ]
    if action_refs:
        root["mentions"] = action_refs
    return root, graph


def _merge_actions(
    actions: list[dict[str, Any]], part_ids: set[str], graph: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for ent in actions:
        if ent.get("@id") in part_ids or ent.get("@id") in graph:
            continue  # ours (measured now) win over the log's view of the same entity
        if (
            ent.get("@type") == "SoftwareApplication"
            and "version" not in ent
            and ent.get("softwareVersion")
        ):
            ent = {**ent, "version": ent["softwareVersion"]}  # RO-Crate 1.2 asks for `version`
        merged.append(ent)
    return merged


def build_crate(
    record: dict[str, Any],
    *,
    identifier: str,
    date: str,
    parts: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    """Assemble the crate document as a dict (small crates; bags stream it with :class:`CrateWriter`).

    Parameters
    ----------
    record
        ``curated.yaml`` as a dict (missing fields tolerated).
    identifier
        The bag's ``External-Identifier`` (``urn:uuid:...``).
    date
        ``datePublished`` (ISO date).
    parts
        Data entities of the payload (files and stores), from :func:`file_entity`
        and :func:`store_entity`.
    actions
        Entities from :func:`curated.provenance.export.ro_crate_action_entities`.
    """
    out = io.BytesIO()
    with CrateWriter(action_ids=[str(a.get("@id")) for a in actions]) as writer:
        for p in parts:
            writer.add(p)
        writer.write(out, record, identifier=identifier, date=date, actions=actions)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result
