"""Fine-tune several times from one parent and keep the average of the weights.

One fine-tuning of a few new crops is a noisy sample: on the shaded benchmark three
fine-tunings of the same crop from the same parent, with other random draws, differed by
0.03 whole-volume Dice (median over twenty crops) and up to 0.16. The uniform average of
the draws' weights and batch-norm statistics (a "model soup", Wortsman et al., ICML 2022:
fine-tunings from one starting point stay in one basin, so their average is a model of its
own) scored +0.011 (95 % CI +0.004 … +0.020) above the draws' mean and +0.029 above the
worst draw, at least as high in 19 of 20 cases (``benchmarks/RESULTS.md``, "Three
fine-tuning draws per human round").

Draw ``d`` is an ordinary fine-tuning with seed ``seed + d ×`` :data:`DRAW_SEED_STRIDE`
(draw 0 is what ``draws=1`` trains) into ``.<out>.training.tmp/d<d>``; each draw resumes on its
own after an interruption. When all are done, the average is written to ``out`` as one
model folder (``model.json`` + ``weights.pt``, draw 0's description plus
``training.weight_average``), the curator log records one ``finetune`` step for it, and
the draws' folder is removed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from curated._io import canonical_json, write_json
from curated.errors import InputError, SegmentationError
from curated.results import Result, with_warnings
from curated.segment.modelio import (
    MODEL_JSON,
    WEIGHTS,
    SegmentationModel,
    image_key,
    load_model,
    load_state,
    write_model_json,
    write_weights,
)
from curated.segment.modeljson import read_model_json
from curated.workspace import as_workspace, recorder

DRAW_SEED_STRIDE = 100
"""Seed step between draws (``benchmarks/hitl.py`` steps its replicates past them)."""
OTHER_MODEL_HERE = "a different model is already here; choose another --out or pass --overwrite"
"""What training and fine-tuning say when ``out`` holds a model they did not make."""


def check_draws(draws: Any) -> int:
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        msg = f"draws must be a whole number ≥ 1, not {draws!r}"
        raise InputError(msg, field="draws")
    return draws


def draws_folder(out: Path) -> Path:
    """Where the draws of a weight-averaged fine-tuning into ``out`` are trained.

    A temporary name (``.OUT.training.tmp``, see :func:`curated._io.is_temp_name`): a run
    killed before the average leaves finished draws there, which are no output of the step
    and which bags therefore leave out.
    """
    return out.with_name(f".{out.name}.training.tmp")


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (in float64, cast back); others from the first."""
    first = states[0]
    for s in states[1:]:
        if s.keys() != first.keys() or any(s[k].shape != first[k].shape for k in first):
            msg = (
                "the draws' weights differ in their layers; they are not fine-tunings of one parent"
            )
            raise SegmentationError(msg, field="draws")
    out: dict[str, torch.Tensor] = {}
    for k, v in first.items():
        if v.is_floating_point():
            total = torch.stack([s[k].to(torch.float64) for s in states]).mean(dim=0)
            out[k] = total.to(v.dtype)
        else:
            out[k] = (
                v.clone()
            )  # e.g. batch norm's num_batches_tracked: the same count in every draw
    return out


