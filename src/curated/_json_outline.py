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

_SPACE = re.compile(r"[ \t\n\r]*")
_KIND = {"{": "object", "[": "array", '"': "string", "t": "literal", "f": "literal", "n": "literal"}
_DECODER = json.JSONDecoder()
_READ = 1 << 20
STEP_IN = 1 << 20
"""A value longer than this is walked through piece by piece; shorter ones are decoded whole
(by the json module, at C speed) and dropped."""
KEEP_LIMIT = 1 << 20
"""Kept values longer than this are reported by kind only."""


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


class _Stream:
    """The file's text in a sliding buffer: what is behind ``pos`` is let go as it grows."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.buf = fh.read(_READ)
        self.pos = 0
        self.eof = not self.buf
        if self.buf.startswith("\ufeff"):
            raise ValueError("a JSON text must not start with a byte order mark")

    def fill(self) -> bool:
        """Read more; false at the end of the file."""
        if self.eof:
            return False
        more = self.fh.read(_READ)
        self.eof = not more
        self.buf = self.buf[self.pos :] + more
        self.pos = 0
        return bool(more)

    def peek(self) -> str:
        """The next character that is not white space (``""`` at the end)."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos : self.pos + 1]

    def take(self, ch: str) -> None:
        if self.peek() != ch:
            got = self.buf[self.pos : self.pos + 20]
            raise ValueError(f"invalid JSON: expected {ch!r} near {got!r}")
        self.pos += 1

    def decode(self, limit: int) -> tuple[Any, str] | None:
        """The next value decoded whole and its text, or ``None`` if it is longer than ``limit``.

        Raises ``ValueError`` for a value that is not valid JSON.
        """
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if len(self.buf) - self.pos >= limit:
                    return None  # too long to decode whole (or wrong: walking it will say)
                if not self.fill():
                    raise
                continue
            if end == len(self.buf) and not self.eof and self.buf[self.pos] not in '{["':
                self.fill()  # a number or literal may go on in the next piece
                continue
            text = self.buf[self.pos : end]
            self.pos = end
            return obj, text


def _walk_value(s: _Stream, find: tuple[str, ...], found: set[str]) -> None:
    """Consume one value: decoded whole when it is short, else walked through piece by piece."""
    whole = s.decode(STEP_IN)
    if whole is not None:
        for f in find:
            if f in whole[1]:
                found.add(f)
        return
    ch = s.peek()
    s.pos += 1
    if ch == "{":
        if s.peek() == "}":
            s.pos += 1
            return
        while True:
            if s.peek() != '"':
                raise ValueError("invalid JSON: an object key must be a string")
            _walk_value(s, find, found)
            s.take(":")
            _walk_value(s, find, found)
            if s.peek() == ",":
                s.pos += 1
                continue
            s.take("}")
            return
    if ch == "[":
        if s.peek() == "]":
            s.pos += 1
            return
        while True:
            _walk_value(s, find, found)
            if s.peek() == ",":
                s.pos += 1
                continue
            s.take("]")
            return
    raise ValueError(f"invalid JSON near {s.buf[s.pos - 1 : s.pos + 20]!r}")


def json_outline(
    path: str | Path, *, keep: tuple[str, ...] = (), find: tuple[str, ...] = ()
) -> Outline:
    """Read ``path`` as a stream; raise ``ValueError`` if it is not valid JSON.

    ``keep`` names top-level keys whose values are decoded (when at most
    :data:`KEEP_LIMIT` characters); ``find`` lists texts to look for in the
    document's text. Values up to :data:`STEP_IN` characters are decoded (and
    validated) by :mod:`json` one at a time; longer ones are walked through.
    """
    outline = Outline(kind="")
    with open(path, encoding="utf-8") as fh:
        s = _Stream(fh)
        first = s.peek()
        if first != "{":
            whole = s.decode(STEP_IN)
            if whole is None:
                _walk_value(s, find, outline.found)
            else:
                outline.found.update(f for f in find if f in whole[1])
            outline.kind = _KIND.get(first, "number")
        else:
            outline.kind = "object"
            s.pos += 1
            _top_members(s, keep, find, outline)
        if s.peek() != "":
            raise ValueError(f"invalid JSON: extra data {s.buf[s.pos : s.pos + 20]!r}")
    return outline


def _top_members(s: _Stream, keep: tuple[str, ...], find: tuple[str, ...], out: Outline) -> None:
    if s.peek() == "}":
        s.pos += 1
        return
    while True:
        if s.peek() != '"':
            raise ValueError("invalid JSON: an object key must be a string")
        key_whole = s.decode(STEP_IN)
        if key_whole is None:
            raise ValueError("invalid JSON: an object key too long to read")
        key = key_whole[0]
        out.found.update(f for f in find if f in key_whole[1])
        s.take(":")
        ch = s.peek()
        out.keys[key] = _KIND.get(ch, "number")
        whole = s.decode(KEEP_LIMIT if key in keep else STEP_IN)
        if whole is None:
            _walk_value(s, find, out.found)
        else:
            if key in keep:
                out.values[key] = whole[0]
            out.found.update(f for f in find if f in whole[1])
        if s.peek() == ",":
            s.pos += 1
            continue
        s.take("}")
        return
