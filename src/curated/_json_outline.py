"""The outline of a JSON document read as a stream: memory bounded whatever its size.

A bag's RO-Crate lists every payload file; at a million files the document is
hundreds of MB, and ``json.load`` would hold a Python object per entity. The
checks that read a crate only ask what kind of value each top-level key holds,
what a few small keys say (``@context``) and whether some text occurs in it
(``CreateAction``): :func:`json_outline` answers that in one pass over the
tokens, validating the grammar as ``json.load`` would (RFC 8259), so a corrupt
document is refused the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:
        ("(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
      | (-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
      | (true|false|null)
      | ([{}\[\],:])
    )""",
    re.VERBOSE,
)
_SPACE = re.compile(r"[ \t\n\r]*")
_KIND = {"{": "object", "[": "array"}
_READ = 1 << 20
KEEP_LIMIT = 1 << 20
"""Kept values longer than this (as tokens) are reported by kind only."""


@dataclass
class Outline:
    """What :func:`json_outline` found."""

    kind: str
    """Kind of the top-level value: ``object``, ``array``, ``string``, ``number``, ``literal``."""
    keys: dict[str, str] = field(default_factory=dict)
    """Top-level keys (of an object) and the kind of their values."""
    values: dict[str, Any] = field(default_factory=dict)
    """Decoded values of the kept keys."""
    found: set[str] = field(default_factory=set)
    """The searched texts that occur in some string (key or value) of the document."""


def _tokens(path: Path) -> Any:
    """``(kind, text)`` of each token of the file, read in pieces."""
    with open(path, encoding="utf-8") as fh:
        buf = fh.read(_READ)
        if buf.startswith("\ufeff"):
            raise ValueError("a JSON text must not start with a byte order mark")
        pos = 0
        eof = False
        while True:
            m = _TOKEN.match(buf, pos)
            # a number or literal near the end of what was read may go on in the next piece
            short = m is not None and m.lastindex != 1 and m.end() > len(buf) - 64
            if m is None or (not eof and (short or m.end() == len(buf))):
                if eof:
                    rest = buf[_SPACE.match(buf, pos).end() :]  # type: ignore[union-attr]
                    if rest:
                        raise ValueError(f"invalid JSON near {rest[:40]!r}")
                    return
                more = fh.read(_READ)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
                continue
            pos = m.end()
            yield m.lastindex, m.group(m.lastindex)


def json_outline(
    path: str | Path, *, keep: tuple[str, ...] = (), find: tuple[str, ...] = ()
) -> Outline:
    """Read ``path`` as a stream of tokens; raise ``ValueError`` if it is not valid JSON.

    ``keep`` names top-level keys whose values are decoded (when at most
    :data:`KEEP_LIMIT` characters); ``find`` lists texts to look for in strings.
    """
    stack: list[str] = []  # "{" / "["
    expect = "value"  # value | key | colon | comma-or-end | value-or-end | key-or-end
    top_kind = ""
    outline = Outline(kind="")
    key: str | None = None
    kept: list[str] | None = None
    kept_size = 0
    pending = False
    for group, text in _tokens(Path(path)):
        if group == 1 and find:
            for f in find:
                if f in text:
                    outline.found.add(f)
        if kept is not None:
            kept.append(text)
            kept_size += len(text)
        if expect in ("value", "value-or-end"):
            if expect == "value-or-end" and text == "]":
                stack.pop()
                expect = _after_value(stack)
            elif group == 4 and text in "{[":
                if not stack:
                    top_kind = _KIND[text]
                elif len(stack) == 1 and stack[0] == "{" and key is not None:
                    outline.keys[key] = _KIND[text]
                stack.append(text)
                expect = "key-or-end" if text == "{" else "value-or-end"
            elif group in (1, 2, 3):
                kind = {1: "string", 2: "number", 3: "literal"}[group]
                if not stack:
                    top_kind = kind
                elif len(stack) == 1 and stack[0] == "{" and key is not None:
                    outline.keys[key] = kind
                expect = _after_value(stack)
            else:
                raise ValueError(f"invalid JSON: {text!r} where a value was expected")
        elif expect in ("key", "key-or-end"):
            if expect == "key-or-end" and text == "}":
                stack.pop()
                expect = _after_value(stack)
            elif group == 1:
                if len(stack) == 1:
                    key = json.loads(text)
                    pending = key in keep
                expect = "colon"
            else:
                raise ValueError(f"invalid JSON: {text!r} where a key was expected")
        elif expect == "colon":
            if text != ":":
                raise ValueError(f"invalid JSON: {text!r} where ':' was expected")
            expect = "value"
            if pending:
                kept, kept_size, pending = [], 0, False
        elif expect == "comma-or-end":
            closing = "}" if stack[-1] == "{" else "]"
            if text == ",":
                expect = "key" if stack[-1] == "{" else "value"
            elif text == closing:
                stack.pop()
                expect = _after_value(stack)
            else:
                raise ValueError(f"invalid JSON: {text!r} where ',' or {closing!r} was expected")
        else:  # "end": one value only
            raise ValueError(f"invalid JSON: extra data {text!r} after the document")
        if kept is not None and len(stack) == 1 and expect == "comma-or-end" and key is not None:
            if kept_size <= KEEP_LIMIT:
                outline.values[key] = json.loads("".join(kept))
            kept = None
        elif kept is not None and kept_size > KEEP_LIMIT:
            kept = None
    if expect != "end":
        raise ValueError("invalid JSON: the document ends early")
    outline.kind = top_kind
    return outline


def _after_value(stack: list[str]) -> str:
    return "comma-or-end" if stack else "end"
