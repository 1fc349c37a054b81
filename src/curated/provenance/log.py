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

import fcntl
import hashlib
import json
import os
import platform
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from curated._io import canonical_json
from curated._version import __version__
from curated.errors import LogError
from curated.provenance.digest import digest_path

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


def utc_now() -> str:
    """Current UTC time as ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names); absent ones are skipped."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def entry_hash(entry: dict[str, Any]) -> str:
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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "digest": self.digest}
        if self.role:
            d["role"] = self.role
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
        ``{"name": ..., "orcid": ...}`` of the curator; defaults to the
        ``CURATED_AGENT_NAME`` / ``CURATED_AGENT_ORCID`` environment variables.
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
            agent = {
                "name": os.environ.get("CURATED_AGENT_NAME"),
                "orcid": os.environ.get("CURATED_AGENT_ORCID"),
            }
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
        """Yield ``(line number, raw line without newline)``; an unterminated last line is yielded too."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line

    def entries(self, *, strict: bool = False) -> Iterator[dict[str, Any]]:
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

    def _parse(self, raw: bytes, lineno: int) -> dict[str, Any]:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LogError(f"line {lineno} is not valid JSON ({exc})", path=self.path, details={"line": lineno}) from exc
        if not isinstance(obj, dict):
            raise LogError(f"line {lineno} is not a JSON object", path=self.path, details={"line": lineno})
        return obj

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.entries()

    def __len__(self) -> int:
        return sum(1 for _ in self.entries())

    def _tail(self) -> tuple[dict[str, Any] | None, bool]:
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
            raise LogError("the last entry of the log is not valid JSON; run `curated log --verify`", path=self.path) from None

    def last(self) -> dict[str, Any] | None:
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
        """Append one entry and return it (with ``seq``, ``prev`` and ``hash`` filled)."""
        if step not in STEPS:
            raise LogError(f"step must be one of {', '.join(STEPS)}, not {step!r}", path=self.path)
        if status not in STATUSES:
            raise LogError(f"status must be one of {', '.join(STATUSES)}, not {status!r}", path=self.path)
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
            "params": params or {},
            "inputs": [a.to_dict() for a in inputs],
            "outputs": [a.to_dict() for a in outputs],
            "status": status,
            "message": message,
            "duration": round(float(duration), 6),
        }
        if details:
            entry["details"] = details
        if self.record_host:
            entry["host"] = {
                "hostname": socket.gethostname(),
                "user": os.environ.get("USER") or os.environ.get("USERNAME"),
                "platform": platform.platform(),
            }
        with self._locked():
            last, cut = self._tail()
            if cut:
                raise LogError(
                    "the log's last line is cut (a crash interrupted a write); nothing was appended. "
                    "Run `curated log WORKSPACE --repair` to set the cut line aside and continue the chain "
                    "from the last good entry",
                    path=self.path,
                )
            entry["seq"] = 0 if last is None else int(last["seq"]) + 1
            entry["prev"] = None if last is None else last["hash"]
            entry["hash"] = entry_hash(entry)
            line = (canonical_json(entry) + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def repair(self) -> Path | None:
        """Set a cut last line aside (into ``log.jsonl.cut-<time>``) so appends can continue.

        Returns the file the cut bytes were saved to, or ``None`` when there was
        nothing to repair. Every complete entry is kept.
        """
        with self._locked():
            _, cut = self._tail()
            if not cut:
                return None
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            aside = self.path.with_name(f"{self.path.name}.cut-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
            aside.write_bytes(data[keep:])
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
            return aside

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
        p = Path(path)
        if digest is None and compute and p.exists():
            digest, size = digest_path(p)
        elif size is None and p.is_file():
            size = p.stat().st_size
        return Artifact(path=self.relative(p), bytes=size, digest=digest, role=role)

    def relative(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(p.resolve()) if p.is_absolute() or p.exists() else p.as_posix()

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
        """Record one step around a block of work (see :class:`StepRecorder`)."""
        return StepRecorder(self, step, action, inputs=inputs, params=params, libraries=libraries, hash_inputs=hash_inputs)

    # ------------------------------------------------------------- verifying
    def verify(self, *, files: bool = False) -> VerifyReport:
        """Recompute the chain; with ``files``, also each path's latest recorded output digest."""
        report = VerifyReport()
        prev_hash: str | None = None
        expected_seq = 0
        latest_outputs: dict[str, tuple[int, dict[str, Any]]] = {}
        lines = list(self.iter_raw()) if self.path.exists() else []
        for i, (lineno, raw) in enumerate(lines):
            is_last = i == len(lines) - 1
            if is_last and not raw.endswith(b"\n"):
                report.cut_tail = True
                report.fail(expected_seq, f"line {lineno}: cut by a crash (incomplete last line); entries before it are intact")
                break
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                report.fail(expected_seq, f"seq {expected_seq} (line {lineno}): not valid JSON")
                break
            seq = entry.get("seq")
            if seq != expected_seq:
                report.fail(expected_seq, f"seq {expected_seq} (line {lineno}): found seq {seq!r}; an entry was removed, inserted or reordered")
                break
            if entry.get("prev") != prev_hash:
                report.fail(seq, f"seq {seq}: prev does not match the hash of seq {seq - 1}; the chain is broken here")
                break
            if entry.get("hash") != entry_hash(entry):
                report.fail(seq, f"seq {seq}: content does not match its hash; the entry was edited")
                break
            for out in entry.get("outputs", []):
                if out.get("digest"):
                    latest_outputs[out["path"]] = (seq, out)
            prev_hash = entry["hash"]
            expected_seq += 1
            report.entries += 1
        if files and report.ok:
            for rel, (seq, out) in sorted(latest_outputs.items(), key=lambda kv: kv[1][0]):
                p = Path(rel) if Path(rel).is_absolute() else self.root / rel
                if not p.exists():
                    report.fail(seq, f"seq {seq}: output {rel} is missing")
                    continue
                digest, _ = digest_path(p)
                if digest != out["digest"]:
                    report.fail(seq, f"seq {seq}: output {rel} changed since it was recorded")
        return report


class StepRecorder:
    """Context manager that records one step: start, end, outputs, failures.

    >>> with log.step("T", "convert", inputs=[src], params={"chunks": 64}) as step:  # doctest: +SKIP
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
        return self.log.artifact(item, compute=compute)

    def add_input(self, path: str | Path | Artifact, *, digest: str | None = None, size: int | None = None) -> None:
        if isinstance(path, Artifact) or self.log is None:
            self.inputs.append(self._as_artifact(path, compute=False))
        else:
            self.inputs.append(self.log.artifact(path, digest=digest, size=size, compute=self.hash_inputs))

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
            self.outputs.append(self.log.artifact(path, digest=digest, size=size, compute=compute, role=role))

    def __enter__(self) -> StepRecorder:
        self._started = utc_now()
        self._t0 = time.perf_counter()
        for item in self._raw_inputs:
            self.inputs.append(self._as_artifact(item, compute=self.hash_inputs))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        duration = time.perf_counter() - self._t0
        if exc is not None:
            status = "error"
            message = f"{type(exc).__name__}: {exc}"
        else:
            status, message = self.status, self.message
        if self.log is not None:
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
        return False
