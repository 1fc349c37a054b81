"""Pictures for the README: orthogonal views through the centre of each image, with label overlays.

One PNG per image (``figures/<image>.png``) and one per label image
(``figures/<image>--<label>.png``). Each PNG is an orthoview: the xy plane top
left, the yz plane to its right, the xz plane below it, drawn at the voxel
aspect of the level shown (anisotropic FIB-SEM voxels look right), with a scale
bar in the free corner. The level shown is the finest whose largest spatial
dimension is at most ``max_dim`` (512 by default); only the three planes are read.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from curated._io import atomic_write_bytes
from curated.document.ngff import ImageInfo, LabelInfo, LevelInfo, pick_level, read_plane

BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
MUTED = (170, 170, 170)
CUT_LINE = (255, 210, 0)
"""Dashed lines on each panel where the other two planes cut it."""
CROP_LINE = (255, 255, 255)
OVERLAY_ALPHA = 0.5
MIN_SIDE = 640
"""Small levels are enlarged (nearest neighbour, integer factor) so the panels' longer side reaches this."""
MAX_SIDE = 2048
GAP = 4
PAD = 8
TITLE_H = 28
LEGEND_ROW = 22
TITLE_SIZE = 15
TEXT_SIZE = 13

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
    """Where the three planes go in the picture, in pixels.

    The picture is a title strip, the panel grid (xy top left, yz to its right,
    xz below) and a legend strip of ``legend_rows`` rows.
    """

    width_x: int
    height_y: int
    depth_z: int
    zoom: int
    legend_rows: int = 1

    @property
    def gap(self) -> int:
        return GAP * self.zoom

    @property
    def origin(self) -> tuple[int, int]:
        """Top-left corner of the xy panel in the picture."""
        return (PAD, TITLE_H)

    @property
    def grid(self) -> tuple[int, int]:
        """``(width, height)`` of the three panels with the gaps between them."""
        return (self.width_x + self.gap + self.depth_z, self.height_y + self.gap + self.depth_z)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG."""
        gw, gh = self.grid
        return (gw + 2 * PAD, TITLE_H + gh + PAD + self.legend_rows * LEGEND_ROW + PAD // 2)

    def panel(self, view: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((left, top), (width, height))`` of panel ``xy``, ``yz`` or ``xz`` in the picture."""
        ox, oy = self.origin
        if view == "xy":
            return (ox, oy), (self.width_x, self.height_y)
        if view == "yz":
            return (ox + self.width_x + self.gap, oy), (self.depth_z, self.height_y)
        return (ox, oy + self.height_y + self.gap), (self.width_x, self.depth_z)


