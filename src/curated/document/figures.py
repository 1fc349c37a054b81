"""Pictures for the README: orthogonal views through the centre of each image, with label overlays.

One PNG per image (``figures/<image>.png``) and one per label image
(``figures/<image>--<label>.png``). Each PNG is an orthoview: the xy plane top
left, the yz plane to its right, the xz plane below it, drawn at the voxel
aspect of the level shown (anisotropic FIB-SEM voxels look right), with a scale
bar in the free corner. The level shown is the finest whose largest spatial
dimension is at most ``max_dim`` (512 by default); only the three planes are read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from curated._io import atomic_write_bytes
from curated.document.ngff import ImageInfo, LabelInfo, LevelInfo, pick_level, read_plane

BACKGROUND = (24, 24, 24)
OVERLAY_ALPHA = 0.5
MIN_SIDE = 256
"""Small levels are enlarged (nearest neighbour, integer factor) so the picture's longer side reaches this."""
MAX_SIDE = 2048
GAP = 4

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
"""Colours for label values without an ``image-label`` colour (Sasha Trubetskoy's distinct colours)."""

_UNIT_ABBREV = {
    "angstrom": "A",
    "nanometer": "nm",
    "micrometer": "um",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}


@dataclass(frozen=True)
class Figure:
    """A picture written for the README."""

    path: Path
    image: str
    label: str | None
    level: str
    width: int
    height: int
    caption: str


