"""Dataverse adapter (native API).

Sequence: ``POST /api/dataverses/{alias}/datasets`` (citation block) → per file
``POST /api/datasets/:persistentId/add?persistentId=…`` (multipart ``file`` + ``jsonData``
with ``directoryLabel``) → ``POST /api/datasets/:persistentId/actions/:publish?…&type=major``.
Before each write the dataset's locks (``GET /api/datasets/{id}/locks``) are polled;
a write refused because of a lock (ingest, publication) is retried after waiting; a lock
that never clears by itself (``FileValidationFailed``, ``InReview``) stops the deposit.
An ingest takes its lock in the background, after ``/add`` answered, so a lock may come
between the poll and the write; ``/add`` then says only ``Failed to add file to dataset.``
(IQSS/dataverse#8700): a refusal that names no lock is waited out too when the locks show
one (the file sent again only when the dataset does not list it), and reported with what
Dataverse said when they show none.
A new version is the same dataset edited: Dataverse opens a draft version by itself.

What Dataverse answers is checked, not trusted: the new dataset is read back by id and must
carry the answered persistent identifier; each ``/add`` answer must list one file under the
folder and name sent (Dataverse renames a taken name ``-1``); a publication counts once
``GET /api/datasets/{id}`` shows the latest version released, since Dataverse may finish it
in the background (a ``finalizePublication`` or ``Workflow`` lock) and fail there.

Licences: the installation's list is read from ``GET /api/licenses`` and the record's
SPDX licence is sent as the installation names it (Dataverse matches a licence by exact
URI or name, ``LicenseServiceBean.getByNameOrUri``); a licence it does not offer stops
the deposit before anything is created (left out, Dataverse would apply its default).

Files of ``direct_threshold`` bytes or more go straight to the dataset's store when it
allows direct upload (feature-detected with ``GET …/uploadurls``; ``IQSS/dataverse``
``doc/sphinx-guides/source/developers/s3-direct-upload-api.rst``): one presigned PUT, or
presigned part PUTs, then ``complete`` (or ``abort`` when the upload is given up), then
the file is registered with ``/add`` (``storageIdentifier`` + md5). ``x-amz-tagging`` is
sent only when the presigned URL signs it (a store with tagging disabled signs no such
header and S3 refuses one it did not sign). An ETag is the md5 of the bytes only without
SSE-KMS/SSE-C encryption, so it is checked only then; the deposit is verified by the
size and checksum Dataverse records for the file. Presigned URLs never receive the API
key. Other files go through the application server.

Zips: ``/add`` unpacks a file named ``*.zip``/``*.ZIP`` (one level), a direct upload is
kept as it is. So a zip goes direct whenever the store allows it, and otherwise inside a
one-member zip of its own (:mod:`curated.deposit.zipwrap`), which Dataverse unpacks back
into the zip: the file it stores and checksums is the bag's.

Required fields: a collection that uses its parent's metadata fields
(``isMetadataBlockRoot`` false) requires what the input levels of the first metadata
block root up its owners require (``DatasetField.isRequired``); :meth:`check_access`
reads them there, so a record lacking one is stopped before anything is created.

File names: Dataverse refuses (the whole ``/add``) a folder (``directoryLabel``) with a
character outside ``[A-Za-z0-9_ ./-]`` (``FileDirectoryNameValidator``) and a file name
with a backslash or one of ``/ : * ? " < > | ; #`` (``FileMetadata.label``), strips leading and trailing
``/ - . `` from folders (``StringUtil.sanitizeFileDirectory``), and reads the multipart
file name as ISO-8859-1 (IQSS/dataverse#12470). So each file is sent under the name
:func:`dataverse_name` gives it, which Dataverse keeps as sent (``label`` in ``jsonData``
carries non-ASCII names intact), with its path in the bag as the file's description when
that name differs; a re-run compares the bag with the dataset under those names.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from curated._crash import crash_point
from curated.deposit._base import (
    MAX_LOOKUPS,
    made_since,
    make_session,
    need,
    not_published,
    obj,
    one_lost_draft,
)
from curated.deposit.http import (
    FileSlice,
    Hashes,
    LostResponse,
    MultipartBody,
    PartBody,
    Reply,
    RetryPolicy,
    form_data,
    hash_file,
)
from curated.deposit.protocol import Landing, PlannedCall, RemoteFile, Uploaded, UploadItem
from curated.deposit.zipwrap import crc32_of, wrapper
from curated.errors import DepositError
from curated.metadata.crosswalk.dataverse import DEFAULT_LICENCES, match_licence

TAGGING = {"x-amz-tagging": "dv-state=temp"}
SSE_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-customer-algorithm")
"""S3's answer headers naming SSE-KMS (``aws:kms``) and SSE-C encryption."""


_FOLDER_REFUSED = re.compile(r"[^A-Za-z0-9_/. -]+")
_LABEL_REFUSED = re.compile(r'[\\/:*?"<>|;#\x00-\x1f\x7f]')
BAG_PATH = "Path in the bag: "
"""Starts the description of a file whose name Dataverse could not take as it is."""


def dataverse_name(name: str) -> tuple[str, str]:
    """``(directoryLabel, label)`` under which Dataverse keeps the bag file ``name`` as sent.

    Accents are dropped (``Ü`` → ``U``), other characters Dataverse refuses become ``_``,
    and folders lose what Dataverse would strip from their ends; a name it accepts is
    unchanged. Control characters (tab, line breaks, ``\\x01``) become ``_`` too: Dataverse
    keeps them, but a download names the file in a ``Content-Disposition`` header line and
    its listings and exports print it; the file's description keeps the bag path.
    """
    folder, _, base = name.rpartition("/")
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", folder) if not unicodedata.combining(c)
    )
    folder = re.sub(r"/+", "/", _FOLDER_REFUSED.sub("_", plain)).strip("/-. ")
    label = _LABEL_REFUSED.sub("_", base)
    return folder, label if label.strip() else "_"


