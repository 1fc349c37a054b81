"""Human in the loop on a shaded FIB-SEM sample: train on the bright half, let `curated` say where to annotate next, fine-tune.

Run::

    python examples/hitl_shading.py [SCRATCH] [--seed N] [--rounds R]

This is one seed of ``benchmarks/hitl.py`` (the measured version runs five and prints
paired confidence intervals; its figures are in ``benchmarks/RESULTS.md``):

1. a training volume and an independent test volume with strong shading (0.6):
   brightness and contrast fall along x, lipid droplets and ER are as dark as
   mitochondria;
2. threshold baselines on the test volume (Otsu, CLAHE + Otsu, flat-field + Otsu);
3. a U-Net trained with the library's defaults on 3 crops from the bright half only;
4. R rounds of one new crop each, per strategy: ``curated annotate suggest``,
   random crops, and random crops that hold mitochondria; after each crop the
   model is fine-tuned once for 150 iterations (``--draws 1 --finetune-iterations
   150``) and scored on the whole test volume, per x-quarter (``curated segment
   finetune`` and the benchmark average three fine-tunings of 450 iterations by
   default, nine times the time: one fine-tuning is one sample of a noisy outcome,
   and 450 iterations scored higher on both benchmarks).

It takes about 20-30 minutes on 2 idle CPU cores (less with a GPU: ``--device cuda``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scratch", nargs="?", default="hitl-shading", help="work folder (kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "hitl.py"
    spec = importlib.util.spec_from_file_location("curated_hitl_benchmark", bench)
    if spec is None or spec.loader is None:
        print(f"cannot load {bench}", file=sys.stderr)
        return 1
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(
        module.main(
            [
                "--seeds",
                str(args.seed),
                "--rounds",
                str(args.rounds),
                "--device",
                args.device,
                "--scratch",
                args.scratch,
                # one short fine-tuning per round keeps the story within half an hour;
                # `curated segment finetune` averages three of 450 iterations (one draw can
                # swing a seed by 0.1)
                "--draws",
                "1",
                "--finetune-iterations",
                "150",
            ]
        )
    )


if __name__ == "__main__":
    sys.exit(main())
