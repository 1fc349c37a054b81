"""Reading and writing metadata records (YAML or JSON) with errors that name the place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curated._io import load_mapping


def load_record_dict(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or JSON file into a dict.

    Raises :class:`MetadataError` naming the file, line and column on a syntax error,
    and when the top level is not a mapping. (The workspace layer reads
    ``curated.yaml`` with the same function, :func:`curated._io.load_mapping`.)
    """
    return load_mapping(path)
