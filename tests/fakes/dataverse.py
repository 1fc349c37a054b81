"""A stateful fake Dataverse native API: datasets in collections, file add with
``directoryLabel``, dataset locks, publish (major versions), API-key auth.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from tests.fakes.base import FakeServer, Request

TOKEN = "dataverse-good-key-456"
LOCKED = "Dataset cannot be edited due to dataset lock."


class FakeDataverse(FakeServer):
    name = "dataverse"

    def __init__(
        self, *, token: str = TOKEN, collections: tuple[str, ...] = ("root", "lab")
    ) -> None:
        super().__init__()
        self.token = token
        self.collections = set(collections)
        self.datasets: dict[int, dict[str, Any]] = {}
        self.ids = itertools.count(42)
        self.file_ids = itertools.count(900)
        self.lock_polls = 0
        """While > 0 the next dataset touched reports an Ingest lock (decremented per locks poll)."""
        self.locked_writes = 0
        """While > 0 writes are refused with Dataverse's lock message."""
        self.route("GET", r"/api/users/:me", self.me)
        self.route("GET", r"/api/dataverses/([^/]+)", self.collection)
        self.route("POST", r"/api/dataverses/([^/]+)/datasets", self.create)
        self.route("PUT", r"/api/datasets/:persistentId/versions/:draft", self.put_version)
        self.route("GET", r"/api/datasets/(\d+)/locks", self.locks)
        self.route("POST", r"/api/datasets/:persistentId/add", self.add)
        self.route("GET", r"/api/datasets/:persistentId/versions/:latest/files", self.files)
        self.route("DELETE", r"/api/files/(\d+)", self.delete)
        self.route("POST", r"/api/datasets/:persistentId/actions/:publish", self.publish)

    def _auth(self, req: Request) -> tuple[int, Any] | None:
        key = req.headers.get("X-Dataverse-key")
        if key != self.token:
            return 401, {
                "status": "ERROR",
                "message": f"Bad api key '{key}'" if key else "Please provide a key",
            }
        return None

    def _by_pid(self, pid: str | None) -> dict[str, Any] | None:
        return next((d for d in self.datasets.values() if d["pid"] == pid), None)

    def me(self, req: Request):
        return self._auth(req) or (
            200,
            {"status": "OK", "data": {"id": 1, "identifier": "@curator"}},
        )

    def collection(self, req: Request, alias: str):
        if alias not in self.collections:
            return 404, {
                "status": "ERROR",
                "message": f"Can't find dataverse with identifier='{alias}'",
            }
        return 200, {"status": "OK", "data": {"alias": alias, "id": 1}}

    def create(self, req: Request, alias: str):
        if (bad := self._auth(req)) is not None:
            return bad
        if alias not in self.collections:
            return 404, {
                "status": "ERROR",
                "message": f"Can't find dataverse with identifier='{alias}'",
            }
        body = req.json() or {}
        fields = (
            ((body.get("datasetVersion") or {}).get("metadataBlocks") or {}).get("citation") or {}
        ).get("fields") or []
        names = {f["typeName"] for f in fields}
        missing = {"title", "author", "datasetContact", "dsDescription", "subject"} - names
        if missing:
            return 400, {
                "status": "ERROR",
                "message": f"Validation Failed: {', '.join(sorted(missing))} is required.",
            }
        did = next(self.ids)
        pid = f"doi:10.5072/FK2/{did:06d}"
        self.datasets[did] = {
            "id": did,
            "pid": pid,
            "version": body["datasetVersion"],
            "files": {},
            "published": 0,
            "draft": True,
        }
        return 201, {"status": "OK", "data": {"id": did, "persistentId": pid}}

    def put_version(self, req: Request):
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        if self.locked_writes > 0:
            self.locked_writes -= 1
            return 403, {"status": "ERROR", "message": LOCKED}
        d["version"], d["draft"] = req.json(), True
        return 200, {"status": "OK", "data": {"versionState": "DRAFT"}}

    def locks(self, req: Request, did: str):
        if self.lock_polls > 0:
            self.lock_polls -= 1
            return 200, {
                "status": "OK",
                "data": [{"lockType": "Ingest", "date": "2026-01-01", "user": "curator"}],
            }
        return 200, {"status": "OK", "data": []}

    def add(self, req: Request):
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        parts = req.multipart()
        if self.locked_writes > 0:
            self.locked_writes -= 1
            return 403, {"status": "ERROR", "message": LOCKED}
        if "file" not in parts:
            return 400, {"status": "ERROR", "message": "Failed to add file to dataset: no file"}
        fname, content = parts["file"]
        meta = json.loads(parts.get("jsonData", (None, b"{}"))[1] or b"{}")
        label = meta.get("directoryLabel") or ""
        name = f"{label}/{fname}" if label else str(fname)
        if name.endswith(".zip"):
            return 400, {
                "status": "ERROR",
                "message": "This fake, like Dataverse, would unpack the zip.",
            }
        fid = next(self.file_ids)
        df = {
            "id": fid,
            "filename": fname,
            "filesize": len(content),
            "checksum": {"type": "MD5", "value": hashlib.md5(content).hexdigest()},
        }
        d["files"][name] = {"label": fname, "directoryLabel": label or None, "dataFile": df}
        d["draft"] = True
        return 200, {"status": "OK", "data": {"files": [d["files"][name]]}}

    def files(self, req: Request):
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        return 200, {"status": "OK", "data": list(d["files"].values())}

    def delete(self, req: Request, fid: str):
        if (bad := self._auth(req)) is not None:
            return bad
        for d in self.datasets.values():
            for name, f in list(d["files"].items()):
                if str(f["dataFile"]["id"]) == fid:
                    del d["files"][name]
                    return 200, {"status": "OK", "data": {"message": "file deleted"}}
        return 404, {"status": "ERROR", "message": "File not found"}

    def publish(self, req: Request):
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        if req.query.get("type") not in ("major", "minor", "updatecurrent"):
            return 400, {"status": "ERROR", "message": "Illegal 'type' parameter value."}
        if not d["draft"]:
            return 400, {"status": "ERROR", "message": "Cannot publish: no draft version."}
        d["published"] += 1
        d["draft"] = False
        return 200, {
            "status": "OK",
            "data": {
                "versionNumber": d["published"],
                "versionMinorNumber": 0,
                "versionState": "RELEASED",
            },
        }
