"""The ``directory`` target: a local or mounted folder acting as a repository.

Layout::

    REPO/
      index.json                  every deposit and its versions (atomic rewrite, locked)
      .drafts/<id>-v<N>/          a version being deposited (copied file by file)
      <id>/v<N>/<bag name>/...    published versions, each a complete copy of the bag folder
      <id>/v<N>/<bag>.zip|.tar    ... or of the serialized bag
      <id>/v<N>/record.json       the metadata record it was deposited with

Each file is copied to a temporary name, flushed, renamed, then re-read to check
its md5 against the source. Publishing renames the draft folder into place, so a
version is either absent or complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curated._crash import crash_point
from curated._io import write_json
from curated.deposit.http import CHUNK, hash_file
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError
from curated.walk import Files, walk

INDEX = "index.json"
FORMAT = "curated-directory-repository/1"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class DirectoryRepository:
    """Deposit into a folder (``--to directory --url /path/or/file:///path``)."""

    kind = "directory"
    keeps_folders = True
    single_request = False

    def __init__(self, url: str, *, collection: str | None = None, **_: Any) -> None:
        # absolute, so receipts carry file:// URIs that still resolve from elsewhere
        root = Path(url.removeprefix("file://")).expanduser().absolute()
        self.base = root
        self.root = root / collection if collection else root
        self.collection = collection
        self.bag_name = "bag"

    # ------------------------------------------------------------ index
    @contextlib.contextmanager
    def _index(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".index.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                path = self.root / INDEX
                data = (
                    json.loads(path.read_text(encoding="utf-8"))
                    if path.exists()
                    else {"format": FORMAT, "records": {}}
                )
                yield data
                write_json(path, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _draft_dir(self, state: dict[str, Any]) -> Path:
        return self.root / ".drafts" / f"{state['id']}-v{state['version']}"

    def _final_dir(self, state: dict[str, Any]) -> Path:
        return self.root / state["id"] / f"v{state['version']}"

    def _rel_url(self, name: str) -> str:
        """A file's place relative to the version folder (the draft folder moves on publish)."""
        return f"{self.bag_name}/{name}" if self.bag_name else name

    # ------------------------------------------------------------ protocol
    def check_access(self) -> None:
        if self.collection and not self.root.is_dir():
            msg = f"the collection folder {self.collection!r} does not exist in {self.base}; create it or check --target"
            raise DepositError(msg, path=self.root, field="target")
        probe = self.base
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise DepositError("the repository folder is not writable", path=probe)

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        with self._index() as idx:
            rid = uuid.uuid4().hex[:12]
            idx["records"][rid] = {
                "title": (metadata.get("study") or {}).get("title"),
                "versions": [],
            }
            state = {"id": rid, "version": 1}
            idx["records"][rid]["versions"].append(
                {"version": 1, "status": "draft", "created": _now()}
            )
        self._draft_dir(state).mkdir(parents=True, exist_ok=True)
        return state

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        rid = previous["record_id"]
        with self._index() as idx:
            rec = idx["records"].get(rid)
            if rec is None:
                raise DepositError(
                    f"record {rid} is not in the repository's index", path=self.root / INDEX
                )
            version = max((v["version"] for v in rec["versions"]), default=0) + 1
            rec["versions"].append({"version": version, "status": "draft", "created": _now()})
        state = {"id": rid, "version": version}
        self._draft_dir(state).mkdir(parents=True, exist_ok=True)
        return state

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        write_json(self._draft_dir(state) / "record.json", metadata)

    def remote_files(self, state: dict[str, Any]) -> dict[str, RemoteFile]:
        out: dict[str, RemoteFile] = {}
        base = self._draft_dir(state) / self.bag_name
        if not base.is_dir():
            return out
        # curated.walk: regular files only; a link or special file is not a file that was
        # uploaded (never followed), so it is left out and replaced by the next upload
        for ev in walk(base):
            if type(ev) is not Files:
                continue
            for n in ev.names:
                if (n.startswith(".") and n.endswith(".partial")) or (
                    not self.bag_name and not ev.prefix and n == "record.json"
                ):
                    continue
                rel = ev.prefix + n
                size = os.stat(os.path.join(ev.folder, n)).st_size
                out[rel] = RemoteFile(rel, size, None, "md5", url=self._rel_url(rel))
        return out

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        (self._draft_dir(state) / self.bag_name / remote.name).unlink(missing_ok=True)

    def upload(self, state, item: UploadItem, entry, save, advance) -> Uploaded:  # type: ignore[no-untyped-def]
        from curated.deposit.http import FileSlice

        dest = self._draft_dir(state) / self.bag_name / item.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        src = FileSlice(item.path, on_read=advance)
        try:
            with open(tmp, "wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DepositError(
                f"copying {item.name} failed ({exc.strerror}); re-run with --resume", path=dest
            ) from None
        finally:
            src.close()
        copied = hash_file(dest)
        remote = RemoteFile(
            item.name, copied["size"], copied["md5"], "md5", url=self._rel_url(item.name)
        )
        return Uploaded(remote, src.hashes.result())

    def finalize(self, state: dict[str, Any]) -> None:
        return None

    def publish(self, state: dict[str, Any]) -> Landing:
        draft, final = self._draft_dir(state), self._final_dir(state)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and not draft.exists() and self._is_draft(state):
            pass  # an earlier run renamed the draft into place and stopped: finish its index
        elif final.exists():
            raise DepositError(
                "this version already exists in the repository; nothing was overwritten", path=final
            )
        else:
            os.replace(draft, final)
            crash_point("directory-publish-renamed")
        with self._index() as idx:
            for v in idx["records"][state["id"]]["versions"]:
                if v["version"] == state["version"]:
                    v.update(
                        {
                            "status": "published",
                            "published": _now(),
                            "path": final.relative_to(self.root).as_posix(),
                        }
                    )
        return Landing(
            state["id"],
            "published",
            url=final.relative_to(self.root).as_posix(),
            handle=f"{state['id']}/v{state['version']}",
        )

    def _is_draft(self, state: dict[str, Any]) -> bool:
        """Whether the index still lists this version as a draft."""
        path = self.root / INDEX
        if not path.is_file():
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
        rec = (data.get("records") or {}).get(state["id"]) or {}
        return any(
            v.get("version") == state["version"] and v.get("status") == "draft"
            for v in rec.get("versions") or []
        )

    def landing(self, state: dict[str, Any]) -> Landing:
        return Landing(
            state["id"],
            "draft",
            url=self._draft_dir(state).relative_to(self.root).as_posix(),
            handle=f"{state['id']}/v{state['version']}",
        )

    def plan(
        self, metadata: Any, items: list[UploadItem], *, publish: bool, new_version_of: str | None
    ) -> list[PlannedCall]:
        calls = [
            PlannedCall(
                "WRITE",
                str(self.root / INDEX),
                note="reserve a record id"
                if not new_version_of
                else f"new version of {new_version_of}",
            )
        ]
        calls.append(
            PlannedCall("WRITE", str(self.root / ".drafts/{id}-v{N}/record.json"), metadata)
        )
        for it in items:
            calls.append(
                PlannedCall(
                    "COPY",
                    str(self.root / ".drafts/{id}-v{N}" / self.bag_name / it.name),
                    f"<{it.size} bytes from {it.path}>",
                )
            )
        if publish:
            calls.append(
                PlannedCall("RENAME", str(self.root / "{id}/v{N}"), note="publish atomically")
            )
        return calls

    def close(self) -> None:
        return None
