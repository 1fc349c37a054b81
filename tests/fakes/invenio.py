"""A stateful fake InvenioRDM (and Zenodo) REST API.

Follows the draft → files (init, content, commit) → publish sequence
(``inveniosoftware/docs-invenio-rdm`` ``docs/reference/rest_api_drafts_records.md``), the
multipart transfer when ``multipart=True`` (``invenio-records-resources``
``services/files/transfer/providers/multipart.py``: after the commit the checksum is
``multipart:<etag>-<part size>`` until a background task writes the md5, here after
``checksum_delay`` reads of the file), versions with ``files-import``, communities and
review requests; drafts are saved with partial validation, so 2xx answers may carry
``errors`` (``invenio-records-resources`` ``services/records/results.py``).

Metadata is validated as ``invenio-rdm-records`` ``services/schemas/metadata.py`` and
``invenio-vocabularies`` do: a personal creator needs a non-empty ``family_name``; an
award is an ``id`` of the awards vocabulary or a ``title`` with a ``number``
(``contrib/awards/schema.py``); affiliation, funder and award ids must exist in the
instance's vocabularies (served at ``/api/affiliations``, ``/api/funders``, ``/api/awards``).
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any
from urllib.parse import unquote, urlparse

from tests.fakes.base import Assembler, FakeServer, Request, bearer

TOKEN = "invenio-good-token-123"

# marshmallow-utils html.py ALLOWED_HTML_TAGS: what SanitizedHTML (the description field of
# invenio-rdm-records services/schemas/metadata.py) keeps; bleach.clean(strip=True) drops
# every other tag, text that merely looks like one ("<mito>") included.
ALLOWED_TAGS = set(
    [
        "a",
        "abbr",
        "acronym",
        "b",
        "blockquote",
        "br",
        "code",
        "col",
        "colgroup",
        "div",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "td",
        "th",
        "tr",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "i",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "u",
        "ul",
    ]
)
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)\b[^>]*>")


def sanitized_html(value: str) -> str:
    """A description as InvenioRDM stores it (bleach): allowed tags kept, others stripped,
    the rest of the text escaped."""

    def text(t: str) -> str:
        return re.sub(r"&(?!#?\w+;)", "&amp;", t).replace("<", "&lt;").replace(">", "&gt;")

    out, pos = [], 0
    for m in _TAG.finditer(value):
        out.append(text(value[pos : m.start()]))
        if m.group(1).lower() in ALLOWED_TAGS:
            out.append(m.group(0))
        pos = m.end()
    out.append(text(value[pos:]))
    return "".join(out).strip()


class FakeInvenio(FakeServer):
    name = "invenio"

    def __init__(
        self,
        *,
        token: str = TOKEN,
        multipart: bool = False,
        communities: tuple[str, ...] = (),
        vocabularies: dict[str, set[str]] | None = None,
        checksum_delay: int = 2,
        empty_files: bool = True,
        legacy: bool = False,
    ) -> None:
        super().__init__()
        self.legacy = legacy
        """An instance before pluggable transfers (invenio-records-resources < 8.0,
        InvenioRDM <= 12): ``InitFileSchema`` INCLUDEs unknown fields, so a ``transfer``
        is kept as the file's data and the file is a plain (local) pending one, whose
        answer has no ``transfer`` and no ``links.parts``."""
        self.empty_files = empty_files
        """RECORDS_RESOURCES_ALLOW_EMPTY_FILES (True by default; Zenodo sets it False)."""
        self.vocabularies = {k: set(v) for k, v in (vocabularies or {}).items()}
        """``affiliations``/``funders``/``awards`` → ids the instance has (none by default:
        a small instance; Zenodo's loads ROR and the awards)."""
        self.checksum_delay = checksum_delay
        self.token = token
        self.multipart = multipart
        self.communities = {slug: str(uuid.uuid4()) for slug in communities}
        self.drafts: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1001)
        p = r"/api/records/([^/]+)/draft"
        self.route("GET", r"/api/user/records", self.user_records)
        self.route("GET", r"/api/(affiliations|funders|awards)/([^/]+)", self.vocabulary)
        self.route("GET", r"/api/communities/([^/]+)", self.community)
        self.route("POST", r"/api/records", self.create)
        self.route("PUT", p, self.update)
        self.route("GET", p, self.read)
        self.route("GET", p + r"/files", self.list_files)
        self.route("POST", p + r"/files", self.init_files)
        self.route("PUT", p + r"/files/(.+)/content/(\d+)", self.put_part)
        self.route("PUT", p + r"/files/(.+)/content", self.put_content)
        self.route("POST", p + r"/files/(.+)/commit", self.commit)
        self.route("DELETE", p + r"/files/(.+)", self.delete_file)
        self.route("GET", p + r"/files/(.+)", self.file_info)
        self.route("PUT", p + r"/review", self.review)
        self.route("POST", p + r"/actions/submit-review", self.submit_review)
        self.route("POST", p + r"/actions/publish", self.publish)
        self.route("POST", p + r"/actions/files-import", self.files_import)
        self.route("POST", r"/api/records/([^/]+)/versions", self.new_version)

    # ------------------------------------------------------------ helpers
    def _auth(self, req: Request) -> tuple[int, Any] | None:
        tok = bearer(req)
        if tok is None:
            return 401, {
                "status": 401,
                "message": "The server could not verify that you are authorized to access the URL requested.",
            }
        if tok != self.token:
            return 403, {
                "status": 403,
                "message": "You don't have the permission to access the requested resource.",
            }
        return None

    def _errors(self, md: dict[str, Any]) -> list[dict[str, Any]]:
        errs = []
        if len(str(md.get("title") or "")) < 3:
            errs.append({"field": "metadata.title", "messages": ["Shorter than minimum length 3."]})
        if not md.get("creators"):
            errs.append(
                {"field": "metadata.creators", "messages": ["Missing data for required field."]}
            )
        if not md.get("publication_date"):
            errs.append(
                {
                    "field": "metadata.publication_date",
                    "messages": ["Missing data for required field."],
                }
            )
        for i, c in enumerate(md.get("creators") or []):
            por = c.get("person_or_org") or {}
            if por.get("type") == "personal" and not str(por.get("family_name") or "").strip():
                errs.append(
                    {
                        "field": f"metadata.creators.{i}.person_or_org.family_name",
                        "messages": ["Family name must be filled."],
                    }
                )
            for j, aff in enumerate(c.get("affiliations") or []):
                if "id" in aff and aff["id"] not in self.vocabularies.get("affiliations", set()):
                    errs.append(
                        {
                            "field": f"metadata.creators.{i}.affiliations.{j}.id",
                            "messages": [f"Invalid value {aff['id']}."],
                        }
                    )
        for i, f in enumerate(md.get("funding") or []):
            fid = (f.get("funder") or {}).get("id")
            if fid and fid not in self.vocabularies.get("funders", set()):
                errs.append(
                    {
                        "field": f"metadata.funding.{i}.funder.id",
                        "messages": [f"Invalid value {fid}."],
                    }
                )
            award = f.get("award")
            if award is None:
                continue
            if "id" in award:
                if award["id"] not in self.vocabularies.get("awards", set()):
                    errs.append(
                        {
                            "field": f"metadata.funding.{i}.award.id",
                            "messages": [f"Invalid value {award['id']}."],
                        }
                    )
            elif not (award.get("title") and award.get("number")):
                errs.append(
                    {
                        "field": f"metadata.funding.{i}.award",
                        "messages": ["An existing id or both number and title are required."],
                    }
                )
        for i, rel in enumerate(md.get("related_identifiers") or []):
            # marshmallow-utils IdentifierSchema with the scheme's idutils validator
            # (is_url: a scheme and a host; is_doi: doi_regexp).
            scheme, value = rel.get("scheme"), str(rel.get("identifier") or "")
            parts = urlparse(value)
            bad = (scheme == "url" and not (parts.scheme and parts.netloc)) or (
                scheme == "doi"
                and not re.match(
                    r"(doi:\s*|(https?://)?(dx\.)?doi\.org/)?10\.\d+(\.\d+)*/.+$", value, re.I
                )
            )
            if bad:
                errs.append(
                    {
                        "field": f"metadata.related_identifiers.{i}.identifier",
                        "messages": [f"Invalid {str(scheme).upper()} identifier."],
                    }
                )
        if (md.get("resource_type") or {}).get("id") is None:
            errs.append(
                {
                    "field": "metadata.resource_type",
                    "messages": ["Missing data for required field."],
                }
            )
        return errs

    @staticmethod
    def _load(md: dict[str, Any]) -> dict[str, Any]:
        """The metadata as the service schema loads it (the description sanitized)."""
        if isinstance(md.get("description"), str):
            md = {**md, "description": sanitized_html(md["description"])}
        return md

    def _draft_json(self, d: dict[str, Any]) -> dict[str, Any]:
        out = {
            "id": d["id"],
            "metadata": d["metadata"],
            "links": {
                "self": f"{self.url}/api/records/{d['id']}/draft",
                "self_html": f"{self.url}/uploads/{d['id']}",
            },
            "is_published": False,
        }
        errs = self._errors(d["metadata"])
        if errs:
            out["errors"] = errs
        return out

    def _file_json(self, rid: str, key: str, f: dict[str, Any]) -> dict[str, Any]:
        out = {"key": key, "status": f["status"], "file_id": f["file_id"], "size": f.get("size")}
        if f["status"] == "completed":
            if f.get("pending_reads", 0) > 0:
                # Multipart: the md5 is computed later by a background task.
                out["checksum"] = f.get("pending_checksum", "")
            else:
                out["checksum"] = f"md5:{f['md5']}"
        if not f.get("legacy"):  # invenio-records-resources >= 8: FileSchema dumps it
            out["transfer"] = {"type": "M" if f.get("parts") else "L"}
        if f.get("parts"):
            out["links"] = {
                "parts": [
                    {
                        "part": n,
                        "url": f"{self.url}/api/records/{rid}/draft/files/{key}/content/{n}",
                        "expiration": "2099-01-01",
                    }
                    for n in range(1, f["parts"] + 1)
                ]
            }
        return out

    def _get(self, rid: str) -> dict[str, Any] | None:
        return self.drafts.get(rid)

    # ------------------------------------------------------------ routes
    def user_records(self, req: Request):
        # docs-invenio-rdm rest_api_drafts_records.md "List your draft and published records".
        return self._auth(req) or (200, {"hits": {"hits": [], "total": 0}})

    def community(self, req: Request, slug: str):
        # docs-invenio-rdm rest_api_communities.md (GET /api/communities/{slug}).
        if slug not in self.communities:
            return 404, {"status": 404, "message": "The persistent identifier does not exist."}
        return 200, {"id": self.communities[slug], "slug": slug}

    def create(self, req: Request):
        # docs-invenio-rdm rest_api_drafts_records.md "Create a draft record" (saved with partial validation: errors in a 201).
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json() or {}
        rid = str(next(self.ids))
        with self.lock:
            self.drafts[rid] = {
                "id": rid,
                "metadata": self._load(body.get("metadata") or {}),
                "files": {},
                "parent": None,
                "review": None,
            }
        return 201, self._draft_json(self.drafts[rid])

    def update(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Update a draft record" (replaces the metadata).
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        if d is None:
            return 404, {"status": 404, "message": "The persistent identifier does not exist."}
        d["metadata"] = self._load((req.json() or {}).get("metadata") or {})
        return 200, self._draft_json(d)

    def read(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Get a draft record".
        d = self._get(rid)
        return (200, self._draft_json(d)) if d else (404, {"status": 404, "message": "not found"})

    def list_files(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "List a draft's files".
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        if d is None:
            return 404, {"status": 404, "message": "not found"}
        return 200, {
            "entries": [self._file_json(rid, k, f) for k, f in d["files"].items()],
            "enabled": True,
        }

    def init_files(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Start draft file upload(s)"; transfer type M per invenio-records-resources services/files/transfer/providers/multipart.py.
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        if d is None:
            return 404, {"status": 404, "message": "not found"}
        specs = req.json() or []
        out = []
        for s in specs:
            key = s["key"]
            if key in d["files"]:
                return 400, {"status": 400, "message": f"File with key {key} already exists."}
            transfer = (s.get("transfer") or {}).get("type", "L")
            if self.legacy:
                extra = {k: v for k, v in s.items() if k not in ("key", "storage_class")}
                f = {"status": "pending", "file_id": str(uuid.uuid4()), "asm": Assembler()}
                d["files"][key] = {**f, "data": extra, "legacy": True}
                out.append(self._file_json(rid, key, d["files"][key]))
                continue
            if transfer == "M" and not self.multipart:
                # invenio-records-resources services/files/schema.py: the transfer types are
                # those registered; the many=True load names the file by its index
                return 400, {
                    "status": 400,
                    "message": "A validation error occurred.",
                    "errors": [
                        {"field": f"{len(out)}.transfer.type", "messages": ["Unsupported value: M"]}
                    ],
                }
            f = {
                "status": "pending",
                "file_id": str(uuid.uuid4()),
                "asm": Assembler(),
                "size": s.get("size"),
            }
            if transfer == "M":
                f["parts"] = int(s["transfer"]["parts"])
                f["part_size"] = int(s["transfer"]["part_size"])
            d["files"][key] = f
            out.append(self._file_json(rid, key, f))
        return 201, {"entries": out}

    def put_content(self, req: Request, rid: str, key: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Upload a draft file's content".
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        f = d["files"].get(key) if d else None
        if f is None or f["status"] == "completed":
            return 404, {"status": 404, "message": "File not found or already committed."}
        asm = Assembler()
        asm.whole(req.stream())
        f["asm"], f["size"] = asm, asm.size
        return 200, self._file_json(rid, key, f)

    def put_part(self, req: Request, rid: str, key: str, n: str):
        # invenio-records-resources multipart transfer: PUT links.parts[n].url per part.
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        f = d["files"].get(key) if d else None
        if f is None or not f.get("parts"):
            return 404, {"status": 404, "message": "not a multipart upload"}
        f["asm"].part(int(n), req.stream())
        return 200, {"part": int(n)}

    def commit(self, req: Request, rid: str, key: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Complete a draft file upload".
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        f = d["files"].get(key) if d else None
        if f is None:
            return 404, {"status": 404, "message": "File not found."}
        asm: Assembler = f["asm"]
        if f.get("parts") and len(asm.parts_done) < f["parts"]:
            return 400, {"status": 400, "message": "Not all parts have been uploaded."}
        if not asm.parts_done:
            return 400, {"status": 400, "message": "File has no content."}
        if asm.size == 0 and not self.empty_files:
            # invenio-records-resources services/files/components/metadata.py commit_file
            return 400, {"status": 400, "message": "Empty files are not accepted."}
        f.update({"status": "completed", "md5": asm.hexdigest, "size": asm.size})
        if f.get("parts"):
            f["pending_reads"] = self.checksum_delay
            f["pending_checksum"] = (
                "" if self.checksum_delay % 2 else f"multipart:{uuid.uuid4().hex}-{f['part_size']}"
            )
        return 200, self._file_json(rid, key, f)

    def file_info(self, req: Request, rid: str, key: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Get a draft file's metadata".
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        f = d["files"].get(key) if d else None
        if f is None:
            return 404, {"status": 404, "message": "File not found."}
        out = self._file_json(rid, key, f)
        if f.get("pending_reads", 0) > 0:
            f["pending_reads"] -= 1
        return 200, out

    def vocabulary(self, req: Request, kind: str, ident: str):
        # docs-invenio-rdm rest_api_vocabularies.md "Specific vocabularies" (GET /api/{type}/{id}),
        # rest_api_awards.md "Get an award" (ids such as 021nxhr62::7244408).
        ident = unquote(ident)
        if ident not in self.vocabularies.get(kind, set()):
            return 404, {"status": 404, "message": "The persistent identifier does not exist."}
        return 200, {"id": ident, "name": ident}

    def delete_file(self, req: Request, rid: str, key: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Delete a draft file".
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        if d is None or key not in d["files"]:
            return 404, {"status": 404, "message": "not found"}
        del d["files"][key]
        return 204, None

    def review(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_reviews.md "Create/update a review request" (receiver community UUID).
        body = req.json() or {}
        d = self._get(rid)
        cid = (body.get("receiver") or {}).get("community")
        if d is None or cid not in self.communities.values():
            return 400, {"status": 400, "message": "Invalid community."}
        d["review"] = {"community": cid, "status": "created"}
        return 200, {"id": str(uuid.uuid4()), "status": "created", "receiver": {"community": cid}}

    def submit_review(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_reviews.md "Submit a record for review".
        d = self._get(rid)
        if d is None or not d.get("review"):
            return 400, {"status": 400, "message": "No review request."}
        d["review"]["status"] = "submitted"
        return 202, {"status": "submitted"}

    def publish(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Publish a draft record" (400 with field errors).
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._get(rid)
        if d is None:
            return 404, {"status": 404, "message": "not found"}
        errs = self._errors(d["metadata"])
        if not d["files"]:
            errs.append(
                {
                    "field": "files.enabled",
                    "messages": [
                        "Missing uploaded files. To disable files for this record please mark it as metadata-only."
                    ],
                }
            )
        if any(f["status"] != "completed" for f in d["files"].values()):
            errs.append({"field": "files", "messages": ["Not all files are committed."]})
        if not d["metadata"].get("publisher"):
            # The DOI this instance registers at publication needs a publisher
            # (invenio-rdm-records services/pids/providers/datacite.py, validate();
            # inveniosoftware/invenio-rdm-records#819): publishing fails without one.
            errs.append(
                {
                    "field": "metadata.publisher",
                    "messages": ["Missing publisher field required for DOI registration."],
                }
            )
        if errs:
            return 400, {"status": 400, "message": "A validation error occurred.", "errors": errs}
        rec = dict(d)
        rec["doi"] = f"10.5072/fake.{rid}"
        self.records[rid] = rec
        del self.drafts[rid]
        return 202, {
            "id": rid,
            "pids": {"doi": {"identifier": rec["doi"], "provider": "datacite"}},
            "links": {"self_html": f"{self.url}/records/{rid}"},
            "is_published": True,
        }

    def new_version(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Create a new version".
        if (bad := self._auth(req)) is not None:
            return bad
        rec = self.records.get(rid)
        if rec is None:
            return 404, {"status": 404, "message": "The persistent identifier does not exist."}
        nid = str(next(self.ids))
        md = {k: v for k, v in rec["metadata"].items() if k != "publication_date"}
        self.drafts[nid] = {"id": nid, "metadata": md, "files": {}, "parent": rid, "review": None}
        return 201, self._draft_json(self.drafts[nid])

    def files_import(self, req: Request, rid: str):
        # docs-invenio-rdm rest_api_drafts_records.md "Link files from previous version".
        d = self._get(rid)
        if d is None or not d.get("parent"):
            return 404, {"status": 404, "message": "not found"}
        for k, f in self.records[d["parent"]]["files"].items():
            d["files"][k] = dict(f)
        return 201, {"entries": [self._file_json(rid, k, f) for k, f in d["files"].items()]}


class PublishedRecords(FakeInvenio):
    """InvenioRDM that also serves published records at ``/api/records/<id>``, as the real
    one does (``is_published`` and the DOI of the record asked for)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.routes.insert(0, ("GET", re.compile(r"/api/records/([^/]+)$"), self.record))

    def record(self, req: Request, rid: str):
        rec = self.records.get(rid)
        if rec is None:
            return 404, {"status": 404, "message": "not found"}
        return 200, {
            "id": rid,
            "is_published": True,
            "pids": {"doi": {"identifier": rec["doi"]}},
            "links": {"self_html": f"{self.url}/records/{rid}"},
        }
