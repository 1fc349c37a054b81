"""DSpace 7+ adapter (REST API, as VTechWorks and Cornell eCommons run it).

Authentication: the first CSRF token comes from ``GET /server/api/security/csrf``
(``DSpace/RestContract`` ``csrf-tokens.md``; DSpace 8.0-8.2 and 9.0-9.1 send no token on
other GETs, so ``/authn/status`` alone is not enough there); ``POST /server/api/authn/login``
(form ``user``/``password``, with ``X-XSRF-TOKEN``) answers with ``Authorization: Bearer <JWT>``.
Every write sends the latest token seen in a ``DSPACE-XSRF-TOKEN`` header; a 403 about
CSRF refreshes it, a 401 logs in again (once).

Submission (``RestContract/submission.md``): ``POST /api/submission/workspaceitems?owningCollection=<uuid>``
→ ``PATCH`` sections (JSON Patch ``dc.*``, licence granted) → one multipart ``POST`` of each
file to the workspace item → ``POST /api/workflow/workflowitems`` (``text/uri-list``).
Since 7.6.2 / 8.1 the default projection embeds nothing (``RestContract/projections.md``),
so the item is asked for with ``embed=item`` and otherwise read through its link.
Only fields the collection's submission form has are sent: the form is read from
``/api/config/submissiondefinitions`` and ``/api/config/submissionforms``; DSpace refuses
a whole PATCH for one field outside it. Files go in one request each, so the server's
request cap (512 MB by default) applies.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from curated.deposit._base import made_since, make_session, need, obj, one_lost_draft, rows
from curated.deposit.http import FileSlice, MultipartBody, Reply, RetryPolicy, describe_error
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError
from curated.metadata.crosswalk.dspace import (
    DEFAULT_FORM,
    FormField,
    SubmissionForm,
    fit_to_form,
    missing_from_form,
)

PATCH_JSON = {"Content-Type": "application/json-patch+json"}
URI_LIST = {"Content-Type": "text/uri-list"}


LIST_PAGE = 100
LIST_PAGES = 20
"""Pages of the account's workspace items read when looking for a lost draft."""


