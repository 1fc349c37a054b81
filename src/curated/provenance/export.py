"""Export the curator log as W3C PROV (PROV-JSON) and as an RO-Crate Process Run Crate 0.5.

Storage and export are separate: the log stays plain JSON Lines; these
functions translate it. Each log entry becomes one PROV activity (one
``CreateAction`` in RO-Crate) that used its inputs and generated its outputs,
associated with the curator (when known) and with ``curated`` as software.

A file path recorded at two different digests (a file rewritten by a later
step) becomes two entities, one per version, so the history stays truthful.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from curated._io import atomic_write_text
from curated._version import __version__
from curated.errors import LogError
from curated.provenance.log import STEPS, CuratorLog, LogEntry

PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
"""The Process Run Crate profile the exported crate conforms to."""
RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.1"
CURATED_NS = "https://w3id.org/curated/ns#"
CURATED_URL = "https://pypi.org/project/curated/"

_OK = ("ok", "notneeded")


def _entries(log: CuratorLog | str | Path) -> tuple[CuratorLog, list[LogEntry]]:
    if not isinstance(log, CuratorLog):
        log = CuratorLog(log)
    if not log.exists():
        raise LogError(
            "there is no curator log to export; run a step first (e.g. `curated check`)",
            path=log.path,
        )
    return log, list(log.entries())


def _end_time(entry: Mapping[str, Any]) -> str | None:
    start = entry.get("time")
    if not isinstance(start, str):
        return None
    try:
        t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return None
    end = t0 + timedelta(seconds=float(entry.get("duration") or 0.0))
    return end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso(t: str | None) -> str | None:
    """``2026-01-02T03:04:05.678+00:00``: the ISO 8601 form the Process Run Crate profile checks for."""
    if not t:
        return None
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+00:00"


def _one_or_many(refs: list[dict[str, str]]) -> dict[str, str] | list[dict[str, str]]:
    # RO-Crate 1.1 prefers a single value to a singleton array
    return refs[0] if len(refs) == 1 else refs


def _digest_hex(digest: str | None) -> str | None:
    if not digest or ":" not in digest:
        return None
    return digest.split(":", 1)[1]


# --------------------------------------------------------------------- PROV
def to_prov_document(log: CuratorLog | str | Path) -> Any:
    """Translate the log into a :class:`prov.model.ProvDocument`.

    Activities are ``run:<uuid>`` (the entry ``id``) with start and end time,
    and ``curated:step``, ``curated:action``, ``curated:status``,
    ``curated:seq``, ``curated:hash`` and ``curated:params`` (JSON) attributes.
    Entities are ``ws:<path>@<digest>``; agents are the curator (ORCID when
    known) and ``curated`` itself as a ``prov:SoftwareAgent``.

    Examples
    --------
    >>> doc = to_prov_document("ws/curation/log.jsonl")  # doctest: +SKIP
    >>> doc.serialize(format="json")  # doctest: +SKIP
    """
    from prov.model import PROV_LABEL, PROV_TYPE, ProvDocument

    log, entries = _entries(log)
    doc = ProvDocument()
    doc.add_namespace("curated", CURATED_NS)
    doc.add_namespace("run", "urn:uuid:")
    doc.add_namespace("ws", "urn:curated:workspace:")
    doc.add_namespace("sw", CURATED_URL)
    doc.add_namespace("orcid", "https://orcid.org/")
    doc.add_namespace("person", "urn:curated:person:")

    agents: dict[str, Any] = {}
    entities: dict[str, Any] = {}

    def software_agent(version: str) -> Any:
        key = f"sw:{quote(version, safe='')}"
        if key not in agents:
            agents[key] = doc.agent(
                key,
                {
                    PROV_TYPE: "prov:SoftwareAgent",
                    PROV_LABEL: f"curated {version}",
                    "curated:version": version,
                },
            )
        return agents[key]

    def person(agent: Mapping[str, Any] | None) -> Any:
        if not isinstance(agent, dict) or not (agent.get("name") or agent.get("orcid")):
            return None
        orcid = agent.get("orcid")
        key = (
            f"orcid:{orcid.rsplit('/', 1)[-1]}"
            if orcid
            else f"person:{quote(str(agent['name']), safe='')}"
        )
        if key not in agents:
            attrs: dict[Any, Any] = {PROV_TYPE: "prov:Person"}
            if agent.get("name"):
                attrs[PROV_LABEL] = agent["name"]
            agents[key] = doc.agent(key, attrs)
        return agents[key]

    def entity(art: Mapping[str, Any]) -> Any:
        path = str(art.get("path"))
        digest = art.get("digest")
        key = f"ws:{quote(path, safe='/')}" + (f"@{quote(digest, safe='')}" if digest else "")
        if key not in entities:
            attrs: dict[Any, Any] = {PROV_LABEL: path, "curated:path": path}
            if digest:
                attrs["curated:digest"] = digest
            if art.get("bytes") is not None:
                attrs["curated:bytes"] = int(art["bytes"])
            if art.get("role"):
                attrs["curated:role"] = art["role"]
            entities[key] = doc.entity(key, attrs)
        return entities[key]

    for e in entries:
        end = _end_time(e)
        attrs: dict[Any, Any] = {
            PROV_LABEL: f"{STEPS.get(e.get('step', ''), e.get('step'))}: {e.get('action')}",
            "curated:step": e.get("step"),
            "curated:action": e.get("action"),
            "curated:status": e.get("status"),
            "curated:seq": int(e.get("seq", -1)),
            "curated:hash": e.get("hash"),
            "curated:params": json.dumps(e.get("params") or {}, sort_keys=True, ensure_ascii=False),
        }
        if e.get("prev"):
            attrs["curated:prev"] = e["prev"]
        if e.get("message"):
            attrs["curated:message"] = e["message"]
        run_id = str(e.get("id", "")).removeprefix("urn:uuid:") or f"seq-{e.get('seq')}"
        act = doc.activity(f"run:{run_id}", e.get("time"), end, attrs)
        tool = e.get("tool") or {}
        doc.wasAssociatedWith(act, software_agent(str(tool.get("version", __version__))))
        who = person(e.get("agent"))
        if who is not None:
            doc.wasAssociatedWith(act, who)
        for art in e.get("inputs") or []:
            doc.used(act, entity(art))
        for art in e.get("outputs") or []:
            out = entity(art)
            doc.wasGeneratedBy(out, act, end)
            if who is not None:
                doc.wasAttributedTo(out, who)
    return doc


def write_prov_json(log: CuratorLog | str | Path, path: str | Path) -> Path:
    """Write the log as PROV-JSON to ``path`` (atomically); ``prov.read(path)`` reads it back."""
    doc = to_prov_document(log)
    return atomic_write_text(path, doc.serialize(format="json", indent=2) + "\n")


# ----------------------------------------------------------------- RO-Crate
def _ref(id_: str) -> dict[str, str]:
    return {"@id": id_}


def ro_crate_action_entities(
    log: CuratorLog | str | Path,
    *,
    payload: bool = False,
    path_prefix: str = "",
) -> list[dict[str, Any]]:
    """JSON-LD entities for the log's steps, ready to merge into an RO-Crate ``@graph``.

    One ``CreateAction`` per entry (``UpdateAction`` for Augment steps, which
    edit the metadata in place) with ``instrument`` (``curated`` as a
    ``SoftwareApplication`` with ``softwareVersion``; the libraries that did
    the work in its ``softwareRequirements``), ``agent`` (the curator, when
    known), ``object`` (inputs, plus one ``PropertyValue`` per parameter),
    ``result`` (outputs), ``startTime``/``endTime``, ``actionStatus`` and, for
    failed steps, ``error``. Files carry ``sha256`` and ``contentSize``;
    folders (``Dataset``) carry their tree digest in ``identifier``.

    The caller adds every returned action's ``@id`` to the root's ``mentions``
    (see :func:`action_ids`) and the profile to the root's ``conformsTo``.

    Parameters
    ----------
    log
        The curator log (or its path).
    payload
        The recorded files are in the crate's payload (a bag of the
        workspace): the latest version of each workspace-relative path gets
        ``path_prefix + path`` as ``@id``, so it is the payload's data entity
        (merge its properties with yours). Older versions, and every file when
        ``payload`` is false, get a local ``#`` identifier, which RO-Crate
        does not require to be present.
    path_prefix
        Prefix of payload paths inside the crate (e.g. ``""`` or ``"data/"``).
    """
    log, entries = _entries(log)
    graph = _CrateGraph(log.root, _latest_digests(entries), payload=payload, prefix=path_prefix)
    actions = [graph.action(e) for e in entries]
    return actions + list(graph.entities.values())


def _latest_digests(entries: Sequence[LogEntry]) -> dict[str, str | None]:
    """The digest of each path's latest recorded version (outputs win over inputs)."""
    latest: dict[str, str | None] = {}
    for e in entries:
        for art in e.get("outputs") or []:
            latest[str(art.get("path"))] = art.get("digest")
        for art in e.get("inputs") or []:
            latest.setdefault(str(art.get("path")), art.get("digest"))
    return latest


