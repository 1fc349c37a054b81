"""``curated bench formats``: which storage format serves which access pattern, measured.

The same volume (read block by block from an OME-Zarr image or any source
``curated convert`` reads) is written as multi-page TIFF (contiguous and tiled),
HDF5, Zarr v2, Zarr v3 sharded and N5 (see :mod:`curated.bench.storage`), then each
copy is timed on: random 64³ and 256³ block reads, xy/xz/yz slices, a full scan,
write time and size on disk. Each read is timed cold and warm:

- **cold**: the format's files are evicted from the page cache with
  ``posix_fadvise(DONTNEED)`` (no root needed; dropping the whole cache would need
  root), then a new handle is opened and the region read once; open time included;
- **warm**: the same region read again through the same handle (page cache and the
  library's own caches warm).

When the image has a label image, its per-object measurements are written as Parquet
and as CSV and those are timed too (size, write, read). The report is a table, a PNG
plot and a JSON record (also in the curator log when a workspace is given). Memory is
bounded by a slab or a block, never by the volume.
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from curated._io import atomic_write_text
from curated.bench.storage import (
    Layout,
    StorageFormat,
    Volume,
    cubes,
    disk_usage,
    evict,
    formats,
    slabs,
)
from curated.errors import InputError
from curated.progress import ProgressReporter, ensure_progress
from curated.results import Result
from curated.workspace import Workspace, recorder

FORMATS = tuple(f.name for f in formats(Layout()))
BLOCK_EDGES = (64, 256)


# ------------------------------------------------------------------ the volume
def open_volume(image: str | Path) -> tuple[Volume, Any]:
    """The level-0 array of an OME-Zarr image, or any source ``curated convert`` reads.

    Returns the volume and the OME-Zarr image (``None`` for other sources), whose
    labels the table benchmark measures.
    """
    from curated.images.reader import open_image
    from curated.images.sources import open_source
    from curated.images.store import read_group_attrs

    path = Path(image)
    img = None
    if path.is_dir() and read_group_attrs(path) is not None and not str(image).count(":/"):
        try:
            img = open_image(path)
        except InputError:
            img = None
    if img is not None:
        arr = img.levels[0]
        axes = "".join(img.axes)

        def read(region: tuple[slice, ...]) -> np.ndarray:
            return np.asarray(arr[region])

        shape, dtype = tuple(img.shape), img.dtype
    else:
        src = open_source(image)
        axes, shape, dtype, read = src.axes, tuple(src.shape), np.dtype(src.dtype), src.read
    if axes != "zyx":
        msg = f"has axes {axes}; bench formats needs a 3-D z,y,x volume"
        raise InputError(msg, path=path, field="axes")
    return Volume(read, shape, np.dtype(dtype).newbyteorder("=")), img  # type: ignore[arg-type]


# ------------------------------------------------------------------ the plan
def _positions(
    shape: tuple[int, ...], edge: int, n: int, rng: np.random.Generator
) -> list[tuple[slice, ...]]:
    size = [min(edge, s) for s in shape]
    out = []
    for _ in range(n):
        start = [int(rng.integers(0, s - e + 1)) for s, e in zip(shape, size, strict=True)]
        out.append(tuple(slice(a, a + e) for a, e in zip(start, size, strict=True)))
    return out


def _slices(shape: tuple[int, ...]) -> dict[str, tuple[slice, ...]]:
    z, y, x = (s // 2 for s in shape)
    full = [slice(0, s) for s in shape]
    return {
        "xy": (slice(z, z + 1), full[1], full[2]),
        "xz": (full[0], slice(y, y + 1), full[2]),
        "yz": (full[0], full[1], slice(x, x + 1)),
    }


def _cold_warm(fmt: StorageFormat, path: Path, region: tuple[slice, ...]) -> tuple[float, float]:
    evict(path)
    t0 = time.perf_counter()
    reader = fmt.open(path)
    try:
        reader.read(region)
        cold = time.perf_counter() - t0
        t1 = time.perf_counter()
        reader.read(region)
        warm = time.perf_counter() - t1
    finally:
        reader.close()
    return cold, warm


def _scan(
    fmt: StorageFormat, path: Path, shape: tuple[int, ...], itemsize: int, edge: int
) -> float:
    evict(path)
    t0 = time.perf_counter()
    reader = fmt.open(path)
    try:
        regions = slabs(shape, itemsize) if fmt.scan_in_planes else cubes(shape, edge)
        for region in regions:
            reader.read(region)
    finally:
        reader.close()
    return time.perf_counter() - t0


def _verify(fmt: StorageFormat, path: Path, vol: Volume, region: tuple[slice, ...]) -> None:
    reader = fmt.open(path)
    try:
        same = np.array_equal(reader.read(region), vol.read(region))
    finally:
        reader.close()
    if not same:
        msg = f"the {fmt.name} copy does not read back equal to the source; the benchmark is void"
        raise RuntimeError(msg)


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1e3, 3)


def _measure_format(
    fmt: StorageFormat,
    path: Path,
    vol: Volume,
    layout: Layout,
    plan: dict[str, Any],
) -> dict[str, Any]:
    """Write one format, then time every read of the plan on it."""
    write_s = fmt.write(vol, path, layout)
    disk, apparent, files = disk_usage(path)
    _verify(fmt, path, vol, plan["blocks"][BLOCK_EDGES[0]][0])
    row: dict[str, Any] = {
        "format": fmt.name,
        "library": fmt.library,
        "layout": fmt.layout,
        "write_s": round(write_s, 4),
        "disk_bytes": disk,
        "apparent_bytes": apparent,
        "files": files,
    }
    for edge, regions in plan["blocks"].items():
        times = [_cold_warm(fmt, path, r) for r in regions]
        row[f"block{edge}_cold_ms"] = _median_ms([c for c, _ in times])
        row[f"block{edge}_warm_ms"] = _median_ms([w for _, w in times])
    for name, region in plan["slices"].items():
        cold, warm = _cold_warm(fmt, path, region)
        row[f"{name}_cold_ms"] = round(cold * 1e3, 3)
        row[f"{name}_warm_ms"] = round(warm * 1e3, 3)
    scan = _scan(fmt, path, vol.shape, vol.dtype.itemsize, layout.shard)
    row["scan_s"] = round(scan, 4)
    row["scan_mb_s"] = round(plan["bytes"] / scan / 1e6, 1)
    return row


def _check_formats(names: list[str] | None, layout: Layout) -> list[StorageFormat]:
    every = formats(layout)
    if not names:
        return list(every)
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        msg = f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        raise InputError(msg, field="formats")
    return [f for f in every if f.name in names]


# ------------------------------------------------------------------ tables
def bench_tables(img: Any, labels: str | None, out: Path, repeats: int = 3) -> dict[str, Any]:
    """Measure ``labels`` of ``img`` once, then time Parquet against CSV for that table."""
    from curated.images.measure import measure_arrays, write_csv, write_parquet

    names = img.label_names() if img is not None else []
    if img is None or not names:
        return {
            "skipped": "the image has no label image to measure (add one with `curated labels add`)"
        }
    name = labels or names[0]
    lab = img.open_label(name)
    if lab.shape != img.shape:
        return {"skipped": f"label image {name!r} does not have the image's shape"}
    t0 = time.perf_counter()
    m = measure_arrays(
        lab.levels[0],
        img.levels[0],
        voxel_size=img.voxel_size,
        translation=tuple(img.translation[0]),
        unit=img.unit or "voxel",
    )
    record: dict[str, Any] = {
        "labels": name,
        "rows": m.rows,
        "columns": len(m.columns),
        "measure_s": round(time.perf_counter() - t0, 4),
    }
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for kind, write, read in (
        ("parquet", write_parquet, pq.read_table),
        ("csv", write_csv, pacsv.read_csv),
    ):
        dest = out / f"measurements.{kind}"
        writes, reads = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            write(m, dest)
            writes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            read(dest)
            reads.append(time.perf_counter() - t0)
        record[kind] = {
            "bytes": dest.stat().st_size,
            "write_ms": _median_ms(writes),
            "read_ms": _median_ms(reads),
            "units_kept": kind == "parquet",
        }
    return record


# ------------------------------------------------------------------ report
TABLE_COLUMNS = (
    ("format", "format", ""),
    ("write_s", "write s", ""),
    ("disk_bytes", "disk MB", "mb"),
    ("files", "files", ""),
    ("block64_cold_ms", "64³ cold ms", ""),
    ("block64_warm_ms", "64³ warm ms", ""),
    ("block256_cold_ms", "256³ cold ms", ""),
    ("block256_warm_ms", "256³ warm ms", ""),
    ("xy_cold_ms", "xy cold ms", ""),
    ("xz_cold_ms", "xz cold ms", ""),
    ("yz_cold_ms", "yz cold ms", ""),
    ("scan_mb_s", "scan MB/s", ""),
)


def table_rows(record: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the report table (also what RESULTS.md shows)."""
    header = [h for _, h, _ in TABLE_COLUMNS]
    rows = []
    for r in record["formats"]:
        cells = []
        for key, _, kind in TABLE_COLUMNS:
            v = r.get(key, "")
            cells.append(
                f"{v / 1e6:.1f}" if kind == "mb" else f"{v:g}" if isinstance(v, float) else str(v)
            )
        rows.append(cells)
    return header, rows


