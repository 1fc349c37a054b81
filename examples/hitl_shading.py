"""Human in the loop on a shaded FIB-SEM sample: see the drop, annotate there, see the recovery.

Run::

    python examples/hitl_shading.py [DEST] [--quick]

1. makes a synthetic sample whose brightness falls along x (shading 0.6),
2. draws 8 random test blocks with a recorded seed *before* any training,
3. trains a 3D U-Net from crops annotated on the bright half only,
4. evaluates it on the test blocks, per shading side: the shaded half drops,
5. adds crops on the shaded half and fine-tunes the model,
6. trains a model with shading correction on all the crops,
7. evaluates each on the *same* blocks and prints the before/after table.

Everything is recorded in DEST's curator log (``curated log DEST --verify``).
``--quick`` (a smaller sample and a shallower net) took about 3 minutes on a busy 2-core machine;
the full size has not been timed (expect tens of minutes on 2 CPU cores). Figures: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from curated.segment.hitl import format_table, run_hitl_story
from curated.workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dest",
        nargs="?",
        default="hitl-shading",
        help="workspace folder to create (default: ./hitl-shading)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small, fast run (numbers are noisier)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    dest = Path(args.dest)
    ws = Workspace.create(
        dest,
        record={
            "study": {
                "title": "Human-in-the-loop segmentation of a shaded synthetic FIB-SEM sample"
            }
        },
        exist_ok=True,
    )
    if args.quick:
        settings = {
            "shape": (40, 192, 224),
            "crops_per_round": 3,
            "crop_size": (16, 32, 32),
            "blocks": 10,
            "block_size": 16,
            "iterations": 200,
            "finetune_iterations": 150,
            "depth": 1,
            "base_features": 8,
            "patch": 24,
            "shading_sigma": 4.0,
        }
    else:
        settings = {
            "shape": (48, 256, 320),
            "crops_per_round": 3,
            "crop_size": (24, 32, 32),
            "blocks": 8,
            "block_size": 24,
            "iterations": 400,
            "finetune_iterations": 300,
            "depth": 2,
            "base_features": 8,
            "patch": 24,
            "shading_sigma": 4.0,
        }
    t0 = time.perf_counter()
    story = run_hitl_story(
        ws.derived_dir, seed=args.seed, workspace=ws, log=lambda m: print(m, flush=True), **settings
    )
    rows = story.table()
    print()
    print(
        f"{len(story.held_out.blocks)} held-out blocks of {story.held_out.block_size} (seed {story.held_out.seed}), "
        f"the same in every round: {rows[0]['blocks_bright']} on the bright half, {rows[0]['blocks_shaded']} on the shaded half"
    )
    print(format_table(rows))
    print(
        f"\n{time.perf_counter() - t0:.0f} s; evaluations in {ws.evaluations_dir}; log: curated log {dest} --verify"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
