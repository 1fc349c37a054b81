"""PREMIS 3 preservation metadata derived from the curator log (``curated log WS --premis FILE``).

Preservation systems (Archivematica, repository format registries) record what
happened to each object as PREMIS events. Each curator-log entry becomes one
``event`` (its type from the Library of Congress event-type vocabulary, its
outcome, the software and person who ran it, and the objects it used and
made); each distinct version of a recorded input or output becomes one
``object`` (a file with its SHA-256 fixity, size and PRONOM format, or a folder
as a representation); the curated release and each named person become
``agent``s. The document is validated against the PREMIS 3.0 XML Schema shipped
in ``data/archive/premis-v3-0.xsd`` (Library of Congress).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from importlib.resources import files as resource_files
from pathlib import Path
from typing import Any

from curated._io import atomic_write_bytes
from curated.curation.formats import identify_format
from curated.errors import LogError
from curated.provenance.log import CuratorLog

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
PREMIS_XSD = "https://www.loc.gov/standards/premis/premis.xsd"

EVENT_TYPES: dict[str, str] = {
    "init": "creation",
    "check": "format identification",
    "request": "creation",
    "import-ome": "metadata extraction",
    "set": "metadata modification",
    "convert": "migration",
    "labels-add": "ingestion",
    "annotate-from-truth": "creation",
    "annotate-import": "ingestion",
    "train": "creation",
    "finetune": "creation",
    "predict": "creation",
    "evaluate": "validation",
    "export-bioimageio": "packing",
    "readme": "creation",
    "fair": "validation",
    "bag": "packing",
    "deposit": "transfer",
    "export-empiar": "packing",
    "export-bia": "packing",
    "write-image": "creation",
    "annotate-suggest": "creation",
    "labels-finalize": "modification",
    "labels-measure": "metadata extraction",
    "sample-fibsem": "creation",
    "bench-formats": "validation",
}
"""Curator-log actions and the PREMIS event type (LoC ``preservation/eventType`` label) each is."""

OTHER_EVENT = "execution"
"""The LoC event type written for an action :data:`EVENT_TYPES` does not name (e.g. from a newer curated)."""

OUTCOMES = {"ok": "success", "notneeded": "success", "error": "failure"}


@functools.cache
def _schema() -> Any:
    from lxml import etree

    path = resource_files("curated") / "data" / "archive" / "premis-v3-0.xsd"
    return etree.XMLSchema(etree.fromstring(path.read_bytes()))


def validate_premis(document: bytes | str | Path) -> list[str]:
    """Problems of a PREMIS document under the PREMIS 3.0 schema (``[]`` when valid)."""
    from lxml import etree

    data = Path(document).read_bytes() if isinstance(document, Path) else document
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        tree = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    if tree.getroottree().docinfo.doctype:
        # PREMIS documents have no DOCTYPE; one can only declare entities (never expanded here),
        # and lxml's schema validator fails with an internal error on unexpanded references
        return ["has a DOCTYPE declaration: PREMIS documents have none, and entities are refused"]
    schema = _schema()
    try:
        if schema.validate(tree):
            return []
    except etree.XMLSchemaValidateError as exc:
        return [f"cannot be validated: {exc}"]
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold (control characters, lone surrogates of undecodable names)."""


def xml_text(value: str) -> str:
    """``value`` with each character XML cannot hold written as a visible escape (``\\x07``).

    A backslash is written doubled (``\\\\``), so the escape can be read back: a file named
    ``a\\x01`` (backslash, x, 0, 1) and one named ``a`` + U+0001 stay two names.
    """

    def escape(m: re.Match[str]) -> str:
        if m.group() == "\\":
            return "\\\\"
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return _ESCAPED.sub(escape, value)


_ESCAPED = re.compile("\\\\|" + NOT_XML.pattern)


def _sub(parent: Any, tag: str, text: str | None = None) -> Any:
    from lxml import etree

    el = etree.SubElement(parent, f"{{{PREMIS_NS}}}{tag}")
    if text is not None:
        el.text = xml_text(text)
    return el


def _identifier(parent: Any, kind: str, id_type: str, value: str) -> None:
    ident = _sub(parent, f"{kind}Identifier")
    _sub(ident, f"{kind}IdentifierType", id_type)
    _sub(ident, f"{kind}IdentifierValue", value)


def _linking(parent: Any, kind: str, id_type: str, value: str, role: str) -> None:
    ident = _sub(parent, f"linking{kind}Identifier")
    _sub(ident, f"linking{kind}IdentifierType", id_type)
    _sub(ident, f"linking{kind}IdentifierValue", value)
    _sub(ident, f"linking{kind}Role", role)


def _object_key(artifact: dict[str, Any]) -> str:
    return f"{artifact.get('path')}@{artifact.get('digest') or 'unrecorded'}"


