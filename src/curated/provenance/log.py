"""The curator log: append-only, hash-chained JSON Lines, one entry per step.

Each line of ``curation/log.jsonl`` is one :class:`LogEntry` in canonical JSON.
``hash`` is the sha256 of the entry's canonical JSON without ``hash``; ``prev``
is the ``hash`` of the entry before it (``null`` for the first), so editing,
deleting or reordering any entry breaks the chain at a ``seq`` that
:meth:`CuratorLog.verify` names.

Appends take an exclusive ``flock`` on a sidecar lock file, read the last entry,
and write the new line with one ``write`` on an ``O_APPEND`` descriptor followed
by ``fsync``: two processes appending at once both land, in some order, with an
unbroken chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import platform
import socket
import tarfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal, NotRequired, cast

from typing_extensions import TypedDict

from curated._crash import crash_point
from curated._io import canonical_json
from curated._secrets import redact
from curated._version import __version__
from curated.errors import LogError
from curated.provenance.digest import digest_path, digest_tree

STEPS: dict[str, str] = {
    "C": "Check",
    "U": "Understand",
    "R": "Request",
    "A": "Augment",
    "T": "Transform",
    "E": "Evaluate",
    "D": "Document",
}
"""The Data Curation Network's CURATE(D) steps, by their letter."""

STATUSES = ("ok", "notneeded", "impossible", "error")

DEFAULT_LIBRARIES: tuple[str, ...] = ("numpy",)
"""Libraries whose versions every entry records; a step adds the ones that did its work."""

_TAIL_READ = 1 << 16


def _os_error(exc: OSError, path: Path, doing: str) -> LogError:
    """An OS error (full disk, read-only, permission) as one line naming the file."""
    reason = exc.strerror or type(exc).__name__
    return LogError(
        f"{doing} ({reason}); nothing was recorded", path=path, details={"errno": exc.errno}
    )


def utc_now() -> str:
    """Current UTC time as ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=256)
def _version_of(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names); absent ones are skipped.

    Looked up once per process, so recording a step stays cheap.
    """
    out: dict[str, str] = {"python": platform.python_version()}
    for name in names:
        version = _version_of(name)
        if version is not None:
            out[name] = version
    return out


def _utf8_safe(value: Any) -> Any:
    """Strings that hold undecodable file-name bytes (surrogates) shown as ``\\xNN``, so the line is UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_safe(v) for v in value]
    return value


class ArtifactRecord(TypedDict):
    """An input or output in a log entry (:meth:`Artifact.to_dict`)."""

    path: str
    bytes: int | None
    digest: str | None
    role: NotRequired[str]
    recorded_seq: NotRequired[int]


class AgentRecord(TypedDict):
    """Who acted: the curator's name and ORCID, when known."""

    name: str | None
    orcid: str | None


class ToolRecord(TypedDict):
    name: str
    version: str


class LogEntry(TypedDict):
    """One line of ``curation/log.jsonl``, as :meth:`CuratorLog.append` writes it.

    Read from disk an entry may be anything (the log can be edited by hand);
    :meth:`CuratorLog.verify` says whether it is what was written. Readers of
    unverified entries keep using ``.get`` with a default.
    """

    seq: int
    id: str
    """``urn:uuid:...``"""
    step: str
    """A CURATE(D) letter (:data:`STEPS`)."""
    step_name: str
    action: str
    time: str
    """When the step started (UTC, ISO 8601 with a ``Z``)."""
    agent: AgentRecord
    tool: ToolRecord
    software: dict[str, str]
    """Versions of Python and of the libraries that did the work."""
    params: dict[str, Any]
    inputs: list[ArtifactRecord]
    outputs: list[ArtifactRecord]
    status: str
    """``ok``, ``notneeded``, ``impossible`` or ``error``."""
    message: str
    duration: float
    """Seconds."""
    details: NotRequired[dict[str, Any]]
    host: NotRequired[dict[str, str | None]]
    """Only when opted in (``CURATED_RECORD_HOST=1``)."""
    prev: str | None
    """``hash`` of the entry before (``None`` for the first)."""
    hash: str
    """sha256 of the entry's canonical JSON without ``hash``."""


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The digest an entry carries in ``hash``: sha256 of its canonical JSON without ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A file or folder a step used or made: where, how big, and its digest."""

    path: str
    """Path relative to the workspace root (posix), or absolute when outside it."""
    bytes: int | None = None
    digest: str | None = None
    """``sha256:<hex>`` for a file, ``sha256-tree:<hex>`` for a directory, or ``None`` when not computed."""
    role: str | None = None
    """Optional word on what it is (``source``, ``image``, ``model``...)."""
    recorded_seq: int | None = None
    """For an input folder: the log entry whose recorded output digest is reused (not re-read)."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "digest": self.digest}
        if self.role:
            d["role"] = self.role
        if self.recorded_seq is not None:
            d["recorded_seq"] = self.recorded_seq
        return d


