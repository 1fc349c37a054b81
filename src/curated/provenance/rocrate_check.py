"""Validate an RO-Crate offline: ``roc-validator`` with a seeded HTTP cache, plus our own checks.

``roc-validator`` resolves the crate's JSON-LD ``@context`` over HTTP through a
``requests_cache`` SQLite cache. Offline, a cache miss fails the validation.
The ``rocrate`` package ships the RO-Crate context (``rocrate/data/ro-crate.jsonld``,
the 1.x terms), so we store that document in a private cache under the context
URLs and run the validator in offline mode against it: no network is touched.

Independently of the validator (and when it is not installed), the crate is
read back with ro-crate-py and the Process Run Crate 0.5 MUSTs are checked
directly: root ``conformsTo`` the profile, every action a ``CreateAction`` or
``UpdateAction`` whose ``instrument`` is a ``SoftwareApplication``, and every
action listed in the root's ``mentions``.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

CONTEXT_URLS = (
    "https://w3id.org/ro/crate/1.1/context",
    "https://w3id.org/ro/crate/1.2/context",
    "https://w3id.org/ro/crate/1.3/context",
)
PROFILE_IDS = {
    "https://w3id.org/ro/wfrun/process/0.5": "process-run-crate-0.5",
    "https://w3id.org/ro/wfrun/workflow/0.5": "workflow-run-crate-0.5",
    "https://w3id.org/ro/wfrun/provenance/0.5": "provenance-run-crate-0.5",
}
_ACTIONS = ("CreateAction", "UpdateAction")
_lock = threading.Lock()


def _context_document() -> bytes:
    import rocrate

    data = json.loads(
        (Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_text(encoding="utf-8")
    )
    return json.dumps({"@context": data["@context"]}).encode("utf-8")


def seed_validator_cache(cache_path: str | Path) -> Path:
    """Store the RO-Crate JSON-LD context under :data:`CONTEXT_URLS` in a requests-cache SQLite file.

    ``cache_path`` is the cache name the validator is given (``.sqlite`` is added
    by requests-cache). Returns it.
    """
    import requests
    import urllib3
    from requests_cache import CachedSession

    body = _context_document()
    session = CachedSession(
        cache_name=str(cache_path), backend="sqlite", expire_after=-1, allowable_codes=(200,)
    )
    try:
        for url in CONTEXT_URLS:
            if session.cache.contains(url=url):
                continue
            resp = requests.Response()
            resp.status_code = 200
            resp._content = body
            resp.url = url
            resp.encoding = "utf-8"
            resp.headers["Content-Type"] = "application/ld+json"
            resp.request = requests.Request("GET", url).prepare()
            resp.raw = urllib3.HTTPResponse(
                body=io.BytesIO(body),
                headers=dict(resp.headers),
                status=200,
                preload_content=False,
                request_url=url,
            )
            session.cache.save_response(resp)
    finally:
        session.close()
    return Path(cache_path)


def _metadata_file(path: Path) -> Path:
    return path / "ro-crate-metadata.json" if path.is_dir() else path


def _own_checks(crate_dir: Path) -> list[str]:
    problems: list[str] = []
    meta = _metadata_file(crate_dir)
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{meta}: cannot read the RO-Crate metadata ({exc})"]
    except RecursionError:
        return [f"{meta}: cannot read the RO-Crate metadata (its JSON is nested too deeply)"]
    if not isinstance(doc, dict) or not isinstance(doc.get("@graph", []), list):
        return [f"{meta}: the RO-Crate metadata is not a JSON-LD object with an @graph list"]
    graph = {
        e["@id"]: e
        for e in doc.get("@graph", [])
        if isinstance(e, dict) and isinstance(e.get("@id"), str)
    }
    try:
        from rocrate.rocrate import ROCrate

        ROCrate(str(crate_dir if crate_dir.is_dir() else crate_dir.parent))
    except Exception as exc:  # ro-crate-py raises plain exceptions on malformed crates
        problems.append(f"ro-crate-py cannot read the crate: {exc}")
    descriptor = graph.get("ro-crate-metadata.json", {})
    about = descriptor.get("about")
    root_id = about.get("@id", "./") if isinstance(about, dict) else "./"
    root = graph.get(root_id, {}) if isinstance(root_id, str) else {}
    if not root:
        return [*problems, "no root data entity"]

    def ids(value: Any) -> list[str | None]:
        items = value if isinstance(value, list) else [value] if value else []
        return [i["@id"] for i in items if isinstance(i, dict) and isinstance(i.get("@id"), str)]

    def types(ent: dict[str, Any]) -> list[str]:
        t = ent.get("@type", [])
        return [x for x in (t if isinstance(t, list) else [t]) if isinstance(x, str)]

    if "https://w3id.org/ro/wfrun/process/0.5" not in ids(root.get("conformsTo")):
        problems.append(
            "root data entity does not conform to the Process Run Crate 0.5 profile (conformsTo)"
        )
    mentions = set(ids(root.get("mentions")))
    for id_, ent in graph.items():
        if not set(types(ent)) & set(_ACTIONS):
            continue
        if id_ not in mentions:
            problems.append(f"action {id_} is not listed in the root's mentions")
        inst = ids(ent.get("instrument"))
        if len(inst) != 1:
            problems.append(f"action {id_} must have exactly one instrument")
        elif (
            "SoftwareApplication" not in types(graph.get(inst[0], {}))
            and "SoftwareSourceCode" not in types(graph.get(inst[0], {}))
            and "ComputationalWorkflow" not in types(graph.get(inst[0], {}))
        ):
            problems.append(f"action {id_}: instrument {inst[0]} is not a SoftwareApplication")
        # A failed step may name a file that never existed (a mistyped input): it is
        # recorded as the curator gave it, with nothing to check, and poisons nothing.
        failed = ent.get("actionStatus") == "http://schema.org/FailedActionStatus"
        for ref in ids(ent.get("object")) + ids(ent.get("result")):
            target = graph.get(ref)
            if target is None:
                problems.append(f"action {id_} refers to {ref}, which is not in the crate")
            elif (
                "File" in types(target)
                and not failed
                and "sha256" not in target
                and "contentSize" not in target
            ):
                problems.append(f"file {ref} has neither sha256 nor contentSize")
        raw_status = ent.get("actionStatus")
        status = [raw_status] if isinstance(raw_status, str) else ids(raw_status)
        if status and status[0] not in (
            "http://schema.org/CompletedActionStatus",
            "http://schema.org/FailedActionStatus",
            "http://schema.org/ActiveActionStatus",
            "http://schema.org/PotentialActionStatus",
        ):
            problems.append(f"action {id_}: unknown actionStatus {status[0]}")
        if ent.get("error") and status != ["http://schema.org/FailedActionStatus"]:
            problems.append(f"action {id_} has an error but is not FailedActionStatus")
    return problems


def validate_crate(
    path: str | Path,
    *,
    profile: str | None = None,
    severity: str = "REQUIRED",
    validator: bool = True,
) -> list[str]:
    """Validate the RO-Crate at ``path`` offline; return the problems (empty when valid).

    Parameters
    ----------
    path
        The crate folder (holding ``ro-crate-metadata.json``).
    profile
        ``roc-validator`` profile identifier; detected from the root's
        ``conformsTo`` (``process-run-crate-0.5`` for ours) when omitted.
    severity
        Lowest severity reported by the validator: ``REQUIRED`` (MUSTs) or
        ``RECOMMENDED`` (MUSTs and SHOULDs).
    validator
        Run ``roc-validator`` (when installed); our own Process Run Crate
        checks always run.
    """
    crate = Path(path)
    problems = _own_checks(crate)
    if not validator:
        return problems
    try:
        from rocrate_validator import services
        from rocrate_validator.models import ValidationSettings
    except ImportError:
        return problems
    if profile is None:
        try:
            doc = json.loads(_metadata_file(crate).read_text(encoding="utf-8"))
            graph = {e.get("@id"): e for e in doc.get("@graph", [])}
            conforms = graph.get("./", {}).get("conformsTo") or []
            conforms = conforms if isinstance(conforms, list) else [conforms]
            for c in conforms:
                if isinstance(c, dict) and c.get("@id") in PROFILE_IDS:
                    profile = PROFILE_IDS[c["@id"]]
        except (OSError, ValueError, AttributeError, TypeError, RecursionError):
            pass
        profile = profile or "ro-crate-1.1"
    # a private, throw-away cache: nothing is left behind, nothing is shared between processes
    with _lock, tempfile.TemporaryDirectory(prefix="curated-rocrate-") as tmp:
        cache = Path(tmp) / "http_cache"
        seed_validator_cache(cache)
        settings = ValidationSettings(
            rocrate_uri=str(crate.resolve()),
            profile_identifier=profile,
            requirement_severity=severity,
            offline=True,
            cache_path=cache,
            cache_max_age=-1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # rdflib's, not ours
            result = services.validate(settings)
    for issue in result.get_issues():
        check = getattr(issue, "check", None)
        ident = getattr(check, "identifier", None) or ""
        problems.append(f"{issue.severity.name} {ident}: {issue.message}".strip())
    return problems