def _add_object(root: Any, artifact: dict[str, Any], workspace: Path) -> None:
    digest = str(artifact.get("digest") or "")
    path = str(artifact.get("path"))
    is_file = digest.startswith("sha256:")
    obj = _sub(root, "object")
    obj.set(f"{{{XSI_NS}}}type", "premis:file" if is_file else "premis:representation")
    _identifier(obj, "object", "curated path@digest", _object_key(artifact))
    if is_file:
        chars = _sub(obj, "objectCharacteristics")
        _sub(chars, "compositionLevel", "0")
        fixity = _sub(chars, "fixity")
        _sub(fixity, "messageDigestAlgorithm", "SHA-256")
        _sub(fixity, "messageDigest", digest.removeprefix("sha256:"))
        _sub(fixity, "messageDigestOriginator", "curated")
        if artifact.get("bytes") is not None:
            _sub(chars, "size", str(int(artifact["bytes"])))
        local = Path(path) if Path(path).is_absolute() else workspace / path
        fmt = _sub(chars, "format")
        fid = None
        if local.is_file():
            try:
                fid = identify_format(local)
            except OSError:
                fid = None
        designation = _sub(fmt, "formatDesignation")
        _sub(designation, "formatName", fid.name if fid else "unknown (file not present now)")
        if fid is not None and fid.puid:
            registry = _sub(fmt, "formatRegistry")
            _sub(registry, "formatRegistryName", "PRONOM")
            _sub(registry, "formatRegistryKey", fid.puid)
            _sub(registry, "formatRegistryRole", "specification")
            note = f"identified by {fid.basis}" + (
                f"; profile {fid.profile}" if fid.profile else ""
            )
            _sub(fmt, "formatNote", note)
    _sub(obj, "originalName", path)


def _agents_of(entry: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(identifier type, value, name, agent type)`` of the software and person of an entry."""
    tool = entry.get("tool") or {}
    out = [
        (
            "software",
            f"{tool.get('name') or 'curated'} {tool.get('version') or ''}".strip(),
            str(tool.get("name") or "curated"),
            "software",
        )
    ]
    agent = entry.get("agent") or {}
    if agent.get("orcid"):
        out.append(
            ("ORCID", str(agent["orcid"]), str(agent.get("name") or agent["orcid"]), "person")
        )
    elif agent.get("name"):
        out.append(("name", str(agent["name"]), str(agent["name"]), "person"))
    return out


def premis_document(log: CuratorLog, *, entries: Iterable[dict[str, Any]] | None = None) -> bytes:
    """The PREMIS 3.0 XML document (UTF-8 bytes) describing a curator log.

    Raises
    ------
    LogError
        When the log holds no entry (PREMIS needs at least one object).
    """
    from lxml import etree

    rows = list(entries if entries is not None else log.entries())
    objects: dict[str, dict[str, Any]] = {}
    for e in rows:
        for a in [*(e.get("inputs") or []), *(e.get("outputs") or [])]:
            if isinstance(a, dict) and a.get("path"):
                objects.setdefault(_object_key(a), a)
    if not objects:
        msg = "the curator log records no inputs or outputs yet: there is nothing for PREMIS to describe"
        raise LogError(msg, path=log.path)
    root = etree.Element(f"{{{PREMIS_NS}}}premis", nsmap={"premis": PREMIS_NS, "xsi": XSI_NS})
    root.set("version", "3.0")
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{PREMIS_NS} {PREMIS_XSD}")
    for artifact in objects.values():
        _add_object(root, artifact, log.root)
    agents: dict[tuple[str, str], tuple[str, str]] = {}
    for e in rows:
        event = _sub(root, "event")
        _identifier(event, "event", "curated log entry", str(e.get("id") or f"seq {e.get('seq')}"))
        _sub(event, "eventType", EVENT_TYPES.get(str(e.get("action")), OTHER_EVENT))
        _sub(event, "eventDateTime", str(e.get("time") or ""))
        detail = _sub(event, "eventDetailInformation")
        params = e.get("params") or {}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))[:2000]
        _sub(
            detail,
            "eventDetail",
            f"curated {e.get('action')} (step {e.get('step')} {e.get('step_name') or ''}, "
            f"log seq {e.get('seq')}, entry hash {e.get('hash')})"
            + (f"; parameters: {shown}" if shown else ""),
        )
        outcome = _sub(event, "eventOutcomeInformation")
        _sub(outcome, "eventOutcome", OUTCOMES.get(str(e.get("status")), str(e.get("status"))))
        if e.get("message"):
            note = _sub(outcome, "eventOutcomeDetail")
            _sub(note, "eventOutcomeDetailNote", str(e["message"])[:2000])
        for id_type, value, name, kind in _agents_of(e):
            agents.setdefault((id_type, value), (name, kind))
            _linking(
                event,
                "Agent",
                id_type,
                value,
                "executing program" if kind == "software" else "implementer",
            )
        for a in e.get("inputs") or []:
            if isinstance(a, dict) and a.get("path"):
                _linking(event, "Object", "curated path@digest", _object_key(a), "source")
        for a in e.get("outputs") or []:
            if isinstance(a, dict) and a.get("path"):
                _linking(event, "Object", "curated path@digest", _object_key(a), "outcome")
    for (id_type, value), (name, kind) in agents.items():
        agent = _sub(root, "agent")
        _identifier(agent, "agent", id_type, value)
        _sub(agent, "agentName", name)
        _sub(agent, "agentType", kind)
        if kind == "software" and " " in value:
            _sub(agent, "agentVersion", value.rsplit(" ", 1)[-1])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_premis(log: CuratorLog, path: str | Path) -> Path:
    """Write the log's PREMIS document to ``path`` after validating it against PREMIS 3.0.

    Raises
    ------
    LogError
        When the log is empty or the document would not validate (a bug: nothing is written).
    """
    data = premis_document(log)
    problems = validate_premis(data)
    if problems:
        msg = "the PREMIS document does not validate against PREMIS 3.0: " + "; ".join(problems[:5])
        raise LogError(msg, path=path)
    return atomic_write_bytes(path, data)