def remote_name(name: str) -> str:
    """The path Dataverse lists for the bag file ``name`` (see :func:`dataverse_name`)."""
    folder, label = dataverse_name(name)
    return f"{folder}/{label}" if folder else label


def _file_meta(item: UploadItem) -> dict[str, Any]:
    """The name, folder and description ``jsonData`` gives Dataverse for ``item``."""
    folder, label = dataverse_name(item.name)
    renamed = remote_name(item.name) != item.name
    return {
        "directoryLabel": folder,
        "label": label,
        "description": f"{BAG_PATH}{item.name}" if renamed else "",
    }


def signs_tagging(url: str) -> bool:
    """Whether a presigned URL expects ``x-amz-tagging`` (Dataverse signs it unless the
    store has ``disable-tagging``); an URL without SigV4 signed headers gets the guide's default."""
    signed = parse_qs(urlsplit(url).query).get("X-Amz-SignedHeaders")
    if not signed:
        return True
    return "x-amz-tagging" in signed[0].lower().split(";")


def s3_error(text: str) -> tuple[str, str]:
    """``(Code, Message)`` of an S3 error document (empty strings when there is none)."""
    code = re.search(r"<Code>([^<]*)</Code>", text or "")
    message = re.search(r"<Message>([^<]*)</Message>", text or "")
    return (code.group(1) if code else "", message.group(1) if message else "")


STUCK_LOCKS = {
    "FileValidationFailed": "Dataverse found files of the dataset missing or corrupted when it "
    "validated them for publication and keeps it locked until its administrators act; ask "
    "them to check the dataset, then re-run with --resume",
    "InReview": "the dataset has been submitted for review and only the collection's curators "
    "may change it now; ask them to return it to the author, then re-run with --resume",
}
"""Locks that do not clear by themselves (``DatasetLock.Reason``): waiting for them is pointless."""


REFUSALS = (400, 403, 409)
"""Statuses with which Dataverse refuses a write to a locked dataset: 403 ``Dataset cannot be
edited due to dataset lock.`` (an ``IllegalCommandException``), and 400 with no more than
``Failed to add file to dataset.`` when ``/add`` fails to save the new version, as it does
under an ingest lock (``AddReplaceFileHelper``, IQSS/dataverse#8700)."""
HTTP_DISABLED = "file upload via http is not available"
"""What Dataverse answers (HTTP 503, ``file.api.httpDisabled``) to every ``/add`` and
``/addFiles``, a direct upload's registration included, when its ``:UploadMethods`` setting
lacks ``native/http`` (``Datasets.addFileToDataset``, ``SystemConfig.isHTTPUpload``): a
setting, not an outage, so it is never retried."""
_LOCK_WORD = re.compile(r"\block", re.IGNORECASE)
"""``lock``, ``locked``, ``locks`` as a word: not ``metadata block`` nor ``blocked``."""
_GENERIC_ADD = re.compile(
    r"\s*(failed to add file to dataset\.?|add\.add_file_error \(see logs\))\s*", re.IGNORECASE
)
"""``/add``'s whole answer when saving the dataset's new version failed, whatever the cause."""


def _is_lock(reply: Reply) -> bool:
    """Whether ``reply`` refuses a write because the dataset is locked, by what it says."""
    return reply.status in REFUSALS and bool(_LOCK_WORD.search(reply.text))


def _status_errors(reply: Reply, what: str) -> None:
    if isinstance(reply.data, dict) and str(reply.data.get("status", "")).upper() == "ERROR":
        raise DepositError(f"{what}: Dataverse reports an error: {reply.data.get('message')}")


def _check_added(item: UploadItem, files: Any, what: str) -> None:
    """Stop unless an ``/add`` answer lists one file, under the folder and name it was sent as.

    Dataverse keeps a file as :func:`dataverse_name` sends it, but gives a name the draft
    already has a ``-1`` (``IngestUtil.checkForDuplicateFileNamesFinal``): another client
    adding that file meanwhile, or an answer about another file, is not this file stored.
    Nothing is recorded; a re-run (``--resume``) removes what the bag lacks and sends it again.
    """
    folder, label = dataverse_name(item.name)
    rows = files if isinstance(files, list) else []
    f = obj(rows[0]) if len(rows) == 1 else {}
    got = (str(f.get("directoryLabel") or ""), f.get("label"))
    if got != (folder, label):
        sent = f"{folder}/{label}" if folder else label
        said = f"{got[0]}/{got[1]}" if got[0] else str(got[1])
        told = repr(said) if f else f"{len(rows)} files"
        msg = (
            f"{what}: Dataverse answered that it added {told}, not {sent!r} as sent (it renames "
            "a file whose name the dataset already has); nothing was recorded for this file: "
            "re-run with --resume, which removes files the bag does not have and sends it again"
        )
        raise DepositError(msg, details={"sent": sent, "answered": said if f else len(rows)})


