"""Figshare adapter (API v2), with Figshare's part-based uploads.

Sequence: ``POST /v2/account/articles`` → per file ``POST …/articles/{id}/files``
``{name, size}`` → ``GET`` the returned location (``upload_url``) → ``GET {upload_url}``
(the parts: ``partNo``, ``startOffset``, ``endOffset``, ``status``) → ``PUT {upload_url}/{partNo}``
for each ``PENDING`` part → ``POST …/articles/{id}/files/{file_id}`` (complete) →
``POST …/articles/{id}/publish``. A re-run re-reads the part list and sends only the
parts still pending. Publishing again after changing files makes a new version.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from curated.deposit._base import (
    MAX_LOOKUPS,
    body_errors,
    made_since,
    make_session,
    not_published,
    obj,
    one_lost_draft,
    rows,
)
from curated.deposit.http import Hashes, LostResponse, PartBody, Reply, RetryPolicy
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError
from curated.metadata.crosswalk.figshare import (
    MAX_AUTHORS,
    pick_categories,
    publication_problems,
)

LIST_PAGE = 100
MAX_LIST_PAGES = 20
"""Pages of the account's articles read when looking for a lost draft."""


def upload_location(upload_url: str, token: str) -> str:
    """The upload service's address for one file: ``<service>/upload/<token>``.

    Figshare's file record gives ``upload_url`` either whole (``…/upload/<token>``) or as
    the service root (swagger ``PrivateFile`` example ``https://uploads.figshare.com``)
    with ``upload_token`` apart (``docs/api/file_uploader.md``: ``GET /upload/<token>``).
    """
    parts = urlsplit(upload_url)
    segments = [p for p in parts.path.split("/") if p]
    if token and (not segments or segments[-1] != token):
        if not segments or segments[-1] != "upload":
            segments.append("upload")
        segments.append(token)
    return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), parts.query, ""))


def _locked(reply: Reply) -> bool:
    return reply.status == 409


def _part_list(info: Any, item: UploadItem, what: str) -> list[dict[str, Any]]:
    """The upload service's parts, in order, once they are seen to tile the whole file.

    Parts are the server's byte ranges (``startOffset``/``endOffset``, inclusive); a list
    that leaves a gap, overlaps or stops short of the file's end would store another
    file than the bag's, with an md5 of its own that then matches what was sent.
    """
    rows = (info or {}).get("parts") if isinstance(info, dict) else None
    if not rows:
        raise DepositError(f"{what}: Figshare's upload service lists no parts")
    try:
        parts = sorted(
            (
                {
                    **p,
                    "partNo": int(p["partNo"]),
                    "startOffset": int(p["startOffset"]),
                    "endOffset": int(p["endOffset"]),
                }
                for p in rows
            ),
            key=lambda p: p["startOffset"],
        )
    except (KeyError, TypeError, ValueError):
        raise DepositError(
            f"{what}: Figshare's upload service lists parts without byte ranges"
        ) from None
    at = 0
    for p in parts:
        if p["startOffset"] != at or p["endOffset"] < p["startOffset"]:
            break
        at = p["endOffset"] + 1
    declared = info.get("size")
    if (
        at != item.size
        or len({p["partNo"] for p in parts}) != len(parts)
        or (isinstance(declared, int) and declared != item.size)
    ):
        msg = (
            f"{what}: Figshare's upload service lists parts that do not cover the file's "
            f"{item.size} bytes exactly (they cover 0-{at - 1} before a gap, overlap or end, "
            f"of {declared if declared is not None else 'an unstated size'}); the upload is "
            "stopped and its file entry removed: re-run with --resume to start it again"
        )
        raise DepositError(msg, path=item.path, details={"parts": len(parts)})
    return parts


def _upload_token(upload_url: str) -> str:
    """The token of an ``…/upload/<token>`` address (empty for the service root alone)."""
    segments = [p for p in urlsplit(upload_url).path.split("/") if p]
    return segments[-1] if len(segments) >= 2 and segments[-2] == "upload" else ""


