"""PRONOM identification speed: curated's identify_format beside fido alone (the anchor), same files.

    python benchmarks/formats.py [--files N] [--scratch DIR]

Writes N files of a volume-EM dataset's kinds (TIFF slices, a BigTIFF stack, PNG
figures, JSON/YAML/Markdown documents, Zarr chunks) and identifies each with
``curated.curation.formats.identify_format`` and with fido 1.6.1 alone
(``Fido.identify_file``, PRONOM v109 signatures, containers off). Prints files per
second for each and where their PRONOM answers differ.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def make_files(root: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    kinds = ["tiff", "png", "json", "yaml", "md", "chunk", "chunk", "chunk"]
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "tiff":
            p = root / f"slice_{i:05d}.tif"
            tifffile.imwrite(
                p, rng.integers(0, 255, (64, 64), dtype=np.uint8), photometric="minisblack"
            )
        elif kind == "png":
            p = root / f"figure_{i:05d}.png"
            Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(p)
        elif kind == "json":
            p = root / f"meta_{i:05d}.json"
            p.write_text(json.dumps({"i": i, "values": list(range(20))}))
        elif kind == "yaml":
            p = root / f"record_{i:05d}.yaml"
            p.write_text(f"study:\n  title: volume {i}\n")
        elif kind == "md":
            p = root / f"notes_{i:05d}.md"
            p.write_text(f"# Notes {i}\n\nText.\n")
        else:
            d = root / "store" / "0" / "c" / str(i)
            d.mkdir(parents=True, exist_ok=True)
            p = d / "0"
            p.write_bytes(rng.bytes(4096))
        out.append(p)
    stack = root / "stack.tif"
    tifffile.imwrite(
        stack,
        rng.integers(0, 255, (8, 64, 64), dtype=np.uint8),
        bigtiff=True,
        photometric="minisblack",
    )
    out.append(stack)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--scratch", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.scratch))
    try:
        files = make_files(root, args.files)
        from curated.curation.formats import _Fido, identify_format

        t0 = time.perf_counter()
        _Fido.identify(files[0])  # load fido's signatures once (both runs then share them)
        load = time.perf_counter() - t0

        t0 = time.perf_counter()
        ours = [identify_format(p).puid for p in files]
        t_ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        fido = []
        for p in files:
            m = _Fido.identify(p)
            fido.append(m[0][0] if m else None)
        t_fido = time.perf_counter() - t0

        n = len(files)
        print(f"files: {n}; fido signature load: {load:.2f} s (once per process)")
        print("| identifier | files/s | ms/file | ratio |")
        print("|---|---:|---:|---:|")
        print(
            f"| curated identify_format | {n / t_ours:,.0f} | {1000 * t_ours / n:.2f} | {t_fido / t_ours:.1f}x |"
        )
        print(f"| fido 1.6.1 alone (anchor) | {n / t_fido:,.0f} | {1000 * t_fido / n:.2f} | 1.0x |")
        diff = Counter(
            (p.suffix or p.name, a, b) for p, a, b in zip(files, ours, fido, strict=True) if a != b
        )
        print("\nwhere the answers differ (extension or name, curated, fido): count")
        for key, count in sorted(diff.items(), key=str):
            print(f"- {key}: {count}")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