def _remote_file(name: str, df: dict[str, Any]) -> RemoteFile:
    """A ``dataFile`` of a Dataverse reply as a :class:`RemoteFile` (``SHA-256`` → ``sha256``)."""
    ck = obj(df.get("checksum"))
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
        self.direct_offered = False
        """Whether the dataset's store was seen to take direct uploads (``uploadurls``)."""
        self.collection_requires: list[str] = []
        """Fields the collection requires besides the citation block's own (``inputLevels``)."""
        self.collection_levels_of: str | None = None
        """The alias of the parent collection whose input levels apply (``None``: its own)."""
        self.collection_levels_from: str | None = None
        """The id of the parent collection whose input levels apply but could not be read."""
        self.collection_released: bool | None = None
        """Whether the collection is published (``isReleased``), read by :meth:`check_access`."""
        self.licences: list[dict[str, Any]] | None = None
        """The installation's licences (``GET /api/licenses``), read by :meth:`check_access`."""
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
        self.http.advice[413] = (
            f"curated sends a file of {direct_threshold} bytes or more straight to the "
            "dataset's store where it offers direct upload, other files through Dataverse: "
            "ask its administrators to raise the upload limit of its web server or proxy, or "
            "to enable direct upload for the collection"
        )

    @staticmethod
    def remote_name(name: str) -> str:
        """The name a re-run looks for the bag file ``name`` under (:func:`remote_name`)."""
        return remote_name(name)

    def _pid(self, state: dict[str, Any]) -> dict[str, str]:
        return {"persistentId": state["pid"]}

    def _locks(self, state: dict[str, Any], what: str) -> list[dict[str, Any]]:
        """The dataset's locks (``GET /api/datasets/{id}/locks``)."""
        r = self.http.request(
            "GET", f"/datasets/{state['id']}/locks", what=f"{what} (checking locks)"
        )
        return _listed(r, f"{what} (checking locks)")

    def _wait_unlocked(self, state: dict[str, Any], what: str) -> float:
        """Wait until the dataset has no lock (at most ``lock_wait`` seconds); the seconds waited."""
        waited = 0.0
        while True:
            locks = self._locks(state, what)
            if not locks:
                return waited
            stuck = sorted({str(lk.get("lockType")) for lk in locks} & set(STUCK_LOCKS))
            if stuck:
                msg = f"{what}: the dataset is locked ({', '.join(stuck)}): {STUCK_LOCKS[stuck[0]]}"
                raise DepositError(msg, details={"locks": ", ".join(stuck)})
            if waited >= self.lock_wait:
                kinds = ", ".join(sorted({str(lk.get("lockType")) for lk in locks}))
                msg = (
                    f"{what}: the dataset has been locked ({kinds}) for {waited:.0f} s; "
                    "wait for the repository (or ask its curators to release the lock), then re-run with --resume"
                )
                raise DepositError(msg, details={"locks": kinds})
            self.http.retry.sleep(self.lock_poll)
            waited += self.lock_poll

    def _write(
        self,
        state: dict[str, Any],
        method: str,
        path: str,
        what: str,
        *,
        item: UploadItem | None = None,
        allow: tuple[int, ...] = (),
        **kw: Any,
    ) -> Reply:
        """Send a write to the dataset, waiting out a lock that refuses it.

        A refusal (:data:`REFUSALS`) that names a lock, or a 400/409 that does not while the
        dataset is locked (``/add`` says only ``Failed to add file to dataset.``), is waited
        out (:meth:`_wait_unlocked`: up to ``lock_wait``, a lock that never clears named at
        once) and the write sent again, a file (``item``) only once the dataset is seen not
        to hold it already. A refusal while the dataset is not locked is raised with what
        Dataverse said (returned, when ``allow`` has its status).
        """
        tries = max(self.http.retry.attempts, 1)
        for _ in range(tries):
            r = self.http.request(method, path, allow={*allow, *REFUSALS}, what=what, **kw)
            if r.status not in REFUSALS:
                return r
            if not _is_lock(r) and (r.status == 403 or not self._locks(state, what)):
                if r.status in allow:
                    return r
                raise self._refused_write(r, what, item)
            if not self._wait_unlocked(state, what):
                # the lock had cleared by the time it was looked at: not at once all the same
                self.http.retry.sleep(self.lock_poll)
            if item is not None:
                self._not_added(state, item, r, what)
        said = self.http.server_says(r)
        msg = (
            f"{what}: Dataverse refused it {tries} times because of a dataset lock ({said}), "
            "although each time the lock had cleared; wait for the repository, then re-run with --resume"
        )
        raise DepositError(msg, details={"status": r.status})

    def _refused_write(self, reply: Reply, what: str, item: UploadItem | None) -> DepositError:
        """The error of a write refused while the dataset is not locked."""
        said = self.http.server_says(reply)
        if item is None or not _GENERIC_ADD.fullmatch(said):
            return self.http.error_for(reply, what)
        msg = (
            f"{what}: Dataverse refused to add the file (HTTP {reply.status}: {said}); it answers "
            "so whenever saving the dataset's new version fails, and the dataset is not locked, "
            "so this is no lock to wait out: check the dataset there (the repository's server "
            "log says why), then re-run with --resume"
        )
        return DepositError(msg, details={"status": reply.status, "server": said})

    def _not_added(self, state: dict[str, Any], item: UploadItem, reply: Reply, what: str) -> None:
        """Stop before sending ``item`` again when the dataset lists it after all: the
        deposit then checks that file (taken when whole, removed otherwise) instead of
        adding a second copy (Dataverse would keep it as ``name-1``)."""
        name = remote_name(item.name)
        if name not in self.remote_files(state):
            return
        said = self.http.server_says(reply)
        msg = (
            f"{what}: Dataverse refused the file while the dataset was locked ({said}), yet "
            f"the dataset now lists {name}: it is not sent again"
        )
        raise LostResponse(msg, details={"status": reply.status, "lost": True})

    def _upload_disabled(
        self, reply: Reply, what: str, state: dict[str, Any]
    ) -> DepositError | None:
        """The error of an ``/add`` refused because the installation takes no file through
        its API (:data:`HTTP_DISABLED`), else ``None`` (a real outage's 503 is retried).
        Whether the dataset's store offers direct upload is looked up to say so."""
        said = self.http.server_says(reply)
        if reply.status != 503 or HTTP_DISABLED not in said.lower():
            return None
        if self.direct_ok and not self.direct_offered:
            try:
                r = self.http.request(
                    "GET",
                    "/datasets/:persistentId/uploadurls",
                    params={**self._pid(state), "size": 1},
                    allow=(400, 404, 405, 501),
                    what=f"{what} (asking whether direct upload is offered)",
                )
                self.direct_offered = r.status == 200
            except DepositError:
                pass  # the answer is only there to tell the curator more
        msg = (
            f"{what}: {self.http.repository} takes no files through its API: it answers "
            f"{said!r} (HTTP 503), as it does whenever its :UploadMethods setting lacks "
            "native/http; this is its configuration, not an outage, so waiting will not help"
        )
        if self.direct_offered:
            msg += (
                " (its store offers direct upload, but Dataverse registers a file sent "
                "there with the same call, which this setting refuses too)"
            )
        msg += (
            ". Ask the repository's administrators to add native/http to :UploadMethods, or "
            "upload the files through its web interface (or Globus, where offered); then "
            "re-run with --resume"
        )
        return DepositError(msg, details={"status": 503, "server": said, "disabled": "native/http"})

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
        data = _data(r)
        self.collection_released = data.get("isReleased")
        root = self._metadata_root(data)
        alias = (root or {}).get("alias")
        self.collection_levels_of = str(alias) if alias and alias != data.get("alias") else None
        self.collection_requires = sorted(
            str(lv.get("datasetFieldTypeName"))
            for lv in (root or {}).get("inputLevels") or []
            if isinstance(lv, dict) and lv.get("required") and lv.get("datasetFieldTypeName")
        )
        r = self.http.request(
            "GET", "/licenses", allow=(404,), what="reading the installation's licences"
        )
        data = (r.data or {}).get("data") if isinstance(r.data, dict) else None
        # No list (before Dataverse 5.10): the licences every installation starts with are assumed.
        self.licences = data if isinstance(data, list) else None

    def _metadata_root(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The collection whose input levels apply to datasets in ``data`` (a collection).

        A collection that uses its parent's metadata fields (``isMetadataBlockRoot`` false)
        has no input levels of its own that count: Dataverse walks up the owners to the
        first metadata block root, the installation's root collection being one whatever
        it says (``DatasetField.isRequired``), and requires what that one's levels require.
        ``None`` when an owner cannot be read (an unpublished parent the token may not see):
        :attr:`collection_levels_from` then names it.
        """
        seen: set[str] = set()
        self.collection_levels_from = None
        while data.get("isMetadataBlockRoot") is False and data.get("ownerId") is not None:
            owner = str(data["ownerId"])
            if owner in seen or len(seen) >= MAX_LOOKUPS:
                break  # a loop, or a tree deeper than any real one: take what was reached
            seen.add(owner)
            r = self.http.request(
                "GET",
                f"/dataverses/{quote(owner)}",
                allow=(401, 403, 404),
                what="looking up the collection's parent (its metadata fields)",
            )
            if r.status != 200:
                self.collection_levels_from = owner
                return None
            data = _data(r)
        return data

    def can_inspect(self) -> bool:
        return bool(self._token)

    def inspect(self) -> None:
        """Read-only look for ``--dry-run``: token, collection and licences."""
        self.check_access()

    def review(
        self, metadata: Any, *, record: dict[str, Any], publish: bool
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Send the licence as the installation names it, or stop when it offers none that fits;
        stop a publication into an unpublished collection, which Dataverse refuses."""
        wanted = (record.get("study") or {}).get("license")
        body = json.loads(json.dumps(metadata))
        version = body["datasetVersion"]
        offered = self.licences
        findings: list[dict[str, Any]] = []
        lacking = [n for n in self.collection_requires if n not in _field_names(version)]
        if lacking:
            heir = (
                f" (it uses the metadata fields of its parent collection {self.collection_levels_of!r})"
                if self.collection_levels_of
                else ""
            )
            findings.append(
                {
                    "what": f"Dataverse: the collection {self.collection!r} requires {', '.join(lacking)}"
                    f"{heir}, which curated's citation metadata does not fill; it would refuse the dataset",
                    "advice": "deposit into another collection (--target), or ask its administrators "
                    "which values to give",
                    "blocking": True,
                }
            )
        if self.collection_levels_from is not None:
            findings.append(
                {
                    "what": f"Dataverse: the collection {self.collection!r} uses the metadata fields of a "
                    f"parent collection (id {self.collection_levels_from}) that this token may not read; "
                    "fields that collection requires are not known",
                    "advice": "if Dataverse refuses the dataset for a missing field, ask the collection's "
                    "administrators which values to give",
                    "blocking": False,
                }
            )
        if self.collection_released is False:
            findings.append(
                {
                    "what": f"Dataverse: the collection {self.collection!r} is not published, and "
                    "Dataverse publishes no dataset in an unpublished collection",
                    "advice": "ask its administrators to publish the collection, or deposit without --publish",
                    "blocking": publish,
                }
            )
        if not wanted:
            return body, findings
        found = match_licence(str(wanted), offered or DEFAULT_LICENCES)
        if found is not None:
            version["license"] = {"name": str(found["name"]), "uri": str(found["uri"])}
            return body, findings
        version.pop("license", None)
        names = ", ".join(
            str(o.get("name")) for o in offered or DEFAULT_LICENCES if o.get("active", True)
        )
        if offered is None:
            findings.append(
                {
                    "what": f"Dataverse: {wanted} is not among the licences every installation offers ({names}); "
                    "the installation's own list is read when the deposit runs",
                    "advice": "if it lacks the licence the deposit stops before creating anything",
                    "blocking": False,
                }
            )
        else:
            findings.append(
                {
                    "what": f"Dataverse at {self.base} offers no licence matching {wanted} (it offers {names}); "
                    "without one it would apply its default licence",
                    "advice": "choose one of the offered licences for study.license, or ask the repository to add yours",
                    "blocking": True,
                }
            )
        return body, findings

    def create_draft(self, metadata: Any) -> dict[str, Any]:
        r = self.http.request(
            "POST",
            f"/dataverses/{quote(self.collection)}/datasets",
            json_body=metadata,
            what="creating the dataset",
        )
        _status_errors(r, "creating the dataset")
        did = need(r.data, "data", "id", what="creating the dataset")
        pid = need(r.data, "data", "persistentId", what="creating the dataset")
        state = {"id": did, "pid": pid}
        # Locks are read by id, files and publication go by persistent identifier: both must
        # name the one new draft, or files would go to one dataset and be checked in another.
        version = self._latest_version(state, "creating the dataset")
        if version is None or version.get("versionState") != "DRAFT":
            said = "another dataset" if version is None else "a dataset that is not a new draft"
            msg = (
                f"creating the dataset: Dataverse answered with id {did} and {pid}, which name "
                f"{said}; nothing was sent to it: re-run with --resume, which looks for the "
                "dataset this request made"
            )
            raise DepositError(msg, details={"id": did, "pid": pid})
        return state

    def find_draft(self, metadata: Any, since: str) -> dict[str, Any] | None:
        """The dataset an earlier create made in the collection before its answer was lost.

        The collection's contents (``GET /api/dataverses/{alias}/contents``) list its
        datasets; the unpublished ones, newest first, are read as drafts
        (``GET /api/datasets/{id}/versions/:draft``) and match when their title is this
        deposit's and they were created since the lost request.
        """
        what = "looking for a dataset an earlier run created"
        r = self.http.request("GET", f"/dataverses/{quote(self.collection)}/contents", what=what)
        listed = (r.data or {}).get("data") if isinstance(r.data, dict) else None
        unpublished = sorted(
            (
                d
                for d in listed or []
                if isinstance(d, dict)
                and d.get("type") == "dataset"
                and not d.get("publicationDate")
                and str(d.get("id", "")).isdigit()
            ),
            key=lambda d: int(d["id"]),
            reverse=True,
        )
        title = _title(metadata)
        found = []
        for d in unpublished[:MAX_LOOKUPS]:
            v = self.http.request(
                "GET", f"/datasets/{d['id']}/versions/:draft", allow=(404,), what=what
            )
            draft = (
                (v.data or {}).get("data") if v.status == 200 and isinstance(v.data, dict) else None
            )
            if not isinstance(draft, dict) or draft.get("versionState") not in (None, "DRAFT"):
                continue
            pid = draft.get("datasetPersistentId") or _pid_of(d)
            if (
                pid
                and _title({"datasetVersion": draft}) == title
                and made_since(draft.get("createTime"), since)
            ):
                found.append((str(pid), {"id": int(d["id"]), "pid": str(pid)}))
        return one_lost_draft(found, repository="Dataverse", since=since)

    def new_version(self, previous: dict[str, Any], metadata: Any) -> dict[str, Any]:
        state = dict(previous["state"])
        return state

    def set_metadata(self, state: dict[str, Any], metadata: Any) -> None:
        self._wait_unlocked(state, "setting the metadata")
        r = self._write(
            state,
            "PUT",
            "/datasets/:persistentId/versions/:draft",
            "setting the metadata",
            params=self._pid(state),
            json_body=metadata["datasetVersion"],
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
        for f in _listed(r, "listing the dataset's files"):
            df = obj(f.get("dataFile"))
            folder = f.get("directoryLabel")
            name = (f"{folder}/" if folder else "") + str(f.get("label") or df.get("filename"))
            out[name] = _remote_file(name, df)
        return out

    def delete_file(self, state: dict[str, Any], remote: RemoteFile) -> None:
        what = f"removing {remote.name}"
        self._wait_unlocked(state, what)
        r = self._write(state, "DELETE", f"/files/{remote.id}", what, allow=(404, 405))
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
        meta = {**_file_meta(item), "restrict": False, "tabIngest": False}
        unpacked = unpacked_on_add(meta["label"])
        # A zip goes direct where the store allows it (kept as it is there) whatever its size.
        if entry.get("direct") or (
            self.direct_ok and (unpacked or item.size >= self.direct_threshold)
        ):
            done = self._direct(state, item, entry, save, advance)
            if done is not None:
                return done
        wrap = (b"", b"")
        if unpacked:  # Dataverse unpacks one level: the member it keeps is this file, whole
            wrap = wrapper(_member_name(meta["label"]), item.size, crc32_of(item.path))
        holder: list[MultipartBody] = []

        def body() -> MultipartBody:
            b = MultipartBody(
                {"jsonData": json.dumps(meta)},
                "file",
                meta["label"],  # read as ISO-8859-1 there: "label" above names the file
                FileSlice(item.path, on_read=advance),
                wrap=wrap,
            )
            holder[:] = [b]
            return b

        r = self._write(
            state,
            "POST",
            "/datasets/:persistentId/add",
            what,
            item=item,
            params=self._pid(state),
            body=body,
            idempotent=False,  # each /add adds a file: a lost answer is looked up, not re-sent
            refuse=lambda reply: self._upload_disabled(reply, what, state),
        )
        _status_errors(r, what)
        crash_point("dataverse-added")  # stored there, not yet in the journal
        files = _listed(r, what, "files")
        remote = _remote_file(item.name, obj((files[0] if files else {}).get("dataFile")))
        if unpacked and (len(files) != 1 or str(remote.size) != str(item.size)):
            self._still_wrapped(state, item, files, what)
        _check_added(item, files, what)
        return Uploaded(remote, holder[0].hashes.result())

    def _still_wrapped(
        self, state: dict[str, Any], item: UploadItem, files: list[Any], what: str
    ) -> None:
        """Dataverse kept something else than the wrapped zip's one member (it stores the
        wrapper as it is when its unzip gives up, e.g. over ``:ZipUploadFilesLimit``):
        remove what it added and say so."""
        sizes = []
        for f in files:
            df = (f or {}).get("dataFile") or {}
            sizes.append(str(df.get("filesize")))
            if df.get("id") is not None:
                try:
                    self.delete_file(state, _remote_file(item.name, df))
                except DepositError:
                    pass  # the re-run compares the dataset with the bag and removes it then
        msg = (
            f"{what}: Dataverse unpacks .zip files sent through its API, so curated sent this one "
            f"inside a zip of its own to have it stored whole; Dataverse did not unpack that "
            f"(it kept {len(files)} file(s) of {', '.join(sizes) or 'no'} bytes, the zip has "
            f"{item.size}), which its installation does when unpacking is limited "
            "(:ZipUploadFilesLimit) or fails; what it kept was removed"
        )
        advice = (
            "ask the repository to enable direct (S3) upload for the collection, which stores "
            "zips as they are, or to raise :ZipUploadFilesLimit; or serialize the bag as .tar"
        )
        raise DepositError(f"{msg}; {advice}", details={"kept": sizes, "size": item.size})

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
            if r.status == 400:
                self._refused(r, item, what)
            if r.status != 200:  # 404: the store takes no direct uploads (405, 501: no such call)
                self.direct_ok = False
                return None
            d = need(r.data, "data", what=what)
            if "urls" in d:
                entry["direct"] = {
                    "urls": {str(k): v for k, v in d["urls"].items()},
                    "part_size": int(d["partSize"]),
                    "complete": d["complete"],
                    "abort": d.get("abort"),
                    "sid": d["storageIdentifier"],
                    "etags": {},
                }
            else:
                entry["direct"] = {"url": d["url"], "sid": d["storageIdentifier"]}
            save()
        dd = entry["direct"]
        self.direct_offered = True
        local = None
        if "url" in dd:
            holder: list[FileSlice] = []

            def whole() -> FileSlice:
                holder[:] = [FileSlice(item.path, on_read=advance)]
                return holder[0]

            tagging = TAGGING if signs_tagging(dd["url"]) else None
            r = self._store_put(entry, save, dd["url"], whole, what, tagging)
            local = holder[0].hashes.result()
            self._check_etag(entry, save, r, local["md5"], what)
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
                # Parts carry no tagging: Dataverse tags the object when it starts the upload.
                r = self._store_put(entry, save, dd["urls"][n], part, f"{what} (part {n})")
                sent = part.last
                assert sent is not None and sent.also is not None  # part_md5=True hashes each part
                self._check_etag(entry, save, r, sent.also.hexdigest(), f"{what} (part {n})")
                running = part.hashes
                dd["etags"][n] = str(r.header("ETag"))
                save()
            local = running.result() if running is not None else None
            if not dd.get("completed"):  # once completed, S3 knows the upload no more
                failed = self._complete(entry, save, what)
                if failed is not None:
                    return self._register(state, item, entry, save, local, what, failed)
        return self._register(state, item, entry, save, local, what)

    def _register(
        self, state, item: UploadItem, entry, save, local, what: str, failed: int | None = None
    ) -> Uploaded:  # type: ignore[no-untyped-def]
        """Register a file sent to the store (``/add`` with its ``storageIdentifier``).

        ``failed``: the HTTP status a completion of its multipart upload was answered with.
        The completion may have been done all the same (its answer lost, the repeat finding
        the upload gone): an object exists only once completed, so Dataverse registers it
        then; when it does not, the upload is aborted and the re-run sends the file afresh.
        """
        dd = entry["direct"]
        if local is None:
            local = hash_file(item.path)
        names = _file_meta(item)
        meta = {
            "storageIdentifier": dd["sid"],
            "fileName": names.pop("label"),
            **names,
            "mimeType": "application/octet-stream",
            "checksum": {"@type": "MD5", "@value": local["md5"]},
            # As through the server: ingest would replace a table by its .tab form (direct
            # uploads are ingested too, IngestServiceBean.saveAndAddFilesToDataset).
            "tabIngest": False,
        }
        raw, ctype = form_data({"jsonData": json.dumps(meta)})
        r = self._write(
            state,
            "POST",
            "/datasets/:persistentId/add",
            f"{what} (registering)",
            item=item,
            params=self._pid(state),
            raw=raw,
            headers={"Content-Type": ctype},
            allow=(400, 404, 500) if failed is not None else (),
            refuse=lambda reply: self._upload_disabled(reply, what, state),
        )
        if r.status != 200:
            self._abort(entry, save, what)
            msg = (
                f"{what}: Dataverse could not complete the multipart upload (HTTP {failed}); "
                "it has been aborted: re-run with --resume to send the file again"
            )
            raise DepositError(msg, details={"status": failed})
        _status_errors(r, what)
        crash_point("dataverse-added")  # stored there, not yet in the journal
        files = _listed(r, what, "files")
        remote = _remote_file(item.name, obj((files[0] if files else {}).get("dataFile")))
        try:
            _check_added(item, files, what)
        except DepositError:
            entry.pop("direct", None)  # registered or not, this storage identifier is done with
            save()
            raise
        # The checksum Dataverse records is the one sent (its fixity check at publication
        # compares it with the stored object); the size it records is the stored object's.
        if remote.size is not None and int(remote.size) != item.size:
            entry.pop("direct", None)
            save()
            msg = (
                f"{what}: Dataverse recorded {remote.size} bytes for the stored object, the file has "
                f"{item.size}; the upload is incomplete: re-run with --resume to send it again"
            )
            raise DepositError(msg, details={"recorded": remote.size, "size": item.size})
        return Uploaded(remote, local)

    def _complete(self, entry: dict[str, Any], save: Any, what: str) -> int | None:
        """Complete a multipart upload whose parts are all sent, and journal that it is;
        ``None``, or the HTTP status of a completion refused (:meth:`_register` finds out).

        Dataverse answers a completion S3 refused with HTTP 500, having aborted the upload
        (``Datasets.completeMPUpload``); so does a repeat of a completion that was done.
        """
        dd = entry["direct"]
        r = self.http.request(
            "PUT",
            self._api_url(dd["complete"]),
            json_body=dd["etags"],
            allow=(400, 404, 409, 500),
            expect_json=False,
            what=f"{what} (completing)",
        )
        if r.status != 200:
            return r.status
        dd["completed"] = True
        save()
        return None

    def _refused(self, reply: Reply, item: UploadItem, what: str) -> None:
        """Stop on ``uploadurls`` refusing this file (HTTP 400: over the store's largest file
        size, the dataset's remaining quota or its file count): the application server
        applies the same limits, so sending it that way would only fail later."""
        said = obj(reply.data).get("message") or reply.text.strip()[:300]
        msg = (
            f"{what}: Dataverse refuses a file of {item.size} bytes in this dataset: "
            f"{self.http.clean(str(said))}; ask the repository about its file size, quota and "
            "file count limits, then re-run with --resume"
        )
        raise DepositError(msg, details={"status": reply.status, "size": item.size})

    def _api_url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def _abort(self, entry: dict[str, Any], save: Any, what: str) -> None:
        """Give up a multipart upload as the guide asks (``DELETE`` its abort URL); forget it."""
        dd = entry.get("direct") or {}
        if dd.get("abort"):
            try:
                self.http.request(
                    "DELETE",
                    self._api_url(dd["abort"]),
                    allow=(400, 404, 410),
                    expect_json=False,
                    what=f"{what} (aborting)",
                )
            except DepositError:
                pass  # the store expires abandoned parts; the re-run starts afresh anyway
        entry.pop("direct", None)
        save()

    def _store_put(
        self, entry, save, url: str, body, what: str, headers: dict[str, str] | None = None
    ) -> Reply:  # type: ignore[no-untyped-def]
        r = self.http.request(
            "PUT", url, body=body, headers=headers, allow=(400, 403), expect_json=False, what=what
        )
        if r.status in (400, 403):
            code, message = s3_error(r.text)
            expired = "expired" in message.lower() or code == "ExpiredToken"
            if headers and not expired and code in ("AccessDenied", "SignatureDoesNotMatch"):
                # The URL's signature did not cover x-amz-tagging after all: once without it.
                r = self.http.request(
                    "PUT", url, body=body, allow=(400, 403), expect_json=False, what=what
                )
                if r.status not in (400, 403):
                    return r
                code, message = s3_error(r.text)
            self._abort(entry, save, what)
            if expired:
                msg = f"{what}: the presigned upload URL has expired; re-run with --resume to get new ones"
            else:
                msg = (
                    f"{what}: the storage refused the presigned upload (HTTP {r.status} {code}: {message}); "
                    "re-run with --resume to get new URLs, and if it persists ask the repository about "
                    "its direct-upload store"
                )
            raise DepositError(msg, details={"status": r.status, "code": code})
        return r

    def _check_etag(self, entry, save, reply: Reply, md5: str, what: str) -> None:  # type: ignore[no-untyped-def]
        """Without SSE-KMS/SSE-C encryption S3's ETag of a PUT is the md5 of what it stored."""
        sse = str(reply.header("x-amz-server-side-encryption") or "").lower()
        if sse.startswith("aws:kms") or reply.header(SSE_HEADERS[1]):
            return  # under SSE-KMS or SSE-C the ETag is not the md5 of the bytes
        etag = str(reply.header("ETag") or "").strip('"')
        if (
            etag
            and "-" not in etag
            and re.fullmatch(r"[0-9a-f]{32}", etag.lower())
            and etag.lower() != md5
        ):
            self._abort(entry, save, what)
            raise DepositError(
                f"{what}: the store's checksum ({etag}) differs from the bytes sent ({md5}); "
                "the upload was discarded: re-run with --resume"
            )

    def finalize(self, state: dict[str, Any]) -> None:
        self._wait_unlocked(state, "finishing the draft")

    def publish(self, state: dict[str, Any]) -> Landing:
        self._wait_unlocked(state, "publishing")
        r = self._write(
            state,
            "POST",
            "/datasets/:persistentId/actions/:publish",
            "publishing",
            params={**self._pid(state), "type": "major"},
        )
        _status_errors(r, "publishing")
        said = str((r.data or {}).get("status") if isinstance(r.data, dict) else "")
        if said.upper() not in ("OK", "WORKFLOW_IN_PROGRESS"):
            # Dataverse answers a publication with status OK (or a workflow under way);
            # anything else is not taken for one.
            lacking = "without saying the dataset was published"
            raise not_published(self.http, r, lacking, state.get("pid"))
        landing = self.published(state)  # once its locks (finalizePublication) have cleared
        if landing is None:
            # PublishDatasetCommand finishes large or PID-registering publications in the
            # background; a failure there unlocks the dataset and leaves it unpublished.
            msg = (
                "publishing: Dataverse accepted the publication, but once its locks cleared the "
                "dataset's latest version is not released (finishing the publication failed "
                "there, e.g. registering a persistent identifier; Dataverse notifies the "
                "depositor why); the draft and its files are kept: check it there, then re-run "
                "with --resume"
            )
            raise DepositError(msg, details={"record": state.get("pid")})
        return landing

    def published(self, state: dict[str, Any]) -> Landing | None:
        """The landing when the dataset's latest version is released (``GET /api/datasets/{id}``):
        after a publication, or an earlier publish whose answer was lost."""
        what = "checking whether the dataset was published"
        self._wait_unlocked(state, what)
        version = self._latest_version(state, what)
        if version is None or version.get("versionState") != "RELEASED":
            return None
        return self._landing(state, "published")

    def _latest_version(self, state: dict[str, Any], what: str) -> dict[str, Any] | None:
        """The latest version ``GET /api/datasets/{id}`` shows, when that dataset has the
        state's id and persistent identifier (``None`` otherwise: another dataset's answer
        says nothing about this one)."""
        r = self.http.request("GET", f"/datasets/{state['id']}", allow=(404,), what=what)
        data = _data(r) if r.status == 200 else {}
        version = obj(data.get("latestVersion"))
        pid = version.get("datasetPersistentId") or _pid_of(data)
        if str(data.get("id")) != str(state["id"]) or pid != state["pid"]:
            return None
        return version

    def _landing(self, state: dict[str, Any], status: str) -> Landing:
        pid = state["pid"]
        doi = pid.removeprefix("doi:") if pid.startswith("doi:") else None
        handle = pid.removeprefix("hdl:") if pid.startswith("hdl:") else None
        url = f"{self.base}/dataset.xhtml?persistentId={quote(pid, safe=':/')}" + (
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
                        "jsonData": _file_meta(it),
                        "file": f"<{it.size} bytes from {it.path}>",
                    },
                    note="after the dataset's locks clear; compare the returned checksum"
                    + (
                        "; direct upload if the store allows it, else inside a zip of its own "
                        "(Dataverse unpacks one level and keeps this zip whole)"
                        if unpacked_on_add(dataverse_name(it.name)[1])
                        else ""
                    ),
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


def unpacked_on_add(label: str) -> bool:
    """Whether Dataverse unpacks a file sent as ``label`` through ``/add`` (not direct).

    It takes a file for a zip by its name's extension, which its type map lists as ``zip``
    and ``ZIP`` (``META-INF/jakarta.mime.types``; JHOVE has no zip module there), trusts
    that over any type the client gives (``FileUtil.useRecognizedType``) and unpacks it
    (``CreateNewDataFilesCommand``); a direct upload is registered as it is.
    """
    return label.endswith((".zip", ".ZIP"))


def _member_name(label: str) -> str:
    """The wrapped zip's member name: its label, unless Dataverse would skip that member
    as a macOS leftover (``._*``, ``.DS_Store*``); ``jsonData`` names the file anyway."""
    return f"_{label}" if label.startswith(("._", ".DS_Store")) else label


def _listed(reply: Reply, what: str, *keys: str) -> list[dict[str, Any]]:
    """The ``data`` list (or ``data.<keys>``) of a Dataverse answer (locks, files), or a
    DepositError naming what came instead: another shape is not taken for an empty list."""
    data = need(reply.data, "data", *keys, what=what)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        said = type(data).__name__
        msg = f"{what}: Dataverse answered with a {said} where it lists objects; is --url a Dataverse?"
        raise DepositError(msg)
    return data


def _data(reply: Reply) -> dict[str, Any]:
    """The ``data`` object of a Dataverse answer (empty when there is none)."""
    data = (reply.data or {}).get("data") if isinstance(reply.data, dict) else None
    return data if isinstance(data, dict) else {}


def _field_names(version: dict[str, Any]) -> set[str]:
    """The field names a dataset version fills, compound children included."""
    names: set[str] = set()
    for block in (version.get("metadataBlocks") or {}).values():
        for f in (block or {}).get("fields") or []:
            names.add(str(f.get("typeName")))
            if f.get("typeClass") == "compound":
                names.update(k for v in f.get("value") or [] if isinstance(v, dict) for k in v)
    return names


def _title(metadata: Any) -> str | None:
    """The citation block's title of a dataset version (``{"datasetVersion": ...}``)."""
    version = (metadata or {}).get("datasetVersion") or {}
    fields = ((version.get("metadataBlocks") or {}).get("citation") or {}).get("fields") or []
    for f in fields:
        if isinstance(f, dict) and f.get("typeName") == "title":
            return str(f.get("value"))
    return None


def _pid_of(listed: dict[str, Any]) -> str | None:
    """``protocol:authority/identifier`` of a dataset in a collection's contents."""
    parts = [listed.get(k) for k in ("protocol", "authority", "identifier")]
    if not all(isinstance(x, str) and x for x in parts):
        return None
    return f"{parts[0]}:{parts[1]}/{parts[2]}"