class _CrateGraph:
    """The entities the actions refer to (software, people, files), each added once by ``@id``."""

    def __init__(
        self, root: Path, latest: dict[str, str | None], *, payload: bool, prefix: str
    ) -> None:
        self.root = root
        self.latest = latest
        self.payload = payload
        self.prefix = prefix
        self.entities: dict[str, dict[str, Any]] = {}

    def software(self, name: str, version: str) -> str:
        id_ = f"https://pypi.org/project/{quote(name)}/{quote(version)}/"
        if name == "python":
            id_ = f"https://www.python.org/downloads/release/python-{version.replace('.', '')}/"
        if id_ not in self.entities:
            self.entities[id_] = {
                "@id": id_,
                "@type": "SoftwareApplication",
                "name": name,
                "softwareVersion": version,
                "url": id_,
            }
        return id_

    def agent(self, agent: Any) -> str | None:
        if not isinstance(agent, dict) or not (agent.get("name") or agent.get("orcid")):
            return None
        orcid = agent.get("orcid")
        if orcid:
            id_ = orcid if str(orcid).startswith("http") else f"https://orcid.org/{orcid}"
        else:
            id_ = f"#curator-{quote(str(agent['name']).strip().lower().replace(' ', '-'), safe='')}"
        if id_ not in self.entities:
            self.entities[id_] = {"@id": id_, "@type": "Person", "name": agent.get("name") or id_}
        return id_

    def file(self, art: Mapping[str, Any]) -> str:
        path = str(art.get("path"))
        digest = art.get("digest")
        # an input recorded without a digest (not re-read) is typed by what it is on disk
        is_dir = str(digest or "").startswith("sha256-tree:") or (
            digest is None
            and (Path(path) if Path(path).is_absolute() else self.root / path).is_dir()
        )
        inside = not Path(path).is_absolute() and not path.startswith("../")
        if self.payload and inside and self.latest.get(path) == digest:
            id_ = f"{self.prefix}{quote(path, safe='/')}" + (
                "/" if is_dir and not path.endswith("/") else ""
            )
        else:
            hexd = _digest_hex(digest)
            id_ = f"#file:{quote(path, safe='/')}" + (f"@{hexd[:16]}" if hexd else "")
        if id_ not in self.entities:
            self.entities[id_] = _file_entity(id_, path, art, digest, is_dir=is_dir)
        return id_

    def parameter(self, uid: str, key: str, value: Any) -> str:
        pid = f"#{uid}-param-{quote(str(key), safe='')}"
        self.entities[pid] = {
            "@id": pid,
            "@type": "PropertyValue",
            "name": str(key),
            "value": value
            if isinstance(value, str)
            else json.dumps(value, ensure_ascii=False, sort_keys=True),
        }
        return pid

    def instrument(self, e: LogEntry) -> str:
        """``curated`` at the entry's version, with the libraries that did the work as requirements."""
        tool = e.get("tool") or {}
        libs = [self.software(n, str(v)) for n, v in sorted((e.get("software") or {}).items())]
        instrument = self.software(
            str(tool.get("name", "curated")), str(tool.get("version", __version__))
        )
        reqs = self.entities[instrument].setdefault("softwareRequirements", [])
        for lib in libs:
            if _ref(lib) not in reqs:
                reqs.append(_ref(lib))
        return instrument

    def action(self, e: LogEntry) -> dict[str, Any]:
        """The ``CreateAction`` (``UpdateAction`` for Augment) of one log entry."""
        uid = str(e.get("id", "")).removeprefix("urn:uuid:") or f"seq-{e.get('seq')}"
        instrument = self.instrument(e)
        step_name = STEPS.get(str(e.get("step")), str(e.get("step")))
        status = e.get("status", "ok")
        act: dict[str, Any] = {
            "@id": f"#{uid}",
            "@type": "UpdateAction" if e.get("step") == "A" else "CreateAction",
            "name": f"{step_name}: {e.get('action')} (seq {e.get('seq')})",
            "description": e.get("message")
            or f"curated {e.get('action')}: the {step_name} step, status {status}",
            "instrument": _ref(instrument),
            "actionStatus": "http://schema.org/CompletedActionStatus"
            if status in _OK
            else "http://schema.org/FailedActionStatus",
            "identifier": e.get("hash"),
        }
        start, end = _iso(e.get("time")), _iso(_end_time(e))
        if start:
            act["startTime"] = start
        if end:
            act["endTime"] = end
        who = self.agent(e.get("agent"))
        if who:
            act["agent"] = _ref(who)
        objects = [_ref(self.file(a)) for a in e.get("inputs") or []]
        objects += [
            _ref(self.parameter(uid, k, v)) for k, v in sorted((e.get("params") or {}).items())
        ]
        if objects:
            act["object"] = _one_or_many(objects)
        results = [_ref(self.file(a)) for a in e.get("outputs") or []]
        if results:
            act["result"] = _one_or_many(results)
        if status not in _OK:
            act["error"] = e.get("message") or f"status {status}"
        return act