@dataclass
class VerifyReport:
    """What :meth:`CuratorLog.verify` found."""

    entries: int = 0
    ok: bool = True
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    cut_tail: bool = False
    """The last line is incomplete (a crash while writing); the entries before it are intact."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "ok": self.ok,
            "first_bad_seq": self.first_bad_seq,
            "cut_tail": self.cut_tail,
            "problems": list(self.problems),
        }

    def fail(self, seq: int | None, problem: str) -> None:
        if self.ok:
            self.first_bad_seq = seq
        self.ok = False
        self.problems.append(problem)


class CuratorLog:
    """Append-only, hash-chained curator log at ``path`` (``curation/log.jsonl``).

    Parameters
    ----------
    path
        The JSON Lines file. Its folder is created on first append.
    root
        Folder that recorded paths are made relative to (the workspace root);
        defaults to the log's grandparent (``<workspace>/curation/log.jsonl``).
    agent
        ``{"name": ..., "orcid": ...}`` of the curator; defaults to
        :func:`curated.provenance.agent.current_agent` (the ``CURATED_AGENT_NAME`` /
        ``CURATED_AGENT_ORCID`` variables, else the user's config file written by
        ``curated init --curator NAME --orcid ID``).
    record_host
        Opt in to recording host name, user and platform in each entry
        (also ``CURATED_RECORD_HOST=1``). Off by default: they identify people.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        root: str | Path | None = None,
        agent: dict[str, str | None] | None = None,
        record_host: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent.parent
        if agent is None:
            from curated.provenance.agent import current_agent

            agent = current_agent()
        self.agent = agent
        if record_host is None:
            record_host = os.environ.get("CURATED_RECORD_HOST", "") not in ("", "0", "false", "no")
        self.record_host = record_host

    # ----------------------------------------------------------------- reading
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path(), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def exists(self) -> bool:
        return self.path.is_file()

    def iter_raw(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(line number, raw line)``, newline included; an unterminated last line is yielded as is."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            yield from enumerate(fh, start=1)

    def entries(self, *, strict: bool = False) -> Iterator[LogEntry]:
        """Yield parsed entries in order.

        A cut (unparseable or unterminated) last line is skipped, unless
        ``strict``, in which case it raises :class:`LogError`. A bad line that is
        not the last always raises: that is damage, not a crash.
        """
        pending: tuple[int, bytes] | None = None
        for lineno, raw in self.iter_raw():
            if pending is not None:
                _, prev_raw = pending
                yield self._parse(prev_raw, lineno - 1)
            pending = (lineno, raw)
        if pending is None:
            return
        lineno, raw = pending
        if not raw.endswith(b"\n"):
            if strict:
                raise LogError(
                    f"last line ({lineno}) is cut: a crash interrupted a write; "
                    "run `curated log WORKSPACE --repair` to set it aside",
                    path=self.path,
                    details={"line": lineno},
                )
            return
        yield self._parse(raw, lineno)

    def _parse(self, raw: bytes, lineno: int) -> LogEntry:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LogError(
                f"line {lineno} is not valid JSON ({exc})", path=self.path, details={"line": lineno}
            ) from exc
        if not isinstance(obj, dict):
            raise LogError(
                f"line {lineno} is not a JSON object", path=self.path, details={"line": lineno}
            )
        # typed as written; whether it still is what was written is verify's to say
        return cast(LogEntry, obj)

    def __iter__(self) -> Iterator[LogEntry]:
        return self.entries()

    def __len__(self) -> int:
        return sum(1 for _ in self.entries())

    def _tail(self) -> tuple[LogEntry | None, bool]:
        """Return (last complete entry, whether a cut line follows it), reading only the file's end."""
        if not self.path.exists():
            return None, False
        size = self.path.stat().st_size
        if size == 0:
            return None, False
        with open(self.path, "rb") as fh:
            read = min(size, _TAIL_READ)
            while True:
                fh.seek(size - read)
                chunk = fh.read(read)
                lines = chunk.split(b"\n")
                cut = lines[-1] != b""
                complete = lines[:-1]
                # the first element may be partial unless we read from the file start
                if read < size:
                    complete = complete[1:]
                if complete or read == size:
                    break
                read = min(size, read * 4)
        if not complete:
            return None, cut
        last = complete[-1]
        try:
            return json.loads(last.decode("utf-8")), cut
        except (UnicodeDecodeError, json.JSONDecodeError):
            # the last *terminated* line is damaged: that is not a crash signature
            raise LogError(
                "the last entry of the log is not valid JSON; run `curated log --verify`",
                path=self.path,
            ) from None

    def last(self) -> LogEntry | None:
        """The last complete entry, or ``None`` for an empty log."""
        return self._tail()[0]

    # ----------------------------------------------------------------- writing
    def append(
        self,
        step: str,
        action: str,
        *,
        status: str = "ok",
        message: str = "",
        params: dict[str, Any] | None = None,
        inputs: Sequence[Artifact] = (),
        outputs: Sequence[Artifact] = (),
        time_started: str | None = None,
        duration: float = 0.0,
        libraries: Sequence[str] = (),
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one entry and return it (with ``seq``, ``prev`` and ``hash`` filled).

        ``params``, ``details`` and ``message`` pass through :func:`redact` first.
        Raises :class:`LogError`, appending nothing, when the last line is cut
        (see :meth:`repair`) or the last entry no longer matches its hash.
        """
        if step not in STEPS:
            raise LogError(f"step must be one of {', '.join(STEPS)}, not {step!r}", path=self.path)
        if status not in STATUSES:
            raise LogError(
                f"status must be one of {', '.join(STATUSES)}, not {status!r}", path=self.path
            )
        entry: dict[str, Any] = {
            "seq": None,
            "id": f"urn:uuid:{uuid.uuid4()}",
            "step": step,
            "step_name": STEPS[step],
            "action": action,
            "time": time_started or utc_now(),
            "agent": self.agent,
            "tool": {"name": "curated", "version": __version__},
            "software": library_versions([*DEFAULT_LIBRARIES, *libraries]),
            "params": redact(params or {}),
            "inputs": [a.to_dict() for a in inputs],
            "outputs": [a.to_dict() for a in outputs],
            "status": status,
            "message": redact(message),
            "duration": round(float(duration), 6),
        }
        if details:
            entry["details"] = redact(details)
        if self.record_host:
            entry["host"] = {
                "hostname": socket.gethostname(),
                "user": os.environ.get("USER") or os.environ.get("USERNAME"),
                "platform": platform.platform(),
            }
        # what is hashed is exactly what a reader parses back (tuples, Paths... normalised)
        entry = _utf8_safe(json.loads(canonical_json(entry)))
        with self._locked():
            last = self._appendable_tail()
            entry["seq"] = 0 if last is None else last["seq"] + 1
            entry["prev"] = None if last is None else last["hash"]
            entry["hash"] = entry_hash(entry)
            line = (canonical_json(entry) + "\n").encode("utf-8")
            crash_point("log-append")
            self._write_line(line)
        return entry

    def _write_line(self, line: bytes) -> None:
        """Append ``line`` whole or not at all: an OS error (full disk...) cuts nothing."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error(exc, self.path, "cannot write the curator log") from None
        start = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            # Leave the log as it was, so that a full disk is not mistaken for a crash.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise _os_error(exc, self.path, "cannot write the curator log") from None
        finally:
            os.close(fd)

    def _appendable_tail(self) -> LogEntry | None:
        last, cut = self._tail()
        if cut:
            raise LogError(
                "the log's last line is cut (a crash interrupted a write); nothing was appended. "
                "Run `curated log WORKSPACE --repair` to set the cut line aside and continue the chain "
                "from the last good entry",
                path=self.path,
                details={"cut": True},
            )
        if last is None:
            return None
        if not isinstance(last.get("seq"), int) or last.get("hash") != entry_hash(last):
            raise LogError(
                "the log's last entry does not match its hash (it was edited); nothing was appended. "
                "Run `curated log WORKSPACE --verify` to see where the chain breaks",
                path=self.path,
                details={"seq": last.get("seq")},
            )
        return last

    def check_appendable(self) -> None:
        """Raise :class:`LogError` now if an append would be refused (cut or edited tail).

        Step recorders call this before the work starts, so hours of work are
        not done only to find the log cannot record them.
        """
        if self.path.exists():
            self._appendable_tail()
        target = self.path if self.path.exists() else self.path.parent
        if target.exists() and not os.access(target, os.W_OK):
            msg = "cannot write the curator log (permission denied); nothing was done. Make it writable and re-run"
            raise LogError(msg, path=target)

    def repair(self) -> Path | None:
        """Set a cut last line aside (into ``log.jsonl.cut-<time>``) so appends can continue.

        Returns the file the cut bytes were saved to, or ``None`` when there was
        nothing to repair. Every complete entry is kept. A repair killed part way is
        finished by the next one: the copy it had begun (or finished) is the one kept,
        never a second copy of the same line.
        """
        with self._locked():
            _, cut = self._tail()
            if not cut:
                return None
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            aside = self._set_aside(data[keep:])
            crash_point("log-repair-set-aside")  # copied, the log not yet shortened
            try:
                with open(self.path, "r+b") as fh:
                    fh.truncate(keep)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise _os_error(exc, self.path, "cannot shorten the log") from None
            return aside

    def _set_aside(self, cut: bytes) -> Path:
        """A file beside the log holding ``cut``: the copy an interrupted repair made (or
        began: a start of it) completed, else a new ``log.jsonl.cut-<time>``."""
        aside, whole = self._copy_of(cut)
        if whole and aside is not None:
            return aside
        mode = "wb"  # a start of the cut line, left by a repair killed while writing it
        if aside is None:
            mode = "xb"
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            aside = self.path.with_name(f"{self.path.name}.cut-{stamp}")
            n = 1
            while aside.exists():
                aside = self.path.with_name(f"{self.path.name}.cut-{stamp}-{n}")
                n += 1
        try:
            with open(aside, mode) as fh:
                fh.write(cut)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            # never leave an empty or partial copy of the cut line behind
            aside.unlink(missing_ok=True)
            raise _os_error(
                exc, aside, "cannot set the cut line aside; the log was not changed"
            ) from None
        return aside

    def _copy_of(self, cut: bytes) -> tuple[Path | None, bool]:
        """The file set aside beside the log holding ``cut`` (``True``), or else one holding
        a start of it (``False``: a repair killed while writing it); ``None`` when neither."""
        begun: Path | None = None
        for p in sorted(self.path.parent.glob(f"{glob.escape(self.path.name)}.cut-*")):
            if p.is_symlink() or not p.is_file() or p.stat().st_size > len(cut):
                continue
            held = p.read_bytes()
            if held == cut:
                return p, True
            if cut.startswith(held):
                begun = p
        return begun, False

    # ------------------------------------------------------------- artifacts
    def artifact(
        self,
        path: str | Path,
        *,
        digest: str | None = None,
        size: int | None = None,
        compute: bool = True,
        role: str | None = None,
    ) -> Artifact:
        """Describe ``path`` for an entry, computing its digest unless given or ``compute`` is false."""
        from curated.objstore import is_url, url_digest

        if is_url(path):  # an object store (s3://): recorded by its URL, never with credentials
            if digest is None and compute:
                digest = url_digest(str(path))
            return Artifact(path=str(path), bytes=size, digest=digest, role=role)
        p = Path(path)
        if digest is None and compute and p.exists():
            digest, size = digest_path(p)
        elif size is None and p.is_file():
            size = p.stat().st_size
        return Artifact(path=self.relative(p), bytes=size, digest=digest, role=role)

    def recorded_output(self, path: str | Path) -> Artifact | None:
        """The latest output recorded for ``path`` (a folder or file), or ``None``.

        Steps that read a Zarr store another step wrote reuse that step's digest
        instead of re-reading a terabyte store for every training or prediction run.
        """
        rel = self.relative(path)
        found: Artifact | None = None
        for entry in self.entries():
            for out in entry.get("outputs") or []:
                if isinstance(out, dict) and out.get("path") == rel and out.get("digest"):
                    found = Artifact(
                        path=rel,
                        bytes=out.get("bytes"),
                        digest=out["digest"],
                        role=out.get("role"),
                        recorded_seq=int(entry["seq"]),
                    )
        return found

    def records_as_is(self, path: str | Path) -> bool:
        """Whether the latest output recorded for ``path`` has the digest ``path`` has now
        (a folder, file or ``s3://`` store; a store's journal is never digested).

        A step killed after its log entry, before it tidied up, left what the log records:
        its re-run has nothing to do, and recording it again would record it twice.
        """
        if not self.exists():
            return False
        recorded = self.recorded_output(path)
        return recorded is not None and recorded.digest == self.artifact(path).digest

    def input_artifact(self, path: str | Path, *, compute: bool = True) -> Artifact:
        """Describe an input: a folder an earlier step recorded reuses that digest; else as :meth:`artifact`."""
        from curated.objstore import is_url

        if is_url(path):
            return self.recorded_output(path) or self.artifact(path, compute=compute)
        p = Path(path)
        if p.is_dir():
            recorded = self.recorded_output(p)
            if recorded is not None:
                return recorded
        return self.artifact(p, compute=compute)

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the workspace root (posix); ``../...`` when it lies outside.

        Never absolute: the log travels in bags and deposits, and the curator's folders
        (``/home/ada/...``) are nobody else's business. A relative ``path`` is taken
        relative to the current folder, like every path a command is given. An object
        store's ``s3://`` URL stays as it is.
        """
        if isinstance(path, str) and path.lower().startswith("s3://"):
            return path
        p = Path(path)
        for candidate, root in (
            (Path(os.path.abspath(p)), Path(os.path.abspath(self.root))),
            (p.resolve(), self.root.resolve()),
        ):
            try:
                return candidate.relative_to(root).as_posix()
            except ValueError:
                continue
        return Path(os.path.relpath(os.path.abspath(p), os.path.abspath(self.root))).as_posix()

    # ------------------------------------------------------------ recording
    def step(
        self,
        step: str,
        action: str,
        *,
        inputs: Sequence[str | Path | Artifact] = (),
        params: dict[str, Any] | None = None,
        libraries: Sequence[str] = (),
        hash_inputs: bool = True,
    ) -> StepRecorder:
        """Deprecated: use :func:`curated.recorder` (``recorder(log, step, action, ...)``)."""
        warnings.warn(
            "CuratorLog.step is deprecated; use curated.recorder(log, step, action, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return StepRecorder(
            self,
            step,
            action,
            inputs=inputs,
            params=params,
            libraries=libraries,
            hash_inputs=hash_inputs,
        )

    # ------------------------------------------------------------- verifying
    def anchor(self) -> str | None:
        """``SEQ:HASH`` of the last entry: keep it outside the workspace to detect later truncation.

        A hash chain shows every edit, insertion and removal *inside* the log,
        but not entries cut from its end (the shorter log is a valid chain).
        An anchor kept elsewhere (a lab notebook, a deposit receipt, an e-mail)
        closes that gap: ``verify(anchor=...)`` fails when the anchored entry
        is gone or different. ``None`` for an empty log.
        """
        last = self.last()
        if last is None:
            return None
        return f"{last['seq']}:{last['hash']}"

    def verify(self, *, files: bool = False, anchor: str | None = None) -> VerifyReport:
        """Recompute the chain; with ``files``, also each path's latest recorded output digest.

        With ``anchor`` (``SEQ:HASH`` from :meth:`anchor`, kept outside the
        workspace), the entry at that ``seq`` must still be there with that
        hash: entries removed from the end of the log are reported too.

        The first problem names the ``seq`` where the log stops being
        trustworthy: an edited entry (its content no longer matches its
        ``hash``), a removed, inserted or reordered entry (``seq`` out of
        order), or an entry rewritten together with its hash (the next entry's
        ``prev`` no longer matches it). A cut last line is reported with
        ``cut_tail``; the entries before it are still counted as intact.
        """
        anchor_seq, anchor_hash = _parse_anchor(anchor) if anchor is not None else (None, None)
        walk = _ChainWalk()
        for lineno, raw in self.iter_raw():
            entry = walk.check_line(lineno, raw)
            if entry is None:
                break
            walk.note_outputs(entry)
            if entry["seq"] == anchor_seq:
                walk.anchored = entry["hash"]
        report = walk.report
        if anchor_seq is not None and anchor_hash is not None and report.ok:
            _check_anchor(report, anchor_seq, anchor_hash, walk.anchored)
        if files and report.ok:
            self._verify_bags(report, walk.bags)
            self._verify_outputs(report, walk.latest_outputs)
        return report

    def _verify_bags(self, report: VerifyReport, bags: dict[str, tuple[int, str | None]]) -> None:
        """Each bag a ``bag`` entry recorded is still there, and is that bag."""
        for rel, (seq, ident) in sorted(bags.items(), key=lambda kv: (kv[1][0], kv[0])):
            problem = _bag_problem(self.root, rel, ident)
            if problem:
                report.fail(seq, f"seq {seq}: bag {rel} {problem}")

    def _verify_outputs(
        self, report: VerifyReport, latest_outputs: dict[str, tuple[int, dict[str, Any]]]
    ) -> None:
        """Each path's latest recorded output digest still matches what is on disk (or in the store)."""
        from curated.objstore import is_url, url_output_problem

        for rel, (seq, out) in sorted(latest_outputs.items(), key=lambda kv: (kv[1][0], kv[0])):
            if is_url(rel):  # a store written into an object store (s3://)
                problem = url_output_problem(
                    rel, out["digest"], _later_nested(rel, seq, latest_outputs)
                )
                if problem:
                    report.fail(seq, f"seq {seq}: output {rel} {problem}")
                continue
            p = Path(rel) if Path(rel).is_absolute() else self.root / rel
            if not p.exists():
                report.fail(seq, f"seq {seq}: output {rel} is missing")
                continue
            # A later step may write inside a recorded folder (label images added to an
            # OME-Zarr image). Those sub-trees are verified against their own, later
            # entries; the folder is verified without them, which is the state that was
            # recorded when they did not exist yet. (A later step that rewrote something
            # that did exist must record the whole folder again, or this reports a change:
            # a false alarm, never a false pass.)
            later_inside = _later_nested(rel, seq, latest_outputs)
            try:
                if later_inside and p.is_dir():
                    digest = digest_tree(p, exclude=later_inside).digest
                else:
                    digest, _ = digest_path(p)
            except OSError as exc:
                report.fail(seq, f"seq {seq}: output {rel} cannot be read ({exc.strerror or exc})")
                continue
            if digest != out["digest"]:
                report.fail(seq, f"seq {seq}: output {rel} changed since it was recorded")


class _ChainWalk:
    """One pass over the log's lines: the chain checks, and what ``verify --files`` needs later."""

    def __init__(self) -> None:
        self.report = VerifyReport()
        self.prev_hash: str | None = None
        self.anchored: str | None = None
        self.latest_outputs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.bags: dict[str, tuple[int, str | None]] = {}

    def check_line(self, lineno: int, raw: bytes) -> dict[str, Any] | None:
        """The entry on this line when it continues the chain; else ``None`` (the report says why)."""
        report = self.report
        expected_seq = report.entries
        if not raw.endswith(b"\n"):
            # only the last line can lack its newline
            report.cut_tail = True
            report.fail(
                expected_seq,
                f"line {lineno}: cut by a crash (incomplete last line); the {report.entries} entries before it are intact; `curated log --repair` sets it aside",
            )
            return None
        try:
            entry = json.loads(raw.decode("utf-8"))
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            report.fail(expected_seq, f"seq {expected_seq} (line {lineno}): not a valid JSON entry")
            return None
        seq = entry.get("seq")
        if seq != expected_seq:
            report.fail(
                expected_seq,
                f"seq {expected_seq} (line {lineno}): found seq {seq!r} instead; an entry was removed, inserted or reordered here",
            )
            return None
        if entry.get("hash") != entry_hash(entry):
            report.fail(seq, f"seq {seq}: content does not match its hash; the entry was edited")
            return None
        if entry.get("prev") != self.prev_hash:
            if seq == 0:
                report.fail(
                    0, "seq 0: the first entry must have no prev; the log's start was altered"
                )
            else:
                report.fail(
                    seq - 1,
                    f"seq {seq - 1}: its hash no longer matches the prev recorded by seq {seq}; seq {seq - 1} was rewritten after seq {seq} was written",
                )
            return None
        self.prev_hash = entry["hash"]
        report.entries += 1
        return entry

    def note_outputs(self, entry: dict[str, Any]) -> None:
        """Remember each path's latest recorded output, and the bags still claimed."""
        seq = entry["seq"]
        for out in entry.get("outputs") or []:
            if isinstance(out, dict) and out.get("digest") and out.get("path"):
                self.latest_outputs[out["path"]] = (seq, out)
            elif isinstance(out, dict) and out.get("role") == "bag" and out.get("path"):
                ident = (entry.get("details") or {}).get("external_identifier")
                self.bags[out["path"]] = (seq, ident)
        retracted = (entry.get("details") or {}).get("interrupted_seq")
        if entry.get("status") == "error" and isinstance(retracted, int):
            # a later entry says that bag was never completed: it is no longer claimed
            self.bags = {k: v for k, v in self.bags.items() if v[0] != retracted}


def _check_anchor(
    report: VerifyReport, anchor_seq: int, anchor_hash: str, anchored: str | None
) -> None:
    """The anchored entry is still there (nothing cut from the end) and unchanged."""
    if anchored is None:
        gone = anchor_seq - report.entries + 1
        report.fail(
            report.entries,
            f"the log ends at seq {report.entries - 1} but the anchor names seq {anchor_seq}: "
            + ("1 entry was" if gone == 1 else f"{gone} entries were")
            + " removed from its end",
        )
    elif anchored != anchor_hash:
        report.fail(
            anchor_seq,
            f"seq {anchor_seq}: does not match the anchor's hash; the log was rewritten from here",
        )


def anchor_from(source: str | Path) -> str:
    """The ``SEQ:HASH`` anchor kept in a bag or a copy of a log.

    ``source`` is a bag folder (its ``metadata/curator-log.jsonl``, the log up to
    and including the bag's own entry) or a curator log file; the anchor is its
    last complete entry. With it, ``verify(anchor=...)`` checks that the
    workspace's log still holds everything that was deposited.
    """
    p = Path(source)
    if p.is_dir():
        p = p / "metadata" / "curator-log.jsonl"
    if not p.is_file():
        msg = (
            "no curator log here: an anchor is SEQ:HASH as `curated log --head` prints it, "
            "a bag folder (metadata/curator-log.jsonl) or a curator log file"
        )
        raise LogError(msg, path=p, field="anchor")
    mark = CuratorLog(p).anchor()
    if mark is None:
        msg = "this curator log holds no complete entry to anchor to"
        raise LogError(msg, path=p, field="anchor")
    return mark


def _parse_anchor(anchor: str) -> tuple[int, str]:
    seq, sep, digest = anchor.strip().partition(":")
    if not sep or not seq.isdigit() or not digest.startswith("sha256:") or len(digest) != 71:
        msg = f"an anchor is SEQ:HASH as `curated log --head` prints it (e.g. 12:sha256:3f5a...), not {anchor!r}"
        raise LogError(msg, field="anchor")
    return int(seq), digest


def _bag_problem(root: Path, rel: str, ident: str | None) -> str | None:
    """What is wrong with the bag a ``bag`` entry recorded at ``rel`` (``None``: it is there).

    A bag's digest cannot be in its own entry (the bag carries the log up to that entry),
    so it is checked by its ``External-Identifier``: a bag that was never completed (a
    crash after the entry), or a bag made otherwise in its place, is reported. A serialized
    bag is read too: a ``--overwrite`` killed after the entry leaves the *old* archive there.
    """
    p = Path(rel) if Path(rel).is_absolute() else root / rel
    if not p.is_file() and not (p / "bag-info.txt").is_file():
        return "is missing (was it completed, moved or deleted?)"
    if ident and bag_identifier(p) != ident:
        return "is another bag than the one recorded"
    return None


BAG_INFO_SCAN_MEMBERS = 64
"""How many members of a tar are read looking for ``bag-info.txt``: ``curated bag`` writes
it second (after the top folder), so a tar that hides it deeper was not made by it, and a
terabyte tar is never scanned to its end."""

_BAG_INFO_MAX_BYTES = 1 << 20


def bag_identifier(path: str | Path) -> str | None:
    """The ``External-Identifier`` of the bag at ``path``: a bag folder, or a serialized bag
    (``.tar`` or ``.zip`` holding one top folder). ``None`` when there is none, the archive
    cannot be read, or its ``bag-info.txt`` is not among its first members."""
    p = Path(path)
    text: bytes | None = None
    try:
        if p.is_dir():
            info = p / "bag-info.txt"
            if info.is_file():
                with open(info, "rb") as fh:
                    text = fh.read(_BAG_INFO_MAX_BYTES)
        elif p.is_file():
            text = _archived_bag_info(p)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError):
        return None
    if text is None:
        return None
    for line in text.decode("utf-8", errors="replace").splitlines():
        if line.startswith("External-Identifier:"):
            return line.partition(":")[2].strip() or None
    return None


def _archived_bag_info(p: Path) -> bytes | None:
    """The top folder's ``bag-info.txt`` of a zip or tar (first bytes only), or ``None``."""

    def top_level(name: str) -> bool:
        parts = name.strip("/").split("/")
        return len(parts) == 2 and parts[1] == "bag-info.txt"

    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            member = next((i for i in zf.infolist() if top_level(i.filename)), None)
            if member is None:
                return None
            with zf.open(member) as fh:
                return fh.read(_BAG_INFO_MAX_BYTES)
    with tarfile.open(p, "r:*") as tf:
        for _ in range(BAG_INFO_SCAN_MEMBERS):
            m = tf.next()
            if m is None:
                return None
            if m.isfile() and top_level(m.name):
                data = tf.extractfile(m)
                return None if data is None else data.read(_BAG_INFO_MAX_BYTES)
    return None


def _later_nested(rel: str, seq: int, outputs: dict[str, tuple[int, dict[str, Any]]]) -> set[str]:
    """Top-level entries of folder ``rel`` that hold outputs recorded by ``seq`` or after it.

    An entry that records a folder and, separately, something inside it (an image and
    its truth labels) records the folder's digest without that top-level entry, so the
    two are checked independently.
    """
    prefix = rel.rstrip("/") + "/"
    return {
        other[len(prefix) :].split("/", 1)[0]
        for other, (other_seq, _) in outputs.items()
        if other_seq >= seq and other.startswith(prefix)
    }


class StepRecorder:
    """Context manager that records one step: start, end, outputs, failures.

    Open one with :func:`curated.recorder`:

    >>> with recorder(workspace, "T", "convert", inputs=[src], params={"chunks": 64}) as step:  # doctest: +SKIP
    ...     out = convert(...)
    ...     step.add_output(out, digest=store_digest)

    On normal exit one entry is appended with status ``ok`` (or what the block
    set in ``step.status``). An exception is appended with status ``error`` and
    its message, then re-raised. ``log`` may be ``None``: the block runs and
    nothing is recorded, so core functions can always use a recorder.
    """

    def __init__(
        self,
        log: CuratorLog | None,
        step: str,
        action: str,
        *,
        inputs: Sequence[str | Path | Artifact] = (),
        params: dict[str, Any] | None = None,
        libraries: Sequence[str] = (),
        hash_inputs: bool = True,
    ) -> None:
        if step not in STEPS:
            raise LogError(f"step must be one of {', '.join(STEPS)}, not {step!r}")
        self.log = log
        self.step = step
        self.action = action
        self.params: dict[str, Any] = dict(params or {})
        self.libraries = list(libraries)
        self._raw_inputs = list(inputs)
        self.hash_inputs = hash_inputs
        self.inputs: list[Artifact] = []
        self.outputs: list[Artifact] = []
        self.status = "ok"
        self.message = ""
        self.details: dict[str, Any] = {}
        self.entry: dict[str, Any] | None = None
        self._t0 = 0.0
        self._started = ""

    def _as_artifact(self, item: str | Path | Artifact, *, compute: bool) -> Artifact:
        if isinstance(item, Artifact):
            return item
        if self.log is None:
            return Artifact(path=str(item))
        return self.log.input_artifact(item, compute=compute)

    def add_input(
        self, path: str | Path | Artifact, *, digest: str | None = None, size: int | None = None
    ) -> None:
        if isinstance(path, Artifact) or self.log is None:
            self.inputs.append(self._as_artifact(path, compute=False))
        elif digest is None:
            self.inputs.append(self.log.input_artifact(path, compute=self.hash_inputs))
        else:
            self.inputs.append(self.log.artifact(path, digest=digest, size=size, compute=False))

    def add_output(
        self,
        path: str | Path | Artifact,
        *,
        digest: str | None = None,
        size: int | None = None,
        compute: bool = True,
        role: str | None = None,
    ) -> None:
        """Record an output; pass ``digest`` when the producer already hashed it."""
        if isinstance(path, Artifact) or self.log is None:
            self.outputs.append(self._as_artifact(path, compute=False))
        else:
            self.outputs.append(
                self.log.artifact(path, digest=digest, size=size, compute=compute, role=role)
            )

    def __enter__(self) -> StepRecorder:
        if self.log is not None:
            self.log.check_appendable()
        self._started = utc_now()
        self._t0 = time.perf_counter()
        for item in self._raw_inputs:
            self.inputs.append(self._as_artifact(item, compute=self.hash_inputs))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        duration = time.perf_counter() - self._t0
        if exc is not None:
            status = "error"
            message = f"{type(exc).__name__}: {exc}"
        else:
            status, message = self.status, self.message
        if self.log is None:
            return False
        try:
            self.entry = self.log.append(
                self.step,
                self.action,
                status=status,
                message=message,
                params=self.params,
                inputs=self.inputs,
                outputs=self.outputs,
                time_started=self._started,
                duration=duration,
                libraries=self.libraries,
                details=self.details or None,
            )
        except LogError:
            if exc is None:
                raise
            # the block's own exception is what the caller must see
        return False
