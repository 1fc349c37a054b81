"""A 3D U-Net with valid convolutions, so that blockwise prediction equals one whole-volume pass.

Two properties make the stitched output of many blocks *identical* to a single
pass over the whole volume (funlib/incasem style, see the segmentation notes):

1. every convolution is *valid* (no padding), so an output voxel only ever sees
   real input voxels; the input of a block is its output region grown by
   :attr:`UNetGeometry.context` voxels on each side;
2. no normalisation computes statistics of the tile at prediction time: the
   optional batch normalisation (``norm="batch"``) uses batch statistics only
   while training and is a fixed per-channel affine map afterwards (eval mode,
   running statistics), so the value at a voxel does not depend on which tile it
   was computed in. Instance or group normalisation would (their statistics are
   those of the tile), which is why they are not offered.

Block offsets must be multiples of :attr:`UNetGeometry.step` (the product of the
pooling factors) for the pooling grid to line up between blocks.

Anisotropy: while the z voxel size is at least twice the in-plane voxel size, a
level pools only in y and x and its convolutions are ``1×3×3``; once the spacing
is near isotropic it pools ``2×2×2`` with ``3×3×3`` kernels (as nnU-Net plans).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

Triple = tuple[int, int, int]

ACTIVATIONS = ("leaky_relu", "relu")
NORMS = ("batch", "none")

ARCHITECTURE_VERSION = "curated-unet/1"
"""Bumped whenever a saved ``weights.pt`` would no longer load into :class:`UNet3D`."""


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of a :class:`UNet3D`; stored under ``architecture`` in ``model.json``."""

    depth: int = 2
    """Number of down-sampling steps (levels below the top one)."""
    base_features: int = 8
    """Feature maps at the top level."""
    feature_factor: int = 2
    """Feature maps are multiplied by this at each level down."""
    pools: tuple[Triple, ...] = ((2, 2, 2), (2, 2, 2))
    """Pooling factor (z, y, x) of each down-sampling step (``depth`` of them)."""
    kernels: tuple[Triple, ...] = ((3, 3, 3), (3, 3, 3), (3, 3, 3))
    """Convolution kernel (z, y, x) of each level, top to bottom (``depth + 1`` of them)."""
    convs_per_level: int = 2
    """Valid convolutions per level and path."""
    activation: str = "leaky_relu"
    """``leaky_relu`` (slope 0.01, as nnU-Net: no unit dies on a few crops of training data)
    or ``relu`` (models saved before the choice existed load as ``relu``)."""
    norm: str = "none"
    """``batch``: batch normalisation after each convolution (trained with batch
    statistics, applied with the running ones, so prediction stays translation-invariant);
    ``none``: plain convolutions (models saved before the choice existed load as ``none``)."""

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            msg = f"norm must be one of {', '.join(NORMS)}, not {self.norm!r}"
            raise ValueError(msg)
        if self.activation not in ACTIVATIONS:
            msg = f"activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}"
            raise ValueError(msg)
        if self.depth < 0 or len(self.pools) != self.depth or len(self.kernels) != self.depth + 1:
            msg = f"a depth-{self.depth} U-Net needs {self.depth} pool factors and {self.depth + 1} kernels"
            raise ValueError(msg)
        if self.base_features < 1 or self.feature_factor < 1 or self.convs_per_level < 1:
            msg = "base_features, feature_factor and convs_per_level must be positive"
            raise ValueError(msg)
        for k in self.kernels:
            if any(v < 1 or v % 2 == 0 for v in k):
                msg = f"kernel sizes must be odd and positive, not {k}"
                raise ValueError(msg)

    @classmethod
    def for_voxel_size(
        cls,
        voxel_size: tuple[float, float, float],
        *,
        depth: int = 2,
        base_features: int = 8,
        feature_factor: int = 2,
        convs_per_level: int = 2,
        activation: str = "leaky_relu",
        norm: str = "none",
        pointwise_below_nm: float | None = None,
    ) -> UNetConfig:
        """Plan pooling and kernels from the voxel size (anisotropy-aware first levels).

        A level whose voxels are finer than ``pointwise_below_nm`` along every axis gets
        1×1×1 kernels: it only mixes channels, and spatial context starts one pooling
        step down. At 5 nm isotropic the 3×3×3 convolutions of the top level were about
        half of a training step's arithmetic (RESULTS.md).
        """
        spacing = [float(v) for v in voxel_size]
        pools: list[Triple] = []
        kernels: list[Triple] = []
        for level in range(depth + 1):
            anisotropic = spacing[0] >= 2 * min(spacing[1], spacing[2])
            if pointwise_below_nm is not None and max(spacing) < pointwise_below_nm:
                kernels.append((1, 1, 1))
            else:
                kernels.append((1, 3, 3) if anisotropic else (3, 3, 3))
            if level < depth:
                pool = (1, 2, 2) if anisotropic else (2, 2, 2)
                pools.append(pool)
                spacing = [s * p for s, p in zip(spacing, pool, strict=True)]
        return cls(
            depth=depth,
            base_features=base_features,
            feature_factor=feature_factor,
            pools=tuple(pools),
            kernels=tuple(kernels),
            convs_per_level=convs_per_level,
            activation=activation,
            norm=norm,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pools"] = [list(p) for p in self.pools]
        d["kernels"] = [list(k) for k in self.kernels]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        return cls(
            depth=int(d["depth"]),
            base_features=int(d["base_features"]),
            feature_factor=int(d["feature_factor"]),
            pools=tuple(tuple(int(v) for v in p) for p in d["pools"]),  # type: ignore[misc]
            kernels=tuple(tuple(int(v) for v in k) for k in d["kernels"]),  # type: ignore[misc]
            convs_per_level=int(d["convs_per_level"]),
            activation=str(d.get("activation", "relu")),
            norm=str(d.get("norm", "none")),
        )

    @property
    def geometry(self) -> UNetGeometry:
        return UNetGeometry.of(self)


def _trace_axis(cfg: UNetConfig, axis: int, size: int) -> int | None:
    """Output size along ``axis`` for an input of ``size`` voxels, or ``None`` if invalid."""
    s = size
    skips = []
    for level in range(cfg.depth):
        s -= cfg.convs_per_level * (cfg.kernels[level][axis] - 1)
        pool = cfg.pools[level][axis]
        if s <= 0 or s % pool:
            return None
        skips.append(s)
        s //= pool
    s -= cfg.convs_per_level * (cfg.kernels[cfg.depth][axis] - 1)
    if s <= 0:
        return None
    for level in reversed(range(cfg.depth)):
        s *= cfg.pools[level][axis]
        if skips[level] < s or (skips[level] - s) % 2:
            return None
        s -= cfg.convs_per_level * (cfg.kernels[level][axis] - 1)
        if s <= 0:
            return None
    return s


@dataclass(frozen=True)
class UNetGeometry:
    """Size rules of a valid U-Net, per axis (z, y, x).

    A valid input size is ``input_min + n * step`` (n ≥ 0); its output is
    ``input - 2 * context``, centred in the input.
    """

    context: Triple
    """Voxels of input needed on each side of an output region (the halo)."""
    step: Triple
    """Product of pooling factors: valid sizes and block offsets are multiples of it."""
    input_min: Triple
    """Smallest valid input size."""

    @classmethod
    def of(cls, cfg: UNetConfig) -> UNetGeometry:
        context, step, input_min = [], [], []
        for axis in range(3):
            st = 1
            for p in cfg.pools:
                st *= p[axis]
            s = 1
            while (out := _trace_axis(cfg, axis, s)) is None:
                s += 1
                if s > 100_000:  # pragma: no cover - a config error, not user input
                    msg = "no valid input size below 100000 voxels"
                    raise ValueError(msg)
            diff = s - out
            if diff % 2:
                msg = f"asymmetric context along axis {axis}"
                raise ValueError(msg)
            context.append(diff // 2)
            step.append(st)
            input_min.append(s)
        return cls(tuple(context), tuple(step), tuple(input_min))  # type: ignore[arg-type]

    @property
    def output_min(self) -> Triple:
        return tuple(i - 2 * c for i, c in zip(self.input_min, self.context, strict=True))  # type: ignore[return-value]

    def valid_output(self, want: tuple[int, ...]) -> Triple:
        """The smallest valid network output size ≥ ``want`` (per axis).

        A block of ``want`` voxels at an offset that is a multiple of ``step`` is
        computed by running this larger output at the same offset and cropping
        the excess on the far side.
        """
        out = []
        for axis in range(3):
            size = max(self.output_min[axis], int(want[axis]))
            n = -(-(size - self.output_min[axis]) // self.step[axis])
            size = self.output_min[axis] + n * self.step[axis]
            out.append(size)
        return tuple(out)  # type: ignore[return-value]

    def block_multiple(self, want: tuple[int, ...]) -> Triple:
        """``want`` rounded up to a multiple of ``step`` (block sizes and offsets must be)."""
        return tuple(-(-int(w) // s) * s for w, s in zip(want, self.step, strict=True))  # type: ignore[return-value]

    def input_for(self, output: tuple[int, ...]) -> Triple:
        """Input size for a (valid) output size."""
        return tuple(o + 2 * c for o, c in zip(output, self.context, strict=True))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": list(self.context),
            "step": list(self.step),
            "input_shape_min": list(self.input_min),
            "output_shape_min": list(self.output_min),
        }


def _center_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    slices = [slice(None), slice(None)]
    for have, want in zip(x.shape[2:], shape, strict=True):
        start = (have - want) // 2
        slices.append(slice(start, start + want))
    return x[tuple(slices)]


class PointwiseConv3d(nn.Conv3d):
    """A 1×1×1 convolution computed as a matrix product over the channels.

    The same parameters (and ``state_dict`` keys) as :class:`torch.nn.Conv3d`; outputs equal
    to rounding. PyTorch picks oneDNN for some 1×1×1 convolutions over large volumes once it
    has two threads, and there it was slower than one thread: the 5 nm network's pointwise
    top level made a 64 × 128 × 128 prediction tile take 1.25 s on two threads against 0.82 s
    on one; as a matrix product 0.49 s, and a 5 nm training step 0.295 → 0.204 s on two
    threads (benchmarks/RESULTS.md "Pointwise convolutions as matrix products"). Each output
    voxel still depends on its own input voxel only, so blockwise prediction is unchanged.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__(c_in, c_out, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("oc,ncdhw->nodhw", self.weight[:, :, 0, 0, 0], x)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None, None]
        return y


def _conv(c_in: int, c_out: int, kernel: Triple | int, bias: bool = True) -> nn.Conv3d:
    k: Triple = (kernel, kernel, kernel) if isinstance(kernel, int) else kernel
    if k == (1, 1, 1):
        return PointwiseConv3d(c_in, c_out, bias=bias)
    return nn.Conv3d(c_in, c_out, k, bias=bias)


def _activation(name: str) -> nn.Module:
    return nn.LeakyReLU(0.01, inplace=True) if name == "leaky_relu" else nn.ReLU(inplace=True)


class _ConvBlock(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, kernel: Triple, n: int, act: str = "relu", norm: str = "none"
    ) -> None:
        layers: list[nn.Module] = []
        for i in range(n):
            c = c_in if i == 0 else c_out
            if norm == "batch":  # the normalisation's shift makes the convolution's bias redundant
                layers += [_conv(c, c_out, kernel, bias=False), nn.BatchNorm3d(c_out)]
            else:
                layers.append(_conv(c, c_out, kernel))
            layers.append(_activation(act))
        super().__init__(*layers)


class UNet3D(nn.Module):
    """Valid-convolution 3D U-Net, one input channel, one logit channel (binary label).

    Nearest-neighbour up-sampling followed by a 1×1×1 convolution joins the
    levels; leaky ReLU activations (``relu`` for older models). With
    ``norm="batch"`` each convolution is followed by batch normalisation, which in
    eval mode is a fixed affine map per channel; instance or group statistics would
    depend on the tile a voxel is computed in and break the bit-identity of
    blockwise prediction, so they are not offered. Brightness independence comes
    from the translation-invariant local contrast normalisation of
    :mod:`curated.segment.preprocess`. ``forward`` maps ``(N, 1, Z, Y, X)``
    of a valid size to ``(N, 1, Z-2cz, Y-2cy, X-2cx)`` logits.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        f = [
            config.base_features * config.feature_factor**level for level in range(config.depth + 1)
        ]
        n = config.convs_per_level
        self.down = nn.ModuleList()
        c_in = 1
        for level in range(config.depth):
            self.down.append(
                _ConvBlock(c_in, f[level], config.kernels[level], n, config.activation, config.norm)
            )
            c_in = f[level]
        self.pool = nn.ModuleList(nn.MaxPool3d(p, stride=p) for p in config.pools)
        self.bottom = _ConvBlock(
            c_in, f[config.depth], config.kernels[config.depth], n, config.activation, config.norm
        )
        self.up = nn.ModuleList()
        self.reduce = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for level in reversed(range(config.depth)):
            self.up.append(nn.Upsample(scale_factor=config.pools[level], mode="nearest"))
            self.reduce.append(_conv(f[level + 1], f[level], 1))
            self.up_convs.append(
                _ConvBlock(
                    2 * f[level], f[level], config.kernels[level], n, config.activation, config.norm
                )
            )
        self.head = _conv(f[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block, pool in zip(self.down, self.pool, strict=True):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for up, reduce, convs, skip in zip(
            self.up, self.reduce, self.up_convs, reversed(skips), strict=True
        ):
            x = up(reduce(x))
            x = convs(torch.cat([_center_crop(skip, x.shape[2:]), x], dim=1))
        return self.head(x)


def depth_for_voxel_size(
    voxel_size: tuple[float, float, float],
    field_of_view_nm: float,
    max_depth: int = 4,
    pointwise_below_nm: float | None = None,
) -> int:
    """The smallest depth (1 to ``max_depth``) whose in-plane field of view reaches ``field_of_view_nm``.

    The field of view is the receptive field of an output voxel, ``2 × context + 1``
    voxels, in y (the finer of y and x sets the pace of the planning), of the network
    :meth:`UNetConfig.for_voxel_size` plans with ``pointwise_below_nm``.
    """
    voxel_nm = min(float(voxel_size[1]), float(voxel_size[2]))
    for depth in range(1, max_depth + 1):
        ctx = UNetConfig.for_voxel_size(
            voxel_size, depth=depth, pointwise_below_nm=pointwise_below_nm
        ).geometry.context
        if (2 * max(ctx[1], ctx[2]) + 1) * voxel_nm >= field_of_view_nm:
            return depth
    return max_depth


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
