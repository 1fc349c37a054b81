"""DSpace 7+ adapter (REST API, as VTechWorks and Cornell eCommons run it).

Authentication: ``GET /server/api/authn/status`` hands out the ``DSPACE-XSRF-TOKEN``
(header) and its cookie; ``POST /server/api/authn/login`` (form ``user``/``password``,
with ``X-XSRF-TOKEN``) answers with ``Authorization: Bearer <JWT>``. Every write sends
the latest XSRF token; a 403 about CSRF refreshes it, a 401 logs in again (once).

Submission: ``POST /api/submission/workspaceitems?owningCollection=<uuid>`` →
``PATCH`` sections (JSON Patch ``dc.*``, licence granted) → one multipart ``POST`` of each
file to the workspace item → ``POST /api/workflow/workflowitems`` (``text/uri-list``).
Files go in one request each, so the server's request cap (512 MB by default) applies.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from curated.deposit._base import make_session, need
from curated.deposit.http import FileSlice, MultipartBody, Reply, RetryPolicy
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.errors import DepositError

PATCH_JSON = {"Content-Type": "application/json-patch+json"}
URI_LIST = {"Content-Type": "text/uri-list"}


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
        self._logging_in = False
        self.http = make_session(
            self.api,
            headers={"Accept": "application/json"},
            token=token,
            token_env=token_env,
            repository="DSpace",
            retry=retry,
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
            if token not in self.http.secrets:
                self.http.secrets.append(token)

    def _reauth(self, reply: Reply) -> bool:
        if self._logging_in:
            return False
        if reply.status == 403 and "csrf" in reply.text.lower():
            self.http.request("GET", "/authn/status", what="refreshing the CSRF token")
            return True
        if reply.status == 401 and "Authorization" in self.http.session.headers:
            del self.http.session.headers["Authorization"]
            self.login()
            return True
        return False

    def login(self) -> None:
        if not self.user or not self.password:
            msg = f"DSpace needs an account: set {self.user_env} (e-mail) and the password variable"
            raise DepositError(msg, field=self.user_env)
        self._logging_in = True
        try:
            self.http.request("GET", "/authn/status", what="starting a session")
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
        self.http.secrets.append(bearer.removeprefix("Bearer ").strip())
        self.http.session.headers["Authorization"] = bearer

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

    def _wsi(self, state: dict[str, Any]) -> str:
        return f"/submission/workspaceitems/{state['id']}"

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        r = self.http.request(
            "POST",
            "/submission/workspaceitems",
            params={"owningCollection": self.collection},
            json_body={},
            what="creating the workspace item",
        )
        item = need(r.data, "_embedded", "item", what="creating the workspace item")
        return {"id": r.data["id"], "item": item["uuid"]}

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
        sections = (r.data or {}).get("sections") or {}
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
        return (((data or {}).get("sections") or {}).get("upload") or {}).get("files") or []

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
        for i, f in enumerate(self._files(r.data)):
            if self._remote(f).name == remote.name:
                ops = [{"op": "remove", "path": f"/sections/upload/files/{i}"}]
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

        r = self.http.request("POST", self._wsi(state), body=body, what=what)
        found = [self._remote(f) for f in self._files(r.data)]
        found = [f for f in found if f.name == item.basename]
        if not found:
            raise DepositError(
                f"{what}: DSpace accepted the upload but the workspace item does not list the file"
            )
        remote = found[-1]
        remote.name = item.name
        return Uploaded(remote, holder[0].hashes.result())

    def finalize(self, state: dict[str, Any]) -> None:
        ops = [{"op": "add", "path": "/sections/license/granted", "value": "true"}]
        r = self.http.request(
            "PATCH",
            self._wsi(state),
            json_body=ops,
            headers=PATCH_JSON,
            what="granting the deposit licence",
        )
        errors = (r.data or {}).get("errors") or []
        if errors:
            from curated.deposit.http import describe_error

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
        handle = None
        ir = self.http.request(
            "GET", f"/core/items/{state['item']}", allow=(404,), what="reading the item"
        )
        if ir.status == 200 and isinstance(ir.data, dict):
            handle = ir.data.get("handle")
        status = "published" if handle and (ir.data or {}).get("inArchive") else "submitted"
        url = f"https://hdl.handle.net/{handle}" if handle else None
        return Landing(
            str(state["item"]),
            status,
            url=url,
            handle=handle,
            extra={"workflowitem": (r.data or {}).get("id")},
        )

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
            PlannedCall("GET", f"{a}/authn/status", note="obtain the XSRF token"),
            PlannedCall(
                "POST",
                f"{a}/authn/login",
                {"user": self.user, "password": "***"},
                note="obtain the JWT",
            ),
            PlannedCall("GET", f"{a}/core/collections/{self.collection}"),
        ]
        if new_version_of:
            calls.append(
                PlannedCall("POST", f"{a}/versioning/versions", f"{a}/core/items/{new_version_of}")
            )
        else:
            calls.append(
                PlannedCall(
                    "POST", f"{a}/submission/workspaceitems?owningCollection={self.collection}", {}
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
        calls.append(
            PlannedCall(
                "PATCH",
                f"{a}/submission/workspaceitems/{{id}}",
                [{"op": "add", "path": "/sections/license/granted", "value": "true"}],
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
