"""Field paths (``study.authors[1].orcid``): parse, format, read, write, and look up in the model.

One spelling of a place in a record, shared by validation messages, ``set_field``,
per-value provenance (``sources[].field``) and the curator log.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from curated.errors import MetadataError
from curated.metadata import model

Part = str | int
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|(\.)")


def parse_path(text: str) -> list[Part]:
    """Split ``study.authors[0].orcid`` into ``["study", "authors", 0, "orcid"]``.

    Raises :class:`MetadataError` (``field=text``) when the path is not of that form.
    """
    parts: list[Part] = []
    pos = 0
    expect_name = True
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        name, index, dot = m.groups()
        if name is not None:
            if not expect_name:
                break
            parts.append(name)
            expect_name = False
        elif index is not None:
            if expect_name:
                break
            parts.append(int(index))
        else:
            if expect_name:
                break
            expect_name = True
        pos = m.end()
    if pos != len(text) or not parts or expect_name:
        msg = "not a field path; write names joined by dots with [N] for list items, e.g. study.authors[0].orcid"
        raise MetadataError(msg, field=text)
    return parts


def format_path(parts: typing.Sequence[Part]) -> str:
    """The inverse of :func:`parse_path` (``()`` gives ``""``)."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


MISSING: Any = object()
"""Sentinel for 'no value at this path'."""


def get_at(data: Any, parts: typing.Sequence[Part], default: Any = MISSING) -> Any:
    """The value at ``parts`` in nested dicts/lists, or ``default`` when any step is absent."""
    cur = data
    for p in parts:
        if isinstance(p, int):
            if not isinstance(cur, list) or p >= len(cur):
                return default
            cur = cur[p]
        else:
            if not isinstance(cur, dict) or p not in cur:
                return default
            cur = cur[p]
    return cur


def set_at(data: dict[str, Any], parts: typing.Sequence[Part], value: Any) -> None:
    """Set the value at ``parts``, creating mappings and appending list items on the way.

    A list index may point at an existing item or one past the end (append).
    ``value`` ``MISSING`` removes the field (a list item is removed from its list).
    """
    label = format_path(parts)
    cur: Any = data
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        nxt: Part | None = None if last else parts[i + 1]
        fresh: Any = [] if isinstance(nxt, int) else {}
        if isinstance(p, int):
            if not isinstance(cur, list):
                raise MetadataError(f"{format_path(parts[:i])} is not a list", field=label)
            if p > len(cur):
                msg = f"index {p} is past the end of {format_path(parts[:i])} ({len(cur)} items); use [{len(cur)}] to add one"
                raise MetadataError(msg, field=label)
            if last:
                if value is MISSING:
                    if p < len(cur):
                        del cur[p]
                elif p == len(cur):
                    cur.append(value)
                else:
                    cur[p] = value
                return
            if p == len(cur):
                cur.append(fresh)
            elif cur[p] is None:
                cur[p] = fresh
            cur = cur[p]
        else:
            if not isinstance(cur, dict):
                raise MetadataError(
                    f"{format_path(parts[:i]) or 'the record'} is not a mapping", field=label
                )
            if last:
                if value is MISSING:
                    cur.pop(p, None)
                else:
                    cur[p] = value
                return
            if cur.get(p) is None:
                cur[p] = fresh
            cur = cur[p]


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation such as ``Optional[list[Person]]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_of(arg)
        if found is not None:
            return found
    return None


def is_list(annotation: Any) -> bool:
    """Whether the annotation (maybe ``Optional``) is a list type."""
    origin = typing.get_origin(annotation)
    if origin is list:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def scalar_types(annotation: Any) -> tuple[type, ...]:
    """The non-None leaf types of a field annotation (``Optional[list[str]]`` gives ``(str,)``)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return () if annotation is type(None) else (annotation,)
    out: tuple[type, ...] = ()
    for arg in typing.get_args(annotation):
        out += scalar_types(arg)
    return out


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """`` (did you mean X?)`` when a close match exists, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def resolve_field(
    parts: typing.Sequence[Part], root: type[BaseModel] = model.CuratedRecord
) -> tuple[type[BaseModel], str, Any, bool]:
    """Look a path up in the model: ``(owner class, field name, annotation, is list item)``.

    ``is list item`` is true when the path ends in an index (``study.authors[2]``).
    Raises :class:`MetadataError` naming the first unknown field, with a suggestion.
    """
    label = format_path(parts)
    cls: type[BaseModel] = root
    owner: type[BaseModel] = root
    name = ""
    annotation: Any = root
    item = False
    for i, p in enumerate(parts):
        if isinstance(p, int):
            if not name or not is_list(annotation) or item:
                raise MetadataError(
                    f"{format_path(parts[:i]) or 'the record'} is not a list", field=label
                )
            item = True
            continue
        sub = model_of(annotation) if i else cls
        if sub is None:
            raise MetadataError(f"{format_path(parts[:i])} has no fields", field=label)
        if p not in sub.model_fields:
            where = format_path(parts[:i]) or "the record"
            raise MetadataError(
                f"unknown field {p!r} in {where} ({sub.__name__}){suggest(p, sub.model_fields)}",
                field=label,
            )
        owner, name, annotation, item = sub, p, sub.model_fields[p].annotation, False
    if not name:
        raise MetadataError("a path must name a field", field=label)
    return owner, name, annotation, item