def _plain(value: Any) -> Any:
    """A JSON-safe form of a keyword argument, for the record and the re-run check."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _same_settings(recorded: Any, settings: dict[str, Any], image: Path) -> bool:
    """Whether ``recorded`` (a model's ``weight_average.settings``) are ``settings``; earlier
    releases named the image by its absolute path, which is still this run's in place."""
    legacy = {**settings, "image": str(image.resolve())}
    return canonical_json(recorded) in (canonical_json(settings), canonical_json(legacy))


def _finished(out: Path, settings: dict[str, Any], image: Path, overwrite: bool) -> Result | None:
    """``notneeded`` when ``out`` holds this very average; refuses another model there."""
    from curated.segment.train import recorded_warnings  # train imports this

    if overwrite or not (out / MODEL_JSON).is_file():
        return None
    _, meta = read_model_json(out)
    wa = meta.get("training", {}).get("weight_average") or {}
    if not _same_settings(wa.get("settings"), settings, image):
        raise SegmentationError(OTHER_MODEL_HERE, path=out, field="out")
    load_model(out)  # verifies the weights
    shutil.rmtree(draws_folder(out), ignore_errors=True)  # left by a run stopped just before
    details = {"weights_sha256": meta["weights"]["sha256"]}
    msg = f"already the average of {len(wa.get('seeds', []))} fine-tunings"
    msg = with_warnings(msg, details, recorded_warnings(meta))
    return Result("finetune", "notneeded", str(out), msg, details)


def unlogged(ws: Any, out: Path) -> bool:
    """Whether ``ws``'s log lacks the model in ``out`` as it is now (a run killed after
    writing it, before its log entry)."""
    return ws is not None and not ws.log.records_as_is(out / MODEL_JSON)


DRAWS_RECORD = "settings.json"
"""In the draws' folder: the settings of the run whose draws it holds."""


def _claim_draws(where: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Make ``where`` this run's draws folder. Draws an interrupted run with other settings
    left (other iterations, seeds, …) are removed first, with ``overwrite`` or without: a
    draw's own run signature leaves the iterations out (more of them resume it), so a
    draw finished with more iterations than asked would otherwise be averaged as this
    run's. With ``overwrite``, draws that record no settings are removed too."""
    try:
        held = json.loads((where / DRAWS_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        held = None
    if (overwrite or isinstance(held, dict)) and canonical_json(held) != canonical_json(settings):
        shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True, exist_ok=True)
    write_json(where / DRAWS_RECORD, settings)


def _train_draw(train: Any, image: Path, member: Path, overwrite: bool, **kwargs: Any) -> Result:
    """One draw, resumed (or found finished) when ``member`` holds this draw's run.

    ``overwrite`` is of the average's ``out``, not of the draws of its own interrupted
    run: a draw is trained again from the start only when ``member`` holds another run's
    (other settings or crops), which without ``overwrite`` is refused.
    """
    try:
        return train(image, out=member, overwrite=False, **kwargs)
    except SegmentationError as exc:
        if not overwrite or exc.field != "out":
            raise
    return train(image, out=member, overwrite=True, **kwargs)


def _name_image_as_workspace(meta: dict[str, Any], image: Path, ws: Any) -> None:
    """Name the training image in ``meta`` as a model trained in workspace ``ws`` does
    (relative to its root): the draws were trained outside any workspace, which records
    the absolute path, and that breaks once the workspace is moved or copied."""
    if ws is None:
        return
    absolute, ref = str(image.resolve()), ws.relative(image)
    if meta["training"].get("image") == absolute:
        meta["training"]["image"] = ref
    for r in meta.get("lineage_rois") or []:
        if isinstance(r, dict) and r.get("image") == absolute:
            r["image"] = ref


def finetune_average(
    parent: SegmentationModel,
    image: Path,
    *,
    out: Path,
    draws: int,
    seed: int = 0,
    name: str | None = None,
    overwrite: bool = False,
    workspace: Any = None,
    progress: Any = None,
    **kwargs: Any,
) -> Result:
    """``draws`` fine-tunings of ``parent`` (keyword arguments as :func:`~curated.segment.train.train`), averaged."""
    from curated.segment.train import SOFTWARE, train

    seeds = [int(seed) + DRAW_SEED_STRIDE * d for d in range(draws)]
    settings = {
        "parent_sha256": parent.sha256,
        "image": image_key(Path(image), out),
        "seeds": seeds,
        **{k: _plain(v) for k, v in sorted(kwargs.items())},
    }
    done = _finished(out, settings, Path(image), overwrite)
    ws = as_workspace(workspace)
    if done is not None and not unlogged(ws, out):
        return done
    model_name = name or out.name
    params = {"out": ws.relative(out) if ws else str(out), "draws": draws, **settings}
    with recorder(ws, "T", "finetune", inputs=[image], params=params, libraries=SOFTWARE) as step:
        if done is not None:  # finished by a run killed before its log entry: recorded now
            step.add_output(out / MODEL_JSON)
            step.add_output(out / WEIGHTS, digest="sha256:" + done.details["weights_sha256"])
            step.status, step.message = "ok", f"{done.message} (recorded after an interrupted run)"
            step.details["draws"] = draws
            return Result("finetune", "ok", str(out), step.message, done.details)
        where = draws_folder(out)
        _claim_draws(where, settings, overwrite)
        members, status, warnings = [], [], []
        for d, s in enumerate(seeds):
            member = where / f"d{d}"
            args = {"seed": s, "parent": parent, "name": model_name, "progress": progress}
            r = _train_draw(train, image, member, overwrite, **args, **kwargs)
            status.append(r.status)  # "notneeded": finished before an interruption
            # the draws share their crops, so they warn alike (no new crop holds the structure);
            # a draw found done repeats its warning from its model.json
            warnings += [w for w in r.details.get("warnings", []) if w not in warnings]
            members.append(load_model(member))
        states = [load_state(m.path / WEIGHTS, m.sha256) for m in members]
        out.mkdir(parents=True, exist_ok=True)
        sha = write_weights(out, average_states(states))
        meta = copy.deepcopy(members[0].meta)
        meta["id"], meta["name"] = f"{model_name}@{sha[:12]}", model_name
        meta["weights"]["sha256"] = sha
        meta["training"]["seed"] = seeds[0]
        _name_image_as_workspace(meta, Path(image), ws)
        # not draw 0's run signature: a plain fine-tuning into this folder must not mistake
        # the average for its own finished run
        meta["training"]["signature"] = hashlib.sha256(
            canonical_json({"weight_average": settings}).encode()
        ).hexdigest()
        meta["training"]["weight_average"] = {
            "method": "uniform average of the weights and batch-norm statistics of fine-tunings "
            "of one parent on the same crops with other random draws (model soup)",
            "seeds": seeds,
            "members_sha256": [m.sha256 for m in members],
            "settings": settings,
        }
        write_model_json(out, meta)
        shutil.rmtree(where, ignore_errors=True)
        step.add_output(out / MODEL_JSON)
        step.add_output(out / WEIGHTS, digest="sha256:" + sha)
        details = {
            "weights_sha256": sha,
            "draws": draws,
            "seeds": seeds,
            "draw_status": status,
            "model_id": meta["id"],
        }
        msg = f"average of {draws} fine-tunings (seeds {', '.join(map(str, seeds))})"
        msg = with_warnings(msg, details, warnings)
        step.status, step.message = "ok", msg
        step.details["draws"] = draws
        return Result("finetune", "ok", str(out), msg, details)
