"""The whole-volume evaluation as a picture: one slice's errors, and where in x-y the model fails.

Block figures show a few small cubes; when full truth exists the scores that count
are the whole volume's (:mod:`curated.segment.wholevolume`), and a curator should be
able to *see* them too. :func:`whole_volume_png` draws two panels side by side:

a. the z slice through the layer of scoring tiles with the most wrong voxels, the
   image with the errors painted over it (found, false positive, missed), the
   outlines of the truth's other classes (what a false positive may be confused
   with, e.g. a nucleus) and the training regions that were left out of the scores;
b. a map of Dice per column of tiles (all z summed), with the x-bins' Dice along
   its top edge: where in the volume the model fails, at a glance.

Only one plane of the image, the prediction and the truth is read, at the finest
pyramid level whose y and x are at most :data:`MAX_EDGE` voxels and where all three
have a level of the same shape (the label images' levels are mode-downsampled, so a
coarse slice's colours are approximate; the title names the level). The map comes
from the per-tile counts the scores already hold. Nothing is drawn (``None``) when
the image is not a local folder, the three share no level, or the smallest shared
level is wider than :data:`LIMIT_EDGE` (memory stays bounded by one small plane).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from curated.document.figures import (
    BACKGROUND,
    CROP_LINE,
    CUT_LINE,
    FN_COLOUR,
    FP_COLOUR,
    LEGEND_ROW,
    MUTED,
    PAD,
    TEXT,
    TEXT_SIZE,
    TITLE_H,
    TITLE_SIZE,
    LegendItem,
    dashed_line,
    dashed_rectangle,
    draw_legend,
    fit_text,
    font,
    grey_window,
    legend_rows,
    png_bytes,
    scale_bar,
    tag,
    to_grey,
    viridis,
)
from curated.document.ngff import LevelInfo, read_image_info
from curated.segment.geometry import Box
from curated.segment.metrics import ratio_scores
from curated.segment.wholevolume import COUNT_FIELDS, WholeVolumeScores, tiles

MAX_EDGE = 768
"""The slice is read at the finest level whose y and x are at most this many voxels."""
LIMIT_EDGE = 2048
"""When no shared level is that small, the coarsest is used only up to this edge; a larger
plane (label images without a pyramid on a large image) gets no picture, never a big read."""
PANEL = 560
"""Each panel's longer side in pixels (small slices are enlarged by an integer factor)."""
FOUND_COLOUR = (86, 180, 233)
"""True positives over the image: sky blue (white, as in the block figure, vanishes on EM)."""
EMPTY_COLOUR = (70, 70, 70)
"""Map: tiles with neither truth nor prediction of the class."""
NOT_SCORED = (0, 0, 0)
"""Map: tiles left wholly out of the scores (inside training regions)."""
ALPHA = 0.55


@dataclass(frozen=True)
class WholePanel:
    """What the picture shows, in the plane's pixels (the chosen level's y and x)."""

    raw: np.ndarray
    truth: np.ndarray
    """bool: the class in the truth (unannotated voxels False)."""
    pred: np.ndarray
    """bool: the class in the prediction (False where the truth is unannotated)."""
    excluded: list[tuple[float, float, float, float]]
    """Training regions cut by the slice: (y0, x0, y1, x1)."""
    dice_map: np.ndarray
    """Dice per tile column; NaN where nothing was scored, -1 where neither truth nor prediction."""
    x_bins: list[tuple[float, float, float | None]]
    """(x0, x1, Dice) of each x-bin, in plane pixels."""
    z: int
    """The slice's z at level 0."""
    level: int
    downsample: tuple[float, float]
    """Level-0 voxels per plane pixel in y and x."""
    others: np.ndarray | None = None
    """bool: the outlines of the truth's other classes in the slice (``None``: there are none)."""
    other_names: tuple[str, ...] = ()