def markdown_table(record: dict[str, Any]) -> str:
    header, rows = table_rows(record)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plot(record: dict[str, Any], dest: Path) -> Path:
    """A PNG of the figures that decide a format: block, slice, scan, write, size."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    rows = record["formats"]
    names = [r["format"] for r in rows]
    panels = [
        (
            "random block reads, cold (ms, median)",
            ["block64_cold_ms", "block256_cold_ms"],
            ["64³", "256³"],
        ),
        ("slice reads, cold (ms)", ["xy_cold_ms", "xz_cold_ms", "yz_cold_ms"], ["xy", "xz", "yz"]),
        ("full scan, cold (MB/s)", ["scan_mb_s"], ["scan"]),
        ("write incl. fsync (s)", ["write_s"], ["write"]),
        ("size on disk (MB)", ["disk_bytes"], ["disk"]),
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 4.2), constrained_layout=True
    )
    y = np.arange(len(names))
    for ax, (title, keys, labels) in zip(axes, panels, strict=True):
        h = 0.8 / len(keys)
        for i, (k, lab) in enumerate(zip(keys, labels, strict=True)):
            vals = [r[k] / (1e6 if k == "disk_bytes" else 1) for r in rows]
            ax.barh(y + i * h - 0.4 + h / 2, vals, height=h, label=lab)
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.invert_yaxis()
        if "(ms" in title:
            ax.set_xscale("log")  # read times span orders of magnitude between formats
        ax.set_title(title, fontsize=9)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    src = record["source"]
    fig.suptitle(
        f"{Path(src['path']).name}: {'x'.join(map(str, src['shape']))} {src['dtype']} "
        f"({src['bytes'] / 1e6:.0f} MB); cold = evicted with posix_fadvise, fresh handle",
        fontsize=10,
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        fig.savefig(tmp, dpi=100, format="png")
        tmp.replace(dest)  # never a half-drawn plot under the final name
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return dest


# ------------------------------------------------------------------ the operation
_MARK = ".curated-bench-copies"


def _copies_dir(out: Path, image: Path) -> Path:
    """``out/copies``, emptied if an earlier run left it; never inside the source."""
    out_abs, img_abs = out.resolve(), image.resolve()
    if out_abs == img_abs or img_abs in out_abs.parents:
        msg = f"--out {out} lies inside the image; choose a folder outside it (sources are never modified)"
        raise InputError(msg, path=out, field="out")
    copies = out / "copies"
    if copies.exists():
        if not (copies / _MARK).exists():
            msg = "exists and was not made by `curated bench formats`; choose another --out"
            raise InputError(msg, path=copies, field="out")
        shutil.rmtree(copies)
    copies.mkdir(parents=True)
    (copies / _MARK).write_text("written by curated bench formats; safe to delete\n")
    return copies


def _plan(vol: Volume, blocks: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    plan = {
        "blocks": {
            e: _positions(
                vol.shape, e, blocks if e == BLOCK_EDGES[0] else max(1, (blocks + 1) // 2), rng
            )
            for e in BLOCK_EDGES
        },
        "slices": _slices(vol.shape),
        "bytes": int(np.prod(vol.shape)) * vol.dtype.itemsize,
    }
    return plan


def _describe_plan(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "blocks": {
            str(e): {"count": len(rs), "shape": [s.stop - s.start for s in rs[0]]}
            for e, rs in plan["blocks"].items()
        },
        "cold": "files evicted from the page cache with posix_fadvise(DONTNEED) after fsync, "
        "then a fresh handle opened and the region read once (open time included)",
        "warm": "the same region read again through the same handle",
        "write": "seconds inside the format's library plus fsync; reading the source left out",
    }


def bench_formats(
    image: str | Path,
    out: str | Path,
    *,
    formats_: list[str] | None = None,
    blocks: int = 5,
    seed: int = 0,
    labels: str | None = None,
    keep: bool = False,
    layout: Layout | None = None,
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> Result:
    """Write ``image`` in each storage format and time the access patterns of vEM work.

    Parameters
    ----------
    image
        OME-Zarr image (level 0 is used) or any source ``curated convert`` reads.
    out
        Folder for ``bench-formats.json``, ``bench-formats.png`` and (while running,
        or kept with ``keep``) the written copies under ``copies/``.
    formats_
        Subset of :data:`FORMATS` (default: all).
    blocks
        Random 64³ blocks timed per format (256³ blocks: half as many).

    Returns
    -------
    Result
        ``details``: the JSON record (``formats`` rows, ``tables``, ``source``, ``plan``).
    """
    layout = layout or Layout()
    chosen = _check_formats(formats_, layout)
    if blocks < 1:
        raise InputError(f"blocks must be at least 1, not {blocks}", field="blocks")
    out = Path(out)
    params = {"formats": [f.name for f in chosen], "blocks": blocks, "seed": seed, "labels": labels}
    with recorder(
        workspace,
        "E",
        "bench-formats",
        inputs=[image],
        params=params,
        libraries=("tifffile", "h5py", "zarr", "tensorstore", "pyarrow", "matplotlib"),
        hash_inputs=False,
    ) as step:
        vol, img = open_volume(image)
        copies = _copies_dir(out, Path(image))
        plan = _plan(vol, blocks, seed)
        rows = []
        prog = ensure_progress(progress)
        prog.start("benchmarking formats", len(chosen), "formats")
        try:
            for fmt in chosen:
                path = copies / f"volume-{fmt.name}{fmt.suffix}"
                rows.append(_measure_format(fmt, path, vol, layout, plan))
                prog.advance(1, format=fmt.name)
                if not keep:
                    _remove(path)
            tables = bench_tables(img, labels, copies)
        finally:
            prog.finish()
            if not keep:  # also after a failure or an interruption: the copies are scratch
                shutil.rmtree(copies, ignore_errors=True)
        record = {
            "source": {
                "path": str(image),
                "shape": list(vol.shape),
                "dtype": vol.dtype.name,
                "bytes": plan["bytes"],
            },
            "plan": _describe_plan(plan),
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "formats": rows,
            "tables": tables,
        }
        report = out / "bench-formats.json"
        atomic_write_text(report, json.dumps(record, indent=2) + "\n")
        png = plot(record, out / "bench-formats.png")
        step.add_output(report, role="report")
        step.add_output(png, role="figure")
        step.details = {"formats": rows, "tables": record["tables"]}
        step.message = (
            f"{len(rows)} formats timed on {'x'.join(map(str, vol.shape))} {vol.dtype.name}"
        )
    return Result(
        "bench-formats",
        "ok",
        str(report),
        step.message,
        {**record, "report": str(report), "plot": str(png)},
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