def _tail_id(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


class FigshareRepository:
    """Deposit into Figshare (``--to figshare --url https://api.figshare.com/v2``)."""

    kind = "figshare"
    keeps_folders = False
    single_request = False

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        token_env: str | None = None,
        collection: str | None = None,
        retry: RetryPolicy | None = None,
        status_polls: int = 10,
        status_wait: float = 900.0,
    ) -> None:
        self.api = url.rstrip("/")
        self.project = collection
        self.status_polls = status_polls
        self.status_wait = status_wait
        """Seconds to wait for Figshare to assemble a completed file before leaving it to ``--resume``."""
        self.licences: list[dict[str, Any]] | None = None
        self.categories: list[dict[str, Any]] | None = None
        self.more_authors: list[dict[str, Any]] = []
        """Authors past the tenth, sent through the authors endpoint after create/update."""
        self._token = token
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        self.http = make_session(
            self.api,
            headers=headers,
            token=token,
            token_env=token_env,
            repository="Figshare",
            retry=retry,
        )

    def check_access(self) -> None:
        self.http.request("GET", "/account", what="checking the token")
        if self.project:
            r = self.http.request(
                "GET",
                f"/account/projects/{self.project}",
                allow=(404,),
                what="looking up the project",
            )
            if r.status == 404:
                msg = f"the Figshare project {self.project!r} does not exist or is not yours; check --target (the project id)"
                raise DepositError(msg, field="target")
        self.inspect()

    def can_inspect(self) -> bool:
        return bool(self._token)

    def inspect(self) -> None:
        """The account's licences and categories (``GET /account/licenses``, ``/account/categories``)."""
        r = self.http.request("GET", "/account/licenses", what="reading the account's licences")
        self.licences = r.data if isinstance(r.data, list) else None
        # The account's categories (an institution may restrict them), else Figshare's public list.
        for path in ("/account/categories", "/categories"):
            r = self.http.request(
                "GET", path, allow=(404,), what="reading the account's categories"
            )
            if r.status == 200 and isinstance(r.data, list):
                self.categories = r.data
                break

    def review(
        self, metadata: Any, *, record: dict[str, Any], publish: bool
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Licence and categories from the account's lists; authors past the tenth set aside.

        Figshare publishes only with categories, keywords, a licence and a description of
        4-10,000 characters, and create/update take at most 10 authors.
        """
        from curated.metadata.crosswalk.figshare import licence_id

        art = dict(metadata)
        findings: list[dict[str, Any]] = []
        study = record.get("study") or {}
        if self.licences is not None and "license" not in art and study.get("license"):
            lic = licence_id(study.get("license"), self.licences)
            if lic is not None:
                art["license"] = lic
        if self.categories and not art.get("categories"):
            cats = pick_categories(record, self.categories)
            if not cats:
                first = next(
                    (c for c in self.categories if not c.get("parent_id")), self.categories[0]
                )
                cats = [int(first["id"])]
                findings.append(
                    {
                        "what": f"Figshare: no category of the account matches the record's keywords; "
                        f"the article is filed under {first.get('title')!r}",
                        "advice": "add one of the account's category titles to study.keywords to choose "
                        "another, or change it on figshare.com",
                        "blocking": False,
                    }
                )
            art["categories"] = cats
        authors = list(art.get("authors") or [])
        art["authors"], self.more_authors = authors[:MAX_AUTHORS], authors[MAX_AUTHORS:]
        if self.more_authors:
            findings.append(
                {
                    "what": f"Figshare: {len(authors)} authors; the article is created with the first "
                    f"{MAX_AUTHORS} and the other {len(self.more_authors)} are added through its authors endpoint",
                    "advice": "nothing to do",
                    "blocking": False,
                }
            )
        known = self.licences is not None and self.categories is not None
        missing = publication_problems(art)
        if not known:
            missing = [
                m for m in missing if "licence" not in m and "category" not in m
            ]  # decided by the account's lists, read once the deposit runs
        if missing:
            findings.append(
                {
                    "what": f"Figshare publishes only with {', '.join(missing)}",
                    "advice": "fill them in curated.yaml (study.description, study.keywords, study.license "
                    "from the account's licences), or deposit without --publish and finish on figshare.com",
                    "blocking": publish,
                }
            )
        if not known:
            findings.append(
                {
                    "what": "Figshare: the licence id and categories come from the account's lists, "
                    "read when the deposit runs (no token in this dry run)",
                    "advice": "set the token variable to check them now",
                    "blocking": False,
                }
            )
        return art, findings

    def _add_authors(self, state: dict[str, Any]) -> None:
        for i in range(0, len(self.more_authors), MAX_AUTHORS):
            chunk = self.more_authors[i : i + MAX_AUTHORS]
            r = self.http.request(
                "POST",
                f"{self._article(state)}/authors",
                json_body={"authors": chunk},
                expect_json=False,
                what="adding the other authors",
            )
            body_errors(r, "adding the other authors", self.http)

    def _article(self, state: dict[str, Any]) -> str:
        return f"/account/articles/{state['id']}"

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        path = f"/account/projects/{self.project}/articles" if self.project else "/account/articles"
        r = self.http.request("POST", path, json_body=metadata, what="creating the article")
        body_errors(r, "creating the article", self.http)
        data = obj(r.data)
        aid = data.get("entity_id") or data.get("id") or _tail_id(str(data.get("location") or ""))
        if not aid:
            raise DepositError("creating the article: Figshare's answer has no article id")
        return {"id": str(aid)}  # the other authors come with set_metadata, which follows

    def find_draft(self, metadata: Any, since: str) -> dict[str, Any] | None:
        """The article an earlier create made before its answer was lost.

        The account's articles (``GET /account/articles``, or the project's
        ``GET /account/projects/{id}/articles``) are listed, a page at a time up to
        :data:`MAX_LIST_PAGES`, and match when unpublished, titled as this deposit and
        created since the lost request.
        """
        path = f"/account/projects/{self.project}/articles" if self.project else "/account/articles"
        title = (metadata or {}).get("title")
        what = "looking for an article an earlier run created"
        candidates = []
        for page in range(1, MAX_LIST_PAGES + 1):
            r = self.http.request(
                "GET", path, params={"page": page, "page_size": LIST_PAGE}, what=what
            )
            rows = r.data if isinstance(r.data, list) else []
            candidates += [
                a
                for a in rows
                if isinstance(a, dict)
                and a.get("id") is not None
                and a.get("title") == title
                and not a.get("published_date")
            ]
            if len(rows) < LIST_PAGE:
                break
        found = []
        for a in candidates[:MAX_LOOKUPS]:
            aid = a["id"]
            if "created_date" not in a:
                # the list's rows (swagger ``Article``) carry no creation date: the
                # article itself (``ArticleCompletePrivate``) does
                r = self.http.request("GET", f"/account/articles/{aid}", allow=(404,), what=what)
                a = r.data if r.status == 200 and isinstance(r.data, dict) else {}
            if (
                a.get("title") == title
                and not a.get("published_date")
                and made_since(a.get("created_date"), since)
            ):
                found.append((f"article {aid}", {"id": str(aid)}))
        return one_lost_draft(found, repository="Figshare", since=since)

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        # Figshare versions an article each time it is published again.
        return dict(previous["state"])

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        r = self.http.request(
            "PUT",
            self._article(state),
            json_body=metadata,
            expect_json=False,
            what="setting the metadata",
        )
        body_errors(r, "setting the metadata", self.http)
        self._add_authors(state)

    def remote_files(self, state: dict[str, Any]) -> dict[str, RemoteFile]:
        r = self.http.request(
            "GET",
            f"{self._article(state)}/files",
            params={"page_size": 1000},
            what="listing the article's files",
        )
        out = {}
        for f in rows(r.data):
            if f.get("status") == "available" and isinstance(f.get("name"), str):
                out[f["name"]] = RemoteFile(
                    f["name"],
                    f.get("size"),
                    f.get("computed_md5"),
                    "md5",
                    str(f.get("id")),
                    f.get("download_url"),
                )
        return out

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        self.http.request(
            "DELETE",
            f"{self._article(state)}/files/{remote.id}",
            allow=(404,),
            expect_json=False,
            what=f"removing {remote.name}",
        )

    def _unfinished_file(self, state: dict[str, Any], item: UploadItem) -> str:
        """The id of the one file entry of ``item``'s name and size not yet uploaded; the
        lost answer again when there is none (nothing was made) or several (the curator's)."""
        r = self.http.request(
            "GET",
            f"{self._article(state)}/files",
            params={"page_size": 1000},
            what="looking for the file entry an unanswered request made",
        )
        found = [
            str(f["id"])
            for f in (r.data if isinstance(r.data, list) else [])
            if isinstance(f, dict)
            and f.get("id") is not None
            and f.get("name") == item.basename
            and f.get("size") == item.size
            and f.get("status") != "available"
        ]
        if len(found) != 1:
            msg = (
                f"uploading {item.name}: Figshare's answer to the new file entry was lost and "
                f"{len(found)} unfinished entries of that name are on the article: "
                + (
                    "re-run with --resume"
                    if not found
                    else "delete them there, then re-run with --resume"
                )
            )
            raise LostResponse(msg, path=item.path)
        return found[0]

    def _drop_entry(self, file_path: str, entry: dict[str, Any], save: Any, what: str) -> None:
        """Remove a file entry whose upload cannot go on, and forget it in the journal."""
        self.http.request(
            "DELETE", file_path, allow=(404,), expect_json=False, what=f"{what} (removing)"
        )
        for k in ("file_id", "parts_done", "committed"):
            entry.pop(k, None)
        save()

    def upload(
        self, state, item: UploadItem, entry, save, advance, *, again: bool = False
    ) -> Uploaded:  # type: ignore[no-untyped-def]
        """Send ``item`` in the upload service's parts; ``again`` when restarting an upload
        the service gave up."""
        what = f"uploading {item.name}"
        if entry.get("file_id") and entry.get("committed"):
            # an earlier run sent every part and completed the upload, then stopped waiting
            path = f"{self._article(state)}/files/{entry['file_id']}"
            r = self.http.request("GET", path, allow=(404,), what=f"{what} (checking)")
            if r.status != 404:
                return Uploaded(self._available(path, item, what), None)
            for k in ("file_id", "parts_done", "committed"):  # gone: sent again
                entry.pop(k, None)
            save()
        if not entry.get("file_id"):
            body: dict[str, Any] = {"name": item.basename, "size": item.size}
            try:
                r = self.http.request(
                    "POST", f"{self._article(state)}/files", json_body=body, what=what
                )
            except LostResponse:
                # the file entry may exist without its answer: take it rather than leave it
                # pending on the article beside a second one
                entry["file_id"] = self._unfinished_file(state, item)
            else:
                body_errors(r, what, self.http)
                loc = str(obj(r.data).get("location") or "")
                if not loc:
                    raise DepositError(f"{what}: Figshare's answer has no file location")
                entry["file_id"] = _tail_id(loc)
            save()
        file_path = f"{self._article(state)}/files/{entry['file_id']}"
        r = self.http.request("GET", file_path, what=what)
        upload_url = str(obj(r.data).get("upload_url") or "").rstrip("/")
        if not upload_url:
            raise DepositError(f"{what}: Figshare gave no upload URL for the file")
        token = str(obj(r.data).get("upload_token") or "")
        upload_url = upload_location(upload_url, token)
        # the upload service's token lets whoever holds it write the file: kept out of every
        # message (the answers keep it: a resumed upload reads it again)
        self.http.hide(token or _upload_token(upload_url))
        r = self.http.request("GET", upload_url, allow=(404,), what=f"{what} (part list)")
        if r.status == 404 or (isinstance(r.data, dict) and r.data.get("status") == "ABORTED"):
            # The upload service gave the upload up (``ABORTED``: a timeout, an error, or
            # forgotten): its parts can no longer be sent, so the file entry starts again.
            self._drop_entry(file_path, entry, save, what)
            if again:
                msg = (
                    f"{what}: Figshare's upload service gave up the new upload at once "
                    f"({'unknown upload' if r.status == 404 else 'ABORTED'}); try again later "
                    "with --resume"
                )
                raise DepositError(msg, path=item.path)
            return self.upload(state, item, entry, save, advance, again=True)
        try:
            parts = _part_list(r.data, item, what)
        except DepositError:
            self._drop_entry(file_path, entry, save, what)
            raise
        fresh = all(p.get("status") == "PENDING" for p in parts)
        running: Hashes | None = Hashes() if fresh else None
        for p in parts:
            if p.get("status") == "COMPLETE":
                continue
            offset, length = int(p["startOffset"]), int(p["endOffset"]) - int(p["startOffset"]) + 1
            part = PartBody(item.path, offset, length, on_read=advance, running=running)
            self.http.request(
                "PUT",
                f"{upload_url}/{p['partNo']}",
                body=part,
                retry_on=_locked,
                expect_json=False,
                what=f"{what} (part {p['partNo']})",
            )
            running = part.hashes
            entry["parts_done"] = sorted({*entry.get("parts_done", []), int(p["partNo"])})
            save()
        self.http.request("POST", file_path, expect_json=False, what=f"{what} (completing)")
        entry["committed"] = True  # a re-run waits for this file, never completes it again
        save()
        return Uploaded(
            self._available(file_path, item, what),
            running.result() if running is not None else None,
        )

    def _available(self, file_path: str, item: UploadItem, what: str) -> RemoteFile:
        """The completed file once Figshare has assembled it (``status: available``).

        Figshare assembles the parts after the completion answer (202 Accepted), which
        takes minutes for a large file: the file is read again, less and less often, for
        :attr:`status_wait` seconds (at least :attr:`status_polls` times), then left to
        ``--resume``.
        """
        info: dict[str, Any] = {}
        deadline = time.monotonic() + self.status_wait
        polls = 0
        while True:
            info = obj(self.http.request("GET", file_path, what=f"{what} (checking)").data)
            polls += 1
            if info.get("status") == "available" and info.get("computed_md5"):
                break  # assembled, and its md5 computed (an empty one is not yet)
            if polls >= self.status_polls and time.monotonic() >= deadline:
                raise DepositError(
                    f"{what}: Figshare has not finished assembling the file (status "
                    f"{info.get('status')!r}, md5 {info.get('computed_md5') or 'not computed'}); "
                    "its parts are all sent: re-run with --resume later to verify it"
                )
            self.http.retry.sleep(min(self.http.retry.backoff * 2 ** min(polls - 1, 5), 30.0))
        return RemoteFile(
            item.name,
            info.get("size"),
            info.get("computed_md5"),
            "md5",
            str(info.get("id")),
            info.get("download_url"),
        )

    def finalize(self, state: dict[str, Any]) -> None:
        return None

    def publish(self, state: dict[str, Any]) -> Landing:
        r = self.http.request("POST", f"{self._article(state)}/publish", what="publishing")
        body_errors(r, "publishing", self.http)
        if not isinstance(r.data, dict) or not r.data.get("location"):
            # Figshare answers a publication with the public article's location.
            lacking = "without the published article's location"
            raise not_published(self.http, r, lacking, state["id"])
        info = (
            self.http.request(
                "GET", self._article(state), what="reading the published article"
            ).data
            or {}
        )
        return Landing(
            str(state["id"]),
            "published",
            url=info.get("figshare_url") or obj(r.data).get("location"),
            doi=info.get("doi") or None,
            extra={"version": info.get("version")},
        )

    def landing(self, state: dict[str, Any]) -> Landing:
        return Landing(str(state["id"]), "draft", url=f"{self.api}{self._article(state)}")

    def plan(
        self, metadata: Any, items: list[UploadItem], *, publish: bool, new_version_of: str | None
    ) -> list[PlannedCall]:
        a = self.api
        calls = [
            PlannedCall("GET", f"{a}/account", note="check the token"),
            PlannedCall("GET", f"{a}/account/licenses"),
            PlannedCall("GET", f"{a}/account/categories", note="choose the categories"),
        ]
        if new_version_of:
            calls.append(PlannedCall("PUT", f"{a}/account/articles/{new_version_of}", metadata))
        else:
            calls.append(
                PlannedCall("POST", f"{a}/account/articles", metadata, note="create the article")
            )
        if self.more_authors:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/account/articles/{{id}}/authors",
                    {"authors": self.more_authors},
                    note="authors past the tenth",
                )
            )
        for it in items:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/account/articles/{{id}}/files",
                    {"name": it.basename, "size": it.size},
                )
            )
            calls.append(PlannedCall("GET", "{upload_url}", note="part list"))
            calls.append(
                PlannedCall(
                    "PUT",
                    "{upload_url}/{partNo}",
                    f"<each pending part of {it.size} bytes from {it.path}>",
                )
            )
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/account/articles/{{id}}/files/{{file_id}}",
                    note="complete; compare md5",
                )
            )
        if publish:
            calls.append(PlannedCall("POST", f"{a}/account/articles/{{id}}/publish"))
        return calls

    def close(self) -> None:
        self.http.close()
