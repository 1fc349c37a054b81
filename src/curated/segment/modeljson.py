"""``model.json``, the description of a model folder: its one reader (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curated.errors import InputError

MODEL_JSON = "model.json"


def read_model_json(model_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """Read ``model.json`` of a model folder (or the file itself): ``(folder, data)``.

    The one reader of ``model.json``: a missing, unreadable or non-object file is an
    :class:`~curated.errors.InputError` naming the path (the user gave the wrong folder);
    :func:`curated.segment.modelio.load_model` then checks what the model says.
    """
    p = Path(model_dir)
    mj = p / MODEL_JSON if p.is_dir() else p
    if not mj.is_file():
        msg = (
            "not a model folder (no model.json); give the folder `curated segment train --out` made"
        )
        raise InputError(msg, path=p)
    try:
        data = json.loads(mj.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{mj.name} is not valid JSON ({exc})", path=mj) from None
    if not isinstance(data, dict):
        raise InputError(f"{mj.name} must hold a JSON object", path=mj)
    return mj.parent, data
