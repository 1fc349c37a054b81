"""A stateful fake Dataverse native API: datasets in collections, file add with
``directoryLabel``, dataset locks, publish (major versions), API-key auth.

Follows ``IQSS/dataverse``: ``doc/sphinx-guides/source/api/native-api.rst`` (datasets,
``/api/licenses``), ``doc/sphinx-guides/source/developers/s3-direct-upload-api.rst``
(``uploadurls``, presigned PUTs, ``complete``/``abort``, registration with ``/add``) and
the server source for what it refuses: a licence is found by exact active name or URI
(``LicenseServiceBean.getByNameOrUri``; none given means the default licence), and the
store (standing in for S3) refuses an ``x-amz-tagging`` header its presigned URL did not
sign (``disable-tagging`` stores) and a signed one that is missing; under SSE-KMS its
ETags are not md5s. With ``validate_fixity`` publication compares the recorded checksum
with the stored bytes, as installations that validate fixity at publication do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import re
import uuid
import zipfile
from typing import Any

from tests.fakes.base import Assembler, FakeServer, Request

TOKEN = "dataverse-good-key-456"
DEFAULT_LICENSES = [
    # What an installation starts with (scripts/api/data/licenses/*.json): note the http:// URIs.
    {
        "id": 1,
        "name": "CC0 1.0",
        "shortDescription": "Creative Commons CC0 1.0 Universal Public Domain Dedication.",
        "uri": "http://creativecommons.org/publicdomain/zero/1.0",
        "active": True,
        "isDefault": True,
        "sortOrder": 0,
        "rightsIdentifier": "CC0-1.0",
        "rightsIdentifierScheme": "SPDX",
    },
    {
        "id": 2,
        "name": "CC BY 4.0",
        "shortDescription": "Creative Commons Attribution 4.0 International License.",
        "uri": "http://creativecommons.org/licenses/by/4.0",
        "active": True,
        "isDefault": False,
        "sortOrder": 2,
        "rightsIdentifier": "CC-BY-4.0",
        "rightsIdentifierScheme": "SPDX",
    },
]
LOCKED = "Dataset cannot be edited due to dataset lock."
HTTP_DISABLED = "File upload via HTTP is not available for this installation of Dataverse."
"""Bundle.properties ``file.api.httpDisabled``."""
PACKAGE_FILE = "This dataset already has a package file; no other file can be added to it."
"""What Bundle.properties ``file.api.alreadyHasPackageFile`` says (in substance: the words
``package file``), with which ``Datasets.addFileToDataset`` refuses (403 FORBIDDEN) every
file sent to a dataset one of whose versions holds a package file (a DCM/rsync upload)."""


# What Dataverse keeps of a file's folder and name (IQSS/dataverse source):
# FileMetadata.setDirectoryLabel → StringUtil.sanitizeFileDirectory (slashes collapsed, leading
# and trailing "/", "-", ".", " " stripped); FileDirectoryNameValidator allows only
# [\w\\/. -] (Java's ASCII \w); the label's @Pattern refuses \ / : * ? " < > | ; #.
# Either violation fails the whole /add ("Validation Failed: ...", AbstractDatasetCommand
# .validateOrDie). The multipart filename is read as ISO-8859-1 (IQSS/dataverse#12470), so a
# UTF-8 name arrives garbled unless jsonData "label" (OptionalFileParams) names the file.
DIR_OK = re.compile(r"[A-Za-z0-9_\\/. -]+")
LABEL_BAD = re.compile(r'[\\/:*?"<>|;#]')
DIR_MESSAGE = (
    "Directory Name cannot contain invalid characters. Valid characters are a-Z, 0-9, "
    "'_', '-', '.', '\\', '/' and ' ' (white space)."
)
LABEL_MESSAGE = 'File Name cannot contain any of the following characters: \\ / : * ? " < > | ; # .'


def file_metadata(
    filename: str, meta: dict[str, Any], *, header: bool = True
) -> tuple[str | None, str, str | None]:
    """(directory label, label, refusal) as Dataverse's /add stores a file; ``header``: the
    name came in the multipart header (a direct upload's ``fileName`` is JSON)."""
    label = filename.encode("utf-8").decode("latin-1") if header else filename
    if LABEL_BAD.search(label):
        return None, label, LABEL_MESSAGE  # checked before the optional parameters apply
    folder = meta.get("directoryLabel")
    if folder:
        folder = re.sub(r"[\\/]+", "/", str(folder)).strip("/-. ") or None
    label = str(meta.get("label") or label)
    if folder and not DIR_OK.fullmatch(folder):
        return folder, label, f"Validation Failed: {DIR_MESSAGE} (Invalid value:{folder})."
    if LABEL_BAD.search(label) or not label.strip():
        return folder, label, f"Validation Failed: {LABEL_MESSAGE} (Invalid value:{label})."
    return folder, label, None


class FakeDataverse(FakeServer):
    name = "dataverse"

    def __init__(
        self,
        *,
        token: str = TOKEN,
        collections: tuple[str, ...] = ("root", "lab"),
        direct: bool = False,
        part_size: int = 64 * 1024,
        licences: list[dict[str, Any]] | None = None,
        tagging: bool = True,
        sse: str | None = None,
        validate_fixity: bool = True,
        unreleased: tuple[str, ...] = (),
        required: tuple[str, ...] = (),
        parents: dict[str, str] | None = None,
        levels: dict[str, tuple[str, ...]] | None = None,
        hidden: tuple[str, ...] = (),
        zip_limit: int = 1000,
        finalize: str = "sync",
        finalize_polls: int = 2,
        http_upload: bool = True,
    ) -> None:
        super().__init__()
        self.http_upload = http_upload
        """``:UploadMethods`` holds ``native/http``: without it every ``/add`` (a direct
        upload's registration too) answers 503 (Datasets.addFileToDataset, isHTTPUpload)."""
        self.collections = set(collections)
        self.parents = dict(parents) if parents is not None else {}
        """alias → its owner's alias; by default every collection but ``root`` is root's child."""
        for alias in self.collections - {"root"}:
            if "root" in self.collections:
                self.parents.setdefault(alias, "root")
        self.ids = {alias: n for n, alias in enumerate(sorted(self.collections), start=1)}
        """Each collection's numeric id (``GET /api/dataverses/{id}`` takes ids and aliases)."""
        self.levels = {alias: set(required) for alias in self.collections} if required else {}
        """alias → the fields its own input levels require (DataverseFieldTypeInputLevel
        ``required``, served as ``inputLevels``). ``required`` gives every collection its own."""
        self.levels.update({alias: set(names) for alias, names in (levels or {}).items()})
        self.block_roots = {"root", *self.levels}
        """Collections with metadata fields of their own (``isMetadataBlockRoot``): setting
        input levels makes one (UpdateDataverseInputLevelsCommand); the others use their
        parent's."""
        self.hidden = set(hidden)
        """Collections the token may not see (unpublished, no ViewUnpublishedDataverse): 403."""
        self.finalize = finalize
        """How publication finishes (PublishDatasetCommand, FinalizeDatasetPublicationCommand):
        ``sync`` at once; ``async`` in the background, behind a finalizePublication lock held
        for ``finalize_polls`` lock polls; ``pidfail`` likewise, then the PID registration
        fails: the lock is removed and the dataset stays unpublished; ``workflowfail``: a
        prepublication workflow (202) that fails; ``invalid``: the files' validation fails
        and a FileValidationFailed lock stays."""
        self.finalize_polls = finalize_polls
        self.zip_limit = zip_limit
        """``:ZipUploadFilesLimit``: a zip with more members is stored as it is."""
        self.unreleased = set(unreleased)
        """Collections not yet published: datasets in them cannot be published."""
        self.licences = licences if licences is not None else list(DEFAULT_LICENSES)
        self.tagging = tagging
        """The store takes object tags (``disable-tagging`` unset): presigned URLs sign x-amz-tagging."""
        self.sse = sse
        """``"aws:kms"``: the store encrypts with SSE-KMS, so an ETag is not the md5 of the bytes."""
        self.validate_fixity = validate_fixity
        self.aborted: list[str] = []
        self.direct = direct
        """The dataset's store takes direct (S3-style presigned) uploads."""
        self.part_size = part_size
        self.objects: dict[str, dict[str, Any]] = {}
        """storageIdentifier → the object as the store holds it."""
        self.token = token
        self.datasets: dict[int, dict[str, Any]] = {}
        self.dataset_ids = itertools.count(42)
        self.file_ids = itertools.count(900)
        self.lock_polls = 0
        """While > 0 the next dataset touched reports an Ingest lock (decremented per locks poll)."""
        self.locked_writes = 0
        """While > 0 writes are refused with Dataverse's lock message."""
        self.late_ingests = 0
        """The next this many ``/add`` start an ingest (a tabular file's) in the background:
        its Ingest lock shows only after ``ingest_late`` more locks polls and holds for
        ``ingest_polls`` more. An ``/add`` while the dataset is locked fails with no more than
        ``Failed to add file to dataset.`` (``AddReplaceFileHelper`` drops the lock's message
        of the UpdateDatasetVersionCommand it ran; IQSS/dataverse#8700)."""
        self.ingest_late = 1
        self.ingest_polls = 2
        self.store_refused = False
        self.package_file = False
        """The dataset holds a package file: every ``/add`` is refused with 403
        (:data:`PACKAGE_FILE`)."""
        """An ``/add`` refused while locked has stored the file all the same (the failure came
        after the new version was saved)."""
        self.route("GET", r"/api/users/:me", self.me)
        self.route("GET", r"/api/licenses", self.list_licences)
        self.route("DELETE", r"/api/datasets/mpupload", self.mp_abort)
        self.route("GET", r"/api/dataverses/([^/]+)", self.collection)
        self.route("GET", r"/api/dataverses/([^/]+)/contents", self.contents)
        self.route("GET", r"/api/datasets/(\d+)/versions/:draft", self.draft_version)
        self.route("POST", r"/api/dataverses/([^/]+)/datasets", self.create)
        self.route("PUT", r"/api/datasets/:persistentId/versions/:draft", self.put_version)
        self.route("GET", r"/api/datasets/(\d+)/locks", self.locks)
        self.route("GET", r"/api/datasets/(\d+)", self.dataset)
        self.route("POST", r"/api/datasets/:persistentId/add", self.add)
        self.route("GET", r"/api/datasets/:persistentId/versions/:latest/files", self.files)
        self.route("DELETE", r"/api/files/(\d+)", self.delete)
        self.route("POST", r"/api/datasets/:persistentId/actions/:publish", self.publish)
        self.route("GET", r"/api/datasets/:persistentId/uploadurls", self.upload_urls)
        self.route("PUT", r"/s3/([\w-]+)", self.s3_put)
        self.route("PUT", r"/api/datasets/mpupload", self.mp_complete)

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
        # native-api.rst GET /api/users/:me (the token's user).
        return self._auth(req) or (
            200,
            {"status": "OK", "data": {"id": 1, "identifier": "@curator"}},
        )

    def list_licences(self, req: Request):
        # native-api.rst GET /api/licenses
        return 200, {"status": "OK", "data": self.licences}

    def _licence(self, version: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The licence a datasetVersion names, or an error (JsonParser.parseLicense)."""
        lic = version.get("license")
        active = [x for x in self.licences if x.get("active")]
        if lic is None:
            return next((x for x in active if x.get("isDefault")), None), None
        wanted = [lic.get("uri"), lic.get("name")] if isinstance(lic, dict) else [lic]
        for w in wanted:
            for x in active:
                if w and w in (x["name"], x["uri"]):
                    return x, None
        return None, f"Error parsing Json: Invalid license: {wanted[0]}"

    def collection(self, req: Request, idtf: str):
        # native-api.rst GET /api/dataverses/{id or alias}.
        alias = next((a for a, n in self.ids.items() if str(n) == idtf), idtf)
        if alias not in self.collections:
            return 404, {
                "status": "ERROR",
                "message": f"Can't find dataverse with identifier='{idtf}'",
            }
        if alias in self.hidden:
            return 403, {
                "status": "ERROR",
                "message": "User is not authorized to view this dataverse.",
            }
        # JsonPrinter.json(Dataverse): isMetadataBlockRoot, ownerId (its owner's id, when it
        # has one), isReleased, and inputLevels: the collection's own, only when it has some.
        released = alias not in self.unreleased
        data: dict[str, Any] = {
            "alias": alias,
            "id": self.ids[alias],
            "isMetadataBlockRoot": alias in self.block_roots,
            "isReleased": released,
        }
        if alias in self.parents:
            data["ownerId"] = self.ids[self.parents[alias]]
        if self.levels.get(alias):  # JsonPrinter.jsonDataverseFieldTypeInputLevels
            data["inputLevels"] = [
                {"datasetFieldTypeName": n, "required": True, "include": True}
                for n in sorted(self.levels[alias])
            ]
        return 200, {"status": "OK", "data": data}

    def required_in(self, alias: str) -> set[str]:
        """What a dataset in ``alias`` must fill beyond the citation block's own: the input
        levels of the first metadata block root up its owners, the root collection being
        one whatever it says (DatasetField.isRequired)."""
        while alias not in self.block_roots and alias in self.parents:
            alias = self.parents[alias]
        return set(self.levels.get(alias, ()))

    def create(self, req: Request, alias: str):
        # native-api.rst POST /api/dataverses/{alias}/datasets (citation block; missing required fields: 400).
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
        for f in fields:  # the children of compound values
            if f.get("typeClass") == "compound":
                names.update(k for v in f.get("value") or [] for k in v)
        required = {"title", "author", "datasetContact", "dsDescription", "subject"}
        missing = (required | self.required_in(alias)) - names
        if missing:
            return 400, {
                "status": "ERROR",
                "message": f"Validation Failed: {', '.join(sorted(missing))} is required.",
            }
        lic, err = self._licence(body["datasetVersion"])
        if err:
            return 400, {"status": "ERROR", "message": err}
        body["datasetVersion"]["license"] = (
            {"name": lic["name"], "uri": lic["uri"]} if lic else None
        )
        did = next(self.dataset_ids)
        pid = f"doi:10.5072/FK2/{did:06d}"
        self.datasets[did] = {
            "id": did,
            "pid": pid,
            "version": body["datasetVersion"],
            "files": {},
            "published": 0,
            "draft": True,
            "collection": alias,
            "created": self.now(),
        }
        return 201, {"status": "OK", "data": {"id": did, "persistentId": pid}}

    @staticmethod
    def now() -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def contents(self, req: Request, alias: str):
        # native-api.rst "Show Contents of a Dataverse Collection": GET /api/dataverses/{alias}/contents;
        # datasets carry protocol/authority/identifier, and publicationDate once published.
        if (bad := self._auth(req)) is not None:
            return bad
        if alias not in self.collections:
            return 404, {
                "status": "ERROR",
                "message": f"Can't find dataverse with identifier='{alias}'",
            }
        rows = []
        for d in self.datasets.values():
            if d.get("collection", "root") != alias:
                continue
            protocol, _, rest = d["pid"].partition(":")
            authority, _, identifier = rest.partition("/")
            row = {
                "id": d["id"],
                "identifier": identifier,
                "persistentUrl": f"https://doi.org/{rest}",
                "protocol": protocol,
                "authority": authority,
                "publisher": "Fake Dataverse",
                "storageIdentifier": f"file://{identifier}",
                "type": "dataset",
            }
            if d["published"]:
                row["publicationDate"] = "2024-01-01"
            rows.append(row)
        return 200, {"status": "OK", "data": rows}

    def draft_version(self, req: Request, did: str):
        # native-api.rst "Get Version of a Dataset": GET /api/datasets/{id}/versions/:draft (404 without a draft).
        if (bad := self._auth(req)) is not None:
            return bad
        d = self.datasets.get(int(did))
        if d is None or not d["draft"]:
            return 404, {
                "status": "ERROR",
                "message": "Dataset version :draft of dataset not found",
            }
        return 200, {
            "status": "OK",
            "data": {
                **d["version"],
                "id": d["id"] * 10,
                "datasetId": d["id"],
                "datasetPersistentId": d["pid"],
                "versionState": "DRAFT",
                "createTime": d.get("created") or self.now(),
                "lastUpdateTime": self.now(),
            },
        }

    def put_version(self, req: Request):
        # native-api.rst PUT /api/datasets/:persistentId/versions/:draft.
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        if self.locked_writes > 0:
            self.locked_writes -= 1
            return 403, {"status": "ERROR", "message": LOCKED}
        version = req.json() or {}
        lic, err = self._licence(version)
        if err:
            return 400, {"status": "ERROR", "message": err}
        version["license"] = {"name": lic["name"], "uri": lic["uri"]} if lic else None
        d["version"], d["draft"] = version, True
        return 200, {"status": "OK", "data": {"versionState": "DRAFT"}}

    def dataset(self, req: Request, did: str):
        # native-api.rst GET /api/datasets/{id}: JsonPrinter.json(Dataset) + latestVersion.
        if (bad := self._auth(req)) is not None:
            return bad
        d = self.datasets.get(int(did))
        if d is None:
            return 404, {"status": "ERROR", "message": f"Dataset with ID {did} not found."}
        return 200, {"status": "OK", "data": self._dataset_json(d)}

    def _dataset_json(self, d: dict[str, Any]) -> dict[str, Any]:
        protocol, _, rest = d["pid"].partition(":")
        authority, _, identifier = rest.partition("/")
        return {
            "id": d["id"],
            "identifier": identifier,
            "protocol": protocol,
            "authority": authority,
            "persistentUrl": f"https://doi.org/{rest}",
            "latestVersion": {
                "datasetId": d["id"],
                "datasetPersistentId": d["pid"],
                "versionState": "DRAFT" if d["draft"] else "RELEASED",
                "versionNumber": d["published"] or None,
            },
        }

    def locks(self, req: Request, did: str):
        # native-api.rst GET /api/datasets/{id}/locks.
        d = self.datasets.get(int(did))
        held = (d or {}).get("locks") or []
        if held and held[0].get("late"):
            held[0]["late"] -= 1  # the background job has not taken its lock yet
            return 200, {"status": "OK", "data": []}
        if held:
            lock = held[0]
            if lock.get("polls") is not None:
                lock["polls"] -= 1
                if lock["polls"] <= 0:
                    held.pop(0)
                    if lock.get("then"):
                        lock["then"]()
            return 200, {
                "status": "OK",
                "data": [{"lockType": lock["lockType"], "date": "2026-01-01", "user": "curator"}],
            }
        if self.lock_polls > 0:
            self.lock_polls -= 1
            return 200, {
                "status": "OK",
                "data": [{"lockType": "Ingest", "date": "2026-01-01", "user": "curator"}],
            }
        return 200, {"status": "OK", "data": []}

    def add(self, req: Request):
        # native-api.rst POST /api/datasets/:persistentId/add (multipart file + jsonData; direct uploads register with storageIdentifier).
        if not self.http_upload:  # checked first, before the user or the dataset
            req.drain()
            return 503, {"status": "ERROR", "message": HTTP_DISABLED}
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        parts = req.multipart()
        if self.locked_writes > 0:
            self.locked_writes -= 1
            return 403, {"status": "ERROR", "message": LOCKED}
        if self.package_file:
            return 403, {"status": "ERROR", "message": PACKAGE_FILE}
        meta = json.loads(parts.get("jsonData", (None, b"{}"))[1] or b"{}")
        if d.get("locks"):
            if self.store_refused:
                self._add(d, parts, meta)
            return 400, {"status": "ERROR", "message": "Failed to add file to dataset."}
        answer = self._add(d, parts, meta)
        if self.late_ingests > 0 and answer[0] == 200:
            self.late_ingests -= 1
            late, polls = self.ingest_late, self.ingest_polls
            d["locks"] = [{"lockType": "Ingest", "polls": polls, "late": late}]
        return answer

    def _add(self, d: dict[str, Any], parts: dict[str, Any], meta: dict[str, Any]):
        if meta.get("storageIdentifier"):
            return self._register(d, meta)
        if "file" not in parts:
            return 400, {"status": "ERROR", "message": "Failed to add file to dataset: no file"}
        sent, content = parts["file"]
        folder, fname, refused = file_metadata(str(sent), meta)
        if refused:
            return 400, {"status": "ERROR", "message": refused}
        added = []
        for member_folder, member_name, data in self._unpacked(str(sent), content):
            # OptionalFileParams.addOptionalParams: jsonData's folder and label name each file
            label = fname if meta.get("label") else member_name
            where = folder if meta.get("directoryLabel") else member_folder
            added.append(self._store(d, where, label, meta, data))
        if str(meta.get("tabIngest", True)).lower() != "false":
            for f in added:
                self._tabular_ingest(d, f)
        d["draft"] = True
        return 200, {"status": "OK", "data": {"files": added}}

    def _unpacked(self, sent: str, content: bytes) -> list[tuple[str | None, str, bytes]]:
        """The files ``/add`` makes of an upload: a zip (by its name's extension, FileUtil
        .determineFileType / jakarta.mime.types "zip ZIP") is unpacked one level, its
        members kept as they are (a zip among them too), macOS leftovers skipped; past
        :ZipUploadFilesLimit, or unreadable, it is kept as it is (CreateNewDataFilesCommand)."""
        label = sent.encode("utf-8").decode("latin-1")
        whole = [(None, label, content)]
        if not label.endswith((".zip", ".ZIP")):
            return whole
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as zf:
                members = [
                    m
                    for m in zf.infolist()
                    if not m.is_dir()
                    and not m.filename.rsplit("/", 1)[-1].startswith(("._", ".DS_Store"))
                ]
                if not members or len(members) > self.zip_limit:
                    return whole
                out = []
                for m in members:
                    folder, _, base = m.filename.rpartition("/")
                    out.append((folder.strip("/") or None, base, zf.read(m)))
                return out
        except zipfile.BadZipFile:
            return whole

    def _tabular_ingest(self, d: dict[str, Any], f: dict[str, Any]) -> None:
        """Unless ``jsonData`` says ``tabIngest: false`` (OptionalFileParams, default true),
        a file of a type Dataverse ingests (FileUtil.canIngestAsTabular) is replaced by its
        tab-separated form: new size, label ending ``.tab`` (IngestServiceBean ingestAsTabular)."""
        stem, dot, ext = f["label"].rpartition(".")
        if not dot or ext.lower() not in ("csv", "tsv", "xlsx", "dta", "sav", "por"):
            return
        old = f"{f['directoryLabel']}/{f['label']}" if f["directoryLabel"] else f["label"]
        del d["files"][old]
        f["label"] = f["dataFile"]["filename"] = f"{stem}.tab"
        f["dataFile"]["filesize"] += 1  # the .tab is another file than the one sent
        d["files"][f"{f['directoryLabel']}/{f['label']}" if f["directoryLabel"] else f["label"]] = f

    @staticmethod
    def free_name(d: dict[str, Any], folder: str | None, label: str) -> tuple[str, str]:
        """(path, label) a new file gets: a name already in the draft gets -1, -2… before
        its extension (IngestUtil.checkForDuplicateFileNamesFinal)."""
        stem, dot, ext = label.rpartition(".")
        if not dot:
            stem, ext = label, ""
        n = 0
        name = f"{folder}/{label}" if folder else label
        while name in d["files"]:
            n += 1
            label = f"{stem}-{n}{dot}{ext}"
            name = f"{folder}/{label}" if folder else label
        return name, label

    def _store(
        self, d: dict[str, Any], folder: str | None, label: str, meta: dict[str, Any], data: bytes
    ) -> dict[str, Any]:
        """Add one file to the draft; a name already there gets -1, -2… before its
        extension (IngestUtil.checkForDuplicateFileNamesFinal)."""
        name, label = self.free_name(d, folder, label)
        df = {
            "id": next(self.file_ids),
            "filename": label,
            "filesize": len(data),
            "checksum": {"type": "MD5", "value": hashlib.md5(data).hexdigest()},
        }
        d["files"][name] = {
            "label": label,
            "directoryLabel": folder,
            "description": meta.get("description") or "",
            "dataFile": df,
        }
        return d["files"][name]

    def files(self, req: Request):
        # native-api.rst GET /api/datasets/:persistentId/versions/{version}/files.
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        return 200, {"status": "OK", "data": list(d["files"].values())}

    def delete(self, req: Request, fid: str):
        # native-api.rst DELETE /api/files/{id}.
        if (bad := self._auth(req)) is not None:
            return bad
        for d in self.datasets.values():
            for name, f in list(d["files"].items()):
                if str(f["dataFile"]["id"]) == fid:
                    del d["files"][name]
                    return 200, {"status": "OK", "data": {"message": "file deleted"}}
        return 404, {"status": "ERROR", "message": "File not found"}

    def publish(self, req: Request):
        # native-api.rst POST /api/datasets/:persistentId/actions/:publish?type=major|minor|updatecurrent.
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        if req.query.get("type") not in ("major", "minor", "updatecurrent"):
            return 400, {"status": "ERROR", "message": "Illegal 'type' parameter value."}
        if not d["draft"]:
            return 400, {"status": "ERROR", "message": "Cannot publish: no draft version."}
        if d["collection"] in self.unreleased:
            # PublishDatasetCommand refuses (IllegalCommandException → 403, AbstractApiBean).
            return 403, {
                "status": "ERROR",
                "message": "This dataset may not be published because its host dataverse "
                f"({d['collection']}) has not been published.",
            }
        if self.validate_fixity:
            for name, f in d["files"].items():
                df = f["dataFile"]
                if "stored_md5" in df and df["checksum"]["value"] != df["stored_md5"]:
                    return 400, {
                        "status": "ERROR",
                        "message": f"Dataset cannot be published: the checksum of {name} does not match the stored file",
                    }
        if self.finalize != "sync":
            return self._publish_later(d)
        self._released(d)
        return 200, {"status": "OK", "data": self._dataset_json(d)}

    def _released(self, d: dict[str, Any]) -> None:
        d["published"] += 1
        d["draft"] = False

    def _publish_later(self, d: dict[str, Any]):
        """PublishDatasetCommand's Inprogress result: 200 OK with the dataset still a draft,
        finalizePublication locked until FinalizeDatasetPublicationCommand is done."""
        answer: tuple[int, Any] = (200, {"status": "OK", "data": self._dataset_json(d)})
        if self.finalize == "workflowfail":
            # A prepublication workflow: 202 WORKFLOW_IN_PROGRESS (AbstractApiBean.accepted),
            # a Workflow lock; a workflow that fails unlocks the dataset, unpublished.
            answer = (202, {"status": "WORKFLOW_IN_PROGRESS", "data": self._dataset_json(d)})
            d["locks"] = [{"lockType": "Workflow", "polls": self.finalize_polls}]
            return answer
        if self.finalize == "invalid":
            d["locks"] = [{"lockType": "FileValidationFailed", "polls": None}]
            return answer
        done = (lambda: self._released(d)) if self.finalize == "async" else None
        d["locks"] = [
            {"lockType": "finalizePublication", "polls": self.finalize_polls, "then": done}
        ]
        return answer

    # ------------------------------------------------------------ direct upload
    def upload_urls(self, req: Request):
        # s3-direct-upload-api.rst, requesting direct upload (single url, or urls + abort + complete).
        if (bad := self._auth(req)) is not None:
            return bad
        d = self._by_pid(req.query.get("persistentId"))
        if d is None:
            return 404, {"status": "ERROR", "message": "Dataset not found."}
        if not self.direct:
            return 404, {
                "status": "ERROR",
                "message": f"Direct upload not supported for files in this dataset: {d['id']}",
            }
        size = int(req.query["size"])
        key = uuid.uuid4().hex
        sid = f"s3://bucket:{key}"
        store = self.url.replace("127.0.0.1", "localhost")  # the store is another host
        n = max(1, -(-size // self.part_size))
        self.objects[sid] = {
            "key": key,
            "asm": Assembler(),
            "parts": n if size > self.part_size else 1,
            "complete": size <= self.part_size,
        }
        signed = "host%3Bx-amz-tagging" if self.tagging else "host"
        if size <= self.part_size:
            return 200, {
                "status": "OK",
                "data": {
                    "url": f"{store}/s3/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                    f"&X-Amz-SignedHeaders={signed}&X-Amz-Signature=sig",
                    "partSize": self.part_size,
                    "storageIdentifier": sid,
                },
            }
        urls = {
            str(i): f"{store}/s3/{key}?partNumber={i}&uploadId=up-{key}"
            f"&X-Amz-SignedHeaders=host&X-Amz-Signature=sig"
            for i in range(1, n + 1)
        }
        q = f"globalid={d['pid']}&uploadid=up-{key}&storageidentifier={sid}"
        return 200, {
            "status": "OK",
            "data": {
                "urls": urls,
                "abort": f"/api/datasets/mpupload?{q}",
                "complete": f"/api/datasets/mpupload?{q}",
                "partSize": self.part_size,
                "storageIdentifier": sid,
            },
        }

    def s3_put(self, req: Request, key: str):
        # s3-direct-upload-api.rst (PUT to the presigned URL); S3 PutObject/UploadPart error codes.
        if req.headers.get("X-Dataverse-key") or req.headers.get("Authorization"):
            req.drain()
            return (
                400,
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>",
            )
        obj = next((o for o in self.objects.values() if o["key"] == key), None)
        if obj is None or obj.get("aborted"):
            req.drain()
            return 404, "<Error><Code>NoSuchKey</Code></Error>"
        # A SigV4 presigned URL covers exactly the x-amz-* headers it lists as signed: one
        # sent unsigned is refused, and a signed one missing breaks the signature.
        signed = req.query.get("X-Amz-SignedHeaders", "host").split(";")
        tag = req.headers.get("x-amz-tagging")
        if tag is not None and "x-amz-tagging" not in signed:
            req.drain()
            return 403, (
                "<Error><Code>AccessDenied</Code><Message>There were headers present in the "
                "request which were not signed</Message><HeadersNotSigned>x-amz-tagging"
                "</HeadersNotSigned></Error>"
            )
        if tag is None and "x-amz-tagging" in signed:
            req.drain()
            return 403, (
                "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we "
                "calculated does not match the signature you provided.</Message></Error>"
            )

        part = int(req.query.get("partNumber", 1))
        h = hashlib.md5()

        def tee():
            for c in req.stream():
                h.update(c)
                yield c

        obj["asm"].part(part, tee())
        if self.sse == "aws:kms":
            # Under SSE-KMS the ETag is an opaque value, not the md5 of the bytes.
            etag = hashlib.sha256(h.digest()).hexdigest()[:32]
            obj.setdefault("etags", {})[str(part)] = etag
            return 200, None, {"ETag": f'"{etag}"', "x-amz-server-side-encryption": "aws:kms"}
        obj.setdefault("etags", {})[str(part)] = h.hexdigest()
        return 200, None, {"ETag": f'"{h.hexdigest()}"'}

    def mp_complete(self, req: Request):
        # s3-direct-upload-api.rst: PUT the complete URL with the part ETags.
        if (bad := self._auth(req)) is not None:
            return bad
        obj = self.objects.get(req.query.get("storageidentifier", ""))
        etags = req.json() or {}
        # Datasets.completeMPUpload: S3 refusing (a part missing, an ETag that differs, an
        # upload already completed or aborted: NoSuchUpload) is a 500, after Dataverse has
        # aborted the upload itself.
        failed = (500, {"status": "ERROR", "message": "Could not complete multipart upload"})
        if obj is None or obj.get("aborted") or obj["complete"]:
            return failed
        sent = {k: str(v).strip('"') for k, v in etags.items()}
        if (
            len(etags) != obj["parts"]
            or len(obj["asm"].parts_done) != obj["parts"]
            or sent != obj.get("etags")
        ):
            obj["aborted"] = True
            return failed
        obj["complete"] = True
        return 200, {"status": "OK", "data": {"message": "Multipart Upload completed"}}

    def mp_abort(self, req: Request):
        # s3-direct-upload-api.rst: a client that cannot complete the upload DELETEs the abort URL.
        if (bad := self._auth(req)) is not None:
            return bad
        sid = req.query.get("storageidentifier", "")
        obj = self.objects.get(sid)
        if obj is None:
            return 404, {"status": "ERROR", "message": "No such upload"}
        obj["aborted"] = True
        self.aborted.append(sid)
        return 204, None

    def _register(self, d: dict[str, Any], meta: dict[str, Any]):
        obj = self.objects.get(meta["storageIdentifier"])
        if obj is None or not obj["complete"]:
            return 400, {
                "status": "ERROR",
                "message": "Failed to add file to dataset: storage identifier not found",
            }
        folder, fname, refused = file_metadata(str(meta.get("fileName") or ""), meta, header=False)
        if refused:
            return 400, {"status": "ERROR", "message": refused}
        label = folder or ""
        name, fname = self.free_name(d, folder, fname)
        fid = next(self.file_ids)
        # Like Dataverse, the checksum is the one the client supplied; the store's ETags checked the bytes.
        ck = meta.get("checksum") or {}
        df = {
            "id": fid,
            "filename": fname,
            "filesize": obj["asm"].size,
            "checksum": {"type": ck.get("@type", "MD5"), "value": ck.get("@value")},
            "storageIdentifier": meta["storageIdentifier"],
            "stored_md5": obj["asm"].hexdigest,
        }
        d["files"][name] = {
            "label": fname,
            "directoryLabel": label or None,
            "description": meta.get("description") or "",
            "dataFile": df,
        }
        if str(meta.get("tabIngest", True)).lower() != "false":
            # Direct uploads are ingested too (IngestServiceBean.saveAndAddFilesToDataset).
            self._tabular_ingest(d, d["files"][name])
        d["draft"] = True
        return 200, {"status": "OK", "data": {"files": [d["files"][name]]}}
