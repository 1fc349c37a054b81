"""A stateful fake DSpace 7 REST API: XSRF cookie/header dance, JWT login, workspace
items with JSON Patch sections, multipart bitstream upload with a request-size cap,
workflow submission, item versioning.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from typing import Any

from tests.fakes.base import FakeServer, Request

USER = "curator@example.org"
PASSWORD = "dspace-good-password-321"
COLLECTION = "5ad50035-ca22-4a4d-84ca-d5132f34f588"


class FakeDSpace(FakeServer):
    name = "dspace"

    def __init__(
        self, *, max_request: int = 512 * 2**20, collections: tuple[str, ...] = (COLLECTION,)
    ) -> None:
        super().__init__()
        self.max_request = max_request
        self.collections = set(collections)
        self.csrf: str | None = None
        self.jwt: str | None = None
        self.items: dict[str, dict[str, Any]] = {}
        self.wsis: dict[int, dict[str, Any]] = {}
        self.versions: dict[int, str] = {}
        self.ids = itertools.count(1)
        self.handles = itertools.count(100)
        self.logins = 0
        s = r"/server/api"
        self.route("GET", s + r"/authn/status", self.status)
        self.route("POST", s + r"/authn/login", self.login)
        self.route("GET", s + r"/core/collections/([\w-]+)", self.collection)
        self.route("POST", s + r"/submission/workspaceitems", self.create)
        self.route("GET", s + r"/submission/workspaceitems/search/item", self.search_item)
        self.route("GET", s + r"/submission/workspaceitems/(\d+)", self.read)
        self.route("PATCH", s + r"/submission/workspaceitems/(\d+)", self.patch)
        self.route("POST", s + r"/submission/workspaceitems/(\d+)", self.upload)
        self.route("POST", s + r"/workflow/workflowitems", self.submit)
        self.route("GET", s + r"/core/items/([\w-]+)", self.item)
        self.route("POST", s + r"/versioning/versions", self.new_version)
        self.route("GET", s + r"/versioning/versions/(\d+)/item", self.version_item)

    # ------------------------------------------------------------ security
    def _new_csrf(self) -> dict[str, str]:
        self.csrf = uuid.uuid4().hex
        return {
            "DSPACE-XSRF-TOKEN": self.csrf,
            "Set-Cookie": f"DSPACE-XSRF-COOKIE={self.csrf}; Path=/server; HttpOnly",
        }

    def _csrf_ok(self, req: Request) -> bool:
        cookie = req.headers.get("Cookie") or ""
        return (
            bool(self.csrf)
            and req.headers.get("X-XSRF-TOKEN") == self.csrf
            and f"DSPACE-XSRF-COOKIE={self.csrf}" in cookie
        )

    def _guard(self, req: Request, *, write: bool = True) -> tuple[int, Any, dict[str, str]] | None:
        if write and not self._csrf_ok(req):
            return (
                403,
                {
                    "status": 403,
                    "error": "Forbidden",
                    "message": "Access is denied. Invalid CSRF token.",
                },
                self._new_csrf(),
            )
        if req.headers.get("Authorization") != f"Bearer {self.jwt}" or self.jwt is None:
            return (
                401,
                {"status": 401, "error": "Unauthorized", "message": "Authentication is required"},
                {},
            )
        return None

    def status(self, req: Request):
        return (
            200,
            {"okay": True, "authenticated": self.jwt is not None, "type": "status"},
            self._new_csrf(),
        )

    def login(self, req: Request):
        if not self._csrf_ok(req):
            return (
                403,
                {"status": 403, "message": "Access is denied. Invalid CSRF token."},
                self._new_csrf(),
            )
        form = req.form()
        if form.get("user") != USER or form.get("password") != PASSWORD:
            return 401, {"status": 401, "error": "Unauthorized", "message": "Authentication failed"}
        self.logins += 1
        self.jwt = f"eyJ.fake.{uuid.uuid4().hex}"
        headers = self._new_csrf()  # DSpace rotates the CSRF token on login
        headers["Authorization"] = f"Bearer {self.jwt}"
        return 200, None, headers

    def expire_jwt(self) -> None:
        self.jwt = f"expired-{uuid.uuid4().hex}"

    # ------------------------------------------------------------ objects
    def collection(self, req: Request, cid: str):
        if cid not in self.collections:
            return 404, {"status": 404, "error": "Not Found", "message": "No such collection"}
        return 200, {"uuid": cid, "name": "Datasets", "type": "collection"}

    def _errors(self, w: dict[str, Any]) -> list[dict[str, Any]]:
        errs = []
        md = w["sections"].get("traditionalpageone", {})
        for field in ("dc.title", "dc.date.issued"):
            if not md.get(field):
                errs.append(
                    {
                        "message": "error.validation.required",
                        "paths": [f"/sections/traditionalpageone/{field}"],
                    }
                )
        if not w["sections"]["license"].get("granted"):
            errs.append(
                {"message": "error.validation.license.notgranted", "paths": ["/sections/license"]}
            )
        if not w["sections"]["upload"]["files"]:
            errs.append({"message": "error.validation.filerequired", "paths": ["/sections/upload"]})
        return errs

    def _json(self, w: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": w["id"],
            "type": "workspaceitem",
            "sections": w["sections"],
            "errors": self._errors(w),
            "_embedded": {"item": {"uuid": w["item"], "type": "item"}},
        }

    def _new_wsi(self, item: str, sections: dict[str, Any] | None = None) -> dict[str, Any]:
        wid = next(self.ids)
        w = {
            "id": wid,
            "item": item,
            "sections": sections
            or {
                "traditionalpageone": {},
                "traditionalpagetwo": {},
                "license": {"granted": False},
                "upload": {"files": []},
            },
        }
        self.wsis[wid] = w
        return w

    def create(self, req: Request):
        if (bad := self._guard(req)) is not None:
            return bad
        cid = req.query.get("owningCollection")
        if cid not in self.collections:
            return 422, {"status": 422, "message": "owningCollection not found"}
        item = str(uuid.uuid4())
        self.items[item] = {"uuid": item, "handle": None, "inArchive": False, "collection": cid}
        return 201, self._json(self._new_wsi(item))

    def read(self, req: Request, wid: str):
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        w = self.wsis.get(int(wid))
        return (200, self._json(w)) if w else (404, {"status": 404, "message": "not found"})

    def search_item(self, req: Request):
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        for w in self.wsis.values():
            if w["item"] == req.query.get("uuid"):
                return 200, self._json(w)
        return 204, None

    def patch(self, req: Request, wid: str):
        if (bad := self._guard(req)) is not None:
            return bad
        if not (req.headers.get("Content-Type") or "").startswith("application/json-patch+json"):
            return 415, {"status": 415, "message": "Unsupported Media Type"}
        w = self.wsis.get(int(wid))
        if w is None:
            return 404, {"status": 404, "message": "not found"}
        for op in req.json() or []:
            path = op["path"].strip("/").split("/")
            if path[:1] != ["sections"] or len(path) < 3:
                return 422, {"status": 422, "message": f"Unprocessable path {op['path']}"}
            section = w["sections"].setdefault(path[1], {})
            if op["op"] == "add" and path[1] == "license":
                section["granted"] = str(op["value"]).lower() == "true"
            elif op["op"] == "add" and path[2] not in section:
                section[path[2]] = op["value"]
            elif op["op"] == "remove" and path[1] == "upload":
                del w["sections"]["upload"]["files"][int(path[3])]
            elif op["op"] == "remove" and len(path) == 3 and path[2] in section:
                del section[path[2]]
            elif op["op"] == "add" and len(path) == 3 and path[2] in section:
                return 422, {
                    "status": 422,
                    "message": f"{path[2]} exists: add a value with /-, or remove it first",
                }
            else:
                return 422, {"status": 422, "message": f"Unsupported operation {op['op']}"}
        return 200, self._json(w)

    def upload(self, req: Request, wid: str):
        if (bad := self._guard(req)) is not None:
            return bad
        if req.length > self.max_request:
            req.drain()
            return 413, {
                "status": 413,
                "error": "Payload Too Large",
                "message": "Maximum upload size exceeded",
            }
        w = self.wsis.get(int(wid))
        if w is None:
            return 404, {"status": 404, "message": "not found"}
        parts = req.multipart()
        if "file" not in parts:
            return 422, {"status": 422, "message": "No file"}
        fname, content = parts["file"]
        w["sections"]["upload"]["files"].append(
            {
                "uuid": str(uuid.uuid4()),
                "metadata": {"dc.title": [{"value": fname}]},
                "sizeBytes": len(content),
                "checkSum": {"checkSumAlgorithm": "MD5", "value": hashlib.md5(content).hexdigest()},
            }
        )
        return 201, self._json(w)

    def submit(self, req: Request):
        if (bad := self._guard(req)) is not None:
            return bad
        if not (req.headers.get("Content-Type") or "").startswith("text/uri-list"):
            return 415, {"status": 415, "message": "Unsupported Media Type"}
        uri = req.body().decode().strip()
        w = (
            self.wsis.get(int(uri.rstrip("/").rsplit("/", 1)[-1]))
            if uri.rstrip("/").rsplit("/", 1)[-1].isdigit()
            else None
        )
        if w is None:
            return 422, {"status": 422, "message": "Invalid workspace item"}
        errs = self._errors(w)
        if errs:
            return 422, {"status": 422, "message": "Unprocessable Entity", "errors": errs}
        item = self.items[w["item"]]
        item.update(
            {
                "handle": f"123456789/{next(self.handles)}",
                "inArchive": True,
                "sections": w["sections"],
            }
        )
        del self.wsis[w["id"]]
        return 201, {"id": w["id"], "type": "workflowitem"}

    def item(self, req: Request, iid: str):
        it = self.items.get(iid)
        if it is None:
            return 404, {"status": 404, "message": "not found"}
        return 200, {
            "uuid": iid,
            "handle": it["handle"],
            "inArchive": it["inArchive"],
            "type": "item",
        }

    def new_version(self, req: Request):
        if (bad := self._guard(req)) is not None:
            return bad
        uri = req.body().decode().strip()
        old = self.items.get(uri.rstrip("/").rsplit("/", 1)[-1])
        if old is None or not old["inArchive"]:
            return 400, {"status": 400, "message": "Item not archived"}
        new = str(uuid.uuid4())
        self.items[new] = {
            "uuid": new,
            "handle": None,
            "inArchive": False,
            "collection": old["collection"],
        }
        import copy

        sections = copy.deepcopy(old["sections"])
        sections["license"] = {"granted": False}
        self._new_wsi(new, sections)
        vid = next(self.ids)
        self.versions[vid] = new
        return 201, {"id": vid, "version": 2, "summary": req.query.get("summary")}

    def version_item(self, req: Request, vid: str):
        new = self.versions.get(int(vid))
        return (
            (200, {"uuid": new, "type": "item"})
            if new
            else (404, {"status": 404, "message": "not found"})
        )
