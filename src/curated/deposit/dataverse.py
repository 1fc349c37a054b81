"""Dataverse adapter (native API).

Sequence: ``POST /api/dataverses/{alias}/datasets`` (citation block) → per file
``POST /api/datasets/:persistentId/add?persistentId=…`` (multipart ``file`` + ``jsonData``
with ``directoryLabel``) → ``POST /api/datasets/:persistentId/actions/:publish?…&type=major``.
Before each write the dataset's locks (``GET /api/datasets/{id}/locks``) are polled;
a write refused because of a lock (ingest, publication) is retried after waiting.
A new version is the same dataset edited: Dataverse opens a draft version by itself.

Files of ``direct_threshold`` bytes or more go straight to the dataset's store when it
allows direct upload (feature-detected with ``GET …/uploadurls``): one presigned PUT, or
presigned part PUTs whose ETags (the store's md5 of each part) are checked, then
``complete``, then the file is registered with ``/add`` (``storageIdentifier`` + md5).
Presigned URLs never receive the API key. Other files go through the application server.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from curated.deposit._base import make_session, need
from curated.deposit.http import (
    FileSlice,
    Hashes,
    MultipartBody,
    PartBody,
    Reply,
    RetryPolicy,
    form_data,
    hash_file,
)
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError


def _is_lock(reply: Reply) -> bool:
    return reply.status in (400, 403, 409) and "lock" in reply.text.lower()


def _status_errors(reply: Reply, what: str) -> None:
    if isinstance(reply.data, dict) and str(reply.data.get("status", "")).upper() == "ERROR":
        raise DepositError(f"{what}: Dataverse reports an error: {reply.data.get('message')}")


def _remote_file(name: str, df: dict[str, Any]) -> RemoteFile:
    """A ``dataFile`` of a Dataverse reply as a :class:`RemoteFile` (``SHA-256`` → ``sha256``)."""
    ck = df.get("checksum") or {}
    return RemoteFile(
        name,
        df.get("filesize"),
        ck.get("value"),
        str(ck.get("type") or "md5").lower().replace("-", ""),
        str(df.get("id")),
    )


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
        direct: bool = True,
        direct_threshold: int = 64 * 2**20,
    ) -> None:
        base = url.rstrip("/")
        self.base = base.removesuffix("/api")
        self.api = self.base + "/api"
        self.collection = collection or "root"
        self._token = token
        self.lock_wait = lock_wait
        self.lock_poll = lock_poll
        self.direct_ok = direct
        self.direct_threshold = direct_threshold
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
            out[name] = _remote_file(name, df)
        return out

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        what = f"removing {remote.name}"
        self._wait_unlocked(state, what)
        r = self.http.request(
            "DELETE", f"/files/{remote.id}", allow=(404, 405), retry_on=_is_lock, what=what
        )
        if r.status in (404, 405) and self._token:
            # Installations older than the native delete take it through SWORD (token as user name).
            basic = base64.b64encode(f"{self._token}:".encode()).decode()
            self.http.secrets.append(basic)
            self.http.request(
                "DELETE",
                f"{self.base}/dvn/api/data-deposit/v1.1/swordv2/edit-media/file/{remote.id}",
                headers={"Authorization": f"Basic {basic}"},
                allow=(404,),
                expect_json=False,
                what=what,
            )

    def upload(self, state, item: UploadItem, entry, save, advance) -> Uploaded:  # type: ignore[no-untyped-def]
        what = f"uploading {item.name}"
        self._wait_unlocked(state, what)
        if entry.get("direct") or (self.direct_ok and item.size >= self.direct_threshold):
            done = self._direct(state, item, entry, save, advance)
            if done is not None:
                return done
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
        remote = _remote_file(item.name, (files[0] if files else {}).get("dataFile") or {})
        return Uploaded(remote, holder[0].hashes.result())

    # ------------------------------------------------------------ direct (S3) upload
    def _direct(self, state, item: UploadItem, entry, save, advance) -> Uploaded | None:  # type: ignore[no-untyped-def]
        """Send the bytes straight to the store (presigned URLs), then register the file.

        Returns ``None`` when the dataset's store takes no direct uploads (feature detection);
        the caller then sends the file through the application server.
        """
        what = f"uploading {item.name} (direct)"
        if not entry.get("direct"):
            r = self.http.request(
                "GET",
                "/datasets/:persistentId/uploadurls",
                params={**self._pid(state), "size": item.size},
                allow=(400, 404, 405, 501),
                what=what,
            )
            if r.status != 200:
                self.direct_ok = False
                return None
            d = need(r.data, "data", what=what)
            if "urls" in d:
                entry["direct"] = {
                    "urls": {str(k): v for k, v in d["urls"].items()},
                    "part_size": int(d["partSize"]),
                    "complete": d["complete"],
                    "sid": d["storageIdentifier"],
                    "etags": {},
                }
            else:
                entry["direct"] = {"url": d["url"], "sid": d["storageIdentifier"]}
            save()
        dd = entry["direct"]
        local = None
        if "url" in dd:
            holder: list[FileSlice] = []

            def whole() -> FileSlice:
                holder[:] = [FileSlice(item.path, on_read=advance)]
                return holder[0]

            r = self._store_put(
                entry, save, dd["url"], whole, what, {"x-amz-tagging": "dv-state=temp"}
            )
            local = holder[0].hashes.result()
            self._check_etag(r, local["md5"], what)
        else:
            running: Hashes | None = Hashes() if not dd["etags"] else None
            size = dd["part_size"]
            for n in sorted(dd["urls"], key=int):
                if n in dd["etags"]:
                    continue
                offset = (int(n) - 1) * size
                length = min(size, item.size - offset)
                part = PartBody(
                    item.path, offset, length, on_read=advance, running=running, part_md5=True
                )
                r = self._store_put(entry, save, dd["urls"][n], part, f"{what} (part {n})")
                self._check_etag(r, part.last.also.hexdigest(), f"{what} (part {n})")
                running = part.hashes
                dd["etags"][n] = str(r.header("ETag"))
                save()
            local = running.result() if running is not None else None
            complete = (
                dd["complete"] if dd["complete"].startswith("http") else self.base + dd["complete"]
            )
            self.http.request(
                "PUT",
                complete,
                json_body=dd["etags"],
                expect_json=False,
                what=f"{what} (completing)",
            )
        if local is None:
            local = hash_file(item.path)
        meta = {
            "storageIdentifier": dd["sid"],
            "fileName": item.basename,
            "directoryLabel": item.folder,
            "mimeType": "application/octet-stream",
            "checksum": {"@type": "MD5", "@value": local["md5"]},
        }
        raw, ctype = form_data({"jsonData": json.dumps(meta)})
        r = self.http.request(
            "POST",
            "/datasets/:persistentId/add",
            params=self._pid(state),
            raw=raw,
            headers={"Content-Type": ctype},
            retry_on=_is_lock,
            what=f"{what} (registering)",
        )
        _status_errors(r, what)
        files = need(r.data, "data", "files", what=what)
        remote = _remote_file(item.name, (files[0] if files else {}).get("dataFile") or {})
        return Uploaded(remote, local)

    def _store_put(
        self, entry, save, url: str, body, what: str, headers: dict[str, str] | None = None
    ) -> Reply:  # type: ignore[no-untyped-def]
        r = self.http.request(
            "PUT", url, body=body, headers=headers, allow=(403,), expect_json=False, what=what
        )
        if r.status == 403:
            # Presigned URLs expire (an hour on S3): forget them so a re-run asks for new ones.
            entry.pop("direct", None)
            save()
            msg = f"{what}: the storage refused the presigned upload URL (expired?); re-run with --resume to get new ones"
            raise DepositError(msg, details={"status": 403})
        return r

    @staticmethod
    def _check_etag(reply: Reply, md5: str, what: str) -> None:
        """S3 answers each PUT with the md5 of what it stored as the ETag: the store's own check."""
        etag = str(reply.header("ETag") or "").strip('"')
        if etag and "-" not in etag and etag.lower() != md5:
            raise DepositError(
                f"{what}: the store's checksum ({etag}) differs from the bytes sent ({md5}); re-run with --resume"
            )

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
