"""``deposit()``: one bag to one repository, checked, resumable, verified, recorded."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curated._crash import crash_point
from curated._io import write_json
from curated._secrets import without_userinfo
from curated._version import __version__
from curated.deposit import payload, preflight
from curated.deposit.http import LostResponse, RetryPolicy, env_token, hash_file, public_url
from curated.deposit.journal import Journal
from curated.deposit.protocol import Landing, RemoteFile, Repository, Uploaded, UploadItem
from curated.deposit.targets import DSPACE_USER_ENV as DSPACE_USER_ENV
from curated.deposit.targets import REGISTRY, Target, get_target
from curated.errors import DepositError, IntegrityError
from curated.progress import ProgressReporter, ensure_progress
from curated.provenance.log import redact
from curated.results import Result
from curated.workspace import METADATA_FILE, Workspace, as_workspace, recorder

TARGETS = tuple(REGISTRY)
"""Every ``--to`` value (the keys of :data:`curated.deposit.targets.REGISTRY`)."""
DEFAULT_TOKEN_ENV = {name: t.token_env for name, t in REGISTRY.items() if t.token_env}
"""Where each target's credential is read from unless ``token_env`` names another variable."""
STAGES = ("started", "draft", "metadata", "uploaded", "finalized", "published")


@dataclass
class Receipt:
    """What a deposit produced (or, for a dry run, would do)."""

    target: str
    url: str
    status: str
    """``planned`` (dry run), ``draft``, ``submitted``, ``published`` or ``notneeded``."""
    bag: str
    collection: str | None = None
    record_id: str | None = None
    doi: str | None = None
    handle: str | None = None
    record_url: str | None = None
    new_version_of: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    software: str = f"curated {__version__}"
    receipt_path: str | None = None
    journal_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_result(self) -> Result:
        where = self.doi or self.handle or self.record_url or self.record_id or ""
        if self.status == "planned":
            message = f"dry run: {len(self.planned)} request(s) planned, nothing sent"
            status = "impossible" if any(p["blocking"] for p in self.problems) else "ok"
        elif self.status == "notneeded":
            message = f"already deposited ({where})"
            status = "notneeded"
        else:
            message = (
                f"{self.status} in {self.target}: {where} ({len(self.files)} file(s) verified)"
            )
            status = "ok"
        return Result(
            "deposit",
            status,
            path=self.record_url or self.receipt_path,
            message=message,
            details=self.to_dict(),
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _recorded_url(target: Target, url: str, ws: Workspace | None) -> str:
    """``url`` as receipts and journals hold it: no ``user:password@``; a folder
    target relative to the workspace (not to where the command ran, not absolute)."""
    if not target.local:
        return public_url(url)
    target = Path(os.path.abspath(url))
    if ws is None:
        return target.as_posix()
    return Path(os.path.relpath(target, os.path.abspath(ws.root))).as_posix()


def discover_workspace(bag: Path) -> Workspace | None:
    """The workspace a bag in ``<workspace>/package/`` belongs to, else ``None``."""
    parent = bag.resolve().parent
    if parent.name == "package" and (parent.parent / METADATA_FILE).is_file():
        return Workspace(parent.parent)
    return None


def make_repository(
    to: str,
    url: str,
    *,
    token: str | None,
    token_env: str | None,
    target: str | None,
    retry: RetryPolicy | None = None,
    options: dict[str, Any] | None = None,
) -> Repository:
    """The adapter for ``to`` (one of :data:`TARGETS`)."""
    return get_target(to).make(
        url, token=token, token_env=token_env, collection=target, retry=retry, options=options
    )


def build_metadata(to: str, record: dict[str, Any], repo: Any, *, today: str | None = None) -> Any:
    """The record in the target's shape (crosswalk)."""
    return get_target(to).metadata(record, repo, today=today)


def missing_metadata(to: str, record: dict[str, Any]) -> list[str]:
    """Record fields target ``to`` requires that are empty."""
    return get_target(to).missing(record)


def _local_digest(item: UploadItem, fe: dict[str, Any], algorithm: str) -> str:
    if algorithm in ("md5", "sha256") and fe.get(algorithm):
        return str(fe[algorithm])
    if algorithm in ("md5", "sha256"):
        h = hash_file(item.path)
        fe.update({"md5": h["md5"], "sha256": h["sha256"]})
        return str(h[algorithm])
    try:
        hasher = hashlib.new(algorithm)
    except ValueError:
        raise DepositError(
            f"the repository reports a {algorithm!r} checksum, which curated cannot compute"
        ) from None
    with open(item.path, "rb") as fh:
        while block := fh.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


def deposit(
    bag: str | Path,
    *,
    to: str,
    url: str,
    target: str | None = None,
    token_env: str | None = None,
    publish: bool = False,
    dry_run: bool = False,
    resume: bool = False,
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
    limits: str | None = None,
    retry: RetryPolicy | None = None,
    today: str | None = None,
    options: dict[str, Any] | None = None,
) -> Receipt:
    """Deposit a bag (folder or serialized) into a repository.

    Parameters
    ----------
    bag
        The bag folder, or a serialized bag (``.zip``/``.tar``/``.tar.gz``). It is
        validated completely (every checksum) and refused if invalid.
    to
        ``invenio``, ``zenodo``, ``dataverse``, ``dspace``, ``figshare`` or ``directory``.
    url
        The repository's API root (``https://zenodo.org``, ``https://demo.dataverse.org``,
        ``https://host/server``, ``https://api.figshare.com/v2``) or, for ``directory``,
        the folder.
    target
        Community slug (InvenioRDM), collection alias (Dataverse), collection UUID
        (DSpace), project id (Figshare) or sub-folder (directory).
    token_env
        Environment variable holding the credential (default per target, see
        :data:`DEFAULT_TOKEN_ENV`; DSpace also reads the account from ``DSPACE_USER``).
    publish
        Publish (or submit for review) after uploading; otherwise leave a complete draft.
    dry_run
        Return the planned requests and preflight problems; send and write nothing.
    resume
        Continue an interrupted deposit recorded in ``<bag>.deposit-journal.json``.
    workspace
        Where to write ``package/receipt.json`` and the curator-log entry; by default
        the workspace the bag's ``package/`` folder belongs to.
    limits
        Name of a :data:`curated.deposit.preflight.LIMITS` profile (``none`` skips the checks).
    retry
        Retry policy for transient failures (tests pass tiny delays).

    Returns
    -------
    Receipt
        Record id, DOI/handle, URLs and per-file checksums (``planned`` for a dry run).

    Examples
    --------
    >>> receipt = deposit("ws/package/bag", to="zenodo", url="https://zenodo.org", publish=True)  # doctest: +SKIP
    >>> receipt.doi  # doctest: +SKIP
    '10.5281/zenodo.1234567'
    """
    spec = get_target(to)
    bag = Path(bag)
    ws = as_workspace(workspace) if workspace is not None else discover_workspace(bag)
    order = _Order(
        spec=spec,
        url=_recorded_url(spec, url, ws),
        target=target,
        publish=publish,
        dry_run=dry_run,
        resume=resume,
        limits=limits,
        progress=progress,
        today=today,
    )
    params = {"to": to, "url": order.url, "target": target, "publish": publish, "resume": resume}
    with recorder(
        None if dry_run else ws, "D", "deposit", params=params, hash_inputs=False
    ) as step:
        view = payload.open_bag(bag)
        step.add_input(bag, digest=f"bag:{view.identity}", size=view.size)
        repo = _open_repository(spec, url, bag, order, token_env, retry, options)
        try:
            receipt = _run(view, repo, order)
        finally:
            repo.close()
        if not dry_run:
            _record(step, receipt, bag, ws)
        return receipt


@dataclass(frozen=True)
class _Order:
    """What one :func:`deposit` call asks for, as its phases need it."""

    spec: Target
    url: str
    """As receipts and journals hold it (:func:`_recorded_url`)."""
    target: str | None
    publish: bool
    dry_run: bool
    resume: bool
    limits: str | None
    progress: ProgressReporter | None
    today: str | None

    @property
    def to(self) -> str:
        return self.spec.name


def _open_repository(
    spec: Target,
    url: str,
    bag: Path,
    order: _Order,
    token_env: str | None,
    retry: RetryPolicy | None,
    options: dict[str, Any] | None,
) -> Repository:
    """The adapter, with the credential when the target needs one."""
    env_var = token_env or spec.token_env
    token = None
    if not spec.local and not order.dry_run:
        token = env_token(env_var, repository=spec.name)  # type: ignore[arg-type]
    elif not spec.local and env_var:
        # A dry run reads the target's form/licences (GET only) when it has a credential.
        token = os.environ.get(env_var) or None
    repo = spec.make(
        url, token=token, token_env=env_var, collection=order.target, retry=retry, options=options
    )
    if spec.local:
        # a bag folder is copied as <record>/v<N>/<bag name>/..., an archive as <record>/v<N>/<archive>
        repo.bag_name = bag.name if bag.is_dir() else ""  # type: ignore[attr-defined]
    return repo


def _record(step: Any, receipt: Receipt, bag: Path, ws: Workspace | None) -> None:
    """Write the receipt (unless nothing was needed) and fill the curator-log entry."""
    if receipt.status == "notneeded":  # the receipt of that deposit stays as it is
        receipt.receipt_path = str(_receipt_path(bag, ws))
    else:
        receipt.receipt_path = str(_write_receipt(receipt, bag, ws))
        step.add_output(receipt.receipt_path)
    step.details = {
        k: getattr(receipt, k)
        for k in ("target", "status", "record_id", "doi", "handle", "record_url")
    }
    step.message = receipt.to_result().message
    if receipt.status == "notneeded":
        step.status = "notneeded"


def _run(view: payload.BagView, repo: Repository, order: _Order) -> Receipt:
    """Preflight, then plan (dry run) or carry the deposit through its stages."""
    lim = preflight.limits_for(order.to, order.url, order.limits)
    journal = Journal.open(view.path)
    key = Journal.key(order.to, order.url, order.target)
    entry = journal.entry(key)
    receipt, problems, estimate = _preflight(view, repo, order, lim, entry)
    previous = _published_before(entry, view)
    if order.dry_run:
        return _plan(view, repo, order, receipt, previous, estimate)
    blocking = [p for p in problems if p.blocking]
    if blocking:
        lines = "\n".join(f"  - {p}" for p in blocking)
        msg = f"the package cannot go to {order.to} ({lim.name} limits) as it is; nothing was uploaded:\n{lines}"
        raise DepositError(msg, path=view.path, details={"problems": receipt.problems})
    done = _decide(entry, view, order, journal, receipt)
    if done is not None:
        return done
    # Nothing is written before the repository has accepted the credential and target.
    repo.check_access()
    # What the target's form/licences/vocabularies will refuse is known now: stop before
    # anything is created (the journal is not touched either).
    metadata = order.spec.metadata(view.record, repo, today=order.today)
    metadata = _review(repo, metadata, view.record, receipt, publish=order.publish, online=False)
    refused = [p for p in receipt.problems if p["blocking"]]
    if refused:
        lines = "\n".join(f"  - {p['what']} → {p['advice']}" for p in refused)
        msg = f"{order.to} would refuse this deposit; nothing was created or uploaded:\n{lines}"
        raise DepositError(msg, path=view.path, details={"problems": refused})
    entry = _journal_entry(journal, key, entry, view, order, previous)
    state = _draft(repo, metadata, entry, journal, order.to)
    items = _send(repo, state, metadata, view, entry, journal, order)
    landing = _finish(repo, state, entry, journal, view, order)
    receipt.journal_path = str(journal.path)
    return _fill(receipt, landing, entry, items)


def _preflight(
    view: payload.BagView,
    repo: Repository,
    order: _Order,
    lim: preflight.Limits,
    entry: dict[str, Any] | None,
) -> tuple[Receipt, list[preflight.Problem], list[UploadItem]]:
    """The receipt to fill, what the target's limits say about this package, and the
    files it would send (sizes estimated, nothing zipped yet)."""
    estimate = payload.upload_items(view, keeps_folders=repo.keeps_folders, make_zip=False)
    problems = preflight.check(
        estimate,
        lim,
        single_request=repo.single_request,  # type: ignore[attr-defined]
        zarr_stores=view.zarr_stores,
        dest_dir=getattr(repo, "root", None) if order.spec.local else None,
        missing_metadata=order.spec.missing(view.record),
        already_sent=_confirmed_bytes(entry, view.identity),
    )
    problems += _name_clashes(repo, estimate)
    receipt = Receipt(
        target=order.to,
        url=order.url,
        status="planned",
        bag=view.path.name,
        collection=order.target,
        limits=preflight.summary(lim),
    )
    receipt.problems = [
        {"what": p.what, "advice": p.advice, "blocking": p.blocking} for p in problems
    ]
    return receipt, problems, estimate


def _name_clashes(repo: Repository, items: list[UploadItem]) -> list[preflight.Problem]:
    """Bag files the target would store under one name (it renames or refuses the second)."""
    seen: dict[str, str] = {}
    clashes = []
    for it in items:
        key = remote_key(repo, it.name)
        if key in seen:
            clashes.append(f"{seen[key]} and {it.name} (both {key})")
        seen.setdefault(key, it.name)
    if not clashes:
        return []
    what = f"{repo.kind} cannot keep these file names apart: {'; '.join(clashes[:5])}"
    return [preflight.Problem(what, "rename one of each pair in the workspace and rebuild the bag")]


def _published_before(entry: dict[str, Any] | None, view: payload.BagView) -> dict[str, Any] | None:
    """The last published deposit of an earlier bag here: this one becomes its new version."""
    if (
        entry
        and entry.get("stage") == "published"
        and entry.get("bag_id") != view.identity
        and entry.get("history")
    ):
        return entry["history"][-1]  # type: ignore[no-any-return]
    return None


def _plan(
    view: payload.BagView,
    repo: Repository,
    order: _Order,
    receipt: Receipt,
    previous: dict[str, Any] | None,
    estimate: list[UploadItem],
) -> Receipt:
    """A dry run: the requests a deposit would make; nothing sent, nothing written."""
    metadata = order.spec.metadata(view.record, repo, today=order.today)
    metadata = _review(repo, metadata, view.record, receipt, publish=order.publish, online=True)
    version_of = previous["record_id"] if previous else None
    receipt.planned = [
        c.to_dict()
        for c in repo.plan(metadata, estimate, publish=order.publish, new_version_of=version_of)
    ]
    receipt.new_version_of = version_of
    return receipt


def _decide(
    entry: dict[str, Any] | None,
    view: payload.BagView,
    order: _Order,
    journal: Journal,
    receipt: Receipt,
) -> Receipt | None:
    """Fresh, resume, already done, or a new version: the receipt when nothing is to do.

    Raises when an unfinished deposit needs ``--resume``.
    """
    if entry is None or entry.get("state") is None:
        return None  # fresh
    if entry.get("stage") == "published":
        if entry.get("bag_id") == view.identity:
            return _done_receipt(receipt, entry, view, "notneeded")
        return None  # a new version of the published record
    if entry.get("bag_id") != view.identity:
        if not order.resume:
            msg = (
                f"the bag changed since an unfinished deposit to {order.to} (record {entry.get('record_id')}); "
                f"re-run with --resume to bring that draft up to date with the bag "
                f"(or delete {journal.path.name} to start a new record)"
            )
            raise DepositError(msg, path=journal.path)
        # Bring the draft up to date: metadata again, every file re-checked against the server.
        entry.update({"bag_id": view.identity, "stage": "draft"})
        for fe in entry["files"].values():
            for k in ("status", "md5", "sha256"):
                fe.pop(k, None)
    if entry["stage"] != "finalized" and not order.resume:
        msg = (
            f"an earlier deposit of this bag to {order.to} stopped at stage {entry['stage']!r}; "
            f"re-run with --resume to continue it (delete {journal.path.name} to start over)"
        )
        raise DepositError(msg, path=journal.path)
    if entry["stage"] == "finalized" and not order.publish:
        return _done_receipt(receipt, entry, view, "notneeded")
    return None


def _journal_entry(
    journal: Journal,
    key: str,
    entry: dict[str, Any] | None,
    view: payload.BagView,
    order: _Order,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """The journal entry this run continues, or a new one (a lost create carried over)."""
    fresh = entry is None or entry.get("state") is None
    if fresh or entry.get("stage") == "published":  # type: ignore[union-attr]
        if fresh and entry:
            previous = entry.get("previous")
        lost = entry.get("creating") if fresh and entry else None
        entry = journal.start(
            key, kind=order.to, url=order.url, collection=order.target, bag_id=view.identity
        )
        entry["previous"] = previous
        if lost:
            entry["creating"] = lost
    assert entry is not None
    journal.save()
    return entry


def _draft(
    repo: Repository, metadata: Any, entry: dict[str, Any], journal: Journal, to: str
) -> dict[str, Any]:
    """The draft's state: the journal's, a lost one found again, or a new one."""
    if entry.get("state") is None:
        state = _lost_draft(repo, metadata, entry, journal, to)
        if state is None:
            prev = entry.get("previous")
            # Marked before asking: if the answer is lost, the next run looks for the draft
            # this request may have made instead of making a second one.
            entry["creating"] = _now()
            journal.save()
            state = repo.new_version(prev, metadata) if prev else repo.create_draft(metadata)
        entry.pop("creating", None)
        entry.update({"state": state, "stage": "draft", "record_id": repo.landing(state).record_id})
        journal.save()
        crash_point("deposit-draft")
    return entry["state"]  # type: ignore[no-any-return]


def _send(
    repo: Repository,
    state: dict[str, Any],
    metadata: Any,
    view: payload.BagView,
    entry: dict[str, Any],
    journal: Journal,
    order: _Order,
) -> list[UploadItem]:
    """Metadata, every file, then the finished draft; each stage journalled once done."""
    if STAGES.index(entry["stage"]) < STAGES.index("metadata"):
        repo.set_metadata(state, metadata)
        entry["stage"] = "metadata"
        journal.save()
    items = payload.upload_items(view, keeps_folders=repo.keeps_folders)
    if STAGES.index(entry["stage"]) < STAGES.index("uploaded"):
        sync = bool(entry.get("previous")) or order.resume
        _upload_all(repo, state, items, entry, journal, order.progress, sync=sync)
        entry["stage"] = "uploaded"
        journal.save()
        crash_point("deposit-uploaded")
    if STAGES.index(entry["stage"]) < STAGES.index("finalized"):
        repo.finalize(state)
        entry["stage"] = "finalized"
        journal.save()
    return items


def _finish(
    repo: Repository,
    state: dict[str, Any],
    entry: dict[str, Any],
    journal: Journal,
    view: payload.BagView,
    order: _Order,
) -> Landing:
    """Publish (a lost publish looked up first) or leave the draft; where it landed."""
    if not order.publish:
        landing = repo.landing(state)
        entry["landing"] = asdict(landing)
        journal.save()
        return landing
    landing = _lost_publish(repo, state, entry) if entry.get("publishing") else None
    if landing is None:
        entry["publishing"] = _now()
        journal.save()
        landing = repo.publish(state)
    entry.pop("publishing", None)
    entry["stage"] = "published"
    entry["landing"] = asdict(landing)
    entry["history"].append(
        {
            "record_id": landing.record_id,
            "state": state,
            "doi": landing.doi,
            "handle": landing.handle,
            "url": landing.url,
            "status": landing.status,
            "bag_id": view.identity,
            "when": _now(),
        }
    )
    journal.save()
    return landing


def _review(
    repo: Repository,
    metadata: Any,
    record: dict[str, Any],
    receipt: Receipt,
    *,
    publish: bool,
    online: bool,
) -> Any:
    """Fit the metadata to what the target accepts (its form, licences, vocabularies).

    Adapters with a ``review`` method return the metadata as it will be sent and what the
    target will refuse or drop; those findings join the receipt's problems. In a dry run
    (``online``) an adapter with ``inspect`` first reads the target (GET only) when a
    credential is at hand; otherwise the documented defaults are assumed.
    """
    review = getattr(repo, "review", None)
    if review is None:
        return metadata
    inspect = getattr(repo, "inspect", None)
    if online and inspect is not None and getattr(repo, "can_inspect", lambda: False)():
        try:
            inspect()
        except DepositError as exc:
            receipt.problems.append(
                {
                    "what": f"could not read the target's form/vocabularies: {exc}",
                    "advice": "checked against the platform's documented defaults instead",
                    "blocking": False,
                }
            )
    metadata, findings = review(metadata, record=record, publish=publish)
    receipt.problems.extend(findings)
    return metadata


def _confirmed_bytes(entry: dict[str, Any] | None, bag_id: str) -> int:
    """Bytes of this bag an unfinished deposit already delivered (a resume needs no room for them)."""
    if not entry or entry.get("bag_id") != bag_id or entry.get("stage") == "published":
        return 0
    return sum(
        int(fe.get("size") or 0)
        for fe in (entry.get("files") or {}).values()
        if isinstance(fe, dict) and fe.get("status") == "confirmed"
    )


def _lost_draft(
    repo: Repository, metadata: Any, entry: dict[str, Any], journal: Journal, to: str
) -> dict[str, Any] | None:
    """The draft an earlier run asked for but got no answer about, if the repository has it.

    ``None`` when there was no such request. Adapters that can list the account's drafts
    (``find_draft``) are asked; otherwise the curator is told once to look, and the next
    run creates a new draft.
    """
    since = entry.get("creating")
    if not since:
        return None
    finder = getattr(repo, "find_draft", None)
    if finder is not None:
        found = finder(metadata, since)
        if found is not None:
            return dict(found)
        entry.pop("creating", None)
        return None
    entry.pop("creating", None)
    journal.save()
    msg = (
        f"an earlier run asked {to} to create the draft at {since} but its answer was lost, and "
        f"curated cannot list drafts on {to}: look there for a draft created then and delete it if it exists "
        "(or keep it and delete this one later), then re-run with --resume to create the draft"
    )
    raise DepositError(msg, path=journal.path, details={"creating": since})


def _lost_publish(repo: Repository, state: dict[str, Any], entry: dict[str, Any]) -> Landing | None:
    """The landing of a publish whose answer was lost, when the repository says it went through."""
    check = getattr(repo, "published", None)
    return check(state) if check is not None else None


def remote_key(repo: Repository, name: str) -> str:
    """The name under which ``repo`` lists the bag file ``name`` (adapters with
    ``remote_name`` store some files under another name than the bag's)."""
    rename = getattr(repo, "remote_name", None)
    return str(rename(name)) if rename is not None else name


def _upload_all(
    repo: Repository,
    state: dict[str, Any],
    items: list[UploadItem],
    entry: dict[str, Any],
    journal: Journal,
    progress: ProgressReporter | None,
    *,
    sync: bool,
) -> None:
    files = entry["files"]
    todo = [i for i in items if (files.get(i.name) or {}).get("status") != "confirmed"]
    prog = ensure_progress(progress)
    remote: dict[str, RemoteFile] = repo.remote_files(state) if sync else {}
    if sync:
        wanted = {remote_key(repo, i.name) for i in items}
        for name, rf in remote.items():
            if name not in wanted:
                repo.delete_file(state, rf)
    prog.start(f"uploading to {repo.kind}", total=sum(i.size for i in todo), unit="bytes")
    try:
        for item in todo:
            fe = files.setdefault(item.name, {"size": item.size, "status": "pending"})
            if fe.get("size") != item.size:
                fe.clear()
                fe.update({"size": item.size, "status": "pending"})
            rf = remote.get(remote_key(repo, item.name))
            if rf is not None:
                if (
                    rf.checksum
                    and rf.size in (None, item.size)
                    and _local_digest(item, fe, rf.algorithm) == rf.checksum.lower()
                ):
                    fe.update(
                        {
                            "status": "confirmed",
                            "server_checksum": f"{rf.algorithm}:{rf.checksum}",
                            "remote_id": rf.id,
                            "url": rf.url,
                            "reused": True,
                        }
                    )
                    journal.save()
                    prog.advance(item.size, file=item.basename)
                    continue
                repo.delete_file(state, rf)
                _forget_upload(fe)
            fe["status"] = "uploading"  # saved by the adapter once the server knows the file
            up = _upload_once(
                repo, state, item, fe, journal, lambda n, _i=item: prog.advance(n, file=_i.basename)
            )
            if up.local and up.local.get("size") == item.size:
                # hashes of what was sent count for the file only when all of it was sent
                fe.update({"md5": up.local["md5"], "sha256": up.local["sha256"]})
            else:
                fe.pop("md5", None)
                fe.pop("sha256", None)
            r = up.remote
            if not r.checksum:
                raise DepositError(
                    f"uploading {item.name}: the repository reported no checksum, so the upload cannot be verified"
                )
            mine = _local_digest(item, fe, r.algorithm)
            if mine != r.checksum.lower() or not _same_size(r, item):
                _pending_again(fe, journal)
                try:
                    repo.delete_file(state, r)
                except DepositError:
                    pass
                told = f"{r.algorithm} {r.checksum}, {r.size} bytes"
                msg = (
                    f"uploading {item.name}: the repository reports {told}; the file has {mine}, "
                    f"{item.size} bytes: the upload was corrupted in transit and has been discarded: "
                    "re-run with --resume to send it again"
                )
                raise IntegrityError(msg, path=item.path)
            if not fe.get("sha256"):
                _local_digest(item, fe, "sha256")
            fe.update(
                {
                    "status": "confirmed",
                    "server_checksum": f"{r.algorithm}:{r.checksum}",
                    "remote_id": r.id,
                    "url": r.url,
                }
            )
            journal.save()
    finally:
        prog.finish()


UPLOAD_KEYS = ("initiated", "file_id", "parts", "parts_done", "transfer", "committed", "direct")
"""What an adapter keeps in a file's journal entry about one upload under way."""


def _forget_upload(fe: dict[str, Any]) -> None:
    """Drop what a file's journal entry kept about an upload under way (:data:`UPLOAD_KEYS`)."""
    for k in UPLOAD_KEYS:
        fe.pop(k, None)


def _pending_again(fe: dict[str, Any], journal: Journal) -> None:
    """Mark a file to be sent again from the start (``--resume``), and save the journal."""
    _forget_upload(fe)
    fe["status"] = "pending"
    journal.save()


def _same_size(remote: RemoteFile, item: UploadItem) -> bool:
    """Whether the size the repository reports (when it reports one) is the file's."""
    if remote.size is None:
        return True
    try:
        return int(remote.size) == item.size
    except (TypeError, ValueError):
        return False


def _upload_once(
    repo: Repository,
    state: dict[str, Any],
    item: UploadItem,
    fe: dict[str, Any],
    journal: Journal,
    advance: Any,
) -> Uploaded:
    """Upload ``item``; when the answer to a request that stores it is lost, look instead
    of sending it again, so that a file the repository did store is not stored twice.

    A file found whole is taken; otherwise what was found is removed and the lost answer
    raised (``--resume`` sends the file again).
    """
    try:
        return repo.upload(state, item, fe, journal.save, advance)
    except LostResponse:
        found = repo.remote_files(state).get(remote_key(repo, item.name))
        if (
            found is not None
            and found.checksum
            and _same_size(found, item)
            and _local_digest(item, fe, found.algorithm) == found.checksum.lower()
        ):
            return Uploaded(found, None)  # it arrived: the lost answer would have said so
        if found is not None:
            repo.delete_file(state, found)  # a partial copy: never left beside a new one
        _pending_again(fe, journal)
        raise


def _fill(
    receipt: Receipt, landing: Landing, entry: dict[str, Any], items: list[UploadItem]
) -> Receipt:
    receipt.status = landing.status
    receipt.record_id = landing.record_id
    receipt.doi = landing.doi
    receipt.handle = landing.handle
    receipt.record_url = landing.url
    if receipt.target == "directory" and landing.url:
        # the folder repository names records relative to its root; the receipt relative to
        # the workspace, like its url (never an absolute path of the curator's machine)
        receipt.record_url = f"{receipt.url.rstrip('/')}/{landing.url}"
    prev = entry.get("previous")
    receipt.new_version_of = prev["record_id"] if prev else None
    receipt.files = []
    for it in items:
        fe = entry["files"].get(it.name) or {}
        receipt.files.append(
            {
                "name": it.name,
                "size": it.size,
                "md5": fe.get("md5"),
                "sha256": fe.get("sha256"),
                "server_checksum": fe.get("server_checksum"),
                "remote_id": fe.get("remote_id"),
                "url": fe.get("url"),
            }
        )
    receipt.created = _now()
    return receipt


def _done_receipt(
    receipt: Receipt, entry: dict[str, Any], view: payload.BagView, status: str
) -> Receipt:
    landing = (
        Landing(**entry["landing"])
        if entry.get("landing")
        else Landing(str(entry.get("record_id")), entry["stage"])
    )
    items = payload.upload_items(
        view, keeps_folders=get_target(entry["kind"]).keeps_folders(), make_zip=False
    )
    _fill(receipt, landing, entry, items)
    receipt.status = status
    return receipt


def _receipt_path(bag: Path, ws: Workspace | None) -> Path:
    """``<workspace>/package/receipt.json``, or ``<bag>.receipt.json`` beside a bag outside any workspace."""
    return (
        ws.package_dir / "receipt.json"
        if ws is not None
        else bag.parent / f"{bag.name}.receipt.json"
    )


def _write_receipt(receipt: Receipt, bag: Path, ws: Workspace | None) -> Path:
    path = _receipt_path(bag, ws)
    data = receipt.to_dict()
    data.pop("planned", None)
    data["receipt_path"] = None
    if data.get("journal_path"):  # where it lies relative to the workspace, never absolute
        jp = Path(data["journal_path"])
        data["journal_path"] = ws.relative(jp) if ws is not None else jp.name
    previous: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            previous = list(old.pop("previous", []) or [])
            if old.get("record_id") and old.get("status") != "notneeded":
                previous.append(
                    {
                        k: old.get(k)
                        for k in (
                            "target",
                            "url",
                            "status",
                            "record_id",
                            "doi",
                            "handle",
                            "record_url",
                            "created",
                        )
                    }
                )
        except (OSError, ValueError):
            previous = []
    data["previous"] = previous[-50:]
    write_json(path, public_receipt(data))  # shared with the bag's readers
    return path


def public_receipt(data: Any) -> Any:
    """A receipt (or any of it) as it may be shown, written or printed: no credential, no
    ``user:password@``, no ``?token=`` (a share link's token is no registered secret)."""
    return redact(without_userinfo(data))
