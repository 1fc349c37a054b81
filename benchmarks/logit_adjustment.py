"""Where the decision threshold of a model trained with a class-weighted loss should lie.

Takes a model saved *without* the logit adjustment (``training.logit_adjustment``
absent, i.e. trained before it existed) and an image with a full ``truth`` label image,
and scores over every voxel outside the model's training regions (grown by context
and halo, as ``benchmarks/real_em.py`` does):

1. the probability image thresholded at 0.3 … 0.95 (what any fixed threshold gets);
2. the same weights with ``segment.train.logit_adjustment`` folded into the output
   bias, i.e. what ``curated segment train`` now saves, predicted exactly.

Run (the models of ``benchmarks/real_em.py --scratch DIR``)::

    OMP_NUM_THREADS=1 python benchmarks/logit_adjustment.py DIR/model DIR/vnc.ome.zarr --scratch /tmp/la

The image is copied into the scratch folder first (predictions are written into it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv: list[str] | None = None) -> int:
    import torch
    from real_em import tile_dice

    from curated.segment import _store
    from curated.segment.evaluate import training_exclusion
    from curated.segment.modelio import write_weights
    from curated.segment.train import adjusted_head, logit_adjustment

    predict = importlib.import_module("curated.segment.predict").predict
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("image", type=Path)
    p.add_argument("--truth", default="truth", help="label image holding the full truth")
    p.add_argument("--label-value", type=int, default=1)
    p.add_argument("--scratch", type=Path, required=True)
    a = p.parse_args(argv)

    meta = json.loads((a.model / "model.json").read_text())
    tr = meta["training"]
    if tr.get("logit_adjustment"):
        p.error("this model already carries a logit adjustment; give one trained before it existed")
    w = tr["class_weights"]
    adj = logit_adjustment((w["foreground"], w["background"]), tr["loss"])

    a.scratch.mkdir(parents=True, exist_ok=True)
    image = a.scratch / a.image.name
    shutil.rmtree(image, ignore_errors=True)
    shutil.copytree(a.image, image)
    adjusted = a.scratch / "adjusted-model"
    shutil.rmtree(adjusted, ignore_errors=True)
    shutil.copytree(a.model, adjusted, ignore=shutil.ignore_patterns("checkpoint*"))
    state = torch.load(adjusted / "weights.pt", map_location="cpu", weights_only=True)
    meta["weights"]["sha256"] = write_weights(adjusted, adjusted_head(state, adj))
    tr["logit_adjustment"] = adj
    (adjusted / "model.json").write_text(json.dumps(meta, indent=1))

    predict(a.model, image, name="raw", probabilities=True, device="cpu", workers=1)
    predict(adjusted, image, name="adjusted", device="cpu", workers=1)
    prob = np.asarray(_store.label_level0(image, "raw-probability")[...])
    truth = np.asarray(_store.label_level0(image, a.truth)[...]) == a.label_value
    held = np.ones(truth.shape, dtype=bool)
    for box in training_exclusion(a.model, image=image).boxes:
        held[box.slices] = False

    print(
        f"{a.model}: class weights {w['foreground']:.3f} / {w['background']:.3f}, "
        f"adjustment {adj:+.3f} (= threshold {1 / (1 + np.exp(adj)):.3f} on the raw probability); "
        f"scored on {held.mean():.1%} of the voxels"
    )
    print(f"{'decision':<34} {'Dice':>6} {'95% CI':>13} {'prec.':>6} {'recall':>6} {'pred. fg':>8}")
    rows = [
        (f"raw probability > {t:.2f}", prob > round(t * 255)) for t in np.arange(0.3, 0.96, 0.05)
    ]
    rows.append(
        ("adjusted weights, > 0.5", np.asarray(_store.label_level0(image, "adjusted")[...]) > 0)
    )
    for name, mask in rows:
        r = tile_dice(mask, truth, held)
        print(
            f"{name:<34} {r['dice']:>6.3f} {r['ci95'][0]:>6.3f}–{r['ci95'][1]:.3f} "
            f"{r['precision']:>6.3f} {r['recall']:>6.3f} {r['predicted_fraction']:>8.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