def ortho_geometry(
    shape: dict[str, int], voxel: dict[str, float], *, legend_rows: int = 1
) -> OrthoGeometry:
    """Picture layout for a level of ``shape`` (z, y, x voxels) and ``voxel`` size (same unit per axis)."""
    x, y, z = shape.get("x", 1), shape.get("y", 1), shape.get("z", 1)
    vx = voxel.get("x") or 1.0
    vy = voxel.get("y") or vx
    vz = voxel.get("z") or vx
    w = x
    h = max(1, round(y * vy / vx))
    d = max(1, round(z * vz / vx))
    longest = max(w + d, h + d)
    zoom = max(1, -(-MIN_SIDE // longest)) if longest < MIN_SIDE else 1
    w, h, d = (min(MAX_SIDE, v * zoom) for v in (w, h, d))
    return OrthoGeometry(width_x=w, height_y=h, depth_z=d, zoom=zoom, legend_rows=legend_rows)


# --------------------------------------------------------------------- drawing kit
@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in scalable font at ``size`` px (the small bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError, ImportError):  # pragma: no cover - old Pillow
        return ImageFont.load_default()


def _text_width(text: str, fnt: Any) -> int:
    return int(math.ceil(fnt.getlength(text)))


def fit_text(text: str, width: int, fnt: Any) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if _text_width(text, fnt) <= width:
        return text
    while text and _text_width(text + "...", fnt) > width:
        text = text[:-1]
    return text + "..."


@dataclass(frozen=True)
class LegendItem:
    """One legend entry: a swatch (``fill``, ``outline`` or ``dashed``) and its text."""

    colour: tuple[int, int, int]
    text: str
    style: str = "fill"


def _item_width(item: LegendItem, fnt: Any) -> int:
    return 14 + 6 + _text_width(item.text, fnt) + 16


def legend_rows(items: Sequence[LegendItem], width: int) -> int:
    """How many rows ``items`` take in a legend strip ``width`` pixels wide."""
    fnt = font(TEXT_SIZE)
    rows, used = 1, 0
    for item in items:
        w = _item_width(item, fnt)
        if used and used + w > width:
            rows, used = rows + 1, 0
        used += w
    return rows


def draw_legend(
    draw: ImageDraw.ImageDraw, items: Sequence[LegendItem], left: int, top: int, width: int
) -> None:
    """Draw ``items`` in rows of :data:`LEGEND_ROW` pixels from ``(left, top)``."""
    fnt = font(TEXT_SIZE)
    x, y = left, top
    for item in items:
        w = _item_width(item, fnt)
        if x > left and x + w > left + width:
            x, y = left, y + LEGEND_ROW
        box = [x, y + 4, x + 13, y + 17]
        if item.style == "fill":
            draw.rectangle(box, fill=item.colour, outline=MUTED)
        elif item.style == "outline":
            draw.rectangle(box, outline=item.colour, width=2)
        else:
            dashed_line(draw, (x, y + 11), (x + 13, y + 11), item.colour, 2, dash=4)
        draw.text(
            (x + 20, y + 3), fit_text(item.text, left + width - x - 20, fnt), fill=TEXT, font=fnt
        )
        x += w


def dashed_line(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    colour: tuple[int, int, int],
    width: int = 1,
    *,
    dash: int = 6,
) -> None:
    """A dashed straight line from ``start`` to ``end``."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return
    n = max(1, int(length // dash))
    for i in range(0, n, 2):
        t0, t1 = i / n, min(1.0, (i + 1) / n)
        draw.line(
            [
                (x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0),
                (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1),
            ],
            fill=colour,
            width=width,
        )


def dashed_rectangle(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    colour: tuple[int, int, int],
    width: int = 1,
) -> None:
    x0, y0, x1, y1 = box
    for a, b in (
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ):
        dashed_line(draw, a, b, colour, width)


def tag(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, *, size: int = TEXT_SIZE
) -> None:
    """White text on a dark box at ``xy`` (top-left): panel letters and crop numbers."""
    fnt = font(size)
    left, top, right, bottom = draw.textbbox(xy, text, font=fnt)
    draw.rectangle([left - 3, top - 2, right + 3, bottom + 2], fill=(0, 0, 0))
    draw.text(xy, text, fill=TEXT, font=fnt)


def scale_bar(
    draw: ImageDraw.ImageDraw,
    right: int,
    bottom: int,
    max_px: int,
    pixel_size: float,
    unit: str | None,
) -> bool:
    """A scale bar ending at ``(right, bottom)``, at most ``max_px`` long; ``False`` when it cannot fit."""
    if pixel_size <= 0 or max_px < 12:
        return False
    length = _nice_length(max_px * pixel_size)
    px = round(length / pixel_size) if length > 0 else 0
    if px < 4:
        return False
    fnt = font(TEXT_SIZE)
    text = f"{length:g} {_UNIT_ABBREV.get(unit or '', unit or 'px')}"
    tw = _text_width(text, fnt)
    x0 = right - max(px, tw)
    draw.rectangle([x0 - 4, bottom - 24, right + 4, bottom + 2], fill=(0, 0, 0))
    draw.rectangle([right - px, bottom - 4, right, bottom], fill=(255, 255, 255))
    draw.text((max(x0, right - (px + tw) // 2), bottom - 22), text, fill=TEXT, font=fnt)
    return True


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def slug(text: str, *, fallback: str = "image") -> str:
    """A file-name-safe ASCII form of ``text`` (``Zellkern α 1`` → ``zellkern-1``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-._").lower()
    return s or fallback


def grey_window(
    planes: Sequence[np.ndarray], percentiles: tuple[float, float] = (0.5, 99.5)
) -> tuple[float, float]:
    """Display window ``(low, high)``: the ``percentiles`` of the finite values of ``planes``."""
    values = np.concatenate([p.astype(np.float32, copy=False).ravel() for p in planes])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, list(percentiles))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_grey(plane: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """8-bit grey of ``plane`` in the display ``window`` (see :func:`grey_window`)."""
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
    for view in ("xy", "yz", "xz"):
        origin, size = g.panel(view)
        tile = _resize(
            Image.fromarray(to_grey(planes[view], window)), size, nearest=g.zoom > 1
        ).convert("RGBA")
        if overlay is not None:
            lab = _colourise(overlay[view], colors, transparent)
            layer = _resize(Image.fromarray(lab), size, nearest=True)
            tile = Image.alpha_composite(tile, layer)
        canvas.paste(tile.convert("RGB"), origin)
    return canvas


@dataclass(frozen=True)
class _Cuts:
    """Where the planes cut the level shown (voxel indices) and its shape."""

    centre: dict[str, int]
    shape: dict[str, int]

    def px(self, g: OrthoGeometry, axis: str, voxel: float) -> float:
        """Panel pixels from the panel's edge for a voxel coordinate along ``axis``."""
        extent = {"x": g.width_x, "y": g.height_y, "z": g.depth_z}[axis]
        return voxel * extent / max(1, self.shape.get(axis, 1))


_PANEL_AXES = {"xy": ("x", "y"), "yz": ("z", "y"), "xz": ("x", "z")}
"""Panel → (axis along its columns, axis along its rows)."""
_CUT_BY = {"xy": "z", "yz": "x", "xz": "y"}
"""Panel → the axis whose index selects it."""


def _decorate(
    canvas: Image.Image,
    g: OrthoGeometry,
    cuts: _Cuts,
    voxel: dict[str, float],
    unit: str | None,
) -> None:
    """Panel letters, the dashed lines where the other planes cut, and a scale bar."""
    draw = ImageDraw.Draw(canvas)
    lw = max(1, g.zoom // 2)
    for letter, view in zip("abc", ("xy", "yz", "xz"), strict=True):
        (left, top), (w, h) = g.panel(view)
        cols, rows = _PANEL_AXES[view]
        if cols in cuts.shape and cuts.shape.get(cols, 1) > 1:
            cx = left + cuts.px(g, cols, cuts.centre.get(cols, 0) + 0.5)
            dashed_line(draw, (cx, top), (cx, top + h - 1), CUT_LINE, lw)
        if rows in cuts.shape and cuts.shape.get(rows, 1) > 1:
            cy = top + cuts.px(g, rows, cuts.centre.get(rows, 0) + 0.5)
            dashed_line(draw, (left, cy), (left + w - 1, cy), CUT_LINE, lw)
        axis = _CUT_BY[view]
        where = f"{axis} = {cuts.centre.get(axis, 0)}" if axis in cuts.shape else ""
        if w >= 40 and h >= 16:
            tag(draw, (left + 4, top + 3), f"{letter}  {view}  {where}".rstrip())
    pixel = (voxel.get("x") or 1.0) / g.zoom
    (left, top), (w, h) = g.panel("xz")
    corner_left = left + w + g.gap
    if not scale_bar(
        draw, corner_left + g.depth_z - 6, top + h - 6, int(0.8 * g.depth_z), pixel, unit
    ):
        (left, top), (w, h) = g.panel("xy")
        scale_bar(draw, left + w - 8, top + h - 8, int(0.3 * w), pixel, unit)


def _draw_title(canvas: Image.Image, title: str) -> None:
    draw = ImageDraw.Draw(canvas)
    fnt = font(TITLE_SIZE)
    draw.text((PAD, 6), fit_text(title, canvas.size[0] - 2 * PAD, fnt), fill=TEXT, font=fnt)


def _legend_at_bottom(canvas: Image.Image, g: OrthoGeometry, items: Sequence[LegendItem]) -> None:
    _, gh = g.grid
    draw_legend(ImageDraw.Draw(canvas), items, PAD, TITLE_H + gh + PAD // 2, g.grid[0])


def _crop_boxes(
    draw: ImageDraw.ImageDraw,
    g: OrthoGeometry,
    cuts: _Cuts,
    rois: list[tuple[tuple[int, ...], tuple[int, ...]]],
    factor: dict[str, float],
) -> int:
    """Outline each recorded crop: solid where a plane cuts it, dashed (xy only) where it lies behind.

    ``factor`` converts level-0 voxels to the level shown. Returns how many crops are drawn.
    """
    lw = max(2, g.zoom)
    drawn = 0
    for n, (offset, shape) in enumerate(rois, start=1):
        if len(offset) < 3:
            continue
        lo = {a: offset[-3 + i] * factor.get(a, 1.0) for i, a in enumerate("zyx")}
        hi = {a: (offset[-3 + i] + shape[-3 + i]) * factor.get(a, 1.0) for i, a in enumerate("zyx")}
        for view in ("xy", "yz", "xz"):
            cols, rows = _PANEL_AXES[view]
            cut = _CUT_BY[view]
            inside = lo[cut] <= cuts.centre.get(cut, 0) + 0.5 < hi[cut]
            if view != "xy" and not inside:
                continue
            (left, top), _ = g.panel(view)
            box = (
                left + cuts.px(g, cols, lo[cols]),
                top + cuts.px(g, rows, lo[rows]),
                left + cuts.px(g, cols, hi[cols]) - 1,
                top + cuts.px(g, rows, hi[rows]) - 1,
            )
            if inside:
                draw.rectangle(box, outline=CROP_LINE, width=lw)
            else:
                dashed_rectangle(draw, box, CROP_LINE, lw)
            if view == "xy":
                tag(draw, (int(box[0]) + lw + 2, int(box[1]) + lw + 1), str(n), size=TEXT_SIZE - 2)
        drawn += 1
    return drawn


def _nice_length(max_len: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``max_len``."""
    if max_len <= 0:
        return 0.0
    exp = np.floor(np.log10(max_len))
    for m in (5, 2, 1):
        if m * 10**exp <= max_len:
            return float(m * 10**exp)
    return float(10**exp)


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


MAX_LEGEND_VALUES = 12


def _value_items(label: LabelInfo, overlay: dict[str, np.ndarray]) -> list[LegendItem]:
    """Legend entries for the label values drawn: the values seen in the planes and the named ones."""
    seen = {int(v) for plane in overlay.values() for v in np.unique(plane)}
    items: list[LegendItem] = []
    values = sorted((seen | set(label.names)) - set(label.unannotated))
    for v in values:
        colour = label.colors.get(v)
        if v == 0 or (colour is not None and colour[3] == 0):
            continue
        rgb = colour[:3] if colour is not None else PALETTE[(v - 1) % len(PALETTE)]
        name = label.names.get(v, "")
        items.append(LegendItem(tuple(int(c) for c in rgb), f"{v} {name}".strip()))  # type: ignore[arg-type]
    if len(items) > MAX_LEGEND_VALUES:
        extra = len(items) - (MAX_LEGEND_VALUES - 1)
        items = items[: MAX_LEGEND_VALUES - 1] + [LegendItem(MUTED, f"... {extra} more values")]
    return items


@dataclass
class _Spec:
    stem: str
    label: LabelInfo | None
    overlay: dict[str, np.ndarray] | None
    legend: list[LegendItem]
    title: str
    caption: str


def _label_spec(
    info: ImageInfo,
    label: LabelInfo,
    level: LevelInfo,
    planes: dict[str, np.ndarray],
    centre: dict[str, int],
    shape: dict[str, int],
    describe: str,
) -> _Spec | None:
    if label.problem or not label.levels:
        return None
    lv = _label_level(label, level)
    if lv is None:
        return None
    names = info.axis_names
    lab_shape = info.spatial(lv.shape)
    lab_planes = _planes(label.path, lv, names, _scaled_centre(centre, shape, lab_shape))
    overlay = {k: _nearest(v, planes[k].shape) for k, v in lab_planes.items()}
    legend = _value_items(label, overlay)
    if label.rois:
        legend += [
            LegendItem(
                CROP_LINE, f"annotated crop cut by the plane ({len(label.rois)} crops)", "outline"
            ),
            LegendItem(CROP_LINE, "crop behind the xy plane", "dashed"),
        ]
    legend.append(LegendItem(CUT_LINE, "where the other planes cut", "dashed"))
    origin = _origin_note(label)
    crops = (
        f"; the {len(label.rois)} annotated crops are outlined and numbered (dashed: not cut by the xy plane)"
        if label.rois
        else ""
    )
    return _Spec(
        f"{slug(info.name)}--{slug(label.name, fallback='labels')}",
        label,
        overlay,
        legend,
        f"{info.name} · {label.name}{origin} · {describe}",
        f"{info.name} with label image {label.name}{origin} overlaid "
        f"(same views as above){_class_note(label)}{crops}.",
    )


def orthoviews(
    info: ImageInfo, out_dir: str | Path, *, max_dim: int = 512, used: set[str] | None = None
) -> list[Figure]:
    """Write the orthoview PNGs of ``info`` (and one per readable label image) into ``out_dir``.

    Every picture has a title, lettered panels (a xy, b yz, c xz) with the index of
    the plane shown, dashed lines where the other planes cut, a scale bar and a
    legend naming each label value drawn; sparse annotations have their crops
    outlined and numbered. All pictures of one image share one size. Returns the
    figures written; an unreadable image yields none (the README says why).
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
    level0 = info.spatial(info.levels[0].shape)
    factor = {k: shape[k] / level0[k] for k in shape if level0.get(k)}
    centre = _centre(shape)
    planes = _planes(info.path, level, names, centre)
    window = grey_window(list(planes.values()))
    where = ", ".join(f"{k}={v}" for k, v in centre.items())
    unit = _UNIT_ABBREV.get(info.unit or "", info.unit or "")
    vox_txt = " × ".join(f"{voxel[k]:g}" for k in ("z", "y", "x") if k in voxel)
    vox_axes = ", ".join(f"{k} {voxel[k]:g}" for k in ("z", "y", "x") if k in voxel)
    describe = f"level {level.path}, voxel {vox_axes} {unit}".rstrip()
    specs = [
        _Spec(
            slug(info.name),
            None,
            None,
            [LegendItem(CUT_LINE, "where the other planes cut", "dashed")],
            f"{info.name} · {describe}",
            f"{info.name}: orthogonal views through the centre ({where}) of level {level.path} "
            f"(voxel z × y × x {vox_txt} {info.unit or ''}); a xy, b yz, c xz; dashed lines "
            "show where the other planes cut.".replace(" )", ")"),
        )
    ]
    for label in info.labels:
        spec = _label_spec(info, label, level, planes, centre, shape, describe)
        if spec is not None:
            specs.append(spec)
    width = ortho_geometry(shape, voxel).grid[0]
    rows = max(legend_rows(spec.legend, width) for spec in specs)
    geometry = ortho_geometry(shape, voxel, legend_rows=rows)
    cuts = _Cuts(centre, shape)
    figures = []
    for spec in specs:
        lab = spec.label
        canvas = _compose(
            planes,
            geometry,
            window,
            spec.overlay,
            lab.colors if lab else {},
            lab.unannotated if lab else frozenset(),
        )
        _decorate(canvas, geometry, cuts, voxel, info.unit)
        if lab is not None and lab.rois:
            _crop_boxes(ImageDraw.Draw(canvas), geometry, cuts, lab.rois, factor)
        _draw_title(canvas, spec.title)
        _legend_at_bottom(canvas, geometry, spec.legend)
        base, n = spec.stem, 2
        while base in used:
            base, n = f"{spec.stem}-{n}", n + 1
        used.add(base)
        path = out_dir / f"{base}.png"
        atomic_write_bytes(path, png_bytes(canvas))
        figures.append(
            Figure(
                path, info.name, lab.name if lab else None, level.path, *canvas.size, spec.caption
            )
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


# ------------------------------------------------------------ evaluation blocks
TP_COLOUR = (255, 255, 255)
FP_COLOUR = (255, 0, 255)
FN_COLOUR = (0, 200, 0)
BLOCK_COLUMNS = ("image", "truth", "prediction", "errors")


@dataclass(frozen=True)
class BlockPanel:
    """The middle z slice of one held-out block, as the evaluation figure shows it."""

    offset: tuple[int, ...]
    raw: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    note: str = ""
    """Per-block figures shown after the block's position (e.g. ``Dice 0.91, 812 truth voxels``)."""


def _grey8(a: np.ndarray) -> np.ndarray:
    return to_grey(a, grey_window([a], (1, 99)))


def _block_tiles(panel: BlockPanel) -> list[np.ndarray]:
    t = panel.truth.astype(bool)
    p = panel.prediction.astype(bool)
    g = _grey8(panel.raw)
    err = np.zeros((*t.shape, 3), np.uint8)
    err[t & p] = TP_COLOUR
    err[p & ~t] = FP_COLOUR
    err[t & ~p] = FN_COLOUR
    return [
        np.stack([g] * 3, -1),
        np.stack([t.astype(np.uint8) * 255] * 3, -1),
        np.stack([p.astype(np.uint8) * 255] * 3, -1),
        err,
    ]


def block_errors_png(
    panels: Sequence[BlockPanel],
    *,
    class_name: str = "foreground",
    pixel_size: float | None = None,
    unit: str | None = None,
    title: str = "",
    tile: int = 128,
) -> bytes:
    """Every held-out block in one picture: image, truth, prediction and errors (middle z slice).

    Blocks are laid out in up to three columns of ``image | truth | prediction |
    errors`` groups, each under a line naming its position and ``note``; the
    legend names the colours (white true positive, magenta false positive, green
    false negative: a pair that colour-blind readers also tell apart) and the class.
    ``pixel_size`` (the block's in-plane voxel size in ``unit``) adds a scale bar
    to the first image.
    """
    n = max(1, len(panels))
    columns = 1 if n <= 6 else 2 if n <= 24 else 3
    rows = -(-n // columns)
    head = 20
    group_w = tile * len(BLOCK_COLUMNS) + GAP * (len(BLOCK_COLUMNS) - 1)
    width = PAD * 2 + columns * group_w + (columns - 1) * 3 * PAD
    legend = [
        LegendItem(TP_COLOUR, f"{class_name}: found (true positive)"),
        LegendItem(FP_COLOUR, f"called {class_name}, is not (false positive)"),
        LegendItem(FN_COLOUR, f"{class_name} missed (false negative)"),
    ]
    lrows = legend_rows(legend, width - 2 * PAD)
    top = TITLE_H + head
    height = top + rows * (head + tile + PAD) + lrows * LEGEND_ROW + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    fnt = font(TEXT_SIZE)
    heading = title or f"Held-out blocks, middle z slice of each ({len(panels)} blocks)"
    draw.text(
        (PAD, 6),
        fit_text(heading, width - 2 * PAD, font(TITLE_SIZE)),
        fill=TEXT,
        font=font(TITLE_SIZE),
    )
    for c in range(columns):
        for j, name in enumerate(BLOCK_COLUMNS):
            x = PAD + c * (group_w + 3 * PAD) + j * (tile + GAP)
            draw.text((x + 2, TITLE_H), name, fill=MUTED, font=fnt)
    for i, panel in enumerate(panels):
        c, r = divmod(i, rows)
        x0 = PAD + c * (group_w + 3 * PAD)
        y0 = top + r * (head + tile + PAD)
        where = ", ".join(str(int(v)) for v in panel.offset)
        text = f"{i + 1}. block at z,y,x = {where}" + (f" · {panel.note}" if panel.note else "")
        draw.text((x0, y0 + 3), fit_text(text, group_w, fnt), fill=TEXT, font=fnt)
        tiles = _block_tiles(panel)
        h, w = tiles[0].shape[:2]
        zoom = max(1, tile // max(h, w, 1))
        size = (max(1, w * zoom), max(1, h * zoom))
        for j, arr in enumerate(tiles):
            im = Image.fromarray(arr, "RGB").resize(size, Image.Resampling.NEAREST)
            canvas.paste(im, (x0 + j * (tile + GAP), y0 + head))
        if i == 0 and pixel_size:
            scale_bar(
                draw,
                x0 + size[0] - 6,
                y0 + head + size[1] - 6,
                int(0.6 * size[0]),
                pixel_size / zoom,
                unit,
            )
    draw_legend(draw, legend, PAD, top + rows * (head + tile + PAD), width - 2 * PAD)
    return png_bytes(canvas)


# ------------------------------------------------------------ model card cover
_VIRIDIS = np.array(
    [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float32
)
"""Five anchors of matplotlib's viridis (perceptually uniform, colour-blind safe), interpolated."""


def viridis(values: np.ndarray) -> np.ndarray:
    """RGB (uint8) of ``values`` in [0, 1] on the viridis ramp."""
    v = np.clip(np.nan_to_num(values.astype(np.float32), nan=0.0), 0, 1) * (len(_VIRIDIS) - 1)
    i = np.minimum(v.astype(int), len(_VIRIDIS) - 2)
    f = (v - i)[..., None]
    return (_VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f).astype(np.uint8)


def model_cover_png(
    raw: np.ndarray,
    probability: np.ndarray,
    offset: tuple[int, int],
    *,
    class_name: str = "foreground",
    title: str = "",
    side: int = 384,
) -> bytes:
    """A 2:1 model-card cover: the test input (left) and the predicted probability (right).

    ``raw`` is the input's middle slice, ``probability`` the prediction's middle
    slice, which lies at ``offset`` (rows, columns) inside the input (the network
    needs context around what it predicts). Both panels are titled; the
    probability has a colour bar from 0 to 1 and the area without a prediction
    is marked as the network's context.
    """
    scale = side / max(raw.shape)
    size = (max(1, round(raw.shape[1] * scale)), max(1, round(raw.shape[0] * scale)))
    canvas = Image.new("RGB", (2 * side, side), BACKGROUND)
    left = Image.fromarray(_grey8(raw)).resize(size, Image.Resampling.BILINEAR).convert("RGB")
    canvas.paste(left, (0, 0))
    right = Image.new("RGB", size, (48, 48, 48))
    pimg = Image.fromarray(viridis(probability), "RGB").resize(
        (max(1, round(probability.shape[1] * scale)), max(1, round(probability.shape[0] * scale))),
        Image.Resampling.NEAREST,
    )
    px, py = round(offset[1] * scale), round(offset[0] * scale)
    right.paste(pimg, (px, py))
    canvas.paste(right, (side, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle(
        [side + px, py, side + px + pimg.size[0] - 1, py + pimg.size[1] - 1], outline=MUTED
    )
    tag(draw, (8, 8), title or "input (middle slice)", size=TITLE_SIZE)
    tag(draw, (side + 8, 8), f"P({class_name})", size=TITLE_SIZE)
    if py > 40 or px > 40:
        tag(draw, (side + 8, side - 24), "grey: context the network reads", size=TEXT_SIZE)
    bar_w, bar_h = 16, side // 2
    bx, by = 2 * side - bar_w - 34, side // 4
    ramp = viridis(np.linspace(1, 0, bar_h)[:, None].repeat(bar_w, axis=1))
    canvas.paste(Image.fromarray(ramp, "RGB"), (bx, by))
    draw.rectangle([bx - 1, by - 1, bx + bar_w, by + bar_h], outline=TEXT)
    for v, y in ((1.0, by), (0.5, by + bar_h // 2), (0.0, by + bar_h)):
        tag(draw, (bx + bar_w + 4, y - 7), f"{v:g}", size=TEXT_SIZE - 1)
    return png_bytes(canvas)
