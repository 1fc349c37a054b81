"""What a workspace holds, read tolerantly, for the README and the FAIR checklist.

:func:`survey_workspace` gathers the metadata record, the curator log, the
OME-Zarr images and their labels, the model folders, the evaluation reports, the
bags in ``package/`` and the file inventory. Nothing here raises on a missing or
damaged piece: each piece carries a ``problem`` the documents turn into a TODO.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curated.document.ngff import ImageInfo, image_name, is_zarr_store, read_image_info
from curated.errors import CuratedError
from curated.provenance.digest import digest_tree, iter_tree, sha256_file
from curated.walk import Files, Folder, walk
from curated.workspace import LOG_FILE, METADATA_FILE, Workspace

README_FILE = "README.md"
FIGURES_DIR = "figures"


@dataclass
class FileEntry:
    """One line of the README's file list: a file, or a Zarr store counted as one unit."""

    path: str
    """Relative to the workspace root (posix)."""
    kind: str
    """``file``, ``zarr`` (a store: one entry, tree digest, file count) or ``log``."""
    bytes: int
    files: int = 1
    digest: str | None = None
    digest_source: str | None = None
    """``log seq N`` (recorded by the step that wrote it), ``computed`` or ``None``."""
    note: str = ""


def evaluation_picture(report: Path) -> Path:
    """Where ``segment evaluate`` draws the whole volume beside the report ``<name>.json``."""
    return report.with_name(report.stem + "-whole.png")


@dataclass
class EvaluationInfo:
    """An evaluation report (``derived/evaluations/<name>.json``)."""

    name: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    whole_png: str | None = None
    """The whole-volume picture beside the report (``<name>-whole.png``), when it exists."""

    def _get(self, *keys: str) -> Any:
        cur: Any = self.data
        for k in keys:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(k)
        return cur

    @property
    def image(self) -> str | None:
        return self.data.get("image")

    @property
    def pred(self) -> str | None:
        p = self.data.get("pred")
        return p.get("name") if isinstance(p, dict) else p

    @property
    def truth(self) -> str | None:
        t = self.data.get("truth")
        return t.get("name") if isinstance(t, dict) else t

    @property
    def model_id(self) -> str | None:
        return self._get("model", "id")

    @property
    def dice(self) -> float | None:
        return self._get("overall", "raw", "dice")

    @property
    def iou(self) -> float | None:
        return self._get("overall", "raw", "iou")

    @property
    def instance_f1(self) -> float | None:
        return self._get("overall", "instance", "f1")

    @property
    def blocks(self) -> int | None:
        return self._get("overall", "blocks")

    @property
    def dice_ci(self) -> list[float] | None:
        return self._get("ci95", "dice")

    @property
    def label_name(self) -> str | None:
        """The scored structure's name (``mitochondrion``), when the evaluation recorded it."""
        return self.data.get("label_name")

    @property
    def truth_origin(self) -> str | None:
        return self._get("truth", "origin")

    @property
    def whole_volume_dice(self) -> float | None:
        return self._get("whole_volume", "overall", "raw", "dice")

    @property
    def whole_volume_ci(self) -> list[float] | None:
        return self._get("whole_volume", "overall", "ci95", "dice")

    @property
    def whole_volume_voxels(self) -> int | None:
        return self._get("whole_volume", "overall", "scored_voxels")

    @property
    def threshold_baseline(self) -> dict[str, Any] | None:
        """The grey-level threshold tuned on the training crops, scored on the same voxels."""
        got = self._get("whole_volume", "threshold_baseline")
        return got if isinstance(got, dict) else None

    def x_curve(self) -> list[tuple[int, int, float | None]]:
        """``(x_start, x_stop, dice)`` of the whole-volume curve along x."""
        rows = self._get("whole_volume", "x_curve") or []
        return [
            (r.get("x_start"), r.get("x_stop"), (r.get("raw") or {}).get("dice"))
            for r in rows
            if isinstance(r, dict)
        ]

    @property
    def gets_wrong(self) -> list[str]:
        """Sentences on what the model confuses (whole volume when scored, else blocks)."""
        conf = self.data.get("confusion") or {}
        if not isinstance(conf, dict):
            return []
        best = conf.get("whole_volume") or conf.get("blocks") or {}
        return [str(x) for x in (best.get("sentences") or [])] if isinstance(best, dict) else []

    @property
    def warnings(self) -> list[str]:
        return [str(w) for w in self.data.get("warnings") or []]

    def factor_scores(self) -> list[tuple[str, str, float | None, int | None]]:
        """``(factor, group, dice, blocks)`` rows for each factor group."""
        rows = []
        for fname, groups in (self.data.get("factors") or {}).items():
            if not isinstance(groups, dict):
                continue
            for g, summary in groups.items():
                raw = (summary or {}).get("raw") or {}
                rows.append((str(fname), str(g), raw.get("dice"), (summary or {}).get("blocks")))
        return rows


