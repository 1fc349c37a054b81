"""Model folders: ``model.json`` + ``weights.pt`` (layout fixed in the project brief).

``model.json`` is written last and atomically, so a folder with a ``model.json``
is a finished model. ``weights.pt`` is a plain PyTorch ``state_dict`` whose
sha256 is stored in ``model.json`` and checked on every load: a changed or
truncated file raises :class:`~curated.errors.IntegrityError` before anything
runs. Training checkpoints (``checkpoint.pt`` + ``checkpoint.json`` with its
sha256) live in the same folder, so an interrupted training resumes.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from curated._io import atomic_write_bytes, write_json
from curated.errors import IntegrityError, SegmentationError
from curated.provenance.digest import sha256_file
from curated.segment.modeljson import MODEL_JSON, read_model_json
from curated.segment.preprocess import Preprocessing
from curated.segment.unet import ARCHITECTURE_VERSION, UNet3D, UNetConfig, UNetGeometry

MODEL_FORMAT = ARCHITECTURE_VERSION
WEIGHTS = "weights.pt"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_JSON = "checkpoint.json"

SOFTWARE = ("curated", "torch", "numpy", "scipy", "zarr", "dask")


@dataclass
class SegmentationModel:
    """A model folder, read and verified."""

    path: Path
    meta: dict[str, Any]
    config: UNetConfig
    preprocessing: Preprocessing
    _networks: dict[str, UNet3D] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    @property
    def sha256(self) -> str:
        return str(self.meta["weights"]["sha256"])

    @property
    def label_value(self) -> int:
        return int(self.meta["label"]["label_value"])

    @property
    def geometry(self) -> UNetGeometry:
        return self.config.geometry

    @property
    def halo(self) -> tuple[int, int, int]:
        """Input voxels per side a block needs: network context plus pre-processing halo."""
        c = self.geometry.context
        h = self.preprocessing.halo
        return (c[0] + h[0], c[1] + h[1], c[2] + h[2])

    def network(self, device: str | torch.device = "cpu") -> UNet3D:
        """The network in eval mode on ``device`` (loaded once per device)."""
        key = str(device)
        with self._lock:
            if key not in self._networks:
                state = load_state(self.path / WEIGHTS, self.sha256)
                net = UNet3D(self.config)
                try:
                    net.load_state_dict(state)
                except RuntimeError as exc:
                    msg = f"weights do not fit the architecture in model.json ({str(exc).splitlines()[0]})"
                    raise SegmentationError(msg, path=self.path / WEIGHTS) from None
                self._networks[key] = net.to(device).eval()
            return self._networks[key]


def load_state(path: Path, sha256: str | None) -> dict[str, torch.Tensor]:
    """Read a state dict after checking its sha256 (``None`` skips the check)."""
    if not path.is_file():
        msg = "weights file is missing"
        raise SegmentationError(msg, path=path)
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            msg = f"sha256 {actual[:16]}… does not match the recorded {sha256[:16]}…; the file is corrupt or was replaced"
            raise IntegrityError(msg, path=path, details={"expected": sha256, "actual": actual})
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = f"cannot read the weights ({exc})"
        raise IntegrityError(msg, path=path) from None
    return obj


def load_model(path: str | Path) -> SegmentationModel:
    """Open a model folder (or its ``model.json``), checking format and weights' sha256."""
    p, meta = read_model_json(path)
    mj = p / MODEL_JSON
    fmt = meta.get("format")
    if fmt != MODEL_FORMAT:
        msg = f"model format {fmt!r} is from another architecture version; this curated reads {MODEL_FORMAT!r}"
        raise SegmentationError(msg, path=mj, field="format")
    try:
        config = UNetConfig.from_dict(meta["architecture"])
        pre = Preprocessing.from_dict(meta["preprocessing"])
        sha = meta["weights"]["sha256"]
        int(meta["label"]["label_value"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"model.json is incomplete or invalid ({exc!r})"
        raise SegmentationError(msg, path=mj) from None
    weights = p / meta["weights"].get("file", WEIGHTS)
    if not weights.is_file():
        msg = "weights file is missing"
        raise SegmentationError(msg, path=weights)
    actual = sha256_file(weights)
    if actual != sha:
        msg = f"sha256 {actual[:16]}… does not match model.json's {sha[:16]}…; the weights are corrupt or were replaced"
        raise IntegrityError(msg, path=weights, details={"expected": sha, "actual": actual})
    return SegmentationModel(p, meta, config, pre)


def state_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_weights(folder: Path, state: dict[str, torch.Tensor]) -> str:
    """Atomically write ``weights.pt``; returns its sha256.

    A ``model.json`` already in ``folder`` (the model being replaced) is removed first: a
    kill before the new one is written leaves no model there, never these weights under
    the old description (which ``load_model`` would refuse as corrupt, the old model lost
    all the same, and a re-run would take for another model).
    """
    (folder / MODEL_JSON).unlink(missing_ok=True)
    path = atomic_write_bytes(
        folder / WEIGHTS, state_bytes({k: v.detach().cpu() for k, v in state.items()})
    )
    return sha256_file(path)


def write_model_json(folder: Path, meta: dict[str, Any]) -> Path:
    return write_json(folder / MODEL_JSON, meta)


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(
    folder: Path, payload: dict[str, Any], signature: str, *, replaces: str | None = None
) -> None:
    """Write ``checkpoint.json`` (sha256, iteration, run signature), then ``checkpoint.pt``.

    ``replaces`` is the sha256 of the ``model.json`` in ``folder`` while this run goes on
    (``None``: none there): until the run writes its own, it says that the checkpoint is
    of a run still to finish, so that an interrupted ``overwrite`` resumes from it.

    The record names the new file's sha256 and keeps the one of the file it replaces as
    ``previous``: a kill between the two writes leaves the previous checkpoint with a
    record that still vouches for it, so training resumes from it (the iteration is the
    payload's own) instead of refusing it as corrupt.
    """
    data = state_bytes(payload)
    write_json(
        folder / CHECKPOINT_JSON,
        {
            "file": CHECKPOINT,
            "sha256": hashlib.sha256(data).hexdigest(),
            "iteration": int(payload["iteration"]),
            "signature": signature,
            "previous": _vouched_sha256(folder),
            "replaces": replaces,
        },
    )
    atomic_write_bytes(folder / CHECKPOINT, data)


def _accepted_sha256(info: dict[str, Any]) -> set[str]:
    """The checkpoint file contents a record vouches for: its own and the one it replaced."""
    previous = info.get("previous")
    got = {info.get("sha256"), previous if isinstance(previous, str) else None}
    return {g for g in got if isinstance(g, str)}


def _vouched_sha256(folder: Path) -> str | None:
    """The sha256 of the checkpoint file there now, when its record vouches for it."""
    path = folder / CHECKPOINT
    try:
        info = json.loads((folder / CHECKPOINT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not path.is_file():
        return None
    actual = sha256_file(path)
    return actual if actual in _accepted_sha256(info) else None


def load_checkpoint(folder: Path, signature: str) -> dict[str, Any] | None:
    """The last checkpoint of this run, verified; ``None`` when there is none.

    Raises :class:`IntegrityError` when the file does not match its recorded sha256
    and :class:`SegmentationError` when it belongs to a different training run.
    """
    cj = folder / CHECKPOINT_JSON
    if not cj.is_file():
        return None
    try:
        info = json.loads(cj.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"checkpoint record is unreadable ({exc}); delete it to start over"
        raise IntegrityError(msg, path=cj) from None
    if info.get("signature") != signature:
        msg = (
            "holds a checkpoint of a different training run (other image, labels or settings); "
            "choose another --out, or pass --overwrite to start over"
        )
        raise SegmentationError(msg, path=folder, field="out")
    path = folder / info.get("file", CHECKPOINT)
    if not path.is_file() and "previous" in info and info["previous"] is None:
        return None  # the first checkpoint's record was written, then a kill came before the file
    if not path.is_file():
        msg = "checkpoint file is missing; delete checkpoint.json to start over"
        raise IntegrityError(msg, path=path)
    actual = sha256_file(path)
    if actual not in _accepted_sha256(info):
        msg = f"checkpoint sha256 {actual[:16]}… does not match the recorded one; it is corrupt (nothing was changed)"
        raise IntegrityError(
            msg, path=path, details={"expected": info.get("sha256"), "actual": actual}
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = f"cannot read the checkpoint ({exc}); delete checkpoint.json to start over"
        raise IntegrityError(msg, path=path) from None


def image_key(image: Path, out: Path) -> str:
    """How a run's settings name its image: the path from the model folder ``out`` to it
    when both lie in one workspace (:func:`curated.workspace.portable_path`), so a moved or
    copied workspace's re-run finds its model done (or resumes it) rather than refusing
    it as another model; else the absolute path."""
    from curated.workspace import portable_path

    return portable_path(image, out)
