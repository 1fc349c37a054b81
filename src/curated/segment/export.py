"""Export a curated model folder as a bioimage.io model package with a model card.

The package (RDF format 0.5, a ``.zip`` or a folder, by the destination's suffix)
holds:

- ``weights.pt`` (``pytorch_state_dict``) with ``curated_unet.py``, a
  self-contained copy of :mod:`curated.segment.unet` plus a factory, as the
  architecture source; and ``weights_torchscript.pt`` (``torchscript``,
  converted from the former, traced and checked at a second input size);
- one input ``raw`` (batch, channel, z, y, x) whose spatial sizes are
  ``min + n * step`` (the valid U-Net sizes) and one output ``probability``
  whose sizes reference the input with ``offset = -2 * context``: the network
  uses valid convolutions, so the output is the input's centre, already cropped;
- the model's own intensity normalisation in bioimage.io terms:
  ``ensure_dtype`` float32, ``scale_linear`` (low → -1, high → +1, the fixed
  bounds stored at training) and ``clip`` [-1, 1]; output ``sigmoid``;
- test tensors made by ``curated``'s own pre-processing and the model, so a
  bioimage.io consumer reproducing them proves both pipelines agree;
- a cover image, the citation, licence and authors, the evaluation JSONs and
  ``model.json`` as attachments, and ``documentation.md``: a model card with
  Mitchell et al.'s sections filled from ``model.json`` and the evaluations.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import re
import time
import unicodedata
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curated._io import atomic_write_via, building_dir, dump_yaml_text, recover_swap
from curated._text import render_template
from curated.document.survey import evaluation_picture
from curated.errors import ConversionError, InputError, SegmentationError
from curated.results import Result
from curated.segment.geometry import Box
from curated.segment.modeljson import read_model_json
from curated.segment.volume import open_level0
from curated.workspace import Workspace, as_workspace, recorder, unlogged

if TYPE_CHECKING:
    from curated.segment.modelio import SegmentationModel

FORMAT_VERSION = "0.5.4"
"""bioimage.io model RDF version written (0.5.x; newer readers convert it)."""

DEFAULT_LICENSE = "MIT"
"""Used when neither the workspace nor the model records a licence: curated's own licence."""

ARCHITECTURE_FILE = "curated_unet.py"
ARCHITECTURE_CALLABLE = "build_curated_unet"
PREPROCESSED_CALLABLE = "PreprocessedUNet3D"

CITATIONS = [
    {
        "text": "Gallusser B. et al. (2023) Deep neural network automated segmentation of cellular structures "
        "in volume electron microscopy. J Cell Biol 222(2):e202208005 (the sparse-annotation, "
        "one-label-per-model, fine-tune-per-cell recipe this model follows)",
        "doi": "10.1083/jcb.202208005",
    },
    {
        "text": "Çiçek Ö. et al. (2016) 3D U-Net: learning dense volumetric segmentation from sparse annotation. MICCAI 2016",
        "doi": "10.1007/978-3-319-46723-8_49",
    },
]