class DSpaceRepository:
    """Deposit into a DSpace 7 collection (``--to dspace --target COLLECTION-UUID``)."""

    kind = "dspace"
    keeps_folders = False
    single_request = True

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        token_env: str | None = None,
        user: str | None = None,
        user_env: str = "DSPACE_USER",
        collection: str | None = None,
        retry: RetryPolicy | None = None,
        sections: tuple[str, str] = ("traditionalpageone", "traditionalpagetwo"),
    ) -> None:
        base = url.rstrip("/")
        self.api = base if base.endswith("/api") else base + "/api"
        self.collection = collection
        self.user = user
        self.password = token
        self.user_env = user_env
        self.sections = sections
        self.form: SubmissionForm | None = None
        """The collection's submission form, read by :meth:`inspect`."""
        self._logging_in = False
        self._logged_in = False
        self.http = make_session(
            self.api,
            headers={"Accept": "application/json"},
            token=token,
            token_env=token_env,
            repository="DSpace",
            retry=retry,
        )
        self.http.advice[413] = (
            "DSpace takes each file in one request, up to its spring.servlet.multipart."
            "max-file-size and max-request-size (512MB by default) and its proxy's body size "
            "limit; its REST API has no other way: ask its administrators to raise them"
        )
        if token_env:
            self.http.credential = f"${user_env} / ${token_env}"
        self.http.on_response = self._take_xsrf
        self.http.on_auth_failure = self._reauth

    # ------------------------------------------------------------ auth
    def _take_xsrf(self, resp: Any) -> None:
        token = resp.headers.get("DSPACE-XSRF-TOKEN")
        if token:
            self.http.session.headers["X-XSRF-TOKEN"] = token
            self.http.add_secret(token)

    def _reauth(self, reply: Reply) -> bool:
        if self._logging_in:
            return False
        if reply.status == 403 and "csrf" in reply.text.lower():
            self._fetch_csrf("refreshing the CSRF token")
            return True
        if reply.status == 401 and "Authorization" in self.http.session.headers:
            del self.http.session.headers["Authorization"]
            self._logged_in = False
            self.login()
            return True
        return False

    def _fetch_csrf(self, what: str) -> None:
        """Ask for a CSRF token where DSpace hands one out on request.

        ``GET /security/csrf`` answers 204 with the token (``RestContract/csrf-tokens.md``);
        a DSpace 7 without that endpoint hands it out on ``/authn/status`` instead.
        """
        r = self.http.request(
            "GET", "/security/csrf", allow=(404, 405), expect_json=False, what=what
        )
        if r.status in (404, 405):
            self.http.request("GET", "/authn/status", what=what)

    def login(self) -> None:
        if self._logged_in:
            return
        if not self.user or not self.password:
            msg = f"DSpace needs an account: set {self.user_env} (e-mail) and the password variable"
            raise DepositError(msg, field=self.user_env)
        self._logging_in = True
        try:
            self._fetch_csrf("starting a session")
            r = self.http.request(
                "POST",
                "/authn/login",
                form={"user": self.user, "password": self.password},
                expect_json=False,
                what="logging in",
            )
        finally:
            self._logging_in = False
        bearer = r.header("Authorization")
        if not bearer:
            raise DepositError(
                "logging in: DSpace answered without an Authorization header; is --url the REST API root (…/server)?"
            )
        self.http.add_secret(bearer.removeprefix("Bearer ").strip())
        self.http.session.headers["Authorization"] = bearer
        self._logged_in = True

    # ------------------------------------------------------------ protocol
    def check_access(self) -> None:
        self.login()
        if not self.collection:
            raise DepositError(
                "DSpace needs the collection to deposit into: pass --target COLLECTION-UUID",
                field="target",
            )
        r = self.http.request(
            "GET",
            f"/core/collections/{quote(self.collection)}",
            allow=(404,),
            what="looking up the collection",
        )
        if r.status == 404:
            msg = f"the DSpace collection {self.collection!r} does not exist at {self.api}; check --target (the collection's UUID)"
            raise DepositError(msg, field="target")
        self.form = self._read_form()

    def can_inspect(self) -> bool:
        return bool(self.user and self.password and self.collection)

    def inspect(self) -> None:
        """Read-only look at the target for ``--dry-run``: log in and read the collection's form."""
        self.check_access()

    def _read_form(self) -> SubmissionForm:
        """The collection's submission definition and the forms of its metadata sections.

        ``RestContract/submissiondefinitions.md`` (``search/findByCollection``, linked
        ``sections``), ``submissionsections.md`` (``sectionType``, ``config`` link) and
        ``submissionforms.md`` (``rows[].fields[].selectableMetadata[].metadata``).
        """
        what = "reading the collection's submission form"
        r = self.http.request(
            "GET",
            "/config/submissiondefinitions/search/findByCollection",
            params={"uuid": self.collection},
            allow=(401, 403, 404),
            what=what,
        )
        if r.status != 200 or not isinstance(r.data, dict):
            return DEFAULT_FORM
        name = str(r.data.get("id") or r.data.get("name") or "traditional")
        link = (((r.data.get("_links") or {}).get("sections")) or {}).get("href")
        sr = self.http.request(
            "GET",
            link or f"/config/submissiondefinitions/{quote(name)}/sections",
            params={"size": 100},
            allow=(401, 403, 404),
            what=what,
        )
        listed = (obj(sr.data).get("_embedded") or {}).get("submissionsections") or []
        if sr.status != 200 or not listed:
            return DEFAULT_FORM
        form = SubmissionForm(name, {}, None, None, source=f"the {name!r} submission definition")
        for sec in listed:
            sid, kind = str(sec.get("id")), sec.get("sectionType")
            if kind == "license":
                form.license_section = sid
            elif kind == "upload":
                form.upload_section = sid
            elif kind == "submission-form":
                href = (((sec.get("_links") or {}).get("config")) or {}).get("href")
                fr = self.http.request(
                    "GET",
                    href or f"/config/submissionforms/{quote(sid)}",
                    allow=(401, 403, 404),
                    what=what,
                )
                if fr.status != 200:
                    return DEFAULT_FORM
                form.sections[sid] = _form_fields(fr.data)
        return form

    def review(
        self, metadata: Any, *, record: dict[str, Any], publish: bool
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Keep the operations the collection's form accepts; say what is left out."""
        form = self.form or DEFAULT_FORM
        ops, dropped = fit_to_form(metadata, form)
        findings: list[dict[str, Any]] = []
        if dropped:
            findings.append(
                {
                    "what": f"DSpace: {form.source} has no field for {', '.join(dropped)}; "
                    "these values are not carried over",
                    "advice": "ask the repository to add the fields to the collection's form, "
                    "or add them by hand after the deposit",
                    "blocking": False,
                }
            )
        missing = missing_from_form(ops, form)
        if missing:
            findings.append(
                {
                    "what": f"DSpace: the form requires {', '.join(missing)}, which the record leaves empty",
                    "advice": "fill them in curated.yaml (curated metadata set)",
                    "blocking": publish,
                }
            )
        if form.license_section is None:
            findings.append(
                {
                    "what": f"DSpace: {form.source} has no licence section, so none is granted",
                    "advice": "the repository's curators may need to grant it",
                    "blocking": False,
                }
            )
        return ops, findings

    def _wsi(self, state: dict[str, Any]) -> str:
        return f"/submission/workspaceitems/{state['id']}"

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        what = "creating the workspace item"
        r = self.http.request(
            "POST",
            "/submission/workspaceitems",
            params={"owningCollection": self.collection, "embed": "item"},
            json_body={},
            what=what,
        )
        wsi = need(r.data, "id", what=what)
        return {"id": wsi, "item": self._item_of(r.data, wsi, what)}

    def find_draft(self, metadata: Any, since: str) -> dict[str, Any] | None:
        """The workspace item an earlier create (or new version) made before its answer was lost.

        The account's workspace items (``GET /api/submission/workspaceitems/search/
        findBySubmitter?uuid=<eperson>``, the e-person from ``GET /api/authn/status``) match
        when they belong to the collection, hold no file, were modified since the lost
        request and carry no title or this deposit's title (a create sends no metadata; a
        new version copies the previous one's).
        """
        what = "looking for a workspace item an earlier run created"
        self.login()
        st = self.http.request("GET", "/authn/status", params={"embed": "eperson"}, what=what)
        person = _eperson(st.data)
        if not person:
            raise DepositError(f"{what}: DSpace's session status names no account")
        items: list[Any] = []
        for page in range(LIST_PAGES):  # every page: the default order is not by date
            r = self.http.request(
                "GET",
                "/submission/workspaceitems/search/findBySubmitter",
                params={"uuid": person, "embed": "collection", "page": page, "size": LIST_PAGE},
                allow=(204,),
                what=what,
            )
            data = r.data if r.status == 200 and isinstance(r.data, dict) else {}
            rows = (data.get("_embedded") or {}).get("workspaceitems") or []
            items += rows if isinstance(rows, list) else []
            total = (data.get("page") or {}).get("totalPages")
            if len(rows) < LIST_PAGE or (isinstance(total, int) and page + 1 >= total):
                break
        title = _dc_title(metadata)
        found = []
        for w in items:
            if not isinstance(w, dict) or w.get("id") is None:
                continue
            coll = ((w.get("_embedded") or {}).get("collection") or {}).get("uuid")
            sections = w.get("sections") or {}
            files = (sections.get("upload") or {}).get("files") or []
            has = _section_title(sections)
            if (
                coll == self.collection
                and not files
                and has in (None, title)
                and made_since(w.get("lastModified"), since)
            ):
                found.append((f"workspace item {w['id']}", w))
        chosen = one_lost_draft(found, repository="DSpace", since=since)
        if chosen is None:
            return None
        return {"id": chosen["id"], "item": self._item_of(chosen, chosen["id"], what)}

    def _item_of(self, data: dict[str, Any], wsi: Any, what: str) -> str:
        """The item's UUID: embedded when the server embeds it, else read through its link."""
        item = ((data.get("_embedded") or {}).get("item")) or None
        if isinstance(item, dict) and item.get("uuid"):
            return str(item["uuid"])
        href = (((data.get("_links") or {}).get("item")) or {}).get("href")
        if not isinstance(href, str) or self.http.foreign(href):
            href = None  # another site's answer is never taken for the item this draft holds
        r = self.http.request(
            "GET", href or f"/submission/workspaceitems/{wsi}/item", allow=(404,), what=what
        )
        if r.status == 404:  # no item link to follow: ask for the workspace item with it embedded
            r = self.http.request(
                "GET", f"/submission/workspaceitems/{wsi}", params={"embed": "item"}, what=what
            )
            return str(need(r.data, "_embedded", "item", "uuid", what=what))
        return str(need(r.data, "uuid", what=what))

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        item = previous["state"]["item"]
        r = self.http.request(
            "POST",
            "/versioning/versions",
            params={"summary": "new version deposited by curated"},
            raw=f"{self.api}/core/items/{item}",
            headers=URI_LIST,
            what="creating a new version",
        )
        vid = need(r.data, "id", what="creating a new version")
        r = self.http.request(
            "GET", f"/versioning/versions/{vid}/item", what="finding the new version's item"
        )
        new_item = need(r.data, "uuid", what="finding the new version's item")
        r = self.http.request(
            "GET",
            "/submission/workspaceitems/search/item",
            params={"uuid": new_item},
            what="finding the new version's workspace item",
        )
        return {
            "id": need(r.data, "id", what="finding the new version's workspace item"),
            "item": new_item,
        }

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        # ``add`` of a whole field is for a field that is still empty; a field the item
        # already has (a new version, a resumed draft) is removed first, then added.
        r = self.http.request("GET", self._wsi(state), what="reading the workspace item")
        sections = obj(r.data).get("sections") or {}
        ops: list[dict[str, Any]] = []
        for op in metadata:
            _, _, section, key = op["path"].split("/", 3)
            if (sections.get(section) or {}).get(key):
                ops.append({"op": "remove", "path": op["path"]})
            ops.append(op)
        self.http.request(
            "PATCH",
            self._wsi(state),
            json_body=ops,
            headers=PATCH_JSON,
            what="setting the metadata",
        )

    def _files(self, data: Any) -> list[dict[str, Any]]:
        section = (self.form or DEFAULT_FORM).upload_section or "upload"
        return rows(((obj(data).get("sections") or {}).get(section) or {}).get("files"))

    @staticmethod
    def _remote(f: dict[str, Any]) -> RemoteFile:
        title = ((f.get("metadata") or {}).get("dc.title") or [{}])[0].get("value")
        ck = f.get("checkSum") or {}
        algo = str(ck.get("checkSumAlgorithm") or "MD5").lower().replace("-", "")
        return RemoteFile(
            str(title), f.get("sizeBytes"), ck.get("value"), algo, f.get("uuid"), f.get("url")
        )

    def remote_files(self, state: dict[str, Any]) -> dict[str, RemoteFile]:
        r = self.http.request("GET", self._wsi(state), what="reading the workspace item")
        return {rf.name: rf for rf in (self._remote(f) for f in self._files(r.data))}

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        r = self.http.request("GET", self._wsi(state), what="reading the workspace item")
        files = self._files(r.data)
        # the bitstream itself when it is known (two may carry one name: a lost answer's
        # copy, an older one), else the first of that name
        by_id = [i for i, f in enumerate(files) if remote.id and f.get("uuid") == remote.id]
        for i, f in enumerate(files):
            if (i in by_id) if by_id else self._remote(f).name == remote.name:
                section = (self.form or DEFAULT_FORM).upload_section or "upload"
                ops = [{"op": "remove", "path": f"/sections/{section}/files/{i}"}]
                self.http.request(
                    "PATCH",
                    self._wsi(state),
                    json_body=ops,
                    headers=PATCH_JSON,
                    what=f"removing {remote.name}",
                )
                return

    def upload(self, state, item: UploadItem, entry, save, advance) -> Uploaded:  # type: ignore[no-untyped-def]
        what = f"uploading {item.name}"
        holder: list[MultipartBody] = []

        def body() -> MultipartBody:
            b = MultipartBody({}, "file", item.basename, FileSlice(item.path, on_read=advance))
            holder[:] = [b]
            return b

        # Each POST adds a bitstream: one whose answer was lost is looked for, not re-sent.
        r = self.http.request("POST", self._wsi(state), body=body, idempotent=False, what=what)
        answered = obj(r.data).get("id")
        if answered is not None and str(answered) != str(state["id"]):
            # another workspace item's files are no proof of this one's
            r = self.http.request("GET", self._wsi(state), what=f"{what} (checking)")
        found = [self._remote(f) for f in self._files(r.data)]
        found = [f for f in found if f.name == item.basename]
        if not found:
            raise self._not_stored(r, what)
        remote = found[-1]
        remote.name = item.name
        return Uploaded(remote, holder[0].hashes.result())

    def _not_stored(self, reply: Reply, what: str) -> DepositError:
        """The error of an upload answered with success whose workspace item lacks the file.

        DSpace's upload step catches what fails while storing the file (the assetstore's
        ``IOException``: a full disk, a refused write) and answers 201 all the same, with
        the exception's message among the workspace item's ``errors``
        (``UploadStep.upload``, ``WorkspaceItemRestRepository.upload``); the form's own
        (``error.validation.*``) are no such failure.
        """
        failed = [
            self.http.clean(describe_error(e))
            for e in rows(obj(reply.data).get("errors"))
            if not str(e.get("message") or "").startswith("error.validation.")
        ]
        if not failed:
            return DepositError(
                f"{what}: DSpace accepted the upload but the workspace item does not list the file"
            )
        msg = (
            f"{what}: DSpace did not store the file: its upload step failed with "
            f"{'; '.join(failed[:5])!r} (answered with HTTP {reply.status} all the same), which "
            "sending it again will not change while the cause stays (its storage: a full "
            "disk or quota, a refused write): ask the repository's administrators, then "
            "re-run with --resume"
        )
        return DepositError(msg, details={"status": reply.status, "server": failed[:5]})

    def finalize(self, state: dict[str, Any]) -> None:
        section = (self.form or DEFAULT_FORM).license_section
        if section is None:
            return
        ops = [{"op": "add", "path": f"/sections/{section}/granted", "value": "true"}]
        r = self.http.request(
            "PATCH",
            self._wsi(state),
            json_body=ops,
            headers=PATCH_JSON,
            what="granting the deposit licence",
        )
        errors = obj(r.data).get("errors") or []
        if errors:
            lines = "; ".join(describe_error(e) for e in errors[:10])
            msg = f"DSpace reports the submission incomplete: {lines}; the form's section ids may differ (see --target's submission form)"
            raise DepositError(msg, details={"errors": errors[:20]})

    def publish(self, state: dict[str, Any]) -> Landing:
        r = self.http.request(
            "POST",
            "/workflow/workflowitems",
            raw=f"{self.api}{self._wsi(state)}",
            headers=URI_LIST,
            what="submitting to the workflow",
        )
        # 201 with the workflow item (in review), or 204 without a body when the collection has
        # no reviewers and the item was archived at once (WorkflowItemRestRepository); either
        # way the item itself says what happened, never a bare success status
        answered = r.data.get("id") if isinstance(r.data, dict) else None
        ir = self.http.request(
            "GET", f"/core/items/{state['item']}", allow=(404,), what="reading the item"
        )
        item = ir.data if ir.status == 200 and isinstance(ir.data, dict) else {}
        handle = item.get("handle")
        if handle and item.get("inArchive"):
            status = "published"
        else:
            status = "submitted"
            answered = answered if answered is not None else self._workflow_item(state, r)
        url = f"https://hdl.handle.net/{handle}" if handle else None
        return Landing(
            str(state["item"]), status, url=url, handle=handle, extra={"workflowitem": answered}
        )

    def _workflow_item(self, state: dict[str, Any], r: Reply) -> Any:
        """The id of the item's workflow item; an error when it has none, for then the
        submission answered success without submitting anything."""
        wr = self.http.request(
            "GET",
            "/workflow/workflowitems/search/item",
            params={"uuid": state["item"]},
            allow=(204, 404),
            what="looking for the item's workflow item",
        )
        if wr.status == 200 and isinstance(wr.data, dict) and wr.data.get("id") is not None:
            return wr.data["id"]
        said = self.http.clean(r.text.strip()[:200]) or "an empty body"
        msg = (
            f"submitting to the workflow: DSpace answered HTTP {r.status} ({said!r}) but the "
            "item is neither archived nor in a workflow; the workspace item and its files are "
            "kept: check it there, then re-run with --resume"
        )
        raise DepositError(msg, details={"status": r.status, "record": state.get("item")})

    def landing(self, state: dict[str, Any]) -> Landing:
        return Landing(
            str(state["item"]),
            "draft",
            url=f"{self.api}{self._wsi(state)}",
            extra={"workspaceitem": state["id"]},
        )

    def plan(
        self, metadata: Any, items: list[UploadItem], *, publish: bool, new_version_of: str | None
    ) -> list[PlannedCall]:
        a = self.api
        calls = [
            PlannedCall("GET", f"{a}/security/csrf", note="obtain the XSRF token"),
            PlannedCall(
                "POST",
                f"{a}/authn/login",
                {"user": self.user, "password": "***"},
                note="obtain the JWT",
            ),
            PlannedCall("GET", f"{a}/core/collections/{self.collection}"),
            PlannedCall(
                "GET",
                f"{a}/config/submissiondefinitions/search/findByCollection?uuid={self.collection}",
                note="read the collection's submission form; send only the fields it has",
            ),
        ]
        if new_version_of:
            calls.append(
                PlannedCall("POST", f"{a}/versioning/versions", f"{a}/core/items/{new_version_of}")
            )
        else:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/submission/workspaceitems?owningCollection={self.collection}&embed=item",
                    {},
                )
            )
        calls.append(
            PlannedCall(
                "PATCH", f"{a}/submission/workspaceitems/{{id}}", metadata, note="JSON Patch"
            )
        )
        for it in items:
            calls.append(
                PlannedCall(
                    "POST",
                    f"{a}/submission/workspaceitems/{{id}}",
                    f"<multipart file: {it.size} bytes from {it.path}>",
                )
            )
        licence_section = (self.form or DEFAULT_FORM).license_section
        if licence_section:
            calls.append(
                PlannedCall(
                    "PATCH",
                    f"{a}/submission/workspaceitems/{{id}}",
                    [
                        {
                            "op": "add",
                            "path": f"/sections/{licence_section}/granted",
                            "value": "true",
                        }
                    ],
                    note="grant the deposit licence",
                )
            )
        if publish:
            calls.append(
                PlannedCall(
                    "POST", f"{a}/workflow/workflowitems", f"{a}/submission/workspaceitems/{{id}}"
                )
            )
        return calls

    def close(self) -> None:
        self.http.close()


