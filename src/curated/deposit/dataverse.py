"""Dataverse adapter (native API).

Sequence: ``POST /api/dataverses/{alias}/datasets`` (citation block) → per file
``POST /api/datasets/:persistentId/add?persistentId=…`` (multipart ``file`` + ``jsonData``
with ``directoryLabel``) → ``POST /api/datasets/:persistentId/actions/:publish?…&type=major``.
Before each write the dataset's locks (``GET /api/datasets/{id}/locks``) are polled;
a write refused because of a lock (ingest, publication) is retried after waiting.
A new version is the same dataset edited: Dataverse opens a draft version by itself.
Direct (S3) upload is not used yet: every file goes through the application server.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from curated.deposit._base import make_session, need
from curated.deposit.http import FileSlice, MultipartBody, Reply, RetryPolicy
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError


def _is_lock(reply: Reply) -> bool:
    return reply.status in (400, 403, 409) and "lock" in reply.text.lower()


def _status_errors(reply: Reply, what: str) -> None:
    if isinstance(reply.data, dict) and str(reply.data.get("status", "")).upper() == "ERROR":
        raise DepositError(f"{what}: Dataverse reports an error: {reply.data.get('message')}")


class DataverseRepository:
    """Deposit into a Dataverse collection (``--to dataverse --target ALIAS``)."""

    kind = "dataverse"
    keeps_folders = True
    single_request = True

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        token_env: str | None = None,
        collection: str | None = None,
        retry: RetryPolicy | None = None,
        lock_wait: float = 600.0,
        lock_poll: float = 2.0,
    ) -> None:
        base = url.rstrip("/")
        self.base = base.removesuffix("/api")
        self.api = self.base + "/api"
        self.collection = collection or "root"
        self.lock_wait = lock_wait
        self.lock_poll = lock_poll
        headers = {"Accept": "application/json"}
        if token:
            headers["X-Dataverse-key"] = token
        self.http = make_session(
            self.api,
            headers=headers,
            token=token,
            token_env=token_env,
            repository="Dataverse",
            retry=retry,
        )

    def _pid(self, state: dict[str, Any]) -> dict[str, str]:
        return {"persistentId": state["pid"]}

    def _wait_unlocked(self, state: dict[str, Any], what: str) -> None:
        waited = 0.0
        while True:
            r = self.http.request(
                "GET", f"/datasets/{state['id']}/locks", what=f"{what} (checking locks)"
            )
            locks = (r.data or {}).get("data") or []
            if not locks:
                return
            if waited >= self.lock_wait:
                kinds = ", ".join(sorted({str(lk.get("lockType")) for lk in locks}))
                msg = (
                    f"{what}: the dataset has been locked ({kinds}) for {waited:.0f} s; "
                    "wait for the repository (or ask its curators to release the lock), then re-run with --resume"
                )
                raise DepositError(msg, details={"locks": kinds})
            self.http.retry.sleep(self.lock_poll)
            waited += self.lock_poll

    def check_access(self) -> None:
        self.http.request("GET", "/users/:me", what="checking the API token")
        r = self.http.request(
            "GET",
            f"/dataverses/{quote(self.collection)}",
            allow=(404,),
            what="looking up the collection",
        )
        if r.status == 404:
            msg = f"the Dataverse collection {self.collection!r} does not exist at {self.base}; check --target (the collection alias)"
            raise DepositError(msg, field="target")

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        r = self.http.request(
            "POST",
            f"/dataverses/{quote(self.collection)}/datasets",
            json_body=metadata,
            what="creating the dataset",
        )
        _status_errors(r, "creating the dataset")
        data = need(r.data, "data", what="creating the dataset")
        return {"id": data["id"], "pid": data["persistentId"]}

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        state = dict(previous["state"])
        return state

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        self._wait_unlocked(state, "setting the metadata")
        r = self.http.request(
            "PUT",
            "/datasets/:persistentId/versions/:draft",
            params=self._pid(state),
            json_body=metadata["datasetVersion"],
            retry_on=_is_lock,
            what="setting the metadata",
        )
        _status_errors(r, "setting the metadata")

    def remote_files(self, state: dict[str, Any]) -> dict[str, RemoteFile]:
        r = self.http.request(
            "GET",
            "/datasets/:persistentId/versions/:latest/files",
            params=self._pid(state),
            what="listing the dataset's files",
        )
        out = {}
        for f in (r.data or {}).get("data") or []:
            df = f.get("dataFile") or {}
            name = (f.get("directoryLabel") + "/" if f.get("directoryLabel") else "") + str(
                f.get("label") or df.get("filename")
            )
            ck = df.get("checksum") or {}
            out[name] = RemoteFile(
                name,
                df.get("filesize"),
                ck.get("value"),
                str(ck.get("type") or "md5").lower().replace("-", ""),
                str(df.get("id")),
            )
        return out

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        self._wait_unlocked(state, f"removing {remote.name}")
        self.http.request(
            "DELETE",
            f"/files/{remote.id}",
            allow=(404,),
            retry_on=_is_lock,
            what=f"removing {remote.name}",
        )

    def upload(self, state, item: UploadItem, entry, save, advance) -> Uploaded:  # type: ignore[no-untyped-def]
        what = f"uploading {item.name}"
        self._wait_unlocked(state, what)
        meta = {
            "directoryLabel": item.folder,
            "restrict": False,
            "tabIngest": False,
            "description": "",
        }
        holder: list[MultipartBody] = []

        def body() -> MultipartBody:
            b = MultipartBody(
                {"jsonData": json.dumps(meta)},
                "file",
                item.basename,
                FileSlice(item.path, on_read=advance),
            )
            holder[:] = [b]
            return b

        r = self.http.request(
            "POST",
            "/datasets/:persistentId/add",
            params=self._pid(state),
            body=body,
            retry_on=_is_lock,
            what=what,
        )
        _status_errors(r, what)
        files = need(r.data, "data", "files", what=what)
        df = (files[0] if files else {}).get("dataFile") or {}
        ck = df.get("checksum") or {}
        remote = RemoteFile(
            item.name,
            df.get("filesize"),
            ck.get("value"),
            str(ck.get("type") or "md5").lower().replace("-", ""),
            str(df.get("id")),
        )
        return Uploaded(remote, holder[0].hashes.result())

    def finalize(self, state: dict[str, Any]) -> None:
        self._wait_unlocked(state, "finishing the draft")

    def publish(self, state: dict[str, Any]) -> Landing:
        self._wait_unlocked(state, "publishing")
        r = self.http.request(
            "POST",
            "/datasets/:persistentId/actions/:publish",
            params={**self._pid(state), "type": "major"},
            retry_on=_is_lock,
            what="publishing",
        )
        _status_errors(r, "publishing")
        self._wait_unlocked(state, "publishing")
        return self._landing(state, "published")

    def _landing(self, state: dict[str, Any], status: str) -> Landing:
        pid = state["pid"]
        doi = pid.removeprefix("doi:") if pid.startswith("doi:") else None
        handle = pid.removeprefix("hdl:") if pid.startswith("hdl:") else None
        url = f"{self.base}/dataset.xhtml?persistentId={pid}" + (
            "&version=DRAFT" if status == "draft" else ""
        )
        return Landing(
            pid, status, url=url, doi=doi, handle=handle, extra={"dataset_id": state["id"]}
        )

    def landing(self, state: dict[str, Any]) -> Landing:
        return self._landing(state, "draft")

    def plan(
        self, metadata: Any, items: list[UploadItem], *, publish: bool, new_version_of: str | None
    ) -> list[PlannedCall]:
        a = self.api
        calls = [
            PlannedCall("GET", f"{a}/users/:me", note="check the API token"),
            PlannedCall("GET", f"{a}/dataverses/{self.collection}"),
        ]
        if new_version_of:
            calls.append(
                PlannedCall(
                    "PUT",
                    f"{a}/datasets/:persistentId/versions/:draft?persistentId={new_version_of}",
                    metadata["datasetVersion"],
                )
            )
        else:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/dataverses/{self.collection}/datasets",
                    metadata,
                    note="create the dataset",
                )
            )
        for it in items:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/datasets/:persistentId/add?persistentId={{pid}}",
                    {
                        "jsonData": {"directoryLabel": it.folder},
                        "file": f"<{it.size} bytes from {it.path}>",
                    },
                    note="after the dataset's locks clear; compare the returned checksum",
                )
            )
        if publish:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/datasets/:persistentId/actions/:publish?persistentId={{pid}}&type=major",
                )
            )
        return calls

    def close(self) -> None:
        self.http.close()