def _spatial(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(int(v) for v in shape[-3:])  # type: ignore[return-value]


def _shared_level(
    levels: Sequence[LevelInfo], pred: Sequence[LevelInfo], truth: Sequence[LevelInfo]
) -> tuple[int, LevelInfo, LevelInfo, LevelInfo] | None:
    """The finest image level with y, x ≤ :data:`MAX_EDGE` where both label images have a level
    of the same spatial shape (else the coarsest such level, if within :data:`LIMIT_EDGE`)."""
    by_pred = {_spatial(lv.shape): lv for lv in pred}
    by_truth = {_spatial(lv.shape): lv for lv in truth}
    shared = [
        (i, lv, by_pred[_spatial(lv.shape)], by_truth[_spatial(lv.shape)])
        for i, lv in enumerate(levels)
        if _spatial(lv.shape) in by_pred and _spatial(lv.shape) in by_truth
    ]
    for option in shared:
        if max(_spatial(option[1].shape)[1:]) <= MAX_EDGE:
            return option
    if shared and max(_spatial(shared[-1][1].shape)[1:]) <= LIMIT_EDGE:
        return shared[-1]
    return None


def _read_slice(path: Path, level: LevelInfo, z: int) -> np.ndarray:
    import zarr

    arr = zarr.open_array(str(path / level.path), mode="r")
    index: list[Any] = [0] * (arr.ndim - 3) + [z, slice(None), slice(None)]
    return np.asarray(arr[tuple(index)])


def _columns(whole: WholeVolumeScores) -> tuple[dict[tuple[int, int, int, int], np.ndarray], int]:
    """Counts summed over z per tile column (y0, x0, y1, x1), and the level-0 z of the middle of
    the layer of tiles with the most wrong voxels (the volume's middle when there are none)."""
    fields = [COUNT_FIELDS.index(f) for f in ("tp", "fp", "fn", "scored")]
    cols: dict[tuple[int, int, int, int], np.ndarray] = {}
    layers: dict[tuple[int, int], int] = {}
    boxes = list(tiles(whole.image_shape, whole.tile, whole.x_edges))
    if len(boxes) != len(whole.counts):
        msg = f"{len(whole.counts)} tile rows for {len(boxes)} tiles"
        raise ValueError(msg)
    for box, row in zip(boxes, whole.counts, strict=True):
        key = (box.offset[1], box.offset[2], box.stop[1], box.stop[2])
        cols[key] = cols.get(key, np.zeros(4, np.int64)) + row[fields]
        layer = (box.offset[0], box.stop[0])
        layers[layer] = layers.get(layer, 0) + int(row[fields[1]] + row[fields[2]])
    worst = max(layers.items(), key=lambda kv: kv[1], default=None)
    if worst is None or worst[1] == 0:
        return cols, whole.image_shape[0] // 2
    (z0, z1), _ = worst
    return cols, (z0 + z1 - 1) // 2


def whole_volume_panel(
    image: Path,
    whole: WholeVolumeScores,
    *,
    pred: str,
    truth: str,
    label_value: int,
    pred_value: int,
    exclusion: Sequence[Box] = (),
    unannotated: Collection[int] = (),
) -> WholePanel | None:
    """Read what :func:`whole_volume_png` draws (one plane of each image; see the module notes)."""
    if not Path(image).is_dir():
        return None
    info = read_image_info(image)
    labels = {lab.name: lab for lab in info.labels}
    if info.problem or pred not in labels or truth not in labels:
        return None
    picked = _shared_level(info.levels, labels[pred].levels, labels[truth].levels)
    if picked is None:
        return None
    index, img_lv, pred_lv, truth_lv = picked
    full = whole.image_shape
    shape = _spatial(img_lv.shape)
    cols, z = _columns(whole)
    zk = min(shape[0] - 1, z * shape[0] // full[0])
    sy, sx = full[1] / shape[1], full[2] / shape[2]
    raw = _read_slice(Path(image), img_lv, zk)
    t = _read_slice(labels[truth].path, truth_lv, zk)
    p = _read_slice(labels[pred].path, pred_lv, zk) == pred_value
    ignore = np.isin(t, list(unannotated)) if unannotated else np.zeros(t.shape, bool)
    other = (t != 0) & (t != label_value) & ~ignore
    others: np.ndarray | None = None
    other_names: tuple[str, ...] = ()
    if other.any():
        from scipy import ndimage

        others = other & ~ndimage.binary_erosion(other, border_value=1)
        names = labels[truth].names
        other_names = tuple(names.get(int(v), f"label {int(v)}") for v in np.unique(t[other]))
    dice_map = np.full(shape[1:], np.nan, np.float32)
    for (y0, x0, y1, x1), (tp, fp, fn, scored) in cols.items():
        if scored == 0:
            continue
        value = -1.0 if tp + fp + fn == 0 else ratio_scores(tp, fp, fn)["dice"]
        ys = slice(int(y0 / sy), max(int(y0 / sy) + 1, math.ceil(y1 / sy)))
        xs = slice(int(x0 / sx), max(int(x0 / sx) + 1, math.ceil(x1 / sx)))
        dice_map[ys, xs] = value
    excluded = [  # grown boxes may reach past the volume's edges: clipped to it
        (
            max(0, b.offset[1]) / sy,
            max(0, b.offset[2]) / sx,
            min(full[1], b.stop[1]) / sy,
            min(full[2], b.stop[2]) / sx,
        )
        for b in exclusion
        if b.offset[0] <= z < b.stop[0]
    ]
    x_bins = []
    tp_i, fp_i, fn_i, truth_i = (COUNT_FIELDS.index(f) for f in ("tp", "fp", "fn", "truth"))
    for i, (a, b) in enumerate(zip(whole.x_edges, whole.x_edges[1:], strict=False)):
        rows = whole.counts[whole.tile_bin == i]
        tp, fp, fn = (int(rows[:, j].sum()) for j in (tp_i, fp_i, fn_i))
        dice = ratio_scores(tp, fp, fn)["dice"] if rows[:, truth_i].sum() else None
        x_bins.append((a / sx, b / sx, dice))
    return WholePanel(
        raw=raw,
        truth=(t == label_value) & ~ignore,
        pred=p & ~ignore,
        excluded=excluded,
        dice_map=dice_map,
        x_bins=x_bins,
        z=z,
        level=index,
        downsample=(sy, sx),
        others=others,
        other_names=other_names,
    )


def _overlay(panel: WholePanel) -> np.ndarray:
    g = to_grey(panel.raw, grey_window([panel.raw], (1, 99))).astype(np.float32)
    rgb = np.stack([g] * 3, -1)
    t, p = panel.truth, panel.pred
    for mask, colour in ((t & p, FOUND_COLOUR), (p & ~t, FP_COLOUR), (t & ~p, FN_COLOUR)):
        rgb[mask] = rgb[mask] * (1 - ALPHA) + ALPHA * np.array(colour, np.float32)
    if panel.others is not None:
        rgb[panel.others] = CUT_LINE
    return rgb.clip(0, 255).astype(np.uint8)


def _map_rgb(dice_map: np.ndarray) -> np.ndarray:
    rgb = viridis(np.clip(dice_map, 0, 1))
    rgb[dice_map < 0] = EMPTY_COLOUR
    rgb[np.isnan(dice_map)] = NOT_SCORED
    return rgb


def _ramp(draw: ImageDraw.ImageDraw, left: int, top: int, width: int) -> None:
    """The map's colour scale: a 0-1 viridis bar with its ends named."""
    fnt = font(TEXT_SIZE)
    draw.text((left, top + 2), "map: Dice 0", fill=TEXT, font=fnt)
    x0 = left + 6 + int(fnt.getlength("map: Dice 0"))
    colours = viridis(np.linspace(0, 1, width))
    for i, c in enumerate(colours):
        draw.line([(x0 + i, top + 5), (x0 + i, top + 16)], fill=(int(c[0]), int(c[1]), int(c[2])))
    draw.rectangle([x0 - 1, top + 4, x0 + width, top + 17], outline=MUTED)
    draw.text((x0 + width + 6, top + 2), "1", fill=TEXT, font=fnt)


def whole_volume_png(
    panel: WholePanel,
    *,
    class_name: str,
    title: str,
    pixel_size: float | None = None,
    unit: str | None = None,
) -> bytes:
    """The two panels of the module notes, a legend and a Dice ramp, as PNG bytes."""
    h, w = panel.raw.shape[-2:]
    zoom = max(1, PANEL // max(h, w, 1))
    scale = min(PANEL / max(h * zoom, w * zoom, 1), 1.0) * zoom
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    head = 22
    width = PAD * 2 + 2 * size[0] + 3 * PAD
    legend = [
        LegendItem(FOUND_COLOUR, f"{class_name}: found"),
        LegendItem(FP_COLOUR, f"called {class_name}, is not"),
        LegendItem(FN_COLOUR, f"{class_name} missed"),
        *(
            [LegendItem(CUT_LINE, "truth's " + ", ".join(panel.other_names), "outline")]
            if panel.others is not None
            else []
        ),
        *(
            [LegendItem(CROP_LINE, "training region (not scored)", "dashed")]
            if panel.excluded
            else []
        ),
        LegendItem(EMPTY_COLOUR, f"map: no {class_name} in truth or prediction"),
        LegendItem(NOT_SCORED, "map: not scored"),
    ]
    lrows = legend_rows(legend, width - 2 * PAD)
    top = TITLE_H + 4
    height = top + head + size[1] + PAD + lrows * LEGEND_ROW + LEGEND_ROW + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text(
        (PAD, 6),
        fit_text(title, width - 2 * PAD, font(TITLE_SIZE)),
        fill=TEXT,
        font=font(TITLE_SIZE),
    )
    fnt = font(TEXT_SIZE)
    left_a, left_b = PAD, PAD + size[0] + 3 * PAD
    sy, sx = size[1] / h, size[0] / w
    draw.text(
        (left_a, top),
        fit_text(f"a  errors in the slice z = {panel.z}", size[0], fnt),
        fill=TEXT,
        font=fnt,
    )
    draw.text(
        (left_b, top),
        fit_text("b  Dice per column of tiles, all z; x-bins above", size[0], fnt),
        fill=TEXT,
        font=fnt,
    )
    y0 = top + head
    nearest = Image.Resampling.NEAREST
    canvas.paste(Image.fromarray(_overlay(panel), "RGB").resize(size, nearest), (left_a, y0))
    canvas.paste(
        Image.fromarray(_map_rgb(panel.dice_map), "RGB").resize(size, nearest), (left_b, y0)
    )
    for by0, bx0, by1, bx1 in panel.excluded:
        dashed_rectangle(
            draw,
            (left_a + bx0 * sx, y0 + by0 * sy, left_a + bx1 * sx - 1, y0 + by1 * sy - 1),
            CROP_LINE,
            2,
        )
    for i, (bx0, bx1, dice) in enumerate(panel.x_bins):
        if i:
            dashed_line(draw, (left_b + bx0 * sx, y0), (left_b + bx0 * sx, y0 + size[1]), TEXT, 1)
        text = "no truth" if dice is None else f"{dice:.2f}"
        tx = left_b + (bx0 + bx1) / 2 * sx - fnt.getlength(text) / 2
        tag(draw, (int(max(left_b + 2, tx)), y0 + 4), text)
    if pixel_size:
        scale_bar(
            draw,
            left_a + size[0] - 8,
            y0 + size[1] - 8,
            int(0.4 * size[0]),
            pixel_size * panel.downsample[1] / sx,
            unit,
        )
    ly = y0 + size[1] + PAD
    draw_legend(draw, legend, PAD, ly, width - 2 * PAD)
    _ramp(draw, PAD, ly + lrows * LEGEND_ROW, min(200, width // 3))
    return png_bytes(canvas)