_FACTORY = '''

# --- added by `curated segment export`: build the network from YAML-friendly kwargs ---
def build_curated_unet(
    depth,
    base_features,
    feature_factor,
    pools,
    kernels,
    convs_per_level,
    activation="relu",
    norm="none",
):
    """Return a :class:`UNet3D` for the kwargs stored in the bioimage.io RDF."""
    return UNet3D(
        UNetConfig(
            depth=int(depth),
            base_features=int(base_features),
            feature_factor=int(feature_factor),
            pools=tuple(tuple(int(v) for v in p) for p in pools),
            kernels=tuple(tuple(int(v) for v in k) for k in kernels),
            convs_per_level=int(convs_per_level),
            activation=str(activation),
            norm=str(norm),
        )
    )


def _gaussian_taps(sigma, truncate=3.0):
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return (w / w.sum()).to(torch.float32)


class _ValidGaussian(nn.Module):
    """Separable Gaussian along the given axes (2=z, 3=y, 4=x) without padding: the output is smaller."""

    def __init__(self, sigma, axes):
        super().__init__()
        self.axes = list(axes)
        self.register_buffer("taps", _gaussian_taps(sigma), persistent=False)

    def forward(self, x):
        n = self.taps.numel()
        for axis in self.axes:
            shape = [1, 1, 1, 1, 1]
            shape[axis] = n
            x = torch.nn.functional.conv3d(x, self.taps.view(shape))
        return x


class _ValidBox(nn.Module):
    """``passes`` box filters of odd ``width`` along y and x without padding (curated's ``box3`` kernel).

    Running sums (float64 cumulative sums, differenced ``width`` apart), not a
    convolution: a ``width``-tap conv3d unfolds its input ``width`` times on CPUs
    (~2 GB for a 48×360×360 test input at width 99) and costs ``width`` times the work.
    """

    def __init__(self, width, passes=3):
        super().__init__()
        self.width = int(width)
        self.passes = int(passes)

    def forward(self, x):
        w = self.width
        for axis in (3, 4):
            for _ in range(self.passes):
                c = torch.cumsum(x.double(), dim=axis)
                c = torch.cat([torch.zeros_like(c.narrow(axis, 0, 1)), c], dim=axis)
                n = c.shape[axis] - w
                x = ((c.narrow(axis, w, n) - c.narrow(axis, 0, n)) / w).to(x.dtype)
        return x


def _crop_yx(x, r):
    return x[:, :, :, r : x.shape[3] - r, r : x.shape[4] - r]


class PreprocessedUNet3D(nn.Module):
    """curated's fixed pre-processing (denoise, shading correction, local contrast, intensity bounds) + the U-Net.

    Every filter is a valid (unpadded) Gaussian, so blocks stay exact: the input
    needs the filters' halo on top of the network's context.
    """

    def __init__(
        self,
        unet,
        low,
        high,
        denoise_sigma=0.0,
        shading_sigma=0.0,
        shading_reference=None,
        local_contrast_sigma=0.0,
        local_contrast_mean=None,
        local_contrast_std=None,
        local_contrast_box=None,
    ):
        super().__init__()
        self.unet = build_curated_unet(**unet)
        self.low, self.high = float(low), float(high)
        self.denoise = _ValidGaussian(denoise_sigma, (2, 3, 4)) if denoise_sigma > 0 else None
        self.shading = _ValidGaussian(shading_sigma, (3, 4)) if shading_sigma > 0 else None
        self.shading_r = int(3.0 * float(shading_sigma) + 0.5)
        self.shading_reference = float(shading_reference or 0.0)
        if local_contrast_sigma > 0 and local_contrast_box:
            # [width, passes]: box filters with the Gaussian's variance
            width, passes = int(local_contrast_box[0]), int(local_contrast_box[1])
            self.contrast = _ValidBox(width, passes)
            self.contrast_r = passes * (width - 1) // 2
        else:
            self.contrast = _ValidGaussian(local_contrast_sigma, (3, 4)) if local_contrast_sigma > 0 else None
            self.contrast_r = int(3.0 * float(local_contrast_sigma) + 0.5)
        self.contrast_mean = float(local_contrast_mean or 0.0)
        self.contrast_std = float(local_contrast_std or 1.0)

    def forward(self, x):
        if self.denoise is not None:
            x = self.denoise(x)
        if self.shading is not None:
            blur = self.shading(x)
            x = _crop_yx(x, self.shading_r) / torch.clamp(blur, min=1e-3) * self.shading_reference
        if self.contrast is not None:
            mean = self.contrast(x)
            var = self.contrast(x * x) - mean * mean
            std = torch.sqrt(torch.clamp(var, min=0.0)) + 1e-3 * max(self.contrast_std, 1.0)
            x = (_crop_yx(x, self.contrast_r) - mean) / std * self.contrast_std + self.contrast_mean
        x = (x - self.low) * (2.0 / max(self.high - self.low, 1e-6)) - 1.0
        return self.unet(torch.clamp(x, -1.0, 1.0))
'''


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ascii_name(text: str, *, fallback: str = "curated model") -> str:
    """bioimage.io ``name``: ASCII letters, digits and ``_+- ()``, 5 to 128 characters."""
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    flat = re.sub(r"[^A-Za-z0-9_+\- ()]+", "-", flat)
    flat = re.sub(r"-{2,}", "-", flat).strip(" -")
    if len(flat) < 5:
        flat = f"{fallback} {flat}".strip()
    return flat[:128]


def architecture_source() -> str:
    """The U-Net module's source, self-contained, with the factory the RDF names."""
    from curated.segment import unet

    src = inspect.getsource(unet)
    if re.search(r"^\s*(from|import)\s+curated\b", src, flags=re.MULTILINE):
        msg = "curated.segment.unet imports other curated modules, so it cannot be shipped as a single file"
        raise SegmentationError(msg)
    return src.rstrip() + "\n" + _FACTORY


def _load_architecture(source: str) -> Any:
    """Import the shipped architecture file's text as a module (what a bioimage.io consumer runs)."""
    import sys
    import types

    name = "_curated_exported_unet"
    module = types.ModuleType(name)
    module.__file__ = ARCHITECTURE_FILE
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        exec(compile(source, ARCHITECTURE_FILE, "exec"), module.__dict__)
    finally:
        sys.modules.pop(name, None)
    return module


def _workspace_metadata(ws: Workspace | None) -> dict[str, Any]:
    if ws is None:
        return {}
    try:
        return ws.read_metadata()
    except (
        Exception
    ):  # a broken curated.yaml must not stop an export; the card says what is missing
        return {}


def _authors(meta: Mapping[str, Any], model: Mapping[str, Any]) -> list[dict[str, Any]]:
    people = ((meta.get("study") or {}).get("authors")) or model.get("authors") or []
    out: list[dict[str, Any]] = []
    for p in people:
        if not isinstance(p, Mapping):
            continue
        name = p.get("name") or " ".join(
            str(v) for v in (p.get("given_name"), p.get("family_name")) if v
        )
        name = str(name).replace("/", "-").strip()
        if not name:
            continue
        a: dict[str, Any] = {"name": name}
        aff = p.get("affiliation")
        if isinstance(aff, Mapping) and aff.get("name"):
            a["affiliation"] = str(aff["name"])
        elif isinstance(aff, str) and aff:
            a["affiliation"] = aff
        if p.get("email"):
            a["email"] = str(p["email"])
        orcid = str(p.get("orcid") or "").removeprefix("https://orcid.org/")
        if re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", orcid):
            a["orcid"] = orcid
        out.append(a)
    if not out and os.environ.get("CURATED_AGENT_NAME"):
        out.append({"name": os.environ["CURATED_AGENT_NAME"].replace("/", "-")})
    return out


def _resolve(path: str | None, *bases: Path) -> Path | None:
    if not path:
        return None
    p = Path(path)
    if p.is_absolute():
        return p if p.exists() else None
    for base in bases:
        if (base / p).exists():
            return base / p
    return None


