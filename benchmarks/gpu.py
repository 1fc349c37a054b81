"""Training and prediction on a CUDA GPU, measured beside the CPU path on the same machine.

One seed of ``benchmarks/hitl.py``'s bright-only protocol (shaded synthetic FIB-SEM, three
annotated crops on the bright half, the library's default network and settings), then:

1. ``train``: the default 1200 iterations on the GPU in mixed precision (``auto``: bf16),
   in float32, and with a batch of 8; iterations/s, patch voxels/s, validation Dice against
   wall time (time to quality), and the whole-volume Dice on an independent test volume;
2. ``cpu``: iterations/s of the same training on the machine's CPU (all cores, and 2 threads,
   the CI machines' count), a few dozen iterations each;
3. ``determinism``: two GPU runs with the same seed, and a run interrupted after a
   checkpoint then resumed, compared by the weights' sha256 (the CPU path is bit-identical,
   tests/test_segment_train.py); and whether ``torch.use_deterministic_algorithms`` accepts
   the network's backward pass;
4. ``predict``: a larger volume segmented on the GPU (bf16, fp32, two tile sizes) and on the
   CPU (all cores); voxels/s end to end (reading and writing OME-Zarr included), the share of
   voxels where the GPU's labels differ from the CPU's, and each one's Dice against the truth;
5. ``finetune``: one fine-tuning with ``draws=2`` (the weight average) on a shaded crop.

Each stage is skipped once ``--budget-s`` is spent; the JSON is rewritten after every stage,
so a run stopped early keeps what it measured::

    python benchmarks/gpu.py --scratch /tmp/gpu --out /tmp/gpu/gpu.json
    python benchmarks/gpu.py --stages train predict --budget-s 240 ...   # one short call

Needs a CUDA GPU (``--device cuda``); ``--device cpu --quick`` runs the same stages on a CPU,
to check the script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hitl  # noqa: E402  (the bright-only protocol and the tile scores)

MITO = hitl.MITO
STAGES = ("train", "determinism", "cpu", "predict", "finetune", "train-fp32", "train-batch8")
"""What ``--stages`` chooses from, in the order they run (the volumes are always made first)."""


class Clock:
    """A progress reporter that notes when each training iteration ends."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.marks: list[float] = []
        self.unit = ""
        self.stop_after = stop_after

    def start(self, description: str, total: float | None, unit: str = "") -> None:
        self.unit = unit

    def advance(self, amount: float = 1, **info: object) -> None:
        if self.unit == "iterations":
            self.marks.append(time.perf_counter())
            if self.stop_after is not None and len(self.marks) == self.stop_after:
                raise Interrupted

    def finish(self) -> None:
        return None

    def rate(self) -> float | None:
        """Iterations per second between the first and the last iteration (set-up left out)."""
        if len(self.marks) < 3:
            return None
        return (len(self.marks) - 1) / (self.marks[-1] - self.marks[0])


class Interrupted(Exception):
    pass


def _env(device: str) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cuda": torch.version.cuda,
    }
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(
            gpu=p.name,
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(),
        )
    return out


