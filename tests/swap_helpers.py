"""What a run killed while swapping a new output folder into place leaves, made by hand.

The EMPIAR / BioImage Archive exports, the bioimage.io folder export and `curated bag`
all build beside DEST and swap in with :func:`curated._io.swap_into`; these helpers let
one test per command check that each treats a kill's leftovers alike.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from curated._io import BUILDING_MARKER, aside_of, temps_of

BYSTANDERS = (".other.k1lled00.tmp", ".other.old.tmp", "mine", ".DEST.old", ".DEST.x.tmp")
"""Another DEST's leftovers and user folders (``DEST`` replaced by the destination's name)."""


def _bystanders(dest: Path) -> list[Path]:
    return [dest.parent / name.replace("DEST", dest.name) for name in BYSTANDERS]


def leave_killed_swap(dest: Path) -> None:
    """DEST's output set aside and the new one half built, as a kill between the two renames of
    an overwrite leaves it (plus a killed atomic write's temporary file), and bystanders."""
    os.rename(dest, aside_of(dest))
    half = dest.parent / f".{dest.name}.h4lf0000.tmp"
    (half / "data").mkdir(parents=True)
    (half / BUILDING_MARKER).write_bytes(b"")
    (half / "data" / "half.bin").write_bytes(b"half")
    (dest.parent / f".{dest.name}.f1le0000.tmp").write_bytes(b"half a file")
    for p in _bystanders(dest):
        p.mkdir(exist_ok=True)
        (p / BUILDING_MARKER).write_bytes(b"")
        (p / "notes.txt").write_text("mine")


def assert_only_bystanders_left(dest: Path) -> None:
    """No leftover of DEST beside it; every bystander as it was."""
    assert temps_of(dest) == [] and not os.path.lexists(aside_of(dest))
    for p in _bystanders(dest):
        assert (p / "notes.txt").read_text() == "mine", p
        assert (p / BUILDING_MARKER).is_file(), p


def remove_bystanders(dest: Path) -> None:
    for p in _bystanders(dest):
        shutil.rmtree(p)