@dataclass(frozen=True)
class OrthoGeometry:
    """Where the three planes go on the canvas, in canvas pixels."""

    width_x: int
    height_y: int
    depth_z: int
    zoom: int

    @property
    def gap(self) -> int:
        return GAP * self.zoom

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG."""
        return (self.width_x + self.gap + self.depth_z, self.height_y + self.gap + self.depth_z)


def ortho_geometry(shape: dict[str, int], voxel: dict[str, float]) -> OrthoGeometry:
    """Canvas layout for a level of ``shape`` (z, y, x voxels) and ``voxel`` size (same unit per axis)."""
    x, y, z = shape.get("x", 1), shape.get("y", 1), shape.get("z", 1)
    vx = voxel.get("x") or 1.0
    vy = voxel.get("y") or vx
    vz = voxel.get("z") or vx
    w = x
    h = max(1, round(y * vy / vx))
    d = max(1, round(z * vz / vx))
    longest = max(w + d, h + d)
    zoom = max(1, MIN_SIDE // longest) if longest < MIN_SIDE else 1
    w, h, d = (min(MAX_SIDE, v * zoom) for v in (w, h, d))
    return OrthoGeometry(width_x=w, height_y=h, depth_z=d, zoom=zoom)


def slug(text: str, *, fallback: str = "image") -> str:
    """A file-name-safe ASCII form of ``text`` (``Zellkern α 1`` → ``zellkern-1``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-._").lower()
    return s or fallback


def _window(planes: list[np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([p.astype(np.float32, copy=False).ravel() for p in planes])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _to_grey(plane: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    p = np.nan_to_num(plane.astype(np.float32, copy=False), nan=lo)
    return (np.clip((p - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _colourise(
    labels: np.ndarray,
    colors: dict[int, tuple[int, int, int, int]],
    transparent: set[int] | frozenset[int] = frozenset(),
) -> np.ndarray:
    """RGBA of a label plane: each value in its colour; 0, ``transparent`` values and alpha-0 colours see-through."""
    rgba = np.zeros((*labels.shape, 4), dtype=np.uint8)
    for value in np.unique(labels):
        v = int(value)
        if v == 0 or v in transparent:
            continue
        if v in colors:
            colour = colors[v]
            if colour[3] == 0:
                continue
            rgb, alpha = colour[:3], round(colour[3] * OVERLAY_ALPHA)
        else:
            rgb, alpha = PALETTE[(v - 1) % len(PALETTE)], round(255 * OVERLAY_ALPHA)
        rgba[labels == value] = (*rgb, alpha)
    return rgba


def _centre(shape: dict[str, int]) -> dict[str, int]:
    return {k: v // 2 for k, v in shape.items()}


def _planes(
    store: Path, level: LevelInfo, axis_names: list[str], centre: dict[str, int]
) -> dict[str, np.ndarray]:
    """The xy, xz and yz planes as 2-D arrays (rows, columns) = (y, x), (z, x), (y, z)."""
    xy = (
        read_plane(store, level, axis_names, {"z": centre.get("z", 0)})
        if "z" in axis_names
        else None
    )
    if xy is None:
        xy = read_plane(store, level, axis_names, {})
    planes = {"xy": _as_2d(xy)}
    if "z" in axis_names:
        planes["xz"] = _as_2d(read_plane(store, level, axis_names, {"y": centre.get("y", 0)}))
        planes["yz"] = _as_2d(read_plane(store, level, axis_names, {"x": centre.get("x", 0)})).T
    else:
        planes["xz"] = np.zeros((1, planes["xy"].shape[1]), dtype=planes["xy"].dtype)
        planes["yz"] = np.zeros((planes["xy"].shape[0], 1), dtype=planes["xy"].dtype)
    return planes


def _nearest(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D label plane to ``shape`` (labels keep their values)."""
    if a.shape == shape:
        return a
    rows = np.minimum((np.arange(shape[0]) * a.shape[0]) // shape[0], a.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * a.shape[1]) // shape[1], a.shape[1] - 1)
    return a[np.ix_(rows, cols)]


def _as_2d(a: np.ndarray) -> np.ndarray:
    while a.ndim > 2:
        a = a[0]
    return a


def _resize(a: Image.Image, size: tuple[int, int], *, nearest: bool) -> Image.Image:
    if a.size == size:
        return a
    return a.resize(size, Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)


def _compose(
    planes: dict[str, np.ndarray],
    geometry: OrthoGeometry,
    window: tuple[float, float],
    overlay: dict[str, np.ndarray] | None,
    colors: dict[int, tuple[int, int, int, int]],
    transparent: set[int] | frozenset[int] = frozenset(),
) -> Image.Image:
    g = geometry
    canvas = Image.new("RGB", g.size, BACKGROUND)
    boxes = {
        "xy": ((0, 0), (g.width_x, g.height_y)),
        "yz": ((g.width_x + g.gap, 0), (g.depth_z, g.height_y)),
        "xz": ((0, g.height_y + g.gap), (g.width_x, g.depth_z)),
    }
    for view, (origin, size) in boxes.items():
        tile = _resize(
            Image.fromarray(_to_grey(planes[view], window)), size, nearest=g.zoom > 1
        ).convert("RGBA")
        if overlay is not None:
            lab = _colourise(overlay[view], colors, transparent)
            layer = _resize(Image.fromarray(lab), size, nearest=True)
            tile = Image.alpha_composite(tile, layer)
        canvas.paste(tile.convert("RGB"), origin)
    return canvas


def _nice_length(max_len: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``max_len``."""
    if max_len <= 0:
        return 0.0
    exp = np.floor(np.log10(max_len))
    for m in (5, 2, 1):
        if m * 10**exp <= max_len:
            return float(m * 10**exp)
    return float(10**exp)


def _scale_bar(
    canvas: Image.Image, geometry: OrthoGeometry, pixel_size: float, unit: str | None
) -> None:
    """Draw a scale bar in the free bottom-right corner (skipped when the corner is too small)."""
    g = geometry
    corner_w, corner_h = g.depth_z, g.depth_z
    if corner_w < 24 or corner_h < 16 or pixel_size <= 0:
        return
    length = _nice_length(0.8 * corner_w * pixel_size)
    if length <= 0:
        return
    px = max(1, round(length / pixel_size))
    x0 = g.width_x + g.gap + (corner_w - px) // 2
    y0 = g.height_y + g.gap + corner_h // 2
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([x0, y0, x0 + px - 1, y0 + max(2, g.zoom * 2)], fill=(255, 255, 255))
    text = f"{length:g} {_UNIT_ABBREV.get(unit or '', unit or 'px')}"
    font = ImageFont.load_default()
    draw.text((x0, y0 + max(4, g.zoom * 3)), text, fill=(255, 255, 255), font=font)


def _label_level(label: LabelInfo, image_level: LevelInfo) -> LevelInfo | None:
    """The label level with the image level's shape, else the finest one coarser or equal."""
    for lv in label.levels:
        if lv.shape == image_level.shape:
            return lv
    candidates = [
        lv
        for lv in label.levels
        if all(a <= b for a, b in zip(lv.shape, image_level.shape, strict=False))
    ]
    if candidates:
        return max(candidates, key=lambda lv: int(np.prod(lv.shape)))
    return label.levels[-1] if label.levels else None


def _scaled_centre(
    centre: dict[str, int], src: dict[str, int], dst: dict[str, int]
) -> dict[str, int]:
    return {
        k: min(dst[k] - 1, int(centre[k] * dst[k] / src[k]))
        for k in centre
        if k in dst and src.get(k)
    }


def orthoviews(
    info: ImageInfo, out_dir: str | Path, *, max_dim: int = 512, used: set[str] | None = None
) -> list[Figure]:
    """Write the orthoview PNGs of ``info`` (and one per readable label image) into ``out_dir``.

    Returns the figures written; an unreadable image yields none (the README says why).
    """
    if info.problem or not info.levels:
        return []
    out_dir = Path(out_dir)
    used = set() if used is None else used
    names = info.axis_names
    li = pick_level(info.levels, names, max_dim)
    level = info.levels[li]
    shape = info.spatial(level.shape)
    voxel = info.spatial(level.scale)
    centre = _centre(shape)
    geometry = ortho_geometry(shape, voxel)
    planes = _planes(info.path, level, names, centre)
    window = _window(list(planes.values()))
    where = ", ".join(f"{k}={v}" for k, v in centre.items())
    figures = []

    def emit(stem: str, img: Image.Image, label: str | None, caption: str) -> None:
        base = stem
        n = 2
        while base in used:
            base = f"{stem}-{n}"
            n += 1
        used.add(base)
        path = out_dir / f"{base}.png"
        import io

        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        atomic_write_bytes(path, buf.getvalue())
        figures.append(
            Figure(path, info.name, label, level.path, img.size[0], img.size[1], caption)
        )

    canvas = _compose(planes, geometry, window, None, {})
    _scale_bar(canvas, geometry, (voxel.get("x") or 1.0) / geometry.zoom, info.unit)
    vox_txt = " × ".join(f"{voxel[k]:g}" for k in ("z", "y", "x") if k in voxel)
    emit(
        slug(info.name),
        canvas,
        None,
        f"{info.name}: orthogonal views through the centre ({where}) of level {level.path} "
        f"(voxel z × y × x {vox_txt} {info.unit or ''}); xy top left, yz right, xz below.".replace(
            " )", ")"
        ),
    )
    for label in info.labels:
        if label.problem or not label.levels:
            continue
        lv = _label_level(label, level)
        if lv is None:
            continue
        lab_shape = info.spatial(lv.shape)
        lab_planes = _planes(label.path, lv, names, _scaled_centre(centre, shape, lab_shape))
        overlay = {k: _nearest(v, planes[k].shape) for k, v in lab_planes.items()}
        canvas = _compose(planes, geometry, window, overlay, label.colors, label.unannotated)
        _scale_bar(canvas, geometry, (voxel.get("x") or 1.0) / geometry.zoom, info.unit)
        emit(
            f"{slug(info.name)}--{slug(label.name, fallback='labels')}",
            canvas,
            label.name,
            f"{info.name} with label image {label.name}{_origin_note(label)} overlaid "
            f"(same views as above){_class_note(label)}.",
        )
    return figures


_ORIGIN_NOTE = {
    "model-prediction": "AI-generated",
    "derived-from-truth": "derived from truth, not an independent annotation",
    "simulated": "simulated",
    "human": "made by people",
    "mixed": "crops of mixed origin",
}


def _origin_note(label: LabelInfo) -> str:
    """`` (AI-generated)``, `` (simulated)`` ...: who made the labels, as the caption says it."""
    if label.ai_generated and label.origin != "mixed":
        return " (AI-generated)"
    note = _ORIGIN_NOTE.get(label.origin or "")
    return f" ({note})" if note else ""


def _class_note(label: LabelInfo) -> str:
    named = [
        f"{v} {n}"
        for v, n in sorted(label.names.items())
        if v != 0 and v not in label.unannotated and not n.lower().startswith("class ")
    ]
    return f"; values {', '.join(named)}" if named else ""


def figure_summary(fig: Figure) -> dict[str, Any]:
    return {
        "path": str(fig.path),
        "image": fig.image,
        "label": fig.label,
        "level": fig.level,
        "size": [fig.width, fig.height],
    }