class Bench:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.t0 = time.perf_counter()
        self.root = Path(a.scratch)
        self.root.mkdir(parents=True, exist_ok=True)
        self.res: dict[str, Any] = {"env": _env(a.device), "args": vars(a), "stages": {}}

    # ------------------------------------------------------------ bookkeeping
    def left(self) -> float:
        return self.a.budget_s - (time.perf_counter() - self.t0)

    def save(self) -> None:
        if self.a.out:
            Path(self.a.out).write_text(json.dumps(self.res, indent=1, default=str))

    def stage(self, name: str, fn, need_s: float) -> None:
        if self.left() < need_s:
            self.res["stages"][name] = {"skipped": f"{self.left():.0f} s of the budget left"}
            print(f"[{name}] skipped: {self.left():.0f} s left", flush=True)
            self.save()
            return
        t = time.perf_counter()
        try:
            self.res["stages"][name] = fn()
        except Exception as e:  # noqa: BLE001  (a failed stage is a finding; the others still run)
            import traceback

            self.res["stages"][name] = {"error": f"{type(e).__name__}: {e}"}
            traceback.print_exc()
        self.res["stages"][name]["stage_s"] = round(time.perf_counter() - t, 1)
        print(f"[{name}] {time.perf_counter() - t:.1f} s", flush=True)
        self.save()

    # ------------------------------------------------------------ volumes
    def volumes(self) -> dict[str, Any]:
        from curated.segment import _store
        from curated.segment.annotate import import_annotation
        from curated.segment.sample import make_fibsem_sample

        a, root = self.a, self.root
        self.train_img, self.test_img = root / "train.ome.zarr", root / "test.ome.zarr"
        make_fibsem_sample(
            self.train_img, shape=tuple(a.shape), shading=0.6, seed=a.seed, overwrite=True
        )
        make_fibsem_sample(
            self.test_img, shape=tuple(a.shape), shading=0.6, seed=a.seed + 1000, overwrite=True
        )
        self.truth_train = np.asarray(_store.label_level0(self.train_img, "truth")[...])
        self.truth_test = np.asarray(_store.label_level0(self.test_img, "truth")[...]) == MITO
        self.boxes = hitl.bright_boxes(self.truth_train, a.seed, 3, a.crop_size, 0.25)
        for i, box in enumerate(self.boxes):
            f = root / f"bright-{i}.npy"
            np.save(f, self.truth_train[box.slices].astype(np.uint8))
            import_annotation(self.train_img, source_file=f, offset=box.offset, name="bright")
        raw = np.asarray(_store.image_level0(self.test_img)[...])
        return {
            "shape": list(a.shape),
            "test_raw_sha256": hashlib.sha256(raw.tobytes()).hexdigest(),
            "crops": [b.to_dict() for b in self.boxes],
        }

    def score(self, model: Path, tag: str, device: str) -> dict[str, Any]:
        counts = hitl.predicted_counts(model, self.test_img, f"p-{tag}", self.truth_test, device)
        s = hitl.summary(counts)
        return {k: s[k] for k in ("dice", "precision", "recall", "bright", "shaded")}

    # ------------------------------------------------------------ stages
    def train_run(
        self,
        tag: str,
        *,
        device: str,
        precision: str = "auto",
        batch_size: int = 2,
        iterations: int | None = None,
        threads: int | None = None,
        score: bool = True,
        stop_after: int | None = None,
        checkpoint_every: int = 100,
    ) -> dict[str, Any]:
        import torch

        from curated.segment.train import train

        old = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        clock = Clock(stop_after)
        out = self.root / tag
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        kw = {"iterations": iterations} if iterations else {}
        try:
            r = train(
                self.train_img,
                labels="bright",
                label_value=MITO,
                out=out,
                device=device,
                precision=precision,
                batch_size=batch_size,
                seed=self.a.seed,
                checkpoint_every=checkpoint_every,
                overwrite=stop_after is not None or not (out / "checkpoint.pt").exists(),
                progress=clock,
                **kw,
            )
        except Interrupted:
            return {"interrupted_after": stop_after}
        finally:
            torch.set_num_threads(old)
        wall = time.perf_counter() - t0
        meta = json.loads((out / "model.json").read_text())
        tr = meta["training"]
        patch = int(np.prod(tr["output_patch"]))
        rate = clock.rate()
        res: dict[str, Any] = {
            "device": device,
            "precision": tr.get("precision"),
            "batch_size": batch_size,
            "iterations": tr["iterations"],
            "wall_s": round(wall, 2),
            "iterations_per_s": round(rate, 2) if rate else None,
            "output_patch": tr["output_patch"],
            "input_patch": tr["input_patch"],
            "patch_voxels_per_s": round(rate * patch * batch_size) if rate and patch else None,
            "weights_sha256": r.details.get("weights_sha256"),
            "resumed_from": r.details.get("resumed_from"),
        }
        if device == "cuda":
            res["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        if clock.marks:
            first = clock.marks[0]
            res["time_to_quality"] = [
                {
                    "iteration": h["iteration"],
                    "s": round(clock.marks[min(h["iteration"], len(clock.marks)) - 1] - t0, 2),
                    "val_dice": round(h["val_dice"], 4),
                }
                for h in tr.get("history", meta.get("history", []))
                if h["iteration"] <= len(clock.marks)
            ]
            res["setup_s"] = round(first - t0, 2)
        if score:
            res["whole_volume"] = self.score(out, tag, self.a.device)
        print(
            f"  {tag}: {json.dumps({k: res[k] for k in ('wall_s', 'iterations_per_s', 'patch_voxels_per_s')})}"
        )
        if "whole_volume" in res:
            print(f"  {tag}: whole volume {res['whole_volume']}", flush=True)
        return res

    def determinism(self) -> dict[str, Any]:
        import torch

        d, n = self.a.device, self.a.det_iterations
        res: dict[str, Any] = {}
        for prec in ("fp32", "auto"):
            kw = {
                "device": d,
                "precision": prec,
                "iterations": n,
                "score": False,
                "checkpoint_every": 10,
            }
            a1 = self.train_run(f"det-{prec}-a", **kw)
            a2 = self.train_run(f"det-{prec}-b", **kw)
            self.train_run(f"det-{prec}-c", stop_after=n // 2 + 5, **kw)
            a3 = self.train_run(f"det-{prec}-c", **kw)
            w = [
                torch.load(self.root / f"det-{prec}-{k}" / "weights.pt", map_location="cpu")
                for k in "abc"
            ]
            w = [x.get("state_dict", x) if isinstance(x, dict) else x for x in w]

            def maxdiff(p, q):
                return max(
                    float((p[k].float() - q[k].float()).abs().max())
                    for k in p
                    if torch.is_tensor(p[k]) and p[k].is_floating_point()
                )

            res[prec] = {
                "same_seed_identical": a1["weights_sha256"] == a2["weights_sha256"],
                "resumed_identical": a1["weights_sha256"] == a3["weights_sha256"],
                "resumed_from": a3["resumed_from"],
                "max_abs_weight_diff_same_seed": maxdiff(w[0], w[1]),
                "max_abs_weight_diff_resumed": maxdiff(w[0], w[2]),
            }
            print(f"  determinism {prec}: {res[prec]}", flush=True)
        if d == "cuda":
            try:
                torch.use_deterministic_algorithms(True)
                self.train_run("det-strict", device=d, precision="fp32", iterations=4, score=False)
                res["use_deterministic_algorithms"] = "accepted"
            except Exception as e:  # noqa: BLE001
                res["use_deterministic_algorithms"] = f"{type(e).__name__}: {str(e)[:300]}"
            finally:
                torch.use_deterministic_algorithms(False)
        return res

    def predict_stage(self) -> dict[str, Any]:
        import torch

        from curated.segment import _store
        from curated.segment.predict import predict
        from curated.segment.sample import make_fibsem_sample

        a = self.a
        big = self.root / "big.ome.zarr"
        if not big.exists():
            make_fibsem_sample(big, shape=tuple(a.predict_shape), shading=0.6, seed=a.seed + 2000)
        truth = np.asarray(_store.label_level0(big, "truth")[...]) == MITO
        model = self.root / "train-bf16"
        runs = [("cpu fp32", "cpu", "fp32", None)]
        if a.device == "cuda":
            runs = [
                ("cuda bf16", "cuda", "auto", None),
                ("cuda bf16 tile 64x256x256", "cuda", "auto", (64, 256, 256)),
                ("cuda fp32", "cuda", "fp32", None),
                ("cuda fp32 tile 64x256x256", "cuda", "fp32", (64, 256, 256)),
                *runs,
            ]
        res: dict[str, Any] = {"voxels": int(np.prod(a.predict_shape))}
        masks = {}
        for tag, dev, prec, block in runs:
            if self.left() < 20:
                res[tag] = {"skipped": "budget"}
                continue
            name = "p-" + tag.replace(" ", "-")
            kw = {"block": block} if block else {}
            if dev == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            r = predict(model, big, name=name, device=dev, precision=prec, overwrite=True, **kw)
            wall = time.perf_counter() - t
            m = np.asarray(_store.label_level0(big, name)[...]) == MITO
            masks[tag] = m
            s = hitl.summary(hitl.tile_counts(m, truth))
            res[tag] = {
                "wall_s": round(wall, 2),
                "voxels_per_s": round(res["voxels"] / wall),
                "network_voxels_per_s": round(r.details.get("voxels_per_second") or 0),
                "tile": r.details.get("tile"),
                "dice_truth": round(s["dice"], 4),
            }
            print(f"  predict {tag}: {res[tag]}", flush=True)
        ref = masks.get("cpu fp32")
        for tag, m in masks.items():
            for other in ("cpu fp32", "cuda fp32"):
                o = masks.get(other)
                if o is not None and other != tag:
                    res[tag][f"voxels_differing_from_{other.replace(' ', '_')}"] = int(
                        (m != o).sum()
                    )
        if ref is not None:
            res["cpu_foreground_voxels"] = int(ref.sum())
        return res

    def finetune_stage(self) -> dict[str, Any]:
        from curated.segment.annotate import import_annotation
        from curated.segment.train import finetune

        rng = np.random.default_rng(self.a.seed + 99)
        shape = tuple(self.a.shape)
        size = tuple(self.a.crop_size)
        for _ in range(200):
            box = hitl.random_crop(
                shape, size, self.boxes, rng, truth=self.truth_train, min_fraction=0.02
            )
            if box.offset[2] >= shape[2] // 2:
                break
        for i, b in enumerate([*self.boxes, box]):
            f = self.root / f"ft-{i}.npy"
            np.save(f, self.truth_train[b.slices].astype(np.uint8))
            import_annotation(self.train_img, source_file=f, offset=b.offset, name="ft")
        t = time.perf_counter()
        r = finetune(
            self.root / "train-bf16",
            self.train_img,
            labels="ft",
            out=self.root / "ft2",
            draws=2,
            device=self.a.device,
            seed=self.a.seed + 1,
            overwrite=True,
        )
        res = {
            "crop": box.to_dict(),
            "wall_s": round(time.perf_counter() - t, 2),
            "status": r.status,
            "whole_volume": self.score(self.root / "ft2", "ft2", self.a.device),
        }
        print(f"  finetune draws=2: {res}", flush=True)
        return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=int, nargs=3, default=[40, 160, 256])
    p.add_argument("--crop-size", type=int, nargs=3, default=[24, 48, 48])
    p.add_argument("--predict-shape", type=int, nargs=3, default=[64, 512, 512])
    p.add_argument("--iterations", type=int, default=None, help="[default: the library's]")
    p.add_argument("--cpu-iterations", type=int, default=60)
    p.add_argument("--det-iterations", type=int, default=40)
    p.add_argument("--budget-s", type=float, default=420.0)
    p.add_argument("--scratch", default="/tmp/curated-gpu")
    p.add_argument("--out", default=None)
    p.add_argument(
        "--stages",
        nargs="+",
        default=None,
        choices=STAGES,
        help="run only these; several short calls lose less to a machine that stops answering",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the script, measures nothing"
    )
    a = p.parse_args(argv)
    if a.quick:
        a.iterations, a.cpu_iterations, a.det_iterations = 30, 6, 20
        a.predict_shape = [32, 128, 128]
    b = Bench(a)
    dev = a.device

    def cpu_rates() -> dict[str, Any]:
        return {
            f"{t} threads": b.train_run(
                f"cpu-{t}t",
                device="cpu",
                precision="fp32",
                iterations=a.cpu_iterations if t > 2 else max(a.cpu_iterations // 2, 3),
                threads=t,
                score=False,
                checkpoint_every=10_000,
            )
            for t in sorted({os.cpu_count() or 2, 2}, reverse=True)
        }

    stages = {  # name: (what it runs, seconds of budget it needs to start)
        "train": (lambda: b.train_run("train-bf16", device=dev, iterations=a.iterations), 60),
        "determinism": (b.determinism, 60),
        "cpu": (cpu_rates, 60),
        "predict": (b.predict_stage, 60),
        "finetune": (b.finetune_stage, 60),
        "train-fp32": (
            lambda: b.train_run(
                "train-fp32", device=dev, precision="fp32", iterations=a.iterations
            ),
            90,
        ),
        "train-batch8": (
            lambda: b.train_run("train-bf16-b8", device=dev, batch_size=8, iterations=a.iterations),
            120,
        ),
    }
    assert list(stages) == list(STAGES)
    chosen = a.stages or list(stages)
    b.stage("volumes", b.volumes, 0)
    if {"predict", "finetune"} & set(chosen) and "train" not in chosen:
        chosen = ["train", *chosen]  # they start from the default GPU-trained model
    for name in stages:
        if name in chosen:
            b.stage(name, *stages[name])
    b.res["total_s"] = round(time.perf_counter() - b.t0, 1)
    b.save()
    print(json.dumps(b.res["stages"], indent=1, default=str)[-6000:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