def _read_evaluations(
    model_dir: Path, model: Mapping[str, Any], ws: Workspace | None, weights_sha: str
) -> list[dict[str, Any]]:
    """The model's evaluation JSONs; each flagged ``current`` when it scored these very weights."""
    out = []
    bases = [model_dir] + ([ws.root] if ws else [])
    for rel in model.get("evaluations") or []:
        p = _resolve(rel, *bases)
        if p is None:
            out.append({"path": rel, "missing": True})
            continue
        try:
            ev = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            out.append({"path": rel, "missing": True})
            continue
        scored = ((ev.get("model") or {}).get("weights_sha256")) or None
        # the weights whose training regions were excluded must also be the ones that
        # predicted: another model's prediction is never quoted as this model's score
        pred_model = (
            (ev.get("pred") or {}).get("model") if isinstance(ev.get("pred"), Mapping) else None
        )
        predicted_by = pred_model.get("sha256") if isinstance(pred_model, Mapping) else None
        ev["_path"] = p
        ev["_rel"] = rel
        ev["_current"] = scored == weights_sha and predicted_by in (None, weights_sha)
        out.append(ev)
    return out


def _test_raw(
    model: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    image: Path | None,
    bases: list[Path],
    dtype_fallback: str,
) -> tuple[np.ndarray, str]:
    """A raw test input of ``input_shape``: from the training image when readable, else synthetic."""
    from curated.segment.preprocess import read_region

    training = model.get("training") or {}
    src = image or _resolve(training.get("image"), *bases)
    if src is not None:
        try:
            vol = open_level0(src, "image")
        except (InputError, ConversionError):  # unreadable or interrupted: synthetic input
            vol = None
        if vol is not None:
            rois = [Box.from_dict(r) for r in training.get("rois") or []]
            centre = rois[0].centre if rois else tuple(s / 2 for s in vol.shape)
            start = tuple(int(c - s / 2) for c, s in zip(centre, input_shape, strict=True))
            stop = tuple(a + s for a, s in zip(start, input_shape, strict=True))
            # read_region wants a 3D array-like; a squeezed zarr view keeps it lazy
            arr = _Squeezed(vol.array, vol.spatial)
            return read_region(
                arr, start, stop
            ), f"a region of the training image `{src.name}` around the first training ROI"
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=input_shape).astype(dtype_fallback)
    return data, "synthetic uniform noise (the training image was not available at export)"


class _Squeezed:
    """A 3D view of an N-D array whose non-spatial axes have size 1."""

    def __init__(self, array: Any, spatial: tuple[int, int, int]) -> None:
        self.array = array
        self.spatial = spatial
        self.shape = tuple(array.shape[a] for a in spatial)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        index: list[Any] = [0] * self.array.ndim
        for a, sl in zip(self.spatial, key, strict=True):
            index[a] = sl
        return np.asarray(self.array[tuple(index)])


def _structure_name(image: Path | None, labels: str | None, value: Any) -> str | None:
    """The name the image's label metadata gives value ``value`` (training labels first, then others)."""
    if image is None or value is None:
        return None
    labels_dir = image / "labels"
    if not labels_dir.is_dir():
        return None
    names = [labels] if labels and (labels_dir / labels).is_dir() else []
    names += sorted(p.name for p in labels_dir.iterdir() if p.is_dir() and p.name != labels)
    for name in names:
        try:
            attrs = open_level0(labels_dir / name, "label image").attrs
        except (InputError, ConversionError):  # not a label image, or one still being written
            continue
        for prop in (attrs.get("image-label") or {}).get("properties") or []:
            if isinstance(prop, Mapping) and prop.get("label-value") == value:
                text = str(prop.get("name") or "").strip()
                if text and not re.fullmatch(r"class \d+", text):
                    return text
    return None


ORIGIN_TEXT = {
    "human": "drawn or checked by people",
    "derived-from-truth": "copied from a truth label image, not an independent human annotation",
    "simulated": "made by a simulator together with the image (exact by construction, not drawn by people)",
    "model-prediction": "predicted by a model (AI-generated)",
    "mixed": "crops of different origins",
}
"""How the card explains each label origin."""


def _label_facts(image: Path | None, name: str | None) -> dict[str, Any] | None:
    """Name, origin (with its explanation), per-crop origins and class names of a label image."""
    from curated.segment import _store

    if image is None or not name or not (Path(image) / "labels" / name).is_dir():
        return None
    try:
        attrs = _store.label_curated_attrs(image, name)
        origin = _store.label_origin(image, name)
        classes = _store.class_names(image, name)
    except (InputError, SegmentationError):
        return None
    crops: dict[str, int] = {}
    for roi in (attrs.get("annotation") or {}).get("rois") or []:
        if isinstance(roi, Mapping) and roi.get("origin"):
            crops[str(roi["origin"])] = crops.get(str(roi["origin"]), 0) + 1
    return {
        "name": name,
        "kind": attrs.get("kind"),
        "origin": origin,
        "origin_text": ORIGIN_TEXT.get(origin or "", "not recorded"),
        "crop_origins": crops,
        "classes": {str(k): v for k, v in sorted(classes.items())},
    }


def _cover_png(
    raw: np.ndarray, prob: np.ndarray, context: tuple[int, int, int], structure: str
) -> bytes:
    """A 2:1 cover: mid-slice of the test input (left) and the predicted probability (right)."""
    from curated.document.figures import model_cover_png

    z = raw.shape[0] // 2
    pz = prob.shape[0] // 2
    # the probability is the input's centre: it lies ``context`` voxels in from the input's edge
    return model_cover_png(
        raw[z],
        prob[pz],
        (context[1], context[2]),
        class_name=structure,
        title="test input (middle slice)",
    )


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _voxel_size(
    model: Mapping[str, Any], image: Path | None
) -> tuple[list[float] | None, str | None]:
    training = model.get("training") or {}
    vs = training.get("voxel_size") or model.get("voxel_size")
    unit = training.get("unit") or model.get("unit") or ("nanometer" if vs else None)
    if vs and len(vs) == 3:
        return [float(v) for v in vs], unit
    return None, None


