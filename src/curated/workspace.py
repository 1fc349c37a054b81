"""The unit of work: one dataset = one folder.

::

    my-dataset/
      curated.yaml          REMBI-aligned metadata (schemas/curated.yaml)
      curation/log.jsonl    curator log (append-only, hash-chained)
      curation/...          check report, request email, FAIR checklist
      derived/              OME-Zarr images and labels, models, evaluations
      package/              built bags and deposit receipts

Originals stay where they are; the workspace references them by path and checksum.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curated._io import atomic_write_text, dump_yaml_text, load_mapping
from curated.errors import WorkspaceError
from curated.provenance.log import Artifact, CuratorLog, StepRecorder

METADATA_FILE = "curated.yaml"
LOG_FILE = "curation/log.jsonl"


class Workspace:
    """A dataset's workspace folder.

    Open an existing one with ``Workspace(path)``; make a new one with
    :meth:`Workspace.create`.
    """

    def __init__(self, root: str | Path, *, must_exist: bool = True) -> None:
        self.root = Path(root)
        if must_exist and not (self.root / METADATA_FILE).is_file():
            raise WorkspaceError(
                f"not a curated workspace (no {METADATA_FILE}); create one with `curated init DIR --title TITLE`",
                path=self.root,
            )
        self.log = CuratorLog(self.root / LOG_FILE, root=self.root)

    # ---------------------------------------------------------------- layout
    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def curation_dir(self) -> Path:
        return self.root / "curation"

    @property
    def derived_dir(self) -> Path:
        return self.root / "derived"

    @property
    def package_dir(self) -> Path:
        return self.root / "package"

    @property
    def models_dir(self) -> Path:
        return self.derived_dir / "models"

    @property
    def evaluations_dir(self) -> Path:
        return self.derived_dir / "evaluations"

    @classmethod
    def create(
        cls, root: str | Path, *, record: dict[str, Any], exist_ok: bool = False
    ) -> Workspace:
        """Create the folder layout and write ``record`` as ``curated.yaml``.

        Refuses an existing workspace unless ``exist_ok`` (then it is returned as is).
        """
        root = Path(root)
        if (root / METADATA_FILE).exists():
            if exist_ok:
                return cls(root)
            raise WorkspaceError(
                f"a workspace already exists here ({METADATA_FILE} present)", path=root
            )
        if root.exists() and not root.is_dir():
            raise WorkspaceError("exists and is not a folder", path=root)
        for sub in ("curation", "derived", "package"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / METADATA_FILE, dump_yaml(record))
        return cls(root)

    # -------------------------------------------------------------- metadata
    def read_metadata(self) -> dict[str, Any]:
        """The raw ``curated.yaml`` as a dict (no validation; see ``curated.metadata`` for that)."""
        return load_mapping(self.metadata_path)

    def write_metadata(self, record: dict[str, Any]) -> None:
        """Atomically replace ``curated.yaml`` (never half-written)."""
        atomic_write_text(self.metadata_path, dump_yaml(record))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the workspace's exclusive lock (``curation/.workspace.lock``).

        Every read-modify-write of ``curated.yaml`` runs inside it, together with the
        log entry that records it, so parallel edits neither lose an update nor log
        them in another order than they were made.
        """
        self.curation_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.curation_dir / ".workspace.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ------------------------------------------------------------ provenance
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
        """Deprecated: use :func:`curated.recorder` (``recorder(workspace, step, action, ...)``)."""
        warnings.warn(
            "Workspace.step is deprecated; use curated.recorder(workspace, step, action, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return recorder(
            self,
            step,
            action,
            inputs=inputs,
            params=params,
            libraries=libraries,
            hash_inputs=hash_inputs,
        )

    def relative(self, path: str | Path) -> str:
        return self.log.relative(path)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def unlogged(ws: Workspace | None, path: str | Path) -> bool:
    """Whether an output in a workspace is missing from its curator log: one a run killed
    after writing it but before its log entry left (a finished step is always recorded),
    which a re-run of the same command may replace. ``False`` without a workspace."""
    if ws is None:
        return False
    return not ws.log.exists() or ws.log.recorded_output(path) is None


def enclosing_workspace(path: str | Path) -> Path | None:
    """The workspace folder ``path`` lies in (a parent holding ``curated.yaml`` and a curator
    log), or ``None`` (also for object-store URLs)."""
    from curated.objstore import is_url

    if is_url(path):
        return None
    p = Path(path).resolve()
    for folder in (p, *p.parents):
        if (folder / METADATA_FILE).is_file() and (folder / LOG_FILE).is_file():
            return folder
    return None


def portable_path(path: str | Path, base: str | Path) -> str:
    """How a run's settings name ``path`` (an input) seen from ``base`` (its output).

    Relative to ``base`` when both lie in one workspace: they move together, so a workspace
    moved or copied elsewhere (another disk, a colleague's account, a restored backup)
    holds the same run. Otherwise absolute, as earlier releases always named it: a source
    outside the workspace stays where it is when the workspace moves.
    """
    p, b = Path(path).resolve(), Path(base).resolve()
    ws = enclosing_workspace(b)
    if ws is None or ws not in p.parents:
        return str(p)
    return Path(os.path.relpath(p, b)).as_posix()


def as_workspace(ws: Workspace | str | Path | None) -> Workspace | None:
    """Accept a Workspace, a path to one, or ``None`` (core functions take any)."""
    if ws is None or isinstance(ws, Workspace):
        return ws
    return Workspace(ws)


def recorder(
    where: Workspace | CuratorLog | str | Path | None,
    step: str,
    action: str,
    *,
    inputs: Sequence[str | Path | Artifact] = (),
    params: dict[str, Any] | None = None,
    libraries: Sequence[str] = (),
    hash_inputs: bool = True,
) -> StepRecorder:
    """Open one recorded step: the one way to record work in a curator log.

    ``where`` is a :class:`Workspace`, a path to one, a :class:`CuratorLog` (a log
    outside a workspace), or ``None``: then the block runs and nothing is recorded,
    so core functions work with or without a workspace::

        with recorder(workspace, "T", "convert", inputs=[src], params=p) as step:
            ...
            step.add_output(out)

    ``step`` is a CURATE(D) letter (see :data:`curated.provenance.STEPS`); the
    returned :class:`~curated.provenance.StepRecorder` appends one entry when the
    block ends (``error`` and the exception's message when it raises).
    """
    log: CuratorLog | None
    if where is None or isinstance(where, CuratorLog):
        log = where
    else:
        log = Workspace(where).log if not isinstance(where, Workspace) else where.log
    return StepRecorder(
        log,
        step,
        action,
        inputs=inputs,
        params=params,
        libraries=libraries,
        hash_inputs=hash_inputs,
    )


def dump_yaml(record: dict[str, Any]) -> str:
    """YAML as curators like to read it: block style, keys in model order, UTF-8 kept."""
    return dump_yaml_text(record, width=100)
