"""Reading and writing metadata records (YAML or JSON) with errors that name the place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from curated.errors import MetadataError


def load_record_dict(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or JSON file into a dict.

    Raises :class:`MetadataError` naming the file, line and column on a syntax error,
    and when the top level is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MetadataError("file not found", path=path) from None
    except UnicodeDecodeError as exc:
        raise MetadataError(f"not UTF-8 text (byte {exc.start})", path=path) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(
                f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=path
            ) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise MetadataError(f"YAML syntax error{where}: {problem}", path=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MetadataError(
            f"the top level must be a mapping, not {type(data).__name__}", path=path
        )
    return data
