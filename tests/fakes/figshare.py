"""A stateful fake Figshare API v2 with its upload service: articles, file initiation,
part lists (``PENDING``/``COMPLETE``), part PUTs, completion, publishing (versions).

Routes follow ``figshare/user_documentation``: ``swagger_documentation/swagger.json``
(``ArticleCreate``/``ArticleUpdate`` fields, ``AuthorsCreator``, ``PrivateFile``,
``UploadInfo``, ``Category``), ``APIv2/upload_example.md`` and ``docs/api/file_uploader.md``;
publication checks follow the Figshare metadata schema help page (title, authors,
categories, keywords, licence, description of 4-10,000 characters). As the real service
it refuses: more than 10 authors on create/update, fields outside the article schema,
unknown category or licence ids, and publishing without the mandatory fields.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

from tests.fakes.base import Assembler, FakeServer, Request

TOKEN = "figshare-good-token-789"
LICENSES = [
    {"value": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
    {"value": 2, "name": "CC0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"},
    {"value": 3, "name": "MIT", "url": "https://opensource.org/licenses/MIT"},
]
CATEGORIES = [
    # swagger "Category": id, parent_id, title, path, source_id, taxonomy_id (ANZSRC 2020 titles)
    {
        "id": 24,
        "parent_id": 0,
        "title": "Biological sciences",
        "path": "/24",
        "source_id": "31",
        "taxonomy_id": 100,
    },
    {
        "id": 240,
        "parent_id": 24,
        "title": "Cell neuroscience",
        "path": "/24/240",
        "source_id": "320902",
        "taxonomy_id": 100,
    },
    {
        "id": 241,
        "parent_id": 24,
        "title": "Connectomics",
        "path": "/24/241",
        "source_id": "310199",
        "taxonomy_id": 100,
    },
    {
        "id": 300,
        "parent_id": 0,
        "title": "Chemical sciences",
        "path": "/300",
        "source_id": "34",
        "taxonomy_id": 100,
    },
]
ARTICLE_FIELDS = frozenset(
    # swagger.json definitions ArticleCreate / ArticleUpdate properties
    {
        "title",
        "description",
        "is_metadata_record",
        "metadata_reason",
        "tags",
        "keywords",
        "references",
        "related_materials",
        "categories",
        "categories_by_source_id",
        "authors",
        "custom_fields",
        "custom_fields_list",
        "defined_type",
        "funding",
        "funding_list",
        "license",
        "doi",
        "handle",
        "resource_doi",
        "resource_title",
        "group_id",
        "timeline",
    }
)
MAX_AUTHORS = 10


class FakeFigshare(FakeServer):
    name = "figshare"

    def __init__(
        self,
        *,
        token: str = TOKEN,
        part_size: int = 64 * 1024,
        projects: tuple[str, ...] = ("77",),
        upload_url_style: str = "full",
        categories: list[dict[str, Any]] | None = None,
        account_categories: bool = True,
    ) -> None:
        super().__init__()
        self.category_list = categories if categories is not None else CATEGORIES
        self.account_categories = account_categories
        self.upload_url_style = upload_url_style
        """``full``: ``upload_url`` is ``…/upload/<token>``; ``root``: the service root, token apart
        (swagger ``PrivateFile`` example)."""
        self.token = token
        self.part_size = part_size
        self.projects = set(projects)
        self.articles: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(5001)
        self.fids = itertools.count(70001)
        a = r"/v2/account/articles/(\d+)"
        self.route("GET", r"/v2/account", self.account)
        self.route("GET", r"/v2/account/licenses", self.licenses)
        self.route("GET", r"/v2/account/categories", self.categories)
        self.route("GET", r"/v2/categories", self.categories)
        self.route("POST", a + r"/authors", self.add_authors)
        self.route("GET", a + r"/authors", self.list_authors)
        self.route("GET", r"/v2/account/projects/(\d+)", self.project)
        self.route("POST", r"/v2/account/articles", self.create)
        self.route("GET", r"/v2/account/articles", self.list_articles)
        self.route("GET", r"/v2/account/projects/(\d+)/articles", self.list_project_articles)
        self.route("POST", r"/v2/account/projects/(\d+)/articles", self.create_in_project)
        self.route("GET", a, self.read)
        self.route("PUT", a, self.update)
        self.route("GET", a + r"/files", self.list_files)
        self.route("POST", a + r"/files", self.init_file)
        self.route("GET", a + r"/files/(\d+)", self.file_info)
        self.route("POST", a + r"/files/(\d+)", self.complete)
        self.route("DELETE", a + r"/files/(\d+)", self.delete_file)
        self.route("POST", a + r"/publish", self.publish)
        self.route("GET", r"/upload/([\w-]+)", self.upload_info)
        self.route("PUT", r"/upload/([\w-]+)/(\d+)", self.put_part)

    def _auth(self, req: Request) -> tuple[int, Any] | None:
        auth = req.headers.get("Authorization") or ""
        if not auth:
            return 401, {"message": "Missing authorization", "code": "Unauthorized"}
        if auth != f"token {self.token}":
            return 403, {"message": "Invalid or expired token", "code": "Forbidden"}
        return None

    @staticmethod
    def _error(field: str, text: str, status: int = 400) -> tuple[int, Any]:
        return status, {
            "message": text,
            "code": "ValidationFailed",
            "errors": [{"field": field, "exception": "Invalid", "string": text}],
        }

    def _invalid(self, body: dict[str, Any], *, create: bool = True) -> tuple[int, Any] | None:
        unknown = sorted(set(body) - ARTICLE_FIELDS)
        if unknown:
            return self._error(unknown[0], f"Unknown field {unknown[0]!r} for an article")
        if len(body.get("authors") or []) > MAX_AUTHORS:
            return self._error(
                "authors",
                f"At most {MAX_AUTHORS} authors on create/update; add the others through the authors endpoint",
            )
        known_cats = {c["id"] for c in self.category_list}
        for c in body.get("categories") or []:
            if c not in known_cats:
                return self._error("categories", f"Category {c!r} does not exist")
        if "license" in body and body["license"] not in {lic["value"] for lic in LICENSES}:
            return self._error("license", f"License {body['license']!r} is not available")
        if len(str(body.get("description") or "")) > 20000:
            return self._error("description", "Description is longer than 20000 characters")
        if not create and "title" not in body:
            return None
        if len(str(body.get("title") or "")) < 3:
            return 422, {
                "message": "Validation failed",
                "code": "ValidationFailed",
                "errors": [
                    {
                        "field": "title",
                        "exception": "Length",
                        "string": "Title must be at least 3 characters.",
                    }
                ],
            }
        return None

    def account(self, req: Request):
        # swagger.json GET /account (private account info).
        return self._auth(req) or (200, {"id": 1, "email": "curator@example.org"})

    def licenses(self, req: Request):
        # swagger.json GET /account/licenses (License: value, name, url).
        return self._auth(req) or (200, LICENSES)

    def categories(self, req: Request):
        # swagger: GET /account/categories (the account's) and GET /categories (public)
        if not self.account_categories and req.path.startswith("/v2/account/"):
            return 404, {"message": "Not Found", "code": "NotFound"}
        return self._auth(req) or (200, self.category_list)

    def add_authors(self, req: Request, aid: str):
        # swagger: POST /account/articles/{article_id}/authors, body AuthorsCreator.
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        authors = (req.json() or {}).get("authors")
        if not isinstance(authors, list) or not authors:
            return self._error("authors", "authors is required")
        if len(authors) > MAX_AUTHORS:
            return self._error("authors", f"At most {MAX_AUTHORS} authors per request")
        a["meta"].setdefault("authors", []).extend(authors)
        return 201, None

    def list_authors(self, req: Request, aid: str):
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        return 200, [
            {"id": i, "full_name": au.get("name"), "orcid_id": au.get("orcid_id", "")}
            for i, au in enumerate(a["meta"].get("authors") or [], start=1)
        ]

    def project(self, req: Request, pid: str):
        # swagger.json GET /account/projects/{project_id}.
        if (bad := self._auth(req)) is not None:
            return bad
        return (
            (200, {"id": int(pid)})
            if pid in self.projects
            else (404, {"message": "Project not found", "code": "EntityNotFound"})
        )

    def create(self, req: Request, project: str | None = None):
        # swagger.json POST /account/articles, body ArticleCreate, 201 LocationWarnings.
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json() or {}
        if (bad := self._invalid(body)) is not None:
            return bad
        aid = str(next(self.ids))
        self.articles[aid] = {
            "id": aid,
            "meta": body,
            "files": {},
            "version": 0,
            "project": project,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return 201, {
            "entity_id": int(aid),
            "location": f"{self.url}/v2/account/articles/{aid}",
            "warnings": [],
        }

    def list_articles(self, req: Request, project: str | None = None):
        # swagger.json GET /account/articles (page, page_size; private articles included): Article
        # rows with id, title, doi, url, published_date (null until published) and no
        # created_date, which only the article itself (ArticleCompletePrivate) has.
        if (bad := self._auth(req)) is not None:
            return bad
        page, size = int(req.query.get("page") or 1), int(req.query.get("page_size") or 10)
        rows = [
            {
                "id": int(a["id"]),
                "title": a["meta"].get("title"),
                "doi": "",
                "url": f"{self.url}/v2/account/articles/{a['id']}",
                "published_date": "2024-01-01T00:00:00Z" if a["version"] else None,
                "defined_type": 3,
            }
            for a in self.articles.values()
            if project is None or a["project"] == project
        ]
        return 200, rows[(page - 1) * size : page * size]

    def list_project_articles(self, req: Request, pid: str):
        # swagger.json GET /account/projects/{project_id}/articles.
        if pid not in self.projects:
            return 404, {"message": "Project not found", "code": "EntityNotFound"}
        return self.list_articles(req, pid)

    def create_in_project(self, req: Request, pid: str):
        # swagger.json POST /account/projects/{project_id}/articles.
        if pid not in self.projects:
            return 404, {"message": "Project not found", "code": "EntityNotFound"}
        return self.create(req, pid)

    def read(self, req: Request, aid: str):
        # swagger.json GET /account/articles/{article_id} (ArticleComplete: doi, figshare_url, version).
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        doi = f"10.5072/m9.figshare.{aid}" + (f".v{a['version']}" if a["version"] else "")
        return 200, {
            "id": int(aid),
            "title": a["meta"].get("title"),
            "doi": doi if a["version"] else "",
            "figshare_url": f"{self.url}/articles/dataset/{aid}",
            "version": a["version"],
            "published_date": "2024-01-01T00:00:00Z" if a["version"] else None,
            "created_date": a.get("created"),
        }

    def update(self, req: Request, aid: str):
        # swagger.json PUT /account/articles/{article_id}, body ArticleUpdate, 205.
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        body = req.json() or {}
        if (bad := self._invalid(body, create=False)) is not None:
            return bad
        a["meta"] = {**a["meta"], **body}
        return 205, None

    def _file_json(self, aid: str, f: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f["id"],
            "name": f["name"],
            "size": f["size"],
            "status": f["status"],
            "computed_md5": f.get("computed_md5", ""),
            "supplied_md5": f.get("supplied_md5", ""),
            "upload_url": f"{self.url}/upload/{f['token']}"
            if self.upload_url_style == "full"
            else self.url,
            "upload_token": f["token"],
            "download_url": f"{self.url}/ndownloader/files/{f['id']}",
        }

    def list_files(self, req: Request, aid: str):
        # swagger.json GET /account/articles/{article_id}/files (PrivateFile list).
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        return 200, [self._file_json(aid, f) for f in a["files"].values()]

    def init_file(self, req: Request, aid: str):
        # swagger.json POST /account/articles/{article_id}/files, body FileCreator, 201 Location; APIv2/upload_example.md.
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        body = req.json() or {}
        if not body.get("name") or not isinstance(body.get("size"), int):
            return 400, {"message": "name and size are required", "code": "BadRequest"}
        fid, token = next(self.fids), uuid.uuid4().hex
        size = body["size"]
        parts = []
        for n, start in enumerate(range(0, max(size, 1), self.part_size), start=1):
            parts.append(
                {
                    "partNo": n,
                    "startOffset": start,
                    "endOffset": min(start + self.part_size, size) - 1,
                    "status": "PENDING",
                    "locked": False,
                }
            )
        f = {
            "id": fid,
            "name": body["name"],
            "size": size,
            "status": "created",
            "token": token,
            "parts": parts,
            "asm": Assembler(),
        }
        if body.get("md5"):
            f["supplied_md5"] = body["md5"]
        a["files"][str(fid)] = f
        self.uploads[token] = f
        return 201, {"location": f"{self.url}/v2/account/articles/{aid}/files/{fid}"}

    def file_info(self, req: Request, aid: str, fid: str):
        # swagger.json GET /account/articles/{article_id}/files/{file_id} (PrivateFile: upload_url, upload_token).
        if (bad := self._auth(req)) is not None:
            return bad
        f = (self.articles.get(aid) or {}).get("files", {}).get(fid)
        if f is None:
            return 404, {"message": "File not found", "code": "EntityNotFound"}
        return 200, self._file_json(aid, f)

    def upload_info(self, req: Request, token: str):
        # docs/api/file_uploader.md "GET /upload/<token>" (UploadInfo with parts).
        f = self.uploads.get(token)
        if f is None:
            return 404, {"message": "Upload not found"}
        return 200, {
            "token": token,
            "name": f["name"],
            "size": f["size"],
            "md5": f.get("supplied_md5", ""),
            "status": "PENDING" if f["status"] == "created" else "COMPLETED",
            "parts": f["parts"],
        }

    def put_part(self, req: Request, token: str, n: str):
        # docs/api/file_uploader.md "PUT /upload/<token>/<part_no>" (inclusive byte ranges).
        f = self.uploads.get(token)
        if f is None or not 1 <= int(n) <= len(f["parts"]):
            return 404, {"message": "Part not found"}
        part = f["parts"][int(n) - 1]
        want = part["endOffset"] - part["startOffset"] + 1
        if req.length != want:
            req.drain()
            return 400, {"message": f"Part {n} must be {want} bytes"}
        if part["status"] == "COMPLETE":
            req.drain()
            return 200, None
        f["asm"].part(int(n), req.stream())
        part["status"] = "COMPLETE"
        return 200, None

    def complete(self, req: Request, aid: str, fid: str):
        # swagger.json POST /account/articles/{article_id}/files/{file_id} (complete upload), 202.
        if (bad := self._auth(req)) is not None:
            return bad
        f = (self.articles.get(aid) or {}).get("files", {}).get(fid)
        if f is None:
            return 404, {"message": "File not found", "code": "EntityNotFound"}
        if any(p["status"] != "COMPLETE" for p in f["parts"]):
            return 400, {"message": "Not all parts are uploaded", "code": "BadRequest"}
        f["status"] = "available"
        f["computed_md5"] = f["asm"].hexdigest
        return 202, {"location": f"{self.url}/v2/account/articles/{aid}/files/{fid}"}

    @staticmethod
    def _publication_missing(meta: dict[str, Any]) -> list[str]:
        out = []
        if not 4 <= len(str(meta.get("description") or "")) <= 10_000:
            out.append("description")
        if not meta.get("keywords") and not meta.get("tags"):
            out.append("keywords")
        if not meta.get("categories"):
            out.append("categories")
        if meta.get("license") is None:
            out.append("license")
        if not meta.get("authors"):
            out.append("authors")
        return out

    def delete_file(self, req: Request, aid: str, fid: str):
        # swagger.json DELETE /account/articles/{article_id}/files/{file_id}, 204.
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None or fid not in a["files"]:
            return 404, {"message": "File not found", "code": "EntityNotFound"}
        del a["files"][fid]
        return 204, None

    def publish(self, req: Request, aid: str):
        # swagger.json POST /account/articles/{article_id}/publish, 201 Location; mandatory fields per the Figshare metadata schema help page.
        if (bad := self._auth(req)) is not None:
            return bad
        a = self.articles.get(aid)
        if a is None:
            return 404, {"message": "Article not found", "code": "EntityNotFound"}
        missing = self._publication_missing(a["meta"])
        if missing:
            # help.figshare.com article/figshare-metadata-schema-overview: required to publish.
            return 400, {
                "message": f"Missing mandatory field for publication: {missing[0]}",
                "code": "MissingMandatoryField",
                "errors": [{"field": m, "exception": "Missing", "string": m} for m in missing],
            }
        if not a["files"] or any(f["status"] != "available" for f in a["files"].values()):
            return 400, {
                "message": "Article has no files or files are still uploading",
                "code": "BadRequest",
            }
        a["version"] += 1
        return 201, {"location": f"{self.url}/v2/articles/{aid}"}
