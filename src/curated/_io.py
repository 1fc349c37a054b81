"""Small file-system primitives every layer needs: atomic writes, canonical JSON, reading a mapping."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from curated.errors import MetadataError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, are flushed to disk, then
    renamed over ``path`` (rename is atomic on POSIX within one file system).
    """
    return atomic_write_chunks(path, (data,))


def atomic_write_chunks(path: str | Path, chunks: Iterable[bytes]) -> Path:
    """:func:`atomic_write_bytes` for content made piece by piece (never all in memory)."""

    def write(name: str) -> None:
        with open(name, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)

    return atomic_write_via(path, write)


def atomic_write_via(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Write ``path`` atomically with a writer that wants a file name (``pyarrow``, ``tifffile``).

    ``write(name)`` writes the whole file to ``name``, a temporary file beside ``path``
    (``.NAME.XXXXXXXX.tmp``, see :func:`is_temp_name`), which is flushed to disk and then
    renamed over ``path`` (atomic on POSIX within one file system). The replaced file's
    mode is kept, else the umask's default (mkstemp alone would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:
            # a failed write (ENOSPC...) names no file: name the target
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_TEMP_NAME = re.compile(r"\.[^/]+\.[a-z0-9_]{8}\.tmp")  # mkstemp: 8 random characters


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file of an atomic write (``.NAME.XXXXXXXX.tmp``).

    :func:`atomic_write_chunks` writes next to its target and renames; a process killed
    before the rename (``kill -9``, power loss) leaves the temporary file behind, whole
    or half written. It is never content: the target is the old file or the new one.
    """
    return _TEMP_NAME.fullmatch(name) is not None


def naming(exc: OSError, path: str | Path) -> OSError:
    """``exc`` naming ``path`` when it names no file: a failed ``write`` (disk full, file too
    large) names none, and the error would only say "a file"."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Text flavour of :func:`atomic_write_bytes` (UTF-8, ``\\n`` newlines)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no insignificant whitespace and UTF-8 kept as is.

    This is the byte form that digests in the curator log are computed over.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write pretty JSON (2-space indent, trailing newline)."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    )


MAX_MAPPING_BYTES = 16 * 1024 * 1024
"""The largest metadata file (``curated.yaml``, a JSON record) :func:`load_mapping` reads."""
MAX_MAPPING_DEPTH = 64
MAX_MAPPING_VALUES = 1_000_000
"""Values a mapping may hold once YAML aliases are expanded: every later reader expands them."""
_TOO_DEEP = f"is nested more than {MAX_MAPPING_DEPTH} levels deep; no metadata file is"


def _expanded_size(node: Any, depth: int, memo: dict[int, int], path: Path) -> int:
    """How many values ``node`` holds with aliases expanded (shared nodes counted once per use, computed once)."""
    if not isinstance(node, (dict, list)):
        return 1
    known = memo.get(id(node))
    if known is not None:
        return known
    if depth >= MAX_MAPPING_DEPTH:  # a recursive alias (&a [*a]) ends here too
        raise MetadataError(_TOO_DEEP, path=path)
    total = 1
    for child in node.values() if isinstance(node, dict) else node:
        total += _expanded_size(child, depth + 1, memo, path)
        if total > MAX_MAPPING_VALUES:
            msg = (
                f"expands to more than {MAX_MAPPING_VALUES} values (YAML anchors and aliases "
                "repeated into each other); write the values out instead"
            )
            raise MetadataError(msg, path=path)
    memo[id(node)] = total
    return total


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or JSON file into a dict (``curated.yaml`` first).

    Raises :class:`MetadataError` naming the file, line and column on a syntax error,
    and when the top level is not a mapping.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            msg = f"is larger than {MAX_MAPPING_BYTES // (1024 * 1024)} MiB; a metadata file is far smaller (is this the right file?)"
            raise MetadataError(msg, path=path)
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
        except RecursionError:
            raise MetadataError(_TOO_DEEP, path=path) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise MetadataError(f"YAML syntax error{where}: {problem}", path=path) from None
        except RecursionError:
            raise MetadataError(_TOO_DEEP, path=path) from None
    _expanded_size(data, 0, {}, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MetadataError(
            f"the top level must be a mapping, not {type(data).__name__}", path=path
        )
    return data