def export_bioimageio(
    model_dir: str | Path,
    dest: str | Path,
    *,
    workspace: Workspace | str | Path | None = None,
    image: str | Path | None = None,
    license: str | None = None,
    overwrite: bool = False,
) -> Result:
    """Write the model at ``model_dir`` as a bioimage.io model package at ``dest``.

    Parameters
    ----------
    model_dir
        A model folder (``model.json`` + ``weights.pt``) made by ``curated segment train``.
    dest
        ``*.zip`` for a zipped package, anything else for a folder.
    workspace
        Authors and licence come from its ``curated.yaml``; a ``D`` entry is logged.
    image
        The image to cut the test input from (default: the training image, if found).
    license
        SPDX licence of the weights; default: the workspace's, else the model's, else MIT.
    overwrite
        Replace an existing ``dest`` (refused otherwise).

    Returns
    -------
    Result
        ``details`` holds the package's files, sha256 of the weights, and whether
        the model had an evaluation.
    """
    from curated.segment.modelio import load_model

    folder, _ = read_model_json(model_dir)
    dest = Path(dest)
    ws = as_workspace(workspace)
    _recover(dest)
    if dest.exists() and not overwrite:
        if not unlogged(ws, dest):
            raise InputError(_exists_message(ws, dest), path=dest)
        overwrite = True  # what a run killed before its log entry left: this run replaces it
    if dest.exists() and not _is_package(dest):
        msg = (
            "is not a bioimage.io package (no rdf.yaml); --overwrite replaces only an earlier "
            "package, never other files: choose another destination"
        )
        raise InputError(msg, path=dest)
    params = {"dest": ws.relative(dest) if ws else str(dest), "format_version": FORMAT_VERSION}
    with recorder(
        ws,
        "D",
        "export-bioimageio",
        inputs=[folder / "model.json"],
        params=params,
        libraries=("torch", "pyyaml"),
    ) as step:
        # checks the format, the architecture and the weights' sha256 before anything is written
        loaded = load_model(folder)
        if not loaded.preprocessing.fitted:
            raise SegmentationError(
                "pre-processing has no fitted intensity bounds (low/high)",
                path=folder / "model.json",
                field="preprocessing",
            )
        shipped = _ship_network(loaded)
        img_path = Path(image) if image is not None else None
        bases = [folder, *([ws.root] if ws else []), *folder.parents]
        test = _test_tensors(loaded, shipped, img_path, bases)
        files = _network_files(loaded, shipped, test)
        evaluations = _read_evaluations(folder, loaded.meta, ws, loaded.sha256)
        attachments = ["model.json"]
        for i, ev in enumerate(e for e in evaluations if not e.get("missing")):
            fname = f"evaluations/{i:02d}-{Path(ev['_path']).name}"
            files[fname] = Path(ev["_path"]).read_bytes()
            ev["_package_file"] = fname
            attachments.append(fname)
            picture = evaluation_picture(Path(ev["_path"]))
            if picture.is_file():  # the whole-volume picture `segment evaluate` drew beside it
                pname = f"evaluations/{i:02d}-{picture.name}"
                files[pname] = picture.read_bytes()
                ev["_package_picture"] = pname
                attachments.append(pname)
        facts = _card_facts(loaded, ws, license, img_path, bases, evaluations)
        files["cover.png"] = _cover_png(test.raw, test.prob[0, 0], shipped.reach, facts.structure)  # type: ignore[arg-type]
        files["documentation.md"] = _model_card(loaded, shipped, test, facts).encode("utf-8")
        rdf = _rdf(loaded, shipped, test, facts, files, attachments)
        files["rdf.yaml"] = dump_yaml_text(rdf, width=100).encode("utf-8")
        _write_package(files, dest, overwrite=overwrite)
        step.add_output(dest, role="model-package")
        linked = _link_predictions_to_card(loaded.sha256, dest, ws=ws, image=image)
        for label_dir in linked:
            # the label group's metadata changed, so its recorded digest is renewed here
            step.add_output(label_dir, role="labels")
        details = {
            "files": sorted(files),
            "weights_sha256": loaded.sha256,
            "evaluated": bool(facts.current),
            "evaluations": len([e for e in evaluations if not e.get("missing")]),
            "license": facts.license,
            "format_version": FORMAT_VERSION,
            "linked_label_images": [ws.relative(p) if ws else str(p) for p in linked],
        }
        step.details.update(details)
        note = "" if facts.current else "; no evaluation of these weights, the card says so"
        return Result(
            "export", "ok", str(dest), f"bioimage.io package with model card{note}", details
        )


@dataclass
class _Shipped:
    """The network as the package ships it: architecture file, callable and its arguments."""

    network: Any
    arch_text: str
    arch_callable: str
    arch_kwargs: dict[str, Any]
    filters: list[str]
    """Pre-processing filters that run inside the shipped network (bioimage.io has no step for them)."""
    halo: tuple[int, int, int]
    in_min: tuple[int, ...]
    reach: tuple[int, ...]


