"""Where a training step and a prediction tile spend their time, per planned U-Net.

For the networks ``curated segment train`` plans at three voxel sizes (8 nm isotropic
FIB-SEM, 50 × 4.6 × 4.6 nm ssTEM, 5 nm isotropic FIB-SEM), prints

- the median seconds of one training step (forward, backward, Adam; batch 2 of the
  planned output patch) and of one prediction tile (eval mode, no autograd),
  in PyTorch's default memory layout and in ``channels_last_3d``;
- each 3D convolution's forward and backward time and its GFLOP/s, so that a slow layer
  stands out (``--layers``).

The arithmetic is the same in both layouts (outputs agree to float rounding); only the
kernels oneDNN picks differ, and which is faster depends on the CPU and the thread count.

    python benchmarks/train_step.py --threads 1 --layers
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import torch

from curated.segment._heap import training_heap
from curated.segment.unet import UNet3D, UNetConfig

train_mod = importlib.import_module("curated.segment.train")

CASES = {
    "8nm": ((8.0, 8.0, 8.0), (24, 48, 48)),
    "ssTEM": ((50.0, 4.6, 4.6), (8, 68, 68)),
    "5nm": ((5.0, 5.0, 5.0), (24, 24, 24)),
}
TILE = {"8nm": (64, 128, 128), "ssTEM": (16, 128, 128), "5nm": (64, 128, 128)}


def _median(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_seconds(cfg: UNetConfig, out: tuple[int, ...], layout: str, repeats: int) -> float:
    geom = cfg.geometry
    o = geom.valid_output(out)
    torch.manual_seed(0)
    net = UNet3D(cfg)
    x = torch.randn(2, 1, *geom.input_for(o))
    if layout == "channels_last_3d":
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    target = (torch.rand(2, *o) > 0.8).float()
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with training_heap():
        return _median(step, repeats)


def tile_seconds(cfg: UNetConfig, tile: tuple[int, ...], layout: str, repeats: int) -> float:
    geom = cfg.geometry
    torch.manual_seed(0)
    net = UNet3D(cfg).eval()
    x = torch.randn(1, 1, *geom.input_for(geom.valid_output(tile)))
    if layout == "channels_last_3d":
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)

    def run() -> None:
        with torch.inference_mode():
            net(x)

    return _median(run, repeats)


def layer_table(cfg: UNetConfig, out: tuple[int, ...], repeats: int) -> None:
    """Each convolution's forward and backward on its own, at the shapes the step feeds it."""
    geom = cfg.geometry
    net = UNet3D(cfg)
    x = torch.randn(2, 1, *geom.input_for(geom.valid_output(out)))
    shapes: list[tuple[str, torch.nn.Conv3d, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, _y, name=name: shapes.append((name, mod, tuple(inp[0].shape)))
        )
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.Conv3d)
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    print(f"  {'convolution':24s} {'in shape':>22s} {'fwd ms':>8s} {'bwd ms':>8s} {'GFLOP/s':>8s}")
    for name, conv, shape in shapes:
        inp = torch.randn(shape, requires_grad=name != "down.0.0")
        y = conv(inp)
        grad = torch.ones_like(y)
        fwd = _median(lambda c=conv, i=inp: c(i), repeats)
        bwd = _median(lambda y=y, g=grad: torch.autograd.backward(y, g, retain_graph=True), repeats)
        flops = 2 * y.numel() * conv.weight[0].numel()
        rate = 3 * flops / max(fwd + bwd, 1e-9) / 1e9
        print(f"  {name:24s} {str(shape):>22s} {fwd * 1e3:8.1f} {bwd * 1e3:8.1f} {rate:8.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--layers", action="store_true", help="also time each convolution")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), median of {a.repeats}")
    print(
        f"{'plan':8s} {'kernels (top level first)':34s} {'step s':>8s} {'step s CL':>10s} "
        f"{'tile s':>8s} {'tile s CL':>10s}"
    )
    for case in a.cases:
        voxel, out = CASES[case]
        cfg = train_mod.network_config(voxel, None, 8, "batch")
        row = [
            step_seconds(cfg, out, "contiguous", a.repeats),
            step_seconds(cfg, out, "channels_last_3d", a.repeats),
            tile_seconds(cfg, TILE[case], "contiguous", max(3, a.repeats // 2)),
            tile_seconds(cfg, TILE[case], "channels_last_3d", max(3, a.repeats // 2)),
        ]
        kernels = " ".join("x".join(map(str, k)) for k in cfg.kernels)
        print(f"{case:8s} {kernels:34s} " + " ".join(f"{v:8.3f}  " for v in row))
        if a.layers:
            layer_table(cfg, out, a.repeats)


if __name__ == "__main__":
    main()
