"""Folders of 2D slices in a check's inventory: would ``curated convert`` take each as one volume?

A folder whose image files (TIFF or PNG) include a numbered series of at least
:data:`MIN_SERIES` files is judged as ``curated convert`` would judge it
(:func:`curated.images.sources.order_slices`): names of several series, two files
with one slice number, gaps in the numbering; and, from the headers the check
already read, slices whose shape, pixel type, page count, pixel size or grey
(MinIsWhite, palette) differ from the others.
Findings are ``(severity, message, paths)``; the check makes them red flags.

The inventory comes in walk order (depth-first), so a folder's state is dropped as
soon as the walk has left it: memory holds the names of the folders on the current
path, never the whole inventory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from curated.images.sources import order_slices, slice_pattern

MIN_SERIES = 3
"""Files of one naming pattern that make a folder a folder of slices."""

SHOWN = 20
"""Most paths named by one finding."""

_SLICE_FORMATS = {"TIFF": "TIFF", "BigTIFF": "TIFF", "OME-TIFF": "TIFF", "PNG": "PNG"}

Finding = tuple[str, str, list[str]]
_Entry = tuple[str, str, tuple[Any, ...] | None]
"""(name, TIFF or PNG, what its header says: shape and pixel type; None when it does not open)."""


def slice_findings(files: Iterable[Any]) -> Iterator[Finding]:
    """Findings about the folders of slices among ``files`` (records with ``path``,
    ``format`` and ``image``, shown paths with ``/``), in walk order."""
    open_folders: list[tuple[str, list[_Entry]]] = []
    for f in files:
        kind = _SLICE_FORMATS.get(f.format)
        if kind is None:
            continue
        folder, _, name = f.path.rpartition("/")
        while open_folders and not _within(folder, open_folders[-1][0]):
            yield from _judge(*open_folders.pop())
        if not open_folders or open_folders[-1][0] != folder:
            open_folders.append((folder, []))
        image = f.image or {}
        look = (
            (
                tuple(image.get("shape") or ()),
                image.get("dtype"),
                image.get("pixel_size"),
                image.get("photometric"),
            )
            if image.get("opens")
            else None
        )
        open_folders[-1][1].append((name, kind, look))
    while open_folders:
        yield from _judge(*open_folders.pop())


def _within(folder: str, top: str) -> bool:
    return folder == top or folder.startswith(top + "/") or not top


def _judge(folder: str, entries: list[_Entry]) -> Iterator[Finding]:
    series = Counter((kind, slice_pattern(name)) for name, kind, _ in entries)
    (kind, _), biggest = series.most_common(1)[0]
    if biggest < MIN_SERIES:
        return
    prefix = f"{folder}/" if folder else ""
    names = [name for name, k, _ in entries if k == kind]
    order = order_slices(names)
    said = []
    if order.problem:
        said.append((order.problem, order.at_fault))
    elif order.gaps:
        said.append((order.gaps, order.at_fault))
    if order.problem and order.at_fault and " series " in order.problem:
        for (k, pattern), count in series.items():  # each series on its own: its numbers
            if k == kind and count >= MIN_SERIES:
                one = order_slices([n for n in names if slice_pattern(n) == pattern])
                if one.problem or one.gaps:
                    said.append((one.problem or one.gaps or "", one.at_fault))
    for message, at_fault in said:
        shown = [prefix + n for n in at_fault[:SHOWN]]
        yield "warning", f"slices in {folder or '.'}: {message}", shown
    yield from _unlike(folder, prefix, [e for e in entries if e[1] == kind])


def _unlike(folder: str, prefix: str, entries: list[_Entry]) -> Iterator[Finding]:
    """Slices of one series whose shape, pixel type, pixel size or grey (MinIsWhite) differ
    from most of the others."""
    by_series: dict[str, list[_Entry]] = {}
    for e in entries:
        by_series.setdefault(slice_pattern(e[0]), []).append(e)
    for pattern, members in sorted(by_series.items()):
        looks = Counter(look for _, _, look in members if look is not None)
        if len(members) < MIN_SERIES or len(looks) < 2:
            continue
        common, count = looks.most_common(1)[0]
        odd = [(name, look) for name, _, look in members if look is not None and look != common]
        shown = ", ".join(f"{name} ({_say(look, common)})" for name, look in odd[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        yield (
            "warning",
            f"slices in {folder or '.'}: {count} of {len(members)} slices of {pattern} are "
            f"{_say(common)}, but {shown}{more} differ; `curated convert` takes slices that "
            "all match (one 2D plane each): ask for the odd ones again or move them out",
            [prefix + name for name, _ in odd[:SHOWN]],
        )


def _say(look: tuple[Any, ...], common: tuple[Any, ...] | None = None) -> str:
    """A slice's look in words; beside ``common``, only the pixel size and grey that differ."""
    shape, dtype, pixel, grey = look
    said = [f"{' x '.join(str(n) for n in shape)} {dtype}"]
    if pixel != (common[2] if common else None) or (common and pixel is None and common[2]):
        said.append(pixel or "no pixel size")
    if grey != (common[3] if common else "MinIsBlack") and grey is not None:
        said.append(grey)
    return ", ".join(said)