def _ship_network(loaded: SegmentationModel) -> _Shipped:
    """Build the shipped network from the architecture file's text and load the model's weights."""
    from curated.segment.preprocess import BOX_PASSES, box_width

    cfg, prep, geom = loaded.config, loaded.preprocessing, loaded.config.geometry
    filters = [
        n
        for n in ("denoise_sigma", "shading_sigma", "local_contrast_sigma")
        if getattr(prep, n) > 0
    ]
    net = loaded.network("cpu")
    arch_text = architecture_source()
    arch_module = _load_architecture(arch_text)
    if filters:
        # bioimage.io has no step for these filters: they run inside the shipped network
        arch_callable = PREPROCESSED_CALLABLE
        arch_kwargs: dict[str, Any] = {
            "unet": cfg.to_dict(),
            "low": float(prep.low),
            "high": float(prep.high),
            "denoise_sigma": float(prep.denoise_sigma),
            "shading_sigma": float(prep.shading_sigma),
            "shading_reference": prep.shading_reference,
            "local_contrast_sigma": float(prep.local_contrast_sigma),
            "local_contrast_mean": prep.local_contrast_mean,
            "local_contrast_std": prep.local_contrast_std,
        }
        if prep.local_contrast_sigma > 0 and prep.local_contrast_kernel == "box3":
            arch_kwargs["local_contrast_box"] = [box_width(prep.local_contrast_sigma), BOX_PASSES]
        halo = prep.halo
    else:
        arch_callable = ARCHITECTURE_CALLABLE
        arch_kwargs = cfg.to_dict()
        halo = (0, 0, 0)
    shipped = getattr(arch_module, arch_callable)(**arch_kwargs)
    (shipped.unet if filters else shipped).load_state_dict(net.state_dict())
    shipped.eval()
    in_min = tuple(m + 2 * h for m, h in zip(geom.input_min, halo, strict=True))
    reach = tuple(c + h for c, h in zip(geom.context, halo, strict=True))
    return _Shipped(shipped, arch_text, arch_callable, arch_kwargs, filters, halo, in_min, reach)


@dataclass
class _TestTensors:
    raw: np.ndarray
    raw_origin: str
    prob: np.ndarray
    in_shape: tuple[int, ...]


def _test_tensors(
    loaded: SegmentationModel, shipped: _Shipped, img_path: Path | None, bases: list[Path]
) -> _TestTensors:
    """Test input and output; the shipped network must reproduce curated's own prediction."""
    import torch

    geom, prep, net = loaded.config.geometry, loaded.preprocessing, loaded.network("cpu")
    halo = shipped.halo
    # test tensors: ~24 voxels of output per side, kept well under 10 MB
    out_shape = geom.valid_output((min(24, max(geom.output_min[0], 8)), 24, 24))
    in_shape = tuple(i + 2 * h for i, h in zip(geom.input_for(out_shape), halo, strict=True))
    raw, raw_origin = _test_raw(loaded.meta, in_shape, img_path, bases, "uint8")  # type: ignore[arg-type]
    with torch.no_grad():
        # the expected output comes from curated's own pre-processing and network ...
        prob = (
            torch.sigmoid(net(torch.from_numpy(prep.apply(raw))[None, None]))
            .numpy()
            .astype(np.float32)
        )
        # ... and the shipped network (with what bioimage.io will do before it) must agree
        x = np.asarray(raw, dtype=np.float32)
        if not shipped.filters:
            x = np.clip(
                x * np.float32(2.0 / (prep.high - prep.low))
                - np.float32(2.0 * prep.low / (prep.high - prep.low) + 1.0),
                -1,
                1,
            )
        again = torch.sigmoid(
            shipped.network(torch.from_numpy(np.ascontiguousarray(x))[None, None])
        ).numpy()
    if again.shape != prob.shape or float(np.max(np.abs(again - prob))) > 1e-3:
        msg = "the exported network does not reproduce curated's own prediction; this is a bug, please report it"
        raise SegmentationError(msg, path=loaded.path)
    return _TestTensors(raw, raw_origin, prob, in_shape)


def _network_files(
    loaded: SegmentationModel, shipped: _Shipped, test: _TestTensors
) -> dict[str, bytes]:
    """Architecture, both weight formats (TorchScript checked at a second size), tensors, cover."""
    import torch

    with warnings.catch_warnings():
        # torch deprecates TorchScript, but bioimage.io consumers still run it
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(
            shipped.network, torch.zeros((1, 1, *shipped.in_min)), check_trace=False
        )
    probe = torch.from_numpy(
        np.random.default_rng(1).uniform(20, 230, (1, 1, *test.in_shape)).astype(np.float32)
    )
    with torch.no_grad():
        if not torch.allclose(traced(probe), shipped.network(probe), atol=1e-5):
            msg = "the traced TorchScript network differs from the eager one; cannot export torchscript"
            raise SegmentationError(msg, path=loaded.path)
    ts_buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, ts_buf)
    sd_buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in shipped.network.state_dict().items()}, sd_buf)
    return {
        ARCHITECTURE_FILE: shipped.arch_text.encode("utf-8"),
        "weights.pt": sd_buf.getvalue(),
        "weights_torchscript.pt": ts_buf.getvalue(),
        "test_input.npy": _npy_bytes(test.raw[None, None]),
        "test_output.npy": _npy_bytes(test.prob),
        "model.json": (loaded.path / "model.json").read_bytes(),
    }


@dataclass
class _CardFacts:
    """What the card and the RDF say about the model beyond its network."""

    study: dict[str, Any]
    license: str
    license_note: str | None
    authors: list[dict[str, Any]]
    label: dict[str, Any]
    label_name: str
    structure: str
    training_labels: dict[str, Any] | None
    display: str
    voxel: Any
    unit: Any
    evaluations: list[dict[str, Any]]
    current: list[dict[str, Any]]


