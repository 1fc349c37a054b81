"""`annotate suggest` quick predictions on a large image: one pre-processed input per box vs per candidate.

Without a probability image, ``curated annotate suggest`` predicts a small tile at the
centre of every candidate crop for the entropy term. On an image too large to
pre-process whole (``WHOLE_INPUT_VOXELS``), each quick tile used to be normalised on its
own, re-filtering the normalisation's halo around it (at 4.6 nm the 400 nm local contrast
reads 260 voxels each side of a 24-voxel tile). Candidates are now grouped into boxes
whose padded input fits ``UNIT_INPUT_BYTES`` (``UNIT_INPUT_VOXELS`` before 2026-12-06) and each
box is pre-processed once.

This script times, in one process on one thread, round by round:

- ``per-candidate``: the earlier way (``predict_tile`` with no shared input: each tile
  reads and normalises its own padded region);
- ``boxed``: the whole scoring as the command runs it (``score_candidates(...,
  probability="")``, per-crop statistics included, so the ratio understates the gain on
  the quick tiles alone);

and checks that both give the same entropy per candidate.

    OMP_NUM_THREADS=1 python benchmarks/suggest_input.py --image IMG.ome.zarr --model MODEL \\
        --pred pred --crop 20 128 128

The real-EM benchmark (``benchmarks/real_em.py``) leaves such an image (``vnc.ome.zarr``
with ``annotations`` and ``pred``) and its model in its scratch folder.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--pred", default="pred")
    p.add_argument("--labels", default="annotations")
    p.add_argument("--crop", type=int, nargs=3, default=None)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from curated.segment import _store
    from curated.segment.modelio import load_model

    predict_mod = importlib.import_module("curated.segment.predict")
    suggest = importlib.import_module("curated.segment.suggest")
    model = load_model(a.model)
    raw = _store.image_level0(a.image)
    crop = tuple(a.crop) if a.crop else None
    rows = []
    for r in range(a.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        s = suggest.score_candidates(
            a.image, model=model, pred=a.pred, labels=a.labels, crop_size=crop, probability=""
        )
        boxed = (time.perf_counter() - t0, time.process_time() - c0)
        quick = suggest._QuickPredictor(model, raw, "cpu", None, s.shape)  # None: no sharing
        todo = np.flatnonzero(s.eligible)
        t0, c0 = time.perf_counter(), time.process_time()
        alone = np.full(len(s.offsets), np.nan)
        for i in todo:
            prob = predict_mod.predict_tile(
                model, raw, quick.start(s.offsets[i]), quick.size, quick.dev, None
            )
            alone[i] = float(suggest.binary_entropy(prob).mean())
        per = (time.perf_counter() - t0, time.process_time() - c0)
        same = bool(np.allclose(alone[todo], s.uncertainty[todo], rtol=0, atol=1e-5))
        rows.append((r, len(todo), boxed, per, same))
        print(
            f"round {r}: {len(todo)} quick tiles (crop {s.shape}); "
            f"boxed (whole scoring) {boxed[0]:.1f} s wall {boxed[1]:.1f} s CPU; "
            f"per-candidate (quick tiles only) {per[0]:.1f} s wall {per[1]:.1f} s CPU; "
            f"ratio {per[1] / boxed[1]:.1f}x CPU; same entropies: {same}; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
