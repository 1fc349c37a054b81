"""A stateful fake DSpace 7/8/9 REST API, as strict as the real server on what curated sends.

Each route cites the part of ``DSpace/RestContract`` (or the DSpace source) it follows.
``version`` switches what differs between releases:

* ``"7.6"`` (7.6.2+): the default projection embeds nothing (``projections.md``); CSRF
  tokens come with the first GET and from ``/security/csrf`` (added to 7.x by DSpace/DSpace
  PR 9599).
* ``"8.0"`` (8.0-8.2, 9.0-9.1): as 7.6, but GETs other than ``/security/csrf`` hand out
  no token (Spring Security 6, DSpace/DSpace issue 9774; restored by PR 11154 in 8.3 /
  9.2), so a login that only read ``/authn/status`` gets 403.
* ``"8.3"`` (8.3+, 9.2+, 10): tokens on GETs again.

Workspace item PATCHes are validated against the collection's submission form (served
at ``/config/submissiondefinitions`` and ``/config/submissionforms``): one field outside
the section's form fails the whole PATCH with 422, as ``SubmissionFormRestRepository``
and the metadata step's patch handling do.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeServer, Request


@dataclass(frozen=True)
class Field:
    key: str
    mandatory: bool = False
    repeatable: bool = True
    label: str = ""
    type_bind: tuple[str, ...] = ()
    """``<type-bind>``: the ``dc.type`` values the field is for (none: every type)."""

    def allowed_for(self, types: list[str]) -> bool:
        # DCInput.isAllowedFor: an unbound field is for every item; a bound one only for
        # items whose dc.type it names (an item without dc.type gets no bound field).
        return not self.type_bind or any(t in self.type_bind for t in types)


@dataclass
class Form:
    """A submission definition as the fake serves it (its own data, not curated's)."""

    name: str
    sections: dict[str, dict[str, Field]] = field(default_factory=dict)
    license_section: str | None = "license"
    upload_section: str | None = "upload"

    def mandatory(self) -> list[tuple[str, Field]]:
        return [(s, f) for s, fs in self.sections.items() for f in fs.values() if f.mandatory]


def _page(*specs: tuple[str, bool, bool, str]) -> dict[str, Field]:
    return {k: Field(k, m, r, label) for k, m, r, label in specs}


DEFAULT_FORM = Form(
    "traditional",
    {
        # DSpace/DSpace dspace/config/submission-forms.xml, form "traditionalpageone"
        "traditionalpageone": _page(
            ("dc.contributor.author", False, True, "Author"),
            ("dc.title", True, False, "Title"),
            ("dc.title.alternative", False, True, "Other Titles"),
            ("dc.date.issued", True, False, "Date of Issue"),
            ("dc.publisher", False, False, "Publisher"),
            ("dc.identifier.citation", False, False, "Citation"),
            ("dc.relation.ispartofseries", False, True, "Series/Report No."),
            ("dc.identifier.issn", False, True, "Identifiers"),
            ("dc.identifier.other", False, True, "Identifiers"),
            ("dc.identifier.ismn", False, True, "Identifiers"),
            ("dc.identifier.govdoc", False, True, "Identifiers"),
            ("dc.identifier.uri", False, True, "Identifiers"),
            ("dc.identifier.isbn", False, True, "Identifiers"),
            ("dc.type", False, True, "Type"),
            ("dc.language.iso", False, False, "Language"),
        ),
        # form "traditionalpagetwo"
        "traditionalpagetwo": _page(
            ("dc.subject", False, True, "Subject Keywords"),
            ("dc.description.abstract", False, False, "Abstract"),
            ("dc.description.sponsorship", False, False, "Sponsors"),
            ("dc.description", False, False, "Description"),
        ),
    },
)

USER = "curator@example.org"
PASSWORD = "dspace-good-password-321"
COLLECTION = "5ad50035-ca22-4a4d-84ca-d5132f34f588"
EPERSON = "2f0a7e1c-3b5d-4e8f-9a6b-1c2d3e4f5a6b"


class FakeDSpace(FakeServer):
    name = "dspace"

    def __init__(
        self,
        *,
        max_request: int = 512 * 2**20,
        collections: tuple[str, ...] = (COLLECTION,),
        version: str = "7.6",
        form: Form = DEFAULT_FORM,
        workflow: bool = False,
    ) -> None:
        super().__init__()
        # False: the collection has no reviewers, so a submission is archived at once and
        # answered 204 (WorkflowItemRestRepository.createAndReturn); True: it waits for review
        self.workflow = workflow
        self.workflow_items: dict[int, str] = {}
        if version not in ("7.6", "8.0", "8.3"):
            raise ValueError(version)
        self.version = version
        self.form = form
        self.max_request = max_request
        self.upload_failure: str | None = None
        """The message of an exception storing an uploaded file (the assetstore full...)."""
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
        self.route("GET", s + r"/security/csrf", self.security_csrf)
        self.route("GET", s + r"/authn/status", self.status)
        self.route(
            "GET", s + r"/config/submissiondefinitions/search/findByCollection", self.definition
        )
        self.route("GET", s + r"/config/submissiondefinitions/(\w+)/sections", self.sections)
        self.route("GET", s + r"/config/submissionforms/(\w+)", self.submission_form)
        self.route("POST", s + r"/authn/login", self.login)
        self.route("GET", s + r"/core/collections/([\w-]+)", self.collection)
        self.route("POST", s + r"/submission/workspaceitems", self.create)
        self.route("GET", s + r"/submission/workspaceitems/search/item", self.search_item)
        self.route(
            "GET", s + r"/submission/workspaceitems/search/findBySubmitter", self.by_submitter
        )
        self.route("GET", s + r"/submission/workspaceitems/(\d+)", self.read)
        self.route("GET", s + r"/submission/workspaceitems/(\d+)/item", self.read_item)
        self.route("PATCH", s + r"/submission/workspaceitems/(\d+)", self.patch)
        self.route("POST", s + r"/submission/workspaceitems/(\d+)", self.upload)
        self.route("POST", s + r"/workflow/workflowitems", self.submit)
        self.route("GET", s + r"/workflow/workflowitems/search/item", self.search_workflow_item)
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

    def security_csrf(self, req: Request):
        # RestContract csrf-tokens.md "GET /api/security/csrf": 204, token in header + cookie.
        return 204, None, self._new_csrf()

    def status(self, req: Request):
        # RestContract authentication.md "Status"; DSpace 8.0-8.2/9.0-9.1 send no CSRF token
        # on GETs (DSpace/DSpace issue 9774, fixed by PR 11154 in 8.3/9.2).
        headers = {} if self.version == "8.0" or self.csrf else self._new_csrf()
        body: dict[str, Any] = {
            "okay": True,
            "authenticated": self.jwt is not None,
            "type": "status",
        }
        if self._authenticated(req):
            # the e-person is linked, and embedded by default (RestContract authentication.md)
            href = f"{self.url}/server/api/eperson/epersons/{EPERSON}"
            body["_links"] = {"eperson": {"href": href}}
            body["_embedded"] = {"eperson": {"id": EPERSON, "uuid": EPERSON, "email": USER}}
        return 200, body, headers

    def _authenticated(self, req: Request) -> bool:
        return self.jwt is not None and req.headers.get("Authorization") == f"Bearer {self.jwt}"

    # ------------------------------------------------------------ configuration
    def definition(self, req: Request):
        # RestContract submissiondefinitions.md "search/findByCollection" (authenticated).
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        if req.query.get("uuid") not in self.collections:
            return 404, {"status": 404, "message": "collection not found"}
        name = self.form.name
        return 200, {
            "id": name,
            "name": name,
            "isDefault": True,
            "type": "submissiondefinition",
            "_links": {
                "sections": {
                    "href": f"{self.url}/server/api/config/submissiondefinitions/{name}/sections"
                },
                "self": {"href": f"{self.url}/server/api/config/submissiondefinitions/{name}"},
            },
        }

    def _section_list(self) -> list[dict[str, Any]]:
        # RestContract submissionsections.md: id, sectionType, mandatory, _links.config.
        out = []
        for sid in self.form.sections:
            out.append(
                {
                    "id": sid,
                    "mandatory": True,
                    "sectionType": "submission-form",
                    "type": "submissionsection",
                    "_links": {
                        "config": {"href": f"{self.url}/server/api/config/submissionforms/{sid}"}
                    },
                }
            )
        if self.form.upload_section:
            out.append(
                {
                    "id": self.form.upload_section,
                    "sectionType": "upload",
                    "type": "submissionsection",
                }
            )
        if self.form.license_section:
            out.append(
                {
                    "id": self.form.license_section,
                    "sectionType": "license",
                    "type": "submissionsection",
                }
            )
        return out

    def sections(self, req: Request, name: str):
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        if name != self.form.name:
            return 404, {"status": 404, "message": "submission definition not found"}
        listed = self._section_list()
        # A collection endpoint lists its members under _embedded (HAL), whatever the projection.
        return 200, {
            "_embedded": {"submissionsections": listed},
            "page": {"size": 100, "totalElements": len(listed), "totalPages": 1, "number": 0},
        }

    def submission_form(self, req: Request, sid: str):
        # RestContract submissionforms.md: rows[].fields[].selectableMetadata[].metadata.
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        fields = self.form.sections.get(sid)
        if fields is None:
            return 404, {"status": 404, "message": "submission form not found"}
        rows = [
            {
                "fields": [
                    {
                        "input": {"type": "onebox"},
                        "label": f.label,
                        "mandatory": f.mandatory,
                        "repeatable": f.repeatable,
                        "selectableMetadata": [{"metadata": f.key, "label": None}],
                        "typeBind": list(f.type_bind),
                    }
                ]
            }
            for f in fields.values()
        ]
        return 200, {"id": sid, "name": sid, "rows": rows, "type": "submissionform"}

    def login(self, req: Request):
        # RestContract authentication.md "Login": form user/password, CSRF header, Bearer JWT in Authorization; the token rotates (csrf-tokens.md).
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
        # RestContract collections.md "Single Collection".
        if cid not in self.collections:
            return 404, {"status": 404, "error": "Not Found", "message": "No such collection"}
        return 200, {"uuid": cid, "name": "Datasets", "type": "collection"}

    @staticmethod
    def _types(sections: dict[str, Any]) -> list[str]:
        """The item's dc.type values (TypeBindUtils.getTypeBindMetadataValues)."""
        return [
            str(v.get("value"))
            for sec in sections.values()
            if isinstance(sec, dict)
            for v in sec.get("dc.type") or []
        ]

    def _strip_unbound(self, sections: dict[str, Any]) -> None:
        """What MetadataValidator.validate does on every validation: the values of a field
        bound to other types than the item's are removed, silently."""
        types = self._types(sections)
        for sid, fields in self.form.sections.items():
            for key, f in fields.items():
                if not f.allowed_for(types):
                    sections.get(sid, {}).pop(key, None)

    def _errors(self, w: dict[str, Any]) -> list[dict[str, Any]]:
        errs = []
        types = self._types(w["sections"])
        for sid, f in self.form.mandatory():
            if not f.allowed_for(types):
                continue
            if not w["sections"].get(sid, {}).get(f.key):
                errs.append(
                    {"message": "error.validation.required", "paths": [f"/sections/{sid}/{f.key}"]}
                )
        lic = self.form.license_section
        if lic and not w["sections"][lic].get("granted"):
            errs.append(
                {"message": "error.validation.license.notgranted", "paths": [f"/sections/{lic}"]}
            )
        if not w["sections"]["upload"]["files"]:
            errs.append({"message": "error.validation.filerequired", "paths": ["/sections/upload"]})
        return errs

    def _json(self, w: dict[str, Any], req: Request | None = None) -> dict[str, Any]:
        # Default projection: links only, no _embedded (RestContract projections.md, DSpace
        # 7.6.2+/8.1+); "embed=item" embeds the item.
        base = f"{self.url}/server/api/submission/workspaceitems/{w['id']}"
        out: dict[str, Any] = {
            "id": w["id"],
            "type": "workspaceitem",
            "sections": w["sections"],
            "errors": self._errors(w),
            "_links": {
                "self": {"href": base},
                "item": {"href": f"{base}/item"},
                "collection": {"href": f"{base}/collection"},
            },
        }
        out["lastModified"] = w.get("modified")
        embeds = set((req.query.get("embed") or "").split(",")) if req is not None else set()
        if req is not None and req.method == "GET" and embeds & {"item", "collection"}:
            out["_embedded"] = {}
            if "item" in embeds:
                out["_embedded"]["item"] = self._item_json(w["item"])
            if "collection" in embeds:
                cid = self.items[w["item"]].get("collection")
                out["_embedded"]["collection"] = {"id": cid, "uuid": cid, "type": "collection"}
        return out

    def by_submitter(self, req: Request):
        # RestContract workspaceitems.md "Search methods" findBySubmitter?uuid=<eperson> (paged;
        # every workspace item of that e-person).
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        if not self._authenticated(req):
            return 401, {"status": 401, "message": "Authentication is required"}
        if req.query.get("uuid") != EPERSON:
            return 200, {"_embedded": {"workspaceitems": []}, "page": {"totalElements": 0}}
        rows = [self._json(w, req) for w in sorted(self.wsis.values(), key=lambda w: w["id"])]
        page, size = int(req.query.get("page") or 0), int(req.query.get("size") or 20)
        return 200, {
            "_embedded": {"workspaceitems": rows[page * size : (page + 1) * size]},
            "page": {
                "size": size,
                "totalElements": len(rows),
                "totalPages": -(-len(rows) // size),
                "number": page,
            },
        }

    def _item_json(self, iid: str) -> dict[str, Any]:
        it = self.items[iid]
        return {
            "uuid": iid,
            "id": iid,
            "handle": it["handle"],
            "inArchive": it["inArchive"],
            "type": "item",
        }

    def read_item(self, req: Request, wid: str):
        # RestContract workspaceitems.md "Linked entities" / "item" (/workspaceitems/<id>/item).
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        w = self.wsis.get(int(wid))
        return (200, self._item_json(w["item"])) if w else (404, {"status": 404})

    def _new_wsi(self, item: str, sections: dict[str, Any] | None = None) -> dict[str, Any]:
        wid = next(self.ids)
        w = {
            "id": wid,
            "item": item,
            "modified": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
            "sections": sections
            or {
                **{sid: {} for sid in self.form.sections},
                **(
                    {self.form.license_section: {"granted": False}}
                    if self.form.license_section
                    else {}
                ),
                "upload": {"files": []},
            },
        }
        self.wsis[wid] = w
        return w

    def create(self, req: Request):
        # RestContract workspaceitems.md "Main Endpoint" (POST ?owningCollection=<uuid>), 201.
        if (bad := self._guard(req)) is not None:
            return bad
        cid = req.query.get("owningCollection")
        if cid not in self.collections:
            return 422, {"status": 422, "message": "owningCollection not found"}
        item = str(uuid.uuid4())
        self.items[item] = {"uuid": item, "handle": None, "inArchive": False, "collection": cid}
        return 201, self._json(self._new_wsi(item))

    def read(self, req: Request, wid: str):
        # RestContract workspaceitems.md "Single Workspace Item" (default projection: no _embedded).
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        w = self.wsis.get(int(wid))
        return (200, self._json(w, req)) if w else (404, {"status": 404, "message": "not found"})

    def search_item(self, req: Request):
        # RestContract workspaceitems.md "Get Single Workspace Item from Item UUID" (search/item?uuid=).
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        for w in self.wsis.values():
            if w["item"] == req.query.get("uuid"):
                return 200, self._json(w)
        return 204, None

    def patch(self, req: Request, wid: str):
        # RestContract workspaceitem-data-metadata.md (add/remove/replace on
        # /sections/<form>/<field>); a field outside the section's form is refused with 422
        # and the whole PATCH is rolled back (PatchOperation handling in SubmissionService).
        if (bad := self._guard(req)) is not None:
            return bad
        if not (req.headers.get("Content-Type") or "").startswith("application/json-patch+json"):
            return 415, {"status": 415, "message": "Unsupported Media Type"}
        w = self.wsis.get(int(wid))
        if w is None:
            return 404, {"status": 404, "message": "not found"}
        sections = copy.deepcopy(w["sections"])
        lic = self.form.license_section
        for op in req.json() or []:
            path = op["path"].strip("/").split("/")
            if path[:1] != ["sections"] or len(path) < 3:
                return 422, {"status": 422, "message": f"Unprocessable path {op['path']}"}
            sid = path[1]
            if sid not in sections:
                return 422, {"status": 422, "message": f"Section {sid} is not defined"}
            if sid in self.form.sections and path[2] not in self.form.sections[sid]:
                return 422, {
                    "status": 422,
                    "error": "Unprocessable Entity",
                    "message": f"Unprocessable Entity: field {path[2]} is not present in section {sid}",
                }
            section = sections[sid]
            if op["op"] == "add" and sid == lic and path[2] == "granted":
                section["granted"] = str(op["value"]).lower() == "true"
            elif op["op"] == "add" and len(path) == 3 and path[2] not in section:
                section[path[2]] = op["value"]
            elif op["op"] == "remove" and sid == "upload":
                del section["files"][int(path[3])]
            elif op["op"] == "remove" and len(path) == 3 and path[2] in section:
                del section[path[2]]
            elif op["op"] == "add" and len(path) == 3 and path[2] in section:
                return 422, {
                    "status": 422,
                    "message": f"{path[2]} exists: add a value with /-, or remove it first",
                }
            else:
                return 422, {"status": 422, "message": f"Unsupported operation {op['op']}"}
        self._strip_unbound(sections)
        w["sections"] = sections
        return 200, self._json(w)

    def upload(self, req: Request, wid: str):
        # RestContract workspaceitems.md "Multipart POST Method on a single workspaceitem"; the cap is Spring's spring.servlet.multipart.max-request-size (DSpace default 512MB).
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
        if self.upload_failure:
            # UploadStep.upload: the storing's exception becomes an error of the answer (201)
            out = self._json(w)
            failed = {"message": self.upload_failure, "paths": ["/sections/upload"]}
            return 201, {**out, "errors": [*out["errors"], failed]}
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
        # RestContract workflowitems.md "Main Endpoint" (POST text/uri-list of the workspace item); 422 with its errors.
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
        del self.wsis[w["id"]]
        if self.workflow:  # in review: the workflow item is the answer
            item["sections"] = w["sections"]
            self.workflow_items[w["id"]] = w["item"]
            return 201, {"id": w["id"], "type": "workflowitem"}
        item.update(
            {
                "handle": f"123456789/{next(self.handles)}",
                "inArchive": True,
                "sections": w["sections"],
            }
        )
        return 204, None  # archived at once: "a status code 204 with no content"

    def search_workflow_item(self, req: Request):
        # RestContract workflowitems.md "Get Single Workflow Item from Item UUID": 200 or 204.
        if (bad := self._guard(req, write=False)) is not None:
            return bad
        for wid, item in self.workflow_items.items():
            if item == req.query.get("uuid"):
                return 200, {"id": wid, "type": "workflowitem"}
        return 204, None

    def item(self, req: Request, iid: str):
        # RestContract items.md "Single Item".
        if iid not in self.items:
            return 404, {"status": 404, "message": "not found"}
        return 200, self._item_json(iid)

    def new_version(self, req: Request):
        # RestContract versions.md "POST /api/versioning/versions[?summary=]", text/uri-list of the item.
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

        sections = copy.deepcopy(old["sections"])
        if self.form.license_section:
            sections[self.form.license_section] = {"granted": False}
        self._new_wsi(new, sections)
        vid = next(self.ids)
        self.versions[vid] = new
        return 201, {"id": vid, "version": 2, "summary": req.query.get("summary")}

    def version_item(self, req: Request, vid: str):
        # RestContract versions.md, the version's linked item.
        new = self.versions.get(int(vid))
        return (
            (200, {"uuid": new, "type": "item"})
            if new
            else (404, {"status": 404, "message": "not found"})
        )
