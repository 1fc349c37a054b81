"""InvenioRDM adapter (Zenodo is an InvenioRDM instance with its own limits).

Sequence: ``POST /api/records`` (draft) → ``PUT /api/records/{id}/draft`` (metadata,
replaces all) → per file ``POST …/draft/files [{"key"}]`` → ``PUT …/files/{key}/content``
→ ``POST …/files/{key}/commit`` → ``POST …/draft/actions/publish``; with a community,
``PUT …/draft/review`` + ``POST …/draft/actions/submit-review`` instead. New version:
``POST /api/records/{id}/versions`` + ``POST …/draft/actions/files-import``.

Multipart transfer (``{"transfer": {"type": "M", "parts", "part_size"}}``) is used for
files above ``multipart_threshold`` when the instance accepts it; an instance that
refuses it (400) gets single PUTs from then on.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from curated.deposit._base import body_errors, make_session, need
from curated.deposit.http import FileSlice, Hashes, PartBody, RetryPolicy
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError

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
    ) -> None:
        base = url.rstrip("/")
        self.api = base if base.endswith("/api") else base + "/api"
        self.collection = collection
        self.community_id: str | None = None
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.multipart_ok = True
        self.name = name
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

    # ------------------------------------------------------------ helpers
    def _draft(self, state: dict[str, Any]) -> str:
        return f"/records/{state['id']}/draft"

    def _file(self, state: dict[str, Any], key: str) -> str:
        return f"{self._draft(state)}/files/{quote(key, safe='/')}"

    # ------------------------------------------------------------ protocol
    def check_access(self) -> None:
        self.http.request("GET", "/user/records", params={"size": 1}, what="checking the token")
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
        for e in (r.data or {}).get("entries") or []:
            if e.get("status", "completed") != "completed":
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

    def upload(self, state, item: UploadItem, entry, save, advance) -> Uploaded:  # type: ignore[no-untyped-def]
        what = f"uploading {item.name}"
        if not entry.get("initiated"):
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
            if r.status == 400 and transfer == "M":
                self.multipart_ok = (
                    False  # feature-detected: this instance has no multipart transfer
                )
                transfer = "L"
                r = self.http.request(
                    "POST",
                    f"{self._draft(state)}/files",
                    json_body=[{"key": item.name}],
                    allow=(400,),
                    what=what,
                )
            if r.status == 400:
                self.http.request(
                    "DELETE",
                    self._file(state, item.name),
                    allow=(404,),
                    expect_json=False,
                    what=what,
                )
                r = self.http.request(
                    "POST", f"{self._draft(state)}/files", json_body=[{"key": item.name}], what=what
                )
            body_errors(r, what, self.http)
            entry.update(
                {
                    "initiated": True,
                    "transfer": transfer,
                    "parts_done": [],
                    "part_size": self.part_size,
                }
            )
            if transfer == "M":
                found = [e for e in (r.data or {}).get("entries", []) if e.get("key") == item.name]
                links = (found[0].get("links") or {}).get("parts") if found else None
                if not links:
                    raise DepositError(
                        f"{what}: the repository accepted a multipart upload but gave no part URLs"
                    )
                entry["parts"] = [{"part": int(p["part"]), "url": p["url"]} for p in links]
            save()
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
            holder = []

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
        algo, _, value = str((r.data or {}).get("checksum") or "").partition(":")
        remote = RemoteFile(
            item.name,
            (r.data or {}).get("size"),
            value or None,
            algo or "md5",
            (r.data or {}).get("file_id"),
        )
        return Uploaded(remote, local)

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
        data = r.data or {}
        doi = ((data.get("pids") or {}).get("doi") or {}).get("identifier")
        url = (data.get("links") or {}).get("self_html") or state.get("html")
        return Landing(str(data.get("id") or state["id"]), "published", url=url, doi=doi)

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
        hits = ((r.data or {}).get("hits") or {}).get("hits") or []
        found = [
            h
            for h in hits
            if isinstance(h, dict)
            and not h.get("is_published")
            and (h.get("metadata") or {}).get("title") == title
            and str(h.get("created") or since) >= since[:16]
        ]
        if len(found) != 1:
            return None
        h = found[0]
        return {
            "id": str(h["id"]),
            "html": (h.get("links") or {}).get("self_html"),
            "community": self.community_id,
        }

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
        if r.status != 200 or not isinstance(r.data, dict):
            return None
        doi = ((r.data.get("pids") or {}).get("doi") or {}).get("identifier")
        url = (r.data.get("links") or {}).get("self_html") or state.get("html")
        return Landing(str(r.data.get("id") or state["id"]), "published", url=url, doi=doi)

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


def zenodo(url: str = "https://zenodo.org", **kwargs: Any) -> InvenioRepository:
    """Zenodo: an InvenioRDM instance."""
    repo = InvenioRepository(url, name="Zenodo", **kwargs)
    repo.kind = "zenodo"
    return repo