@dataclass
class ModelInfo:
    """A model folder (``derived/models/<name>/``) and what describes it."""

    name: str
    path: str
    meta: dict[str, Any] = field(default_factory=dict)
    package: str | None = None
    """The exported bioimage.io package (``derived/models/<name>.bioimageio.zip``), if any."""
    card: str | None = None
    """A model card file inside the folder (``documentation.md`` / ``model_card.md``), if any."""
    evaluations: list[EvaluationInfo] = field(default_factory=list)
    problem: str | None = None

    @property
    def id(self) -> str | None:
        return self.meta.get("id")

    @property
    def weights_sha256(self) -> str | None:
        return (self.meta.get("weights") or {}).get("sha256")


@dataclass
class BagInfo:
    """A bag found in ``package/``."""

    path: str
    info: dict[str, str] = field(default_factory=dict)
    crate: str | None = None
    """Relative path of its ``ro-crate-metadata.json``, if any."""


@dataclass
class WorkspaceSurvey:
    """Everything the documents are written from."""

    root: Path
    record: dict[str, Any] = field(default_factory=dict)
    record_problem: str | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    log_problem: str | None = None
    images: list[ImageInfo] = field(default_factory=list)
    models: list[ModelInfo] = field(default_factory=list)
    evaluations: list[EvaluationInfo] = field(default_factory=list)
    bags: list[BagInfo] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:  # lexically first: a bag's workspace view reaches its files through links
            return path.relative_to(self.root).as_posix()
        except ValueError:
            pass
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def model_for(self, ref: dict[str, Any] | None) -> ModelInfo | None:
        """The model a label's ``curated.model`` block (``id`` / ``sha256``) points at."""
        if not ref:
            return None
        for m in self.models:
            if (ref.get("id") and ref.get("id") == m.id) or (
                ref.get("sha256") and ref.get("sha256") == m.weights_sha256
            ):
                return m
        return None

    def evaluations_of(self, image: str, label: str) -> list[EvaluationInfo]:
        """Evaluations whose prediction is label image ``label`` of ``image`` (by name)."""
        out = []
        for ev in self.evaluations:
            img = str(ev.image or "")
            if ev.pred == label and (not img or image_name(Path(img.rstrip("/"))) == image):
                out.append(ev)
        return out

    def outputs_by_path(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """The latest recorded output (``seq``, artifact dict) of each path in the log."""
        latest: dict[str, tuple[int, dict[str, Any]]] = {}
        for e in self.entries:
            for out in e.get("outputs") or []:
                if isinstance(out, dict) and out.get("path"):
                    latest[str(out["path"])] = (int(e.get("seq", -1)), out)
        return latest


def _read_json(path: Path) -> tuple[dict[str, Any], str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"cannot read {path.name} ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict):
        return {}, f"{path.name} does not hold a JSON object"
    return data, None


def survey_workspace(
    workspace: Workspace | str | Path,
    *,
    files: bool = True,
    compute_digests: bool = True,
    exclude: Iterable[str] = (README_FILE,),
) -> WorkspaceSurvey:
    """Read a workspace for documenting it; never raises on missing or damaged parts.

    Parameters
    ----------
    workspace
        The workspace (or its folder; a folder without ``curated.yaml`` is surveyed too).
    files
        Build the file inventory.
    compute_digests
        Compute checksums the log has not recorded (or that no longer match the
        recorded size). Off, such entries have no checksum.
    exclude
        Workspace-relative paths left out of the file inventory.
    """
    root = workspace.root if isinstance(workspace, Workspace) else Path(workspace)
    s = WorkspaceSurvey(root=root)
    ws = workspace if isinstance(workspace, Workspace) else Workspace(root, must_exist=False)
    try:
        s.record = ws.read_metadata() if ws.metadata_path.is_file() else {}
        if not ws.metadata_path.is_file():
            s.record_problem = f"no {METADATA_FILE}"
    except CuratedError as exc:
        s.record_problem = str(exc)
    try:
        for entry in ws.log.entries():
            s.entries.append(entry)
    except CuratedError as exc:
        s.log_problem = str(exc)
    if not ws.log.exists():
        s.log_problem = s.log_problem or "no curator log yet"

    derived = root / "derived"
    if derived.is_dir():
        for p in sorted(derived.iterdir()):
            if p.name.endswith((".ome.zarr", ".zarr")) and p.is_dir():
                s.images.append(read_image_info(p))
        ev_dir = derived / "evaluations"
        if ev_dir.is_dir():
            for p in sorted(ev_dir.glob("*.json")):
                data, problem = _read_json(p)
                picture = evaluation_picture(p)
                s.evaluations.append(
                    EvaluationInfo(
                        name=data.get("name") or p.stem,
                        path=s.rel(p),
                        data=data,
                        problem=problem,
                        whole_png=s.rel(picture) if picture.is_file() else None,
                    )
                )
        models_dir = derived / "models"
        if models_dir.is_dir():
            for p in sorted(models_dir.iterdir()):
                if p.is_dir():
                    s.models.append(_model(s, p))
    _attach_evaluations(s)
    pkg = root / "package"
    if pkg.is_dir():
        for bagit in sorted(pkg.glob("*/bagit.txt")):
            s.bags.append(_bag(s, bagit.parent))
    if files:
        s.files = inventory(s, compute_digests=compute_digests, exclude=set(exclude))
    return s


def _model(s: WorkspaceSurvey, folder: Path) -> ModelInfo:
    m = ModelInfo(name=folder.name, path=s.rel(folder))
    if (folder / "model.json").is_file():
        m.meta, m.problem = _read_json(folder / "model.json")
    else:
        m.problem = "no model.json"
    zipped = folder.parent / f"{folder.name}.bioimageio.zip"
    if zipped.is_file():
        m.package = s.rel(zipped)
    for card in ("documentation.md", "model_card.md", "README.md"):
        if (folder / card).is_file():
            m.card = s.rel(folder / card)
            break
    return m


def _attach_evaluations(s: WorkspaceSurvey) -> None:
    by_path = {ev.path: ev for ev in s.evaluations}
    for m in s.models:
        for rel in m.meta.get("evaluations") or []:
            cand = [rel, s.rel(s.root / "derived" / "models" / m.name / rel), s.rel(s.root / rel)]
            for c in cand:
                if c in by_path and by_path[c] not in m.evaluations:
                    m.evaluations.append(by_path[c])
        for ev in s.evaluations:
            if ev not in m.evaluations and m.id and ev.model_id == m.id:
                m.evaluations.append(ev)


def _bag(s: WorkspaceSurvey, folder: Path) -> BagInfo:
    b = BagInfo(path=s.rel(folder))
    info = folder / "bag-info.txt"
    if info.is_file():
        try:
            for line in info.read_text(encoding="utf-8").splitlines():
                if ":" in line and not line.startswith((" ", "\t")):
                    k, v = line.split(":", 1)
                    b.info[k.strip()] = v.strip()
        except (OSError, UnicodeDecodeError):
            pass
    for cand in (folder / "data" / "ro-crate-metadata.json", folder / "ro-crate-metadata.json"):
        if cand.is_file():
            b.crate = s.rel(cand)
            break
    return b


def _walk(root: Path, skip: set[str]) -> Iterable[Path]:
    """The workspace's regular files and Zarr stores (one entry each, not entered), sorted.

    Walked with :func:`curated.walk.walk`: hidden names, ``*.lock`` and the
    relative paths in ``skip`` are left out; links and special files are passed
    over (never followed); folders that cannot be listed are passed over.
    """

    def left_out(prefix: str, name: str, kind: str) -> bool:
        return name.startswith(".") or name.endswith(".lock") or prefix + name in skip

    stores: set[str] = set()

    def enter(folder: Folder) -> bool:
        return folder.path not in stores

    for ev in walk(root, skip=left_out, enter=enter, errors="report"):
        if type(ev) is Files:
            yield from (Path(ev.folder, n) for n in ev.names)
        elif type(ev) is Folder and ev.depth > 0 and is_zarr_store(ev.path):
            stores.add(ev.path)
            yield Path(ev.path)


def inventory(
    s: WorkspaceSurvey, *, compute_digests: bool = True, exclude: set[str] | None = None
) -> list[FileEntry]:
    """The workspace's files (``package/`` and ``exclude`` left out), Zarr stores as one entry each.

    A checksum the log recorded is reused when the size still matches; otherwise
    it is computed (``compute_digests``). The log itself is listed without one:
    every later step appends to it.
    """
    skip = {"package", *(exclude or ())}
    recorded = s.outputs_by_path()
    out: list[FileEntry] = []
    for p in _walk(s.root, skip):
        rel = p.relative_to(s.root).as_posix()
        if rel == LOG_FILE:
            out.append(
                FileEntry(
                    rel,
                    "log",
                    p.stat().st_size,
                    note="append-only; verify with `curated log WORKSPACE --verify`",
                )
            )
            continue
        if p.is_dir():
            n = size = 0
            for _, f in iter_tree(p):
                n += 1
                size += f.stat().st_size
            entry = FileEntry(rel, "zarr", size, files=n)
        else:
            entry = FileEntry(rel, "file", p.stat().st_size)
        rec = recorded.get(rel)
        if rec and rec[1].get("digest") and rec[1].get("bytes") == entry.bytes:
            entry.digest, entry.digest_source = str(rec[1]["digest"]), f"log seq {rec[0]}"
        elif compute_digests:
            entry.digest = digest_tree(p).digest if p.is_dir() else f"sha256:{sha256_file(p)}"
            entry.digest_source = "computed"
        out.append(entry)
    return out