def _card_facts(
    loaded: SegmentationModel,
    ws: Workspace | None,
    license: str | None,
    img_path: Path | None,
    bases: list[Path],
    evaluations: list[dict[str, Any]],
) -> _CardFacts:
    model = loaded.meta
    meta = _workspace_metadata(ws)
    study = meta.get("study") or {}
    lic = license or study.get("license") or model.get("license")
    license_note = None
    if not lic:
        lic = DEFAULT_LICENSE
        license_note = (
            f"No licence was recorded for this model or its dataset, so the weights are offered under {DEFAULT_LICENSE} "
            "(curated's own licence). Set `study.license` in curated.yaml and export again to change it."
        )
    authors = _authors(meta, model)
    label = model.get("label") or {}
    train_image = img_path or _resolve((model.get("training") or {}).get("image"), *bases)
    struct = (
        _structure_name(train_image, label.get("labels"), label.get("label_value"))
        or f"label {label.get('label_value')}"
    )
    training_labels = _label_facts(train_image, label.get("labels"))
    for ev in evaluations:
        if ev.get("missing"):
            continue
        ev_image = _resolve(str(ev.get("image") or ""), *bases)
        ev["_truth_facts"] = _label_facts(ev_image, (ev.get("truth") or {}).get("name"))
    voxel, unit = _voxel_size(model, img_path)
    return _CardFacts(
        study=study,
        license=lic,
        license_note=license_note,
        authors=authors,
        label=label,
        label_name=str(label.get("labels") or "structure"),
        structure=struct,
        training_labels=training_labels,
        display=str(model.get("name") or model.get("id") or loaded.path.name),
        voxel=voxel,
        unit=unit,
        evaluations=evaluations,
        current=[e for e in evaluations if not e.get("missing") and e.get("_current")],
    )


def _model_card(
    loaded: SegmentationModel, shipped: _Shipped, test: _TestTensors, facts: _CardFacts
) -> str:
    """``documentation.md``: the model card."""
    return render_template(
        "model_card.md.j2",
        strict=False,
        filters=shipped.filters,
        halo=list(shipped.halo),
        m=loaded.meta,
        name=facts.display,
        label_name=facts.label_name,
        structure=facts.structure,
        geom=loaded.config.geometry.to_dict(),
        cfg=loaded.config.to_dict(),
        n_params=_parameter_count(loaded),
        prep=loaded.preprocessing.to_dict(),
        evaluations=facts.evaluations,
        current=facts.current,
        authors=facts.authors,
        license=facts.license,
        license_note=facts.license_note,
        study=facts.study,
        voxel=facts.voxel,
        unit=facts.unit,
        raw_origin=test.raw_origin,
        weights_sha=loaded.sha256,
        created=datetime.now(UTC).strftime("%Y-%m-%d"),
        dataset_title=facts.study.get("title"),
        training_labels=facts.training_labels,
        origin_text=ORIGIN_TEXT,
    )


def _parameter_count(loaded: SegmentationModel) -> int:
    return sum(int(v.numel()) for v in loaded.network("cpu").state_dict().values())


def _rdf(
    loaded: SegmentationModel,
    shipped: _Shipped,
    test: _TestTensors,
    facts: _CardFacts,
    files: Mapping[str, bytes],
    attachments: list[str],
) -> dict[str, Any]:
    """``rdf.yaml`` (bioimage.io model RDF 0.5) as a dictionary."""
    struct, display = facts.structure, facts.display
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": ascii_name(display),
        "description": (
            f"3D U-Net (valid convolutions) segmenting {struct} (label value {facts.label.get('label_value')}) in FIB-SEM "
            f"volumes; trained with curated from sparse annotations. Model: {display}."
        ),
        "authors": facts.authors,
        "cite": [*CITATIONS, *_dataset_citations(facts.study)],
        "license": facts.license,
        "documentation": "documentation.md",
        "covers": ["cover.png"],
        "tags": [
            "3d",
            "unet",
            "semantic-segmentation",
            "electron-microscopy",
            "fib-sem",
            "pytorch",
            ascii_name(struct, fallback="label").lower(),
        ],
        "attachments": [{"source": f, "sha256": _sha256_bytes(files[f])} for f in attachments],
        "inputs": [_rdf_input(loaded, shipped, test, facts, files)],
        "outputs": [_rdf_output(loaded, shipped, facts, files)],
        "weights": _rdf_weights(shipped, files),
        "config": _rdf_config(loaded, test, facts),
    }


def _space_axes(facts: _CardFacts, size_of: Any) -> list[dict[str, Any]]:
    axes = []
    for i, ax in enumerate("zyx"):
        a: dict[str, Any] = {"type": "space", "id": ax, "size": size_of(i, ax)}
        if facts.voxel:
            a["scale"] = facts.voxel[i]
            if facts.unit:
                a["unit"] = facts.unit
        axes.append(a)
    return axes


