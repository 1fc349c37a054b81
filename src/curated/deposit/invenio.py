"""InvenioRDM adapter (Zenodo is an InvenioRDM instance with its own limits).

Sequence: ``POST /api/records`` (draft) → ``PUT /api/records/{id}/draft`` (metadata,
replaces all) → per file ``POST …/draft/files [{"key"}]`` → ``PUT …/files/{key}/content``
→ ``POST …/files/{key}/commit`` → ``POST …/draft/actions/publish``; with a community,
``PUT …/draft/review`` + ``POST …/draft/actions/submit-review`` instead. New version:
``POST /api/records/{id}/versions`` + ``POST …/draft/actions/files-import``.

Multipart transfer (``{"transfer": {"type": "M", "parts", "part_size"}}``) is used for
files above ``multipart_threshold`` when the instance accepts it; an instance that
answers it has no such transfer type (400 on ``transfer.type``), or that takes it for a
plain upload (an instance before transfer types: no ``links.parts``, no ``transfer`` in
the answer), gets single PUTs from then on, and any other refusal is reported. After a multipart commit the checksum
is empty or ``multipart:<etag>-<part size>`` until a background task computes the md5
(invenio-records-resources ``services/files/transfer/providers/multipart.py``), so the
file is read again until its ``md5:`` arrives.

Vocabulary ids (affiliations, funders, awards) must exist in the instance's vocabularies
(``/api/affiliations/{id}``, ``/api/funders/{id}``, ``/api/awards/{id}``): Zenodo has them,
a small instance often has none, so an id the instance lacks is replaced by the name.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any
from urllib.parse import quote

from curated.deposit._base import (
    body_errors,
    made_since,
    make_session,
    need,
    not_published,
    obj,
    one_lost_draft,
    rows,
)
from curated.deposit.http import FileSlice, Hashes, PartBody, RetryPolicy
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError
from curated.metadata.crosswalk.invenio import award_id, identifier_ok

PART_SIZE = 512 * 2**20


class InvenioRepository:
    """Deposit into an InvenioRDM instance (``--to invenio``) or Zenodo (``--to zenodo``)."""

    kind = "invenio"
    keeps_folders = True
    single_request = False

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        token_env: str | None = None,
        collection: str | None = None,
        retry: RetryPolicy | None = None,
        multipart_threshold: int = 2 * 2**30,
        part_size: int = PART_SIZE,
        name: str = "InvenioRDM",
        checksum_wait: float = 900.0,
        kind: str = "invenio",
    ) -> None:
        self.kind = kind
        """The ``--to`` value it serves (``zenodo`` is an InvenioRDM instance)."""
        base = url.rstrip("/")
        self.api = base if base.endswith("/api") else base + "/api"
        self.collection = collection
        self.community_id: str | None = None
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.multipart_ok = True
        self.name = name
        self.checksum_wait = checksum_wait
        """Seconds to wait for the md5 of a multipart upload before leaving it to ``--resume``."""
        self._token = token
        self.vocabulary: dict[str, bool] = {}
        """``kind/id`` → whether the instance's vocabulary has it (read by :meth:`review`)."""
        self.online = False
        """Whether the instance has been reached (vocabulary ids are then checked with it)."""
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = make_session(
            self.api,
            headers=headers,
            token=token,
            token_env=token_env,
            repository=name,
            retry=retry,
        )
        self.http.advice[413] = (
            f"curated sends a file of up to {multipart_threshold} bytes in one request and a "
            f"larger one in parts of {part_size} bytes where the instance has multipart "
            "transfer: ask its administrators to raise the request body limit of its web "
            "server or proxy (or whether it takes files in parts)"
        )

    # ------------------------------------------------------------ helpers
    def _draft(self, state: dict[str, Any]) -> str:
        return f"/records/{state['id']}/draft"

    def _file(self, state: dict[str, Any], key: str) -> str:
        return f"{self._draft(state)}/files/{quote(key, safe='/')}"

    # ------------------------------------------------------------ protocol
    def check_access(self) -> None:
        self.http.request("GET", "/user/records", params={"size": 1}, what="checking the token")
        self.online = True
        if self.collection:
            r = self.http.request(
                "GET",
                f"/communities/{quote(self.collection)}",
                allow=(404,),
                what="looking up the community",
            )
            if r.status == 404:
                msg = f"the community {self.collection!r} does not exist at {self.api}; check --target (the community's URL slug)"
                raise DepositError(msg, field="target")
            self.community_id = str(need(r.data, "id", what="looking up the community"))

    def can_inspect(self) -> bool:
        return bool(self._token)

    def inspect(self) -> None:
        """Read-only look for ``--dry-run``: the token and community; vocabularies are read in review."""
        self.check_access()

    def _has(self, kind: str, ident: str) -> bool:
        """Whether the instance's ``kind`` vocabulary has ``ident``; offline, Zenodo is assumed to."""
        if not self.online:
            return self.name == "Zenodo"
        key = f"{kind}/{ident}"
        if key not in self.vocabulary:
            r = self.http.request(
                "GET",
                f"/{kind}/{quote(ident, safe='')}",
                allow=(404, 410),
                what=f"looking up {ident} in the instance's {kind}",
            )
            self.vocabulary[key] = r.status == 200
        return self.vocabulary[key]

    def review(
        self, metadata: Any, *, record: dict[str, Any], publish: bool
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Replace vocabulary ids the instance lacks by names; find awards by their id.

        ``online`` reviews (a deposit, or a dry run with a token) ask the instance;
        otherwise the ids are kept for Zenodo and reported as unchecked elsewhere.
        """
        draft = copy.deepcopy(metadata)
        md = draft["metadata"]
        findings: list[dict[str, Any]] = []
        named: list[str] = []
        for c in md.get("creators") or []:
            for aff in c.get("affiliations") or []:
                if "id" in aff and not self._has("affiliations", aff["id"]):
                    named.append(f"affiliation {aff['id']} ({aff.get('name')})")
                    del aff["id"]
        grants = [
            g
            for g in (record.get("study") or {}).get("funding") or []
            if isinstance(g, dict) and g.get("funder")
        ]
        dropped_awards: list[str] = []
        for f, g in zip(md.get("funding") or [], grants, strict=False):
            fid = f["funder"].get("id")
            if fid and not self._has("funders", fid):
                named.append(f"funder {fid} ({f['funder'].get('name')})")
                del f["funder"]["id"]
                fid = None
            if "award" in f or not g.get("award_id"):
                continue
            aid = award_id(fid, str(g["award_id"]))
            if aid and self._has("awards", aid):
                f["award"] = {"id": aid}
            else:
                dropped_awards.append(str(g["award_id"]))
        if named:
            findings.append(
                {
                    "what": f"{self.name}: the instance's vocabularies lack {', '.join(named)}; sent by name instead",
                    "advice": "nothing to do (ask the repository to load ROR if ids matter)",
                    "blocking": False,
                }
            )
        if dropped_awards:
            findings.append(
                {
                    "what": f"{self.name}: award {', '.join(dropped_awards)} has no title and is not in the "
                    "instance's awards vocabulary, which an award needs; only its funder is sent",
                    "advice": "add study.funding[].award_title to curated.yaml to carry the award number",
                    "blocking": False,
                }
            )
        if not self.online and self.name != "Zenodo":
            findings.append(
                {
                    "what": f"{self.name}: affiliation/funder/award ids are checked against the instance's "
                    "vocabularies when the deposit runs (no token in this dry run)",
                    "advice": "ids the instance lacks will be sent as names",
                    "blocking": False,
                }
            )
        findings += self._publisher(md, publish=publish)
        findings += _unusable_related(md)
        return draft, findings

    def _publisher(self, md: dict[str, Any], *, publish: bool) -> list[dict[str, Any]]:
        """Fill or ask for ``metadata.publisher``, which the DOI registered at publication needs.

        InvenioRDM refuses to publish without one ("Missing publisher field required for
        DOI registration", invenio-rdm-records ``services/pids/providers/datacite.py``),
        after every file has been sent. Zenodo's own upload form and legacy API put
        "Zenodo" there; another instance's default is its own configuration, so the
        curator names the publisher.
        """
        if str(md.get("publisher") or "").strip():
            return []
        if self.kind == "zenodo":
            md["publisher"] = "Zenodo"
            return [
                {
                    "what": "Zenodo: the record names no publisher; sent as 'Zenodo', as Zenodo's own upload form does",
                    "advice": "set study.publisher to name another",
                    "blocking": False,
                }
            ]
        return [
            {
                "what": f"{self.name}: the record names no publisher (study.publisher), which the DOI "
                "registered at publication needs; the instance refuses to publish without it",
                "advice": "set study.publisher (`curated metadata set WORKSPACE study.publisher NAME`) and rebuild the bag",
                "blocking": publish,
            }
        ]

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        r = self.http.request("POST", "/records", json_body=metadata, what="creating the draft")
        body_errors(r, "creating the draft", self.http)
        rid = str(need(r.data, "id", what="creating the draft"))
        return {
            "id": rid,
            "html": (r.data.get("links") or {}).get("self_html"),
            "community": self.community_id,
        }

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        r = self.http.request(
            "POST", f"/records/{previous['record_id']}/versions", what="creating a new version"
        )
        rid = str(need(r.data, "id", what="creating a new version"))
        state = {
            "id": rid,
            "html": (r.data.get("links") or {}).get("self_html"),
            "community": self.community_id,
        }
        self.http.request(
            "POST",
            f"{self._draft(state)}/actions/files-import",
            allow=(404,),
            expect_json=False,
            what="importing the previous version's files",
        )
        return state

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        r = self.http.request(
            "PUT", self._draft(state), json_body=metadata, what="setting the metadata"
        )
        body_errors(r, "setting the metadata", self.http)

    def remote_files(self, state: dict[str, Any]) -> dict[str, RemoteFile]:
        r = self.http.request(
            "GET", f"{self._draft(state)}/files", what="listing the draft's files"
        )
        out = {}
        for e in rows(obj(r.data).get("entries")):
            if e.get("status", "completed") != "completed" or not isinstance(e.get("key"), str):
                continue
            if not str(e.get("checksum") or "").startswith("md5:"):
                out[e["key"]] = self._settled(state, e["key"], e, f"checking {e['key']}")
                continue
            algo, _, value = str(e.get("checksum") or "").partition(":")
            out[e["key"]] = RemoteFile(
                e["key"], e.get("size"), value or None, algo or "md5", e.get("file_id")
            )
        return out

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        self.http.request(
            "DELETE",
            self._file(state, remote.name),
            allow=(404,),
            expect_json=False,
            what=f"removing {remote.name}",
        )

    def _drop_pending(self, state: dict[str, Any], item: UploadItem, what: str) -> None:
        """Remove the draft's file entry ``item`` (a pending upload; none there is fine)."""
        self.http.request(
            "DELETE", self._file(state, item.name), allow=(404,), expect_json=False, what=what
        )

    def _initiate(
        self, state: dict[str, Any], item: UploadItem, entry: dict[str, Any], save: Any, what: str
    ) -> None:
        """Start the file's upload on the draft (multipart above the threshold, where the
        instance has it) and keep its transfer, part size and part URLs in ``entry``."""
        spec: dict[str, Any] = {"key": item.name}
        transfer = "L"
        if self.multipart_ok and item.size > self.multipart_threshold:
            parts = max(1, math.ceil(item.size / self.part_size))
            spec.update(
                {
                    "size": item.size,
                    "transfer": {"type": "M", "parts": parts, "part_size": self.part_size},
                }
            )
            transfer = "M"
        r = self.http.request(
            "POST", f"{self._draft(state)}/files", json_body=[spec], allow=(400,), what=what
        )
        if r.status == 400 and transfer == "M" and _no_multipart(r.data):
            self.multipart_ok = False  # feature-detected: this instance has no multipart transfer
            transfer, spec = "L", {"key": item.name}
            r = self.http.request(
                "POST", f"{self._draft(state)}/files", json_body=[spec], allow=(400,), what=what
            )
        if r.status == 400:
            # a pending entry of that name ("File with key … already exists"): removed and
            # the upload started again; any other refusal comes back and is reported
            self._drop_pending(state, item, what)
            r = self.http.request(
                "POST", f"{self._draft(state)}/files", json_body=[spec], what=what
            )
        body_errors(r, what, self.http)
        part_urls = None
        if transfer == "M" and _taken_as_plain(r.data, item.name):
            # an instance before transfer types made a plain pending file of it, keeping the
            # multipart fields as its data: started again plainly, before any byte is sent
            self.multipart_ok = False
            self._drop_pending(state, item, what)
            transfer, spec = "L", {"key": item.name}
            r = self.http.request(
                "POST", f"{self._draft(state)}/files", json_body=[spec], what=what
            )
            body_errors(r, what, self.http)
        if transfer == "M":
            found = [e for e in rows(obj(r.data).get("entries")) if e.get("key") == item.name]
            links = (found[0].get("links") or {}).get("parts") if found else None
            try:
                if not links:
                    raise DepositError(
                        f"{what}: the repository accepted a multipart upload but gave no part URLs"
                    )
                part_urls = _part_links(links, int(spec["transfer"]["parts"]), what)
            except DepositError:
                self._drop_pending(state, item, what)  # so that a re-run starts it afresh
                raise
        entry.update(
            {
                "initiated": True,
                "transfer": transfer,
                "parts_done": [],
                "part_size": self.part_size,
            }
        )
        if part_urls is not None:
            entry["parts"] = part_urls
        save()

    def upload(self, state, item: UploadItem, entry, save, advance) -> Uploaded:  # type: ignore[no-untyped-def]
        what = f"uploading {item.name}"
        if entry.get("committed"):
            # An earlier run committed the bytes and stopped waiting for the md5.
            r = self.http.request("GET", self._file(state, item.name), what=what)
            return Uploaded(self._settled(state, item.name, obj(r.data), what), None)
        if entry.get("initiated"):
            self._resume_upload(state, item, entry, save, what)
        if not entry.get("initiated"):
            self._initiate(state, item, entry, save, what)
        local = None
        if entry.get("transfer") == "M":
            # Parts are hashed in order as they go; when an earlier run sent some, the
            # deposit re-reads the file once instead to check the server's md5.
            done = set(entry.get("parts_done") or [])
            running: Hashes | None = Hashes() if not done else None
            for p in sorted(entry["parts"], key=lambda p: p["part"]):
                n = p["part"]
                if n in done:
                    continue
                size = int(entry.get("part_size") or self.part_size)
                offset = (n - 1) * size
                length = min(size, item.size - offset)
                part = PartBody(item.path, offset, length, on_read=advance, running=running)
                self.http.request(
                    "PUT", p["url"], body=part, expect_json=False, what=f"{what} (part {n})"
                )
                running = part.hashes
                entry["parts_done"].append(n)
                save()
            local = running.result() if running is not None else None
        else:
            holder: list[FileSlice] = []

            def body() -> FileSlice:
                s = FileSlice(item.path, on_read=advance)
                holder[:] = [s]
                return s

            self.http.request(
                "PUT",
                f"{self._file(state, item.name)}/content",
                body=body,
                expect_json=False,
                what=what,
            )
            h = holder[0].hashes
            local = {**h.hexdigests(), "size": h.size}
        r = self.http.request(
            "POST", f"{self._file(state, item.name)}/commit", what=f"{what} (commit)"
        )
        body_errors(r, f"{what} (commit)", self.http)
        entry["committed"] = True
        save()
        return Uploaded(self._settled(state, item.name, obj(r.data), what), local)

    def _resume_upload(
        self, state: dict[str, Any], item: UploadItem, entry: dict[str, Any], save: Any, what: str
    ) -> None:
        """Pick up an upload an earlier run initiated: the pending file is read again.

        A file the draft no longer has is initiated afresh. A multipart upload takes the
        part URLs the file lists now: the ones an earlier run kept may have expired
        (presigned storage URLs; invenio-records-resources expands ``links.parts`` on
        each read of the pending file).
        """
        r = self.http.request(
            "GET", self._file(state, item.name), allow=(404,), what=f"{what} (resuming)"
        )
        if r.status == 404:
            for k in ("initiated", "transfer", "parts", "parts_done", "part_size"):
                entry.pop(k, None)
            save()
            return
        if entry.get("transfer") != "M":
            return
        links = (obj(r.data).get("links") or {}).get("parts") if isinstance(r.data, dict) else None
        if links:
            entry["parts"] = _part_links(links, len(entry.get("parts") or []), what)
            save()

    def _settled(
        self, state: dict[str, Any], key: str, data: dict[str, Any], what: str
    ) -> RemoteFile:
        """The committed file with its md5, reading it again while the checksum is pending.

        A multipart commit answers with an empty or ``multipart:<etag>-<part size>``
        checksum; a background task writes the ``md5:`` later.
        """
        polls = 0
        deadline = time.monotonic() + self.checksum_wait
        while not str(data.get("checksum") or "").startswith("md5:"):
            if polls and time.monotonic() >= deadline:
                msg = (
                    f"{what}: {self.name} has not computed the file's md5 yet (it reports "
                    f"{data.get('checksum') or 'no checksum'!r}); the bytes are committed: "
                    "re-run with --resume later to verify them"
                )
                raise DepositError(msg, details={"checksum": data.get("checksum")})
            self.http.retry.sleep(min(self.http.retry.backoff * 2 ** min(polls, 5), 30.0))
            polls += 1
            data = obj(
                self.http.request(
                    "GET", self._file(state, key), what=f"{what} (waiting for its checksum)"
                ).data
            )
        algo, _, value = str(data.get("checksum")).partition(":")
        return RemoteFile(key, data.get("size"), value or None, algo, data.get("file_id"))

    def finalize(self, state: dict[str, Any]) -> None:
        if state.get("community"):
            body = {"receiver": {"community": state["community"]}, "type": "community-submission"}
            r = self.http.request(
                "PUT",
                f"{self._draft(state)}/review",
                json_body=body,
                what="requesting the community's review",
            )
            body_errors(r, "requesting the community's review", self.http)

    def publish(self, state: dict[str, Any]) -> Landing:
        if state.get("community"):
            r = self.http.request(
                "POST",
                f"{self._draft(state)}/actions/submit-review",
                json_body={},
                what="submitting to the community",
            )
            body_errors(r, "submitting to the community", self.http)
            return Landing(state["id"], "submitted", url=state.get("html"))
        r = self.http.request("POST", f"{self._draft(state)}/actions/publish", what="publishing")
        body_errors(r, "publishing", self.http)
        data = r.data if isinstance(r.data, dict) else {}
        if data.get("is_published") is not True or str(data.get("id", state["id"])) != str(
            state["id"]
        ):
            # Not the published record the service answers with (or another record than
            # this draft): ask the record itself rather than take a bare success status,
            # or another record's id and DOI, for this draft's publication.
            landing = self.published(state)
            if landing is None:
                lacking = "but the record is not published"
                raise not_published(self.http, r, lacking, state["id"])
            return landing
        doi = ((data.get("pids") or {}).get("doi") or {}).get("identifier")
        url = (data.get("links") or {}).get("self_html") or state.get("html")
        return Landing(str(state["id"]), "published", url=url, doi=doi)

    def find_draft(self, metadata: Any, since: str) -> dict[str, Any] | None:
        """The account's one unpublished draft with this title created since ``since``
        (a create whose answer was lost), or ``None``."""
        title = ((metadata or {}).get("metadata") or {}).get("title")
        r = self.http.request(
            "GET",
            "/user/records",
            params={"q": "is_published:false", "sort": "newest", "size": 25},
            what="looking for a draft an earlier run created",
        )
        hits = (obj(r.data).get("hits") or {}).get("hits") or []
        # timestamps compared as instants (an offset other than ours, no string order); a
        # draft without one proves nothing; several matches are the curator's to resolve
        found = [
            (
                f"draft {h['id']}",
                {
                    "id": str(h["id"]),
                    "html": (h.get("links") or {}).get("self_html"),
                    "community": self.community_id,
                },
            )
            for h in hits
            if isinstance(h, dict)
            and h.get("id") is not None
            and not h.get("is_published")
            and (h.get("metadata") or {}).get("title") == title
            and made_since(h.get("created"), since)
        ]
        return one_lost_draft(found, repository=self.name, since=since)

    def published(self, state: dict[str, Any]) -> Landing | None:
        """The record's landing when an earlier publish went through (its answer lost)."""
        if state.get("community"):
            return None
        r = self.http.request(
            "GET",
            f"/records/{state['id']}",
            allow=(404, 410),
            what="checking whether it was published",
        )
        if r.status != 200 or not isinstance(r.data, dict) or r.data.get("is_published") is False:
            return None
        if str(r.data.get("id", state["id"])) != str(state["id"]):
            return None  # another record's answer is not this draft's publication
        doi = ((r.data.get("pids") or {}).get("doi") or {}).get("identifier")
        url = (r.data.get("links") or {}).get("self_html") or state.get("html")
        return Landing(str(state["id"]), "published", url=url, doi=doi)

    def landing(self, state: dict[str, Any]) -> Landing:
        return Landing(state["id"], "draft", url=state.get("html"))

    def plan(
        self, metadata: Any, items: list[UploadItem], *, publish: bool, new_version_of: str | None
    ) -> list[PlannedCall]:
        a = self.api
        calls = [PlannedCall("GET", f"{a}/user/records?size=1", note="check the token")]
        if self.collection:
            calls.append(
                PlannedCall(
                    "GET", f"{a}/communities/{self.collection}", note="look up the community"
                )
            )
        if new_version_of:
            calls.append(
                PlannedCall("POST", f"{a}/records/{new_version_of}/versions", note="new version")
            )
            calls.append(PlannedCall("POST", f"{a}/records/{{id}}/draft/actions/files-import"))
        else:
            calls.append(PlannedCall("POST", f"{a}/records", metadata, note="create the draft"))
        calls.append(
            PlannedCall("PUT", f"{a}/records/{{id}}/draft", metadata, note="set the metadata")
        )
        for it in items:
            calls.append(PlannedCall("POST", f"{a}/records/{{id}}/draft/files", [{"key": it.name}]))
            calls.append(
                PlannedCall(
                    "PUT",
                    f"{a}/records/{{id}}/draft/files/{it.name}/content",
                    f"<{it.size} bytes from {it.path}>",
                )
            )
            calls.append(
                PlannedCall(
                    "POST", f"{a}/records/{{id}}/draft/files/{it.name}/commit", note="compare md5"
                )
            )
        if self.collection:
            calls.append(
                PlannedCall(
                    "PUT", f"{a}/records/{{id}}/draft/review", note="community review request"
                )
            )
        if publish:
            action = "submit-review" if self.collection else "publish"
            calls.append(PlannedCall("POST", f"{a}/records/{{id}}/draft/actions/{action}"))
        return calls

    def close(self) -> None:
        self.http.close()


def _no_multipart(data: Any) -> bool:
    """Whether a 400 to a multipart initiation says the instance has no multipart transfer.

    invenio-records-resources validates each file's ``transfer`` against the transfer
    types it has registered (``RECORDS_RESOURCES_TRANSFERS``, ``services/files/schema.py``
    ``TransferSchema``): one without ``M`` answers a validation error on the file's
    ``transfer.type`` (``{"field": "0.transfer.type", "messages": ["Unsupported value: M"]}``).
    Any other 400 (a refused size or part count, a storage error) is no reason to send
    the file another way: it is reported.
    """
    errors = data.get("errors") if isinstance(data, dict) else None
    for e in errors if isinstance(errors, list) else []:
        where = str(e.get("field") or "") if isinstance(e, dict) else ""
        path = [p for p in where.split(".") if not p.isdigit()]
        if path in (["transfer", "type"], ["transfer"]):
            return True
    return False


def _taken_as_plain(data: Any, key: str) -> bool:
    """Whether an answer to a multipart initiation shows a plain pending file instead.

    invenio-records-resources before 8.0 (InvenioRDM 12 and older) has no transfer types:
    its ``InitFileSchema`` lets unknown fields in (``unknown = INCLUDE``) and
    ``LocalTransfer.init_file`` keeps them as the file's data, so the file is made all the
    same, as a local one whose content is one PUT: it is answered with no ``transfer``
    and no ``links.parts``. Since 8.0 the answer names the file's ``transfer`` (``M``,
    with its part links); one naming ``M`` without them is the repository's fault.
    """
    found = [e for e in rows(obj(data).get("entries")) if e.get("key") == key]
    if len(found) != 1:
        return False
    links, transfer = obj(found[0].get("links")), obj(found[0].get("transfer"))
    return not links.get("parts") and transfer.get("type", "L") != "M"


def _part_links(links: Any, parts: int, what: str) -> list[dict[str, Any]]:
    """The part URLs of a multipart upload, once they are seen to be parts 1 to ``parts``.

    A list that leaves a part out would have the commit assemble another file than the
    bag's (invenio-records-resources links ``parts`` per the initialised count).
    """
    try:
        out = [{"part": int(p["part"]), "url": str(p["url"])} for p in links]
    except (KeyError, TypeError, ValueError):
        out = []
    if sorted(p["part"] for p in out) != list(range(1, parts + 1)):
        msg = (
            f"{what}: the repository accepted a multipart upload of {parts} parts but links "
            f"{len(out)} part URLs that are not parts 1 to {parts}; nothing is sent: re-run "
            "with --resume to start it again"
        )
        raise DepositError(msg, details={"parts": parts, "links": len(out)})
    return out


def _unusable_related(md: dict[str, Any]) -> list[dict[str, Any]]:
    """Leave out related identifiers InvenioRDM would refuse for their scheme (a URL
    without ``https://``, a malformed DOI...), which would stop the publication."""
    kept, left = [], []
    for rel in md.get("related_identifiers") or []:
        if identifier_ok(str(rel.get("scheme")), str(rel.get("identifier") or "")):
            kept.append(rel)
        else:
            left.append(f"{rel.get('identifier')} ({str(rel.get('scheme')).upper()})")
    if not left:
        return []
    if kept:
        md["related_identifiers"] = kept
    else:
        md.pop("related_identifiers", None)
    return [
        {
            "what": f"InvenioRDM refuses related identifiers that are not what their type says: "
            f"{', '.join(left)}; left out",
            "advice": "correct study.related_identifiers (a URL starts with https://) and rebuild the bag",
            "blocking": False,
        }
    ]


def zenodo(url: str = "https://zenodo.org", **kwargs: Any) -> InvenioRepository:
    """Zenodo: an InvenioRDM instance."""
    kwargs.setdefault("name", "Zenodo")
    return InvenioRepository(url, kind="zenodo", **kwargs)