def _form_fields(data: Any) -> dict[str, FormField]:
    """``rows[].fields[]`` of a submission form as metadata key → :class:`FormField`.

    A key offered by several fields (bound to different item types, ``typeBind``) is for
    the types of all of them, or every type when one of them is unbound; it counts as
    mandatory only when all of them are (never a requirement the form does not make).
    """
    out: dict[str, FormField] = {}
    for row in obj(data).get("rows") or []:
        for f in (row or {}).get("fields") or []:
            bind = tuple(str(t) for t in f.get("typeBind") or [] if t)
            for sel in f.get("selectableMetadata") or []:
                key = sel.get("metadata")
                if not key:
                    continue
                seen = out.get(str(key))
                kb, mandatory = bind, bool(f.get("mandatory"))
                if seen is not None:
                    kb = () if not seen.type_bind or not bind else (*seen.type_bind, *bind)
                    mandatory = mandatory and seen.mandatory
                out[str(key)] = FormField(
                    str(key),
                    mandatory,
                    bool(f.get("repeatable", True)),
                    str(f.get("label") or ""),
                    kb,
                )
    return out


def _eperson(status: Any) -> str | None:
    """The logged-in e-person's UUID from ``/api/authn/status`` (embedded or linked)."""
    if not isinstance(status, dict):
        return None
    person = (status.get("_embedded") or {}).get("eperson")
    if isinstance(person, dict) and (person.get("uuid") or person.get("id")):
        return str(person.get("uuid") or person.get("id"))
    href = (((status.get("_links") or {}).get("eperson")) or {}).get("href")
    return str(href).rstrip("/").rpartition("/")[2] or None if href else None


def _dc_title(ops: Any) -> str | None:
    """The ``dc.title`` value the metadata patch sets."""
    for op in ops or []:
        if isinstance(op, dict) and str(op.get("path", "")).endswith("/dc.title"):
            values = op.get("value") or []
            if values and isinstance(values[0], dict):
                return str(values[0].get("value"))
    return None


def _section_title(sections: dict[str, Any]) -> str | None:
    """The ``dc.title`` a workspace item's sections hold, ``None`` when it has none."""
    for sec in sections.values():
        values = sec.get("dc.title") if isinstance(sec, dict) else None
        if values and isinstance(values, list) and isinstance(values[0], dict):
            return str(values[0].get("value"))
    return None