def _rdf_input(
    loaded: SegmentationModel,
    shipped: _Shipped,
    test: _TestTensors,
    facts: _CardFacts,
    files: Mapping[str, bytes],
) -> dict[str, Any]:
    """The ``raw`` input: valid sizes, test tensor and the model's normalisation in bioimage.io steps."""
    prep, geom, in_min = loaded.preprocessing, loaded.config.geometry, shipped.in_min
    gain = 2.0 / max(float(prep.high) - float(prep.low), 1e-6)
    offset = -float(prep.low) * gain - 1.0
    return {
        "id": "raw",
        "description": "raw FIB-SEM intensities (before normalisation)",
        "axes": [
            {"type": "batch"},
            {"type": "channel", "channel_names": ["raw"]},
            *_space_axes(facts, lambda i, ax: {"min": int(in_min[i]), "step": int(geom.step[i])}),
        ],
        "test_tensor": {
            "source": "test_input.npy",
            "sha256": _sha256_bytes(files["test_input.npy"]),
        },
        "data": {"type": str(test.raw.dtype)},
        "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
        if shipped.filters
        else [
            {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
            {"id": "scale_linear", "kwargs": {"gain": gain, "offset": offset}},
            {"id": "clip", "kwargs": {"min": -1.0, "max": 1.0}},
            # without a closing ensure_dtype, bioimage.io casts back to the raw dtype
            {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
        ],
    }


def _rdf_output(
    loaded: SegmentationModel, shipped: _Shipped, facts: _CardFacts, files: Mapping[str, bytes]
) -> dict[str, Any]:
    """The ``probability`` output: the input's centre (valid convolutions), after a sigmoid."""
    struct, reach = facts.structure, shipped.reach
    return {
        "id": "probability",
        "description": (
            f"probability of {struct}; the centre of the input, {list(reach)} voxels (z, y, x) "
            "smaller on each side (valid convolutions)"
        ),
        "axes": [
            {"type": "batch"},
            {
                "type": "channel",
                "channel_names": [ascii_name(struct, fallback="label").lower().replace(" ", "_")],
            },
            *_space_axes(
                facts,
                lambda i, ax: {
                    "tensor_id": "raw",
                    "axis_id": ax,
                    "offset": -2 * int(reach[i]),
                },
            ),
        ],
        "test_tensor": {
            "source": "test_output.npy",
            "sha256": _sha256_bytes(files["test_output.npy"]),
        },
        "data": {"type": "float32", "range": [0.0, 1.0]},
        "postprocessing": [{"id": "sigmoid"}],
    }


def _rdf_weights(shipped: _Shipped, files: Mapping[str, bytes]) -> dict[str, Any]:
    import torch

    pytorch_version = torch.__version__.split("+")[0]
    return {
        "pytorch_state_dict": {
            "source": "weights.pt",
            "sha256": _sha256_bytes(files["weights.pt"]),
            "architecture": {
                "source": ARCHITECTURE_FILE,
                "sha256": _sha256_bytes(files[ARCHITECTURE_FILE]),
                "callable": shipped.arch_callable,
                "kwargs": _plain(shipped.arch_kwargs),
            },
            "pytorch_version": pytorch_version,
        },
        "torchscript": {
            "source": "weights_torchscript.pt",
            "sha256": _sha256_bytes(files["weights_torchscript.pt"]),
            "pytorch_version": pytorch_version,
            "parent": "pytorch_state_dict",
        },
    }


def _rdf_config(loaded: SegmentationModel, test: _TestTensors, facts: _CardFacts) -> dict[str, Any]:
    """``config``: bioimage.io's model facts and curated's provenance of the weights."""
    model = loaded.meta
    return {
        "bioimageio": {
            "architecture_type": "3D U-Net (valid convolutions)",
            "modality": "electron microscopy (FIB-SEM)",
            "target_structure": [facts.structure],
            "task": "semantic segmentation",
            "model_parameter_count": _parameter_count(loaded),
            "out_of_scope_use": (
                "Other structures than the one named, other imaging modalities or preparations, and any use "
                "without checking the output on held-out data of the new sample."
            ),
            "reproducibility_tolerance": [
                {
                    "relative_tolerance": 1e-3,
                    "absolute_tolerance": 1e-3,
                    "mismatched_elements_per_million": 100,
                }
            ],
        },
        "curated": {
            "model_id": model.get("id"),
            "model_name": facts.display,
            "weights_sha256_in_model_folder": loaded.sha256,
            "parent": model.get("parent"),
            "lineage_rois": model.get("lineage_rois") or [],
            "training": _plain(model.get("training") or {}),
            "preprocessing": loaded.preprocessing.to_dict(),
            "geometry": loaded.config.geometry.to_dict(),
            "label": _plain({**facts.label, "name": facts.structure}),
            "training_labels": _plain(facts.training_labels),
            "evaluations": [
                _evaluation_entry(e) for e in facts.evaluations if not e.get("missing")
            ],
            "software": _plain(model.get("software") or {}),
            "test_input": test.raw_origin,
        },
    }


def _link_predictions_to_card(
    weights_sha: str, package: Path, *, ws: Any, image: str | Path | None
) -> list[Path]:
    """Point label images this model predicted at its exported card (``curated.model.card``).

    Searches the workspace's ``derived/*.ome.zarr`` (or ``image`` without a workspace) for
    label images whose ``curated.model.sha256`` is these weights, and records the package
    path (relative to the workspace root, else absolute) so readers of the labels find the
    model card. Returns the label folders that point at the card: changed now, or already (by a
    run of the same export killed before its log entry, whose change this run records).
    """
    import zarr

    if ws is not None:
        stores = sorted(ws.derived_dir.glob("*.ome.zarr"))
        card = ws.relative(package)
    elif image is not None:
        stores = [Path(image)]
        card = str(Path(package).resolve())
    else:
        return []
    changed: list[Path] = []
    for store in stores:
        labels_dir = store / "labels"
        if not labels_dir.is_dir():
            continue
        for label_dir in sorted(p for p in labels_dir.iterdir() if p.is_dir()):
            try:
                group = zarr.open_group(str(label_dir), mode="r+")
            except Exception:  # not a finished zarr group: nothing to link
                continue
            block = dict(group.attrs.get("curated") or {})
            model = dict(block.get("model") or {})
            if model.get("sha256") != weights_sha:
                continue
            if model.get("card") == card:
                changed.append(label_dir)
                continue
            model["card"] = card
            block["model"] = model
            group.attrs["curated"] = block
            changed.append(label_dir)
    return changed


def _evaluation_entry(e: Mapping[str, Any]) -> dict[str, Any]:
    """One evaluation in ``config.curated``: block and whole-volume scores, truth origin, warnings."""
    wv = e.get("whole_volume") or {}
    wo = wv.get("overall") or {}
    truth = e.get("truth") or {}
    return {
        "file": e.get("_package_file"),
        "current": bool(e.get("_current")),
        "structure": e.get("label_name"),
        "truth": {
            "name": truth.get("name"),
            "origin": truth.get("origin"),
            "classes": truth.get("classes") or {},
        },
        "dice": ((e.get("overall") or {}).get("raw") or {}).get("dice"),
        "ci95_dice": (e.get("ci95") or {}).get("dice"),
        "blocks": len((e.get("held_out") or {}).get("blocks") or []),
        "whole_volume_dice": (wo.get("raw") or {}).get("dice"),
        "whole_volume_ci95_dice": (wo.get("ci95") or {}).get("dice"),
        "whole_volume_voxels": wo.get("scored_voxels"),
        "threshold_baseline": _baseline_entry(wv.get("threshold_baseline")),
        "what_it_gets_wrong": (
            (e.get("confusion") or {}).get("whole_volume")
            or (e.get("confusion") or {}).get("blocks")
            or {}
        ).get("sentences", []),
        "warnings": list(e.get("warnings") or []),
    }


def _baseline_entry(b: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The tuned threshold's held-out Dice and the model's lead over it (model card)."""
    if not b:
        return None
    return {
        "what": f"grey-level threshold tuned on the training crops, {b.get('polarity')} "
        f"{b.get('level')} after Gaussian smoothing (σ {b.get('sigma_voxels')} voxels)",
        "dice": b.get("dice"),
        "ci95_dice": (b.get("ci95") or {}).get("dice"),
        "model_minus_baseline_dice": (b.get("model_minus_baseline") or {}).get("dice"),
        "ci95_model_minus_baseline_dice": (b.get("model_minus_baseline") or {}).get("ci95"),
    }


def _plain(obj: Any) -> Any:
    """JSON round trip: YAML-safe plain types only."""
    return json.loads(json.dumps(obj, default=str))


def _dataset_citations(study: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    doi = str(study.get("doi") or "").removeprefix("https://doi.org/")
    if doi:
        out.append({"text": f"Training data: {study.get('title') or 'the dataset'}", "doi": doi})
    for pub in study.get("publications") or []:
        if isinstance(pub, Mapping) and pub.get("doi") and pub.get("title"):
            out.append(
                {"text": str(pub["title"]), "doi": str(pub["doi"]).removeprefix("https://doi.org/")}
            )
    return out


def _umasked(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


_PUBLIC_FILE = _umasked(0o644)
_PUBLIC_DIR = _umasked(0o755)


def _is_package(dest: Path) -> bool:
    """Whether ``dest`` is a bioimage.io package (a folder or zip holding ``rdf.yaml``)."""
    if dest.is_symlink():
        return False
    if dest.is_dir():
        return (dest / "rdf.yaml").is_file()
    try:
        with zipfile.ZipFile(dest) as zf:
            return "rdf.yaml" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _exists_message(ws: Workspace | None, dest: Path) -> str:
    """Why the package at ``dest`` is not replaced, and what to do."""
    if ws is None or ws.log.records_as_is(dest):
        return "exists already; choose another destination or pass --overwrite"
    return (
        "exists already, not as the curator log records it (left by a run killed before its "
        "log entry, or edited since); pass --overwrite to export again and record it, or "
        "choose another destination"
    )


def _recover(dest: Path) -> None:
    """Put back a package a killed export had set aside and clear its temporary files and folders
    (:func:`curated._io.recover_swap`); refuse what is named like them but is not a package."""
    left = recover_swap(dest, is_ours=_is_package)
    if left.busy:
        msg = "is another export of this package, still being written; wait for it to finish"
        raise InputError(msg, path=left.busy[0])
    if left.foreign:
        msg = (
            "is in the way of the package and is no bioimage.io package (no rdf.yaml); move it away"
        )
        raise InputError(msg, path=left.foreign[0])


def _write_package(files: Mapping[str, bytes], dest: Path, *, overwrite: bool) -> None:
    """Write all files as a zip (``*.zip``) or a folder; readers never see a half package.

    A zip is one atomic write (:func:`curated._io.atomic_write_via`), a folder one build
    swapped into place (:func:`curated._io.building_dir`): both under a temporary name
    (``.NAME.XXXXXXXX.tmp``, which bags leave out); :func:`export_bioimageio` has
    recovered what a killed run left (:func:`curated._io.recover_swap`) before anything.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix.lower() == ".zip":

        def write_zip(tmp: str) -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in sorted(files):
                    # writestr(name) would give members mode 0600; unpacked files get 0644
                    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
                    info.external_attr = 0o644 << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, files[name])
            os.chmod(tmp, _PUBLIC_FILE)  # the package is for others to read

        atomic_write_via(dest, write_zip)
        return
    with building_dir(dest, is_ours=_is_package, overwrite=overwrite, crash="export") as tmpdir:
        os.chmod(tmpdir, _PUBLIC_DIR)
        for name, data in files.items():
            p = tmpdir / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