def _file_entity(
    id_: str, path: str, art: Mapping[str, Any], digest: str | None, *, is_dir: bool
) -> dict[str, Any]:
    """A ``File`` (size, sha256, format) or ``Dataset`` (tree digest) entity for a recorded path."""
    ent: dict[str, Any] = {"@id": id_, "@type": "Dataset" if is_dir else "File", "name": path}
    if art.get("bytes") is not None:
        ent["contentSize"] = str(int(art["bytes"]))
    hexd = _digest_hex(digest)
    if hexd and not is_dir:
        ent["sha256"] = hexd
    elif digest:
        ent["identifier"] = digest
    if not is_dir:
        ent["encodingFormat"] = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if art.get("role"):
        ent["description"] = f"role: {art['role']}"
    return ent


def action_ids(entities: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """``[{"@id": ...}]`` of the actions among ``entities``, for the root's ``mentions``."""
    return [_ref(e["@id"]) for e in entities if e.get("@type") in ("CreateAction", "UpdateAction")]


def write_ro_crate(
    log: CuratorLog | str | Path,
    dest_dir: str | Path,
    *,
    name: str | None = None,
    description: str | None = None,
    license: str = "https://spdx.org/licenses/CC0-1.0",
) -> Path:
    """Write the log as a Process Run Crate 0.5 (``ro-crate-metadata.json`` in ``dest_dir``).

    The crate describes the steps; it does not copy the files they used or
    made (they get local ``#`` identifiers with their size and sha256), so it
    stays small however big the data. Returns the metadata file's path.
    """
    log, entries = _entries(log)
    dest = Path(dest_dir)
    if dest.exists() and not dest.is_dir():
        raise LogError("the RO-Crate destination exists and is not a folder", path=dest)
    ents = ro_crate_action_entities(log, payload=False)
    date = (entries[-1].get("time") or "")[:10] if entries else ""
    if not date:
        from curated.provenance.log import utc_now

        date = utc_now()[:10]
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": name or f"Curator log of {log.root.resolve().name}",
        "description": description
        or f"Provenance of {len(entries)} curation steps recorded by curated in {log.relative(log.path)}.",
        "datePublished": date,
        "license": _ref(license),
        "conformsTo": _ref(PROCESS_RUN_CRATE),
        "mentions": action_ids(ents),
    }
    authors = [_ref(e["@id"]) for e in ents if e.get("@type") == "Person"]
    if authors:
        root["author"] = _one_or_many(authors)
    graph: list[dict[str, Any]] = [
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "about": _ref("./"),
            "conformsTo": _ref(RO_CRATE_SPEC),
        },
        root,
        {
            "@id": PROCESS_RUN_CRATE,
            "@type": "CreativeWork",
            "name": "Process Run Crate",
            "version": "0.5",
        },
        {"@id": license, "@type": "CreativeWork", "name": license.rsplit("/", 1)[-1]},
        *ents,
    ]
    doc = {"@context": RO_CRATE_CONTEXT, "@graph": graph}
    out = dest / "ro-crate-metadata.json"
    atomic_write_text(out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return out
