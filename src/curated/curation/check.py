"""The Check step: inventory the depositor's files, answer the DCN checklist, raise red flags.

``check(workspace, sources)`` walks every source file once: size, sha256,
format (from content), and for TIFFs the header (shape, dtype, pages, whether
it opens, whether it is truncated) without loading pixels. It answers the Data
Curation Network's Check questions C1-C8 where a program can (``needs-human``
where it cannot) and collects red flags. Bad input never stops the walk:
unreadable files, broken symlinks and symlink loops become red flags.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import pickle
import re
import stat
import tempfile
import unicodedata
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, overload

from curated._io import atomic_write_chunks
from curated._parallel import default_processes, map_batches
from curated.curation.formats import (
    HEAD_BYTES,
    dicom_phi_tags,
    extension_matches,
    identify_format,
    inspect_hdf5,
    inspect_mrc,
    inspect_png,
    inspect_tiff,
    sniff_format,
)
from curated.curation.slices import slice_findings
from curated.errors import InputError, MetadataError
from curated.metadata.paths import get_at
from curated.progress import ProgressReporter, ensure_progress
from curated.provenance.digest import TreeHasher, hash_fd_at, sha256_file_head, tree_record
from curated.provenance.log import Artifact
from curated.results import Result
from curated.walk import (
    DIR,
    Files,
    Folder,
    Special,
    Unreadable,
    is_n5_container,
    is_zarr_array,
    is_zarr_store,
    walk,
)
from curated.workspace import Workspace, as_workspace, recorder

CHECK_FILE = "curation/check.json"
STEP = "C"

SEVERITIES = ("error", "warning", "info")

CHECKLIST: dict[str, str] = {
    "C1": "Do the files open?",
    "C2": "Does the code run?",
    "C3": "Are a title, the authors and a licence present?",
    "C4": "Is there documentation (a README or similar)?",
    "C5": "Do the data come from human participants or hold personal data?",
    "C6": "Are there file names with characters that break tools?",
    "C7": "Is the file hierarchy clear and reasonable?",
    "C8": "Do the file names follow a consistent naming convention?",
}
"""The DCN CURATE(D) Check checklist, as questions."""

CODE_SUFFIXES = (
    ".py",
    ".ipynb",
    ".m",
    ".r",
    ".jl",
    ".sh",
    ".ijm",
    ".groovy",
    ".bsh",
    ".js",
    ".c",
    ".cpp",
    ".java",
    ".cwl",
    ".nf",
    ".smk",
)
# documentation as depositors name it: README.txt, read_me.md, 00_README, NOTES.txt, info.txt ...
DOC_NAMES = re.compile(
    r"^[0_ -]*(read[_ -]?me|about|description|notes?|info|documentation|methods|protocol"
    r"|manifest|codebook|data[_ -]?dictionary|dataset[_ -]?description)(?![a-z])",
    re.I,
)
LICENCE_NAMES = re.compile(r"^(licen[cs]e|copying|rights)\b", re.I)
IMAGE_FORMATS = (
    "TIFF",
    "BigTIFF",
    "OME-TIFF",
    "PNG",
    "JPEG",
    "JPEG 2000",
    "GIF",
    "Zeiss CZI",
    "DICOM",
    "NIfTI-1",
    "NIfTI-2",
    "NRRD",
    "HDF5",
    "MRC",
)
_WORKSPACE_OWN = ("curation", "derived", "package")


@dataclass(slots=True)
class FileRecord:
    """One source file in the inventory."""

    path: str
    """Shown path: relative to the workspace when inside it, else ``<source folder name>/<relative path>``."""
    size: int | None
    sha256: str | None
    format: str
    """Detected from content (magic bytes), e.g. ``TIFF``, ``OME-TIFF``, ``Markdown``, ``unknown binary``."""
    image: dict[str, Any] | None = None
    """For images: ``shape``, ``dtype``, ``pages``, ``opens``, ``truncated``, ``problem``..."""
    symlink: bool = False
    error: str | None = None
    """Why the file could not be read, if it could not."""
    pronom: str | None = None
    """PRONOM identifier (PUID) of the format, e.g. ``fmt/353`` (see :func:`curated.curation.formats.identify_format`)."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path}
        for k in ("size", "sha256", "format", "pronom", "image", "symlink", "error"):
            v = getattr(self, k)
            if v is not None and v is not False:
                d[k] = dict(v) if k == "image" else v
        return d


_CODE_SET = frozenset(CODE_SUFFIXES)

INVENTORY_IN_MEMORY = 100_000
"""Records kept in memory; beyond this many, an inventory waits on disk in chunks."""

_SPILL_CHUNK = 10_000


@dataclass
class InventoryStats:
    """Totals the report and checklist need, kept while records are added (no extra pass)."""

    files: int = 0
    bytes: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    pronom: Counter[str] = field(default_factory=Counter)
    images: int = 0
    broken_images: int = 0
    first_broken_image: str | None = None
    errors: int = 0
    first_error: str | None = None
    code: int = 0
    first_code: str | None = None

    def add(self, f: FileRecord) -> None:
        self.files += 1
        self.bytes += f.size or 0
        self.formats[f.format] += 1
        self.pronom[f.pronom or "unidentified"] += 1
        path = f.path
        dot = path.rfind(".")
        if dot != -1 and path[dot:].lower() in _CODE_SET and "/" not in path[dot:]:
            self.code += 1
            if self.first_code is None:
                self.first_code = path
        if f.image is None and not f.error:
            return
        if f.image is not None:
            self.images += 1
            if not f.image.get("opens"):
                self.broken_images += 1
                if self.first_broken_image is None:
                    self.first_broken_image = f.path
        if f.error:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f.path

    @classmethod
    def of(cls, files: Sequence[FileRecord]) -> InventoryStats:
        if isinstance(files, FileInventory):
            return files.stats
        stats = cls()
        for f in files:
            stats.add(f)
        return stats


class FileInventory(Sequence[FileRecord]):
    """The inventory's records in walk order, with memory bounded whatever the file count.

    The first :data:`INVENTORY_IN_MEMORY` records stay in memory; later ones are
    written to an unnamed temporary file in chunks of 10,000 and read back when
    iterated or indexed. It behaves like a read-only list of :class:`FileRecord`.
    """

    def __init__(self) -> None:
        self._mem: list[FileRecord] = []
        self._buf: list[tuple[Any, ...]] = []
        self._chunks: list[tuple[int, int]] = []
        self._spill: IO[bytes] | None = None
        self._n = 0
        self.stats = InventoryStats()

    def append(self, rec: FileRecord) -> None:
        self.stats.add(rec)
        if self._n < INVENTORY_IN_MEMORY:
            self._mem.append(rec)
        else:
            self._buf.append(
                (
                    rec.path,
                    rec.size,
                    rec.sha256,
                    rec.format,
                    rec.image,
                    rec.symlink,
                    rec.error,
                    rec.pronom,
                )
            )
            if len(self._buf) >= _SPILL_CHUNK:
                self._flush()
        self._n += 1

    def _flush(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="curated-check-")  # noqa: SIM115
        blob = pickle.dumps(self._buf, protocol=pickle.HIGHEST_PROTOCOL)
        offset = self._spill.seek(0, os.SEEK_END)
        self._spill.write(blob)
        self._chunks.append((offset, len(blob)))
        self._buf = []

    def _chunk(self, k: int) -> list[tuple[Any, ...]]:
        assert self._spill is not None
        offset, size = self._chunks[k]
        self._spill.seek(offset)
        return pickle.loads(self._spill.read(size))  # our own bytes, written above

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[FileRecord]:
        yield from self._mem
        for k in range(len(self._chunks)):
            for t in self._chunk(k):
                yield FileRecord(*t)
        for t in list(self._buf):
            yield FileRecord(*t)

    @overload
    def __getitem__(self, i: int) -> FileRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[FileRecord]: ...

    def __getitem__(self, i: int | slice) -> FileRecord | list[FileRecord]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("inventory index out of range")
        if i < len(self._mem):
            return self._mem[i]
        k, r = divmod(i - len(self._mem), _SPILL_CHUNK)
        return FileRecord(*(self._chunk(k)[r] if k < len(self._chunks) else self._buf[r]))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileInventory | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass
class RedFlag:
    """Something the curator should look at."""

    code: str
    """Machine-readable kind: ``unreadable``, ``broken-symlink``, ``duplicate-content``..."""
    severity: str
    """``error`` (blocks curation), ``warning`` (ask the depositor), ``info``."""
    message: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChecklistAnswer:
    """One DCN Check question and the answer a program could give."""

    id: str
    question: str
    answer: str
    """``yes``, ``no``, ``na`` or ``needs-human``."""
    ok: bool | None
    """Whether the answer is good news (``None`` when unknown)."""
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    """What ``curated check`` found; written to ``curation/check.json``."""

    sources: list[str]
    files: Sequence[FileRecord]
    """Every file, in walk order (a :class:`FileInventory`: large ones wait on disk)."""
    checklist: list[ChecklistAnswer]
    flags: list[RedFlag]
    source_digests: dict[str, str | None] = field(default_factory=dict)
    path: str | None = None
    """Where the report was written, if it was."""

    @property
    def total_bytes(self) -> int:
        return InventoryStats.of(self.files).bytes

    @property
    def ok(self) -> bool:
        """No red flag of severity ``error``."""
        return not any(f.severity == "error" for f in self.flags)

    def flags_by_code(self, code: str) -> list[RedFlag]:
        return [f for f in self.flags if f.code == code]

    def answer(self, item: str) -> ChecklistAnswer:
        return next(a for a in self.checklist if a.id == item)

    def to_dict(self) -> dict[str, Any]:
        return {**self.to_dict_without_files(), "files": [f.to_dict() for f in self.files]}

    def to_dict_without_files(self) -> dict[str, Any]:
        stats = InventoryStats.of(self.files)
        formats = stats.formats
        return {
            "format": "curated-check/1",
            "sources": self.sources,
            "source_digests": self.source_digests,
            "summary": {
                "files": len(self.files),
                "bytes": self.total_bytes,
                "formats": dict(sorted(formats.items())),
                "pronom": dict(sorted(stats.pronom.items())),
                "flags": dict(sorted(Counter(f.severity for f in self.flags).items())),
            },
            "checklist": [a.to_dict() for a in self.checklist],
            "flags": [f.to_dict() for f in self.flags],
        }

    def write(self, path: str | Path) -> Path:
        """Write the report as JSON (as :meth:`to_dict` gives it), atomically, one file record at a time."""
        head = self.to_dict_without_files()
        text = json.dumps({**head, "files": []}, indent=2, ensure_ascii=False, default=str)
        assert text.endswith('"files": []\n}')
        prefix = text[: -len("[]\n}")]

        def pieces() -> Iterator[bytes]:
            yield (prefix + "[").encode("utf-8")
            first = True
            for f in self.files:
                item = json.dumps(f.to_dict(), indent=2, ensure_ascii=False, default=str)
                item = "\n".join("    " + line for line in item.splitlines())
                yield (("\n" if first else ",\n") + item).encode("utf-8")
                first = False
            yield ("]\n}\n" if first else "\n  ]\n}\n").encode("utf-8")

        return atomic_write_chunks(path, pieces())

    def to_result(self) -> Result:
        errors = sum(f.severity == "error" for f in self.flags)
        warnings = sum(f.severity == "warning" for f in self.flags)
        msg = f"{len(self.files)} files, {self.total_bytes} bytes; {errors} errors, {warnings} warnings"
        return Result(
            "check",
            "ok",
            self.path,
            msg,
            {
                "files": len(self.files),
                "bytes": self.total_bytes,
                "errors": errors,
                "warnings": warnings,
            },
        )


# ------------------------------------------------------------------- names
def display_path(path: str) -> str:
    """A path that is always valid UTF-8 (undecodable bytes shown as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_SAFE_NAME = re.compile(
    r"[A-Za-z0-9_.+=,@#~^()\[\]{}!$&'-]+(?: [A-Za-z0-9_.+=,@#~^()\[\]{}!$&'-]+)*"
)


def name_problems(name: str) -> list[str]:
    """What in one file or folder name breaks tools (empty when nothing)."""
    if _SAFE_NAME.fullmatch(name) and not name.endswith("."):
        return []  # the common case, decided by one regular expression
    problems = []
    raw = os.fsencode(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append("bytes that are not UTF-8")
    if "\n" in name or "\r" in name:
        problems.append("a newline")
    elif any(unicodedata.category(c) == "Cc" for c in name):
        problems.append("control characters")
    if "%" in name:
        problems.append("'%'")
    if name != name.rstrip(" ") or name.endswith("."):
        problems.append("trailing spaces or dots")
    if name != name.lstrip(" "):
        problems.append("leading spaces")
    if any(c in name for c in '<>:"|?*\\'):
        problems.append("characters Windows forbids")
    return problems


_DIGITS = re.compile(r"\d+")


@functools.lru_cache(maxsize=1 << 16)
def _name_shape(name: str) -> tuple[str, str]:
    """``(naming pattern, last run of digits or "")``; cached: chunk and slice names repeat across folders."""
    digits = _DIGITS.findall(name)
    return _DIGITS.sub("#", name), digits[-1] if digits else ""


def naming_pattern(name: str) -> str:
    """The shape of a name: runs of digits replaced by ``#`` (``slice_0042.tif`` → ``slice_#.tif``)."""
    return _DIGITS.sub("#", name)


# -------------------------------------------------------------------- walk
class _Found(NamedTuple):
    """A file met by the walk (a tuple: cheap to hand to worker processes)."""

    path: str
    shown: str
    tree_rel: str | None
    """Path relative to its source folder when it counts for the source's tree digest."""
    symlink: bool = False


CROWDED_FOLDER = 10_000
"""A folder with more entries than this is named in checklist item C7 (folder layout)."""


class _Walker:
    """Walks sources with plain strings (a million files make Path objects costly)."""

    def __init__(self, ws_root: Path | None) -> None:
        self.ws_root = os.path.abspath(ws_root) if ws_root else None
        self.own = (
            {os.path.join(self.ws_root, d) for d in _WORKSPACE_OWN} if self.ws_root else set()
        )
        self.flags: list[RedFlag] = []
        self.bad_names: list[tuple[str, list[str]]] = []
        self.dirs_seen = 0
        self.tree_root: str | None = None
        """The real path of the source folder being walked (links never lead out of it)."""
        self.max_depth = 0
        self.folder_counts: Counter[str] = Counter()
        """Entries of each crowded folder (more than :data:`CROWDED_FOLDER`)."""
        self.zarr_stores: list[str] = []
        """The outermost Zarr stores met at any depth of the walks (their groups not again)."""
        self.n5_stores: list[str] = []
        """The outermost N5 containers met at any depth of the walks."""
        self._last_store = ""

    def shown_root(self, source: str) -> str:
        """How ``source`` itself is shown: relative to the workspace, else its own name."""
        if self.ws_root is not None:
            rel = os.path.relpath(source, self.ws_root)
            if rel != ".." and not rel.startswith("../"):
                return "" if rel == "." else display_path(rel)
        return display_path(os.path.basename(source) or source)

    def runs(self, source: Path) -> Iterator[tuple[_Run, list[str]]]:
        """``(run, shown paths)``: the files under ``source`` (or ``source`` itself) in runs.

        A run is up to :data:`BATCH_FILES` consecutive plain files of one folder,
        the unit of work of the examination. Files come depth-first, each
        folder's entries sorted by name (:func:`curated.walk.walk`, the one tree
        walker: listings past its spill threshold are sorted on disk): the order
        :func:`curated.provenance.digest.digest_tree` uses, so a source's tree
        digest can be built as results come in. Links and special files are
        examined one by one (:meth:`_entry`); folders that cannot be listed are
        red flags, and the walk goes on.
        """
        src = os.path.abspath(source)
        shown_root = self.shown_root(src)
        self.tree_root = os.path.realpath(src) if os.path.isdir(src) else None
        if not os.path.isdir(src):
            for found in self._entry(src, shown_root, None):
                yield _single(found), [found.shown]
            return
        own = self.own
        # shown prefix of the folder walked at each depth
        shown_at: list[str] = [f"{shown_root}/" if shown_root else ""]

        def skip(prefix: str, name: str, kind: str) -> bool:
            # the workspace's own folders, when the workspace itself is checked
            return not prefix and kind == DIR and os.path.join(src, name) in own

        for ev in walk(src, errors="report", skip=skip, batch=4 * BATCH_FILES):
            if type(ev) is Files:  # (its folder's depth is the number of "/" in its prefix)
                yield from self._file_runs(ev, shown_at[ev.prefix.count("/")])
            elif type(ev) is Special:
                shown = self._shown(shown_at[ev.rel.count("/")], ev.rel.rpartition("/")[2])
                for found in self._entry(ev.path, shown, ev.rel):
                    yield _single(found), [found.shown]
            else:
                depth = ev.rel.count("/") + 1 if ev.rel else 0
                if depth:
                    del shown_at[depth:]
                    shown_at.append(
                        self._shown(shown_at[depth - 1], ev.rel.rpartition("/")[2]) + "/"
                    )
                self._folder(ev, shown_at[depth], depth)

    def _inside(self, link: str) -> bool:
        """Whether what ``link`` leads to lies inside the source being walked."""
        root = self.tree_root
        if root is None:
            return True  # a source that is itself a link to a file: the curator named it
        target = os.path.realpath(link)
        return target == root or target.startswith(root.rstrip("/") + "/")

    def _shown(self, shown_prefix: str, name: str) -> str:
        """How an entry is shown; its name's problems are noted on the way."""
        if name.isascii():
            if _SAFE_NAME.fullmatch(name) is None or name[-1] == ".":
                self._name(shown_prefix + name, name)
            return shown_prefix + name
        shown = shown_prefix + display_path(name)
        self._name(shown, name)
        return shown

    def _file_runs(self, ev: Files, shown_prefix: str) -> Iterator[tuple[_Run, list[str]]]:
        names: list[str] = []
        shown_names: list[str] = []
        weight = 0
        for name in ev.names:
            names.append(name)
            shown_names.append(self._shown(shown_prefix, name))
            weight += len(name) + 8
            if len(names) >= BATCH_FILES or weight >= _RUN_NAME_BYTES:
                yield (ev.folder, names, ev.prefix, False), shown_names
                names, shown_names, weight = [], [], 0
        if names:
            yield (ev.folder, names, ev.prefix, False), shown_names

    def _folder(self, ev: Folder | Unreadable, shown_prefix: str, depth: int) -> None:
        """A folder met: counted, noted when it is a Zarr store, or a red flag when it cannot
        be listed."""
        self.dirs_seen += 1
        if type(ev) is Folder:
            # depth-first: a folder inside a store comes right after the store's root, so only
            # the last store found can hold it (one list entry per store, not per group)
            inside = bool(self._last_store) and ev.path.startswith(self._last_store + os.sep)
            if not inside and is_zarr_store(ev.path):
                self.zarr_stores.append(ev.path)
                self._last_store = ev.path
            elif not inside and is_n5_container(ev.path):
                self.n5_stores.append(ev.path)
                self._last_store = ev.path
        if depth > self.max_depth:
            self.max_depth = depth
        if type(ev) is Unreadable:
            exc = ev.error
            self.flags.append(
                RedFlag(
                    "unreadable",
                    "error",
                    f"folder cannot be listed ({exc.strerror or exc}); ask for readable copies",
                    [shown_prefix.rstrip("/") or "."],
                )
            )
        elif ev.entries > CROWDED_FOLDER:
            self.folder_counts[shown_prefix or "."] = ev.entries

    def _name(self, shown: str, name: str) -> None:
        problems = name_problems(name)
        if problems:
            self.bad_names.append((shown, problems))

    def _entry(self, path: str, shown: str, tree_rel: str | None) -> Iterator[_Found]:
        try:
            lst = os.lstat(path)
        except OSError as exc:
            self.flags.append(
                RedFlag(
                    "unreadable", "error", f"cannot be examined ({exc.strerror or exc})", [shown]
                )
            )
            return
        if stat.S_ISREG(lst.st_mode):
            yield _Found(path, shown, tree_rel)
            return
        if stat.S_ISLNK(lst.st_mode):
            try:
                st = os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    self.flags.append(
                        RedFlag(
                            "symlink-loop",
                            "error",
                            "symbolic link loop: the link points back to itself",
                            [shown],
                        )
                    )
                else:
                    target = display_path(os.readlink(path))
                    self.flags.append(
                        RedFlag(
                            "broken-symlink",
                            "error",
                            f"broken symbolic link to {target!r}; the file it names is missing",
                            [shown],
                        )
                    )
                return
            if stat.S_ISDIR(st.st_mode):
                self.flags.append(
                    RedFlag(
                        "symlinked-folder",
                        "info",
                        "symbolic link to a folder, not followed (pass the folder itself to check it)",
                        [shown],
                    )
                )
            elif stat.S_ISREG(st.st_mode) and not self._inside(path):
                # the one link policy (curated.walk): never followed out of the tree checked
                self.flags.append(
                    RedFlag(
                        "symlink-outside",
                        "warning",
                        "symbolic link to a file outside the checked folder; not read "
                        "(pass that file itself to check it)",
                        [shown],
                    )
                )
            elif stat.S_ISREG(st.st_mode):
                yield _Found(path, shown, None, symlink=True)
            else:
                self.flags.append(
                    RedFlag(
                        "special-file",
                        "warning",
                        "symbolic link to something that is not a regular file; not read",
                        [shown],
                    )
                )
            return
        if not stat.S_ISDIR(lst.st_mode):
            # FIFOs, sockets, devices: opening them could block or read forever
            self.flags.append(
                RedFlag(
                    "special-file",
                    "warning",
                    "not a regular file (FIFO, socket or device); not read",
                    [shown],
                )
            )


# ----------------------------------------------------------------- examine
BATCH_FILES = 128
"""Files per run: the unit of work handed to a worker process."""

_RUN_NAME_BYTES = 16 * 1024
"""Name text per run: a run of long names is cut short so units of work stay small."""

_Run = tuple[str, list[str], str | None, bool]
"""``(folder, names, tree prefix or None, symlink)``: files of one folder, examined together."""


def _single(found: _Found) -> _Run:
    """A run of one file met on its own (a symbolic link, or a source that is a file)."""
    folder, _, name = found.path.rpartition("/")
    tree_prefix = None if found.tree_rel is None else found.tree_rel[: -len(name)]
    return folder or "/", [name], tree_prefix, found.symlink


_Extra = tuple[dict[str, Any] | None, list[str], list[str], str | None]
"""(image info, personal-data kinds, DICOM PHI tags, error) of the few files that have any."""


def _examine_run(
    run: _Run, on_bytes: Callable[[int], None] | None = None
) -> tuple[list[tuple[int | None, str | None, str]], dict[int, _Extra], bytes, int, int]:
    """Hash and identify a run of files (in a worker process for large inventories).

    Returns ``(rows, extras, tree records, files in them, bytes in them)``:
    ``(size, sha256, format)`` per file, the rare extra findings by index, and
    the files' :func:`curated.provenance.digest.tree_record` lines when the
    run counts for a tree digest. Files are opened relative to their folder,
    which spares the kernel a full path lookup per file.
    """
    folder, names, tree_prefix, _symlink = run
    notes = _RunNotes()
    rows: list[tuple[int | None, str | None, str, str | None]] = []
    same_kind: dict[Any, Any] = {}
    extras: dict[int, _Extra] = {}
    records: list[bytes] = []
    nbytes = 0
    try:
        dir_fd: int | None = os.open(folder, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        dir_fd = None  # each file then fails (or succeeds) on its own, by full path
    try:
        for i, name in enumerate(names):
            try:
                if dir_fd is None:
                    digest, head, size = sha256_file_head(
                        os.path.join(folder, name), HEAD_BYTES, progress=on_bytes
                    )
                else:
                    digest, size, head = hash_fd_at(dir_fd, name, on_bytes, HEAD_BYTES)
            except OSError as exc:
                path = os.path.join(folder, name)
                rows.append((_size_or_none(path), None, "unreadable", None))
                extras[i] = (None, [], [], exc.strerror or str(exc))
                notes.name(i, name if name.isascii() else display_path(name), "unreadable")
                continue
            shown_name = name if name.isascii() else display_path(name)
            fmt = sniff_format(head, shown_name)
            if fmt in _INSPECTED:
                fmt, extra = _inspect(os.path.join(folder, name), fmt, size)
                extras[i] = extra
            rows.append((size, digest, fmt, _pronom(folder, name, fmt, head, same_kind)))
            notes.name(i, shown_name, fmt)
            if fmt not in _NO_EXTENSION_RULE and not extension_matches(fmt, shown_name):
                notes.extension_mismatch.append(i)
            if tree_prefix is not None:
                records.append(tree_record(tree_prefix + name, size, digest))
                nbytes += size
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return rows, extras, b"".join(records), len(records), nbytes, notes


class _RunNotes:
    """What the checklist needs from a run's names, worked out in the worker.

    Naming-convention counts (per extension and pattern: files, number widths,
    largest number), which names are documentation or licences, and which
    contents contradict their extension. Computing these beside the hashing
    keeps the main process (the bottleneck of a large inventory) to listing
    folders and collecting records.
    """

    __slots__ = ("naming", "docs", "licences", "extension_mismatch")

    def __init__(self) -> None:
        self.naming: dict[str, dict[str, list[Any]]] = {}
        self.docs: list[int] = []
        self.licences: list[int] = []
        self.extension_mismatch: list[int] = []

    def name(self, i: int, name: str, fmt: str) -> None:
        ext, pattern, width, number, kind = _name_facts(name)
        group = self.naming.get(ext)
        if group is None:
            group = self.naming[ext] = {}
        stats = group.get(pattern)
        if stats is None:
            stats = group[pattern] = [0, set(), 0]
        stats[0] += 1
        if width:
            stats[1].add(width)
            if number > stats[2]:
                stats[2] = number
        if kind == "licence":
            self.licences.append(i)
        elif kind == "doc" or (fmt in _DOC_FORMATS and not name.lower().startswith("check")):
            self.docs.append(i)


@functools.lru_cache(maxsize=1 << 16)
def _name_facts(name: str) -> tuple[str, str, int, int, str | None]:
    """(extension, naming pattern, width and value of the last number, doc/licence kind) of a name.

    Cached: chunk and slice names repeat across thousands of folders.
    """
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    pattern, last = _name_shape(name)
    kind = None
    if name.lstrip("0_ -")[:4].lower() in _DOC_PREFIXES:
        if LICENCE_NAMES.match(name):
            kind = "licence"
        elif DOC_NAMES.match(name):
            kind = "doc"
    return ext, pattern, len(last), int(last) if last else 0, kind


_DOC_FORMATS = frozenset(("PDF", "Markdown", "reStructuredText"))
_DOC_PREFIXES = frozenset(
    ("read", "abou", "desc", "note", "info", "docu", "meth", "prot", "mani", "code", "data")
    + ("lice", "copy", "righ")
)
"""First four letters (after leading 0, _, -, space) of every name DOC_NAMES and LICENCE_NAMES match."""
_NO_EXTENSION_RULE = frozenset(("text", "unknown binary", "empty"))


def _runs_keeping_names(walker: _Walker, src: Path, shown: deque[list[str]]) -> Iterator[_Run]:
    """The runs to examine; their shown paths wait in ``shown``, in the same order, for the results."""
    for run, names in walker.runs(src):
        shown.append(names)
        yield run


_INSPECTED = frozenset(("TIFF", "BigTIFF", "DICOM", "PNG", "HDF5", "MRC"))


def _pronom(folder: str, name: str, fmt: str, head: bytes, memo: dict[Any, Any]) -> str | None:
    """The file's PUID (:func:`curated.curation.formats.identify_format`).

    Formats the sniffer names outright never reach fido; for the others fido (tens of
    milliseconds a file) identifies the first file of each format and extension in
    the folder, and the rest share its answer through ``memo``.
    """
    if fmt == "unreadable":
        return None
    try:
        return identify_format(
            os.path.join(folder, name), fmt=fmt, head=head, name=name, memo=memo
        ).puid
    except OSError:
        return None


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _inspect(path: str, fmt: str, size: int) -> tuple[str, _Extra]:
    """Read the header of a TIFF, PNG, HDF5, MRC or DICOM file: (format, extra findings)."""
    if fmt == "DICOM":
        try:
            return fmt, (None, [], dicom_phi_tags(path), None)
        except OSError as exc:
            return fmt, (None, [], [], exc.strerror or str(exc))
    inspect = {"PNG": inspect_png, "HDF5": inspect_hdf5, "MRC": inspect_mrc}.get(fmt, inspect_tiff)
    info = inspect(path, size)
    fmt = info.pop("format", fmt)
    personal = info.pop("personal_data", [])
    return fmt, (info, personal, [], None)


def _size_or_none(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


# -------------------------------------------------------------- checklist
_Answer = tuple[str, str, bool | None, str]
"""``(item, answer, ok, evidence)`` of one checklist item."""


def _checklist(
    record: dict[str, Any],
    files: Sequence[FileRecord],
    flags: list[RedFlag],
    walker: _Walker,
    docs: list[str],
    licences: list[str],
    naming: _NamingStats,
) -> list[ChecklistAnswer]:
    """The DCN checklist C1-C8 answered from what was found."""
    answers = [
        *_answer_files(InventoryStats.of(files)),
        *_answer_record(record, docs, licences),
        *_answer_people(record, flags),
        *_answer_layout(walker),
        ("C8", *_naming_answer(naming)),
    ]
    return [ChecklistAnswer(i, CHECKLIST[i], a, ok, ev) for i, a, ok, ev in answers]


def _answer_files(stats: InventoryStats) -> list[_Answer]:
    """C1 (files open) and C2 (code runs)."""
    out: list[_Answer] = []

    def add(item: str, answer: str, ok: bool | None, evidence: str) -> None:
        out.append((item, answer, ok, evidence))

    n_broken = stats.broken_images + stats.errors
    if not stats.files:
        add("C1", "na", None, "no files were found in the sources")
    elif n_broken:
        add(
            "C1",
            "no",
            False,
            f"{n_broken} of {stats.files} files cannot be read or opened, e.g. {stats.first_broken_image or stats.first_error}",
        )
    elif stats.images:
        add(
            "C1",
            "yes",
            True,
            f"all {stats.images} image files open (TIFF: headers read, first segment decoded; PNG: header and end chunk read; HDF5: opened; MRC: header read, size checked); {stats.files - stats.images} other files are readable",
        )
    else:
        add(
            "C1",
            "needs-human",
            None,
            f"{stats.files} files are readable but none is a format curated can open; check them with their software",
        )
    # C2 code runs
    if stats.code:
        add(
            "C2",
            "needs-human",
            None,
            f"{stats.code} code files (e.g. {stats.first_code}); run them to see whether they work",
        )
    else:
        add("C2", "na", None, "no code files found")
    return out


def _answer_record(record: dict[str, Any], docs: list[str], licences: list[str]) -> list[_Answer]:
    """C3 (title, authors, licence) and C4 (documentation)."""
    out: list[_Answer] = []

    def add(item: str, answer: str, ok: bool | None, evidence: str) -> None:
        out.append((item, answer, ok, evidence))

    title = get_at(record, ("study", "title"), None)
    authors = get_at(record, ("study", "authors"), None) or []
    licence = get_at(record, ("study", "license"), None)
    missing = [
        n
        for n, v in (("title", title), ("authors", authors), ("licence", licence or licences))
        if not v
    ]
    if missing:
        add("C3", "no", False, f"missing in curated.yaml: {', '.join(missing)}")
    else:
        add("C3", "yes", True, f"title, {len(authors)} author(s), licence {licence or licences[0]}")
    # C4 documentation
    if docs:
        add(
            "C4",
            "yes",
            True,
            f"documentation: {', '.join(docs[:3])}" + (" ..." if len(docs) > 3 else ""),
        )
    else:
        add(
            "C4",
            "no",
            False,
            "no README or other documentation among the sources or in the workspace",
        )
    return out


def _answer_people(record: dict[str, Any], flags: list[RedFlag]) -> list[_Answer]:
    """C5 (human participants, personal data)."""
    out: list[_Answer] = []

    def add(item: str, answer: str, ok: bool | None, evidence: str) -> None:
        out.append((item, answer, ok, evidence))

    phi = [f for f in flags if f.code in ("dicom-phi", "personal-data")]
    organism = str(get_at(record, ("biosamples", 0, "organism", "ncbi_taxon_id"), None) or "")
    if any(f.code == "dicom-phi" for f in flags):
        add("C5", "yes", False, "DICOM headers hold patient identifiers; see the red flags")
    elif phi:
        add(
            "C5",
            "needs-human",
            False,
            "headers hold possible personal data (see red flags); decide whether it identifies a person",
        )
    elif organism.endswith(":9606") or organism == "9606":
        add(
            "C5",
            "needs-human",
            None,
            "the biosample is human (NCBITaxon:9606): ask about consent and identifiability",
        )
    else:
        add(
            "C5",
            "needs-human",
            None,
            "no personal data found in headers; only a person can confirm there are no human-participant data",
        )
    return out


def _answer_layout(walker: _Walker) -> list[_Answer]:
    """C6 (names that break tools) and C7 (folder layout)."""
    out: list[_Answer] = []

    def add(item: str, answer: str, ok: bool | None, evidence: str) -> None:
        out.append((item, answer, ok, evidence))

    if walker.bad_names:
        add(
            "C6",
            "yes",
            False,
            f"{len(walker.bad_names)} names with characters that break tools, e.g. {walker.bad_names[0][0]!r} ({', '.join(walker.bad_names[0][1])})",
        )
    else:
        add("C6", "no", True, "all file and folder names are safe")
    # C7 hierarchy
    crowded = [(k, n) for k, n in walker.folder_counts.items() if n > CROWDED_FOLDER]
    evidence = f"{walker.dirs_seen} folders, deepest {walker.max_depth} levels"
    if crowded:
        evidence += f"; {len(crowded)} folders hold over 10,000 entries (e.g. {crowded[0][0]}: {crowded[0][1]})"
    add("C7", "needs-human", None if not crowded and walker.max_depth <= 8 else False, evidence)
    return out


_NamingStats = dict[str, dict[str, list[Any]]]
"""Per folder and extension (``"<folder> (*.<ext>)"``): pattern → [files, number widths, largest number]."""


def _merge_naming(into: _NamingStats, folder: str, notes: _RunNotes) -> None:
    for ext, patterns in notes.naming.items():
        group = into.setdefault(f"{folder} (*.{ext})" if ext else folder, {})
        for pattern, (count, widths, biggest) in patterns.items():
            stats = group.setdefault(pattern, [0, set(), 0])
            stats[0] += count
            stats[1] |= widths
            stats[2] = max(stats[2], biggest)


def _naming_answer(naming: _NamingStats) -> tuple[str, bool | None, str]:
    # a convention is judged among files of one kind per folder (slices, not the README beside them)
    big = {k: v for k, v in naming.items() if sum(c for c, _w, _m in v.values()) >= 3}
    if not big:
        return "needs-human", None, "too few files per folder to infer a convention"
    inconsistent = []
    unpadded = []
    for folder, patterns in big.items():
        total = sum(c for c, _w, _m in patterns.values())
        top = max(patterns.items(), key=lambda kv: kv[1][0])[1]
        count, widths, biggest = top
        if count / total < 0.9:
            inconsistent.append(folder or ".")
            continue
        if len(widths) > 1 and biggest >= 10:
            unpadded.append(folder or ".")
    if inconsistent:
        return (
            "no",
            False,
            f"names in {len(inconsistent)} folders follow no single pattern (e.g. {inconsistent[0]})",
        )
    if unpadded:
        return (
            "no",
            False,
            f"numbers in names are not zero-padded in {unpadded[0]}: they sort out of order (slice_2 after slice_10)",
        )
    return (
        "yes",
        True,
        f"names in {len(big)} folders follow one pattern each with zero-padded numbers",
    )


# ------------------------------------------------------------------- check
def _sources_from_metadata(ws: Workspace) -> list[Path]:
    try:
        record = ws.read_metadata()
    except MetadataError:
        return []
    out = []
    for img in record.get("images") or []:
        p = img.get("path") if isinstance(img, dict) else None
        if p:
            path = Path(p)
            out.append(path if path.is_absolute() else ws.root / path)
    return out


def check(
    workspace: Workspace | str | Path | None = None,
    sources: Sequence[str | Path] = (),
    *,
    progress: ProgressReporter | None = None,
    write: bool = True,
    processes: int | None = None,
) -> CheckReport:
    """Check the depositor's files: inventory, DCN checklist C1-C8 and red flags.

    Parameters
    ----------
    workspace
        The dataset's workspace. The report goes to ``curation/check.json``
        and a C entry to its log. ``None`` checks without writing anything.
    sources
        Files or folders to check; default: the ``images[].path`` listed in
        ``curated.yaml``.
    progress
        Reports bytes hashed.
    write
        Write ``curation/check.json`` (when there is a workspace).
    processes
        Worker processes that hash and identify files (default: the CPUs
        available, at most 8; ``1`` does everything in this process). Workers
        are only started when there are more than :data:`BATCH_FILES` files.

    Returns
    -------
    CheckReport

    Raises
    ------
    InputError
        When no source is given or listed, or a given source does not exist.

    Examples
    --------
    >>> report = check("my-dataset", ["/data/raw"])  # doctest: +SKIP
    >>> report.answer("C1").answer  # doctest: +SKIP
    'yes'
    """
    ws = as_workspace(workspace)
    paths = _source_paths(ws, sources)
    progress = ensure_progress(progress)
    record: dict[str, Any] = {}
    if ws is not None:
        try:
            record = ws.read_metadata()
        except MetadataError:
            record = {}
    walker = _Walker(ws.root if ws else None)
    # in a workspace, relative to its root as the log names every path (never absolute)
    shown = [display_path(ws.relative(p) if ws else str(p)) for p in paths]
    with recorder(
        ws,
        STEP,
        "check",
        params={"sources": shown},
        libraries=("tifffile",),
        hash_inputs=False,
    ) as step:
        found = _Collected(flags=walker.flags)
        progress.start("checking files", None, "bytes")
        nproc = default_processes() if processes is None else max(1, int(processes))
        source_digests: dict[str, str | None] = {}
        for src in paths:
            art = _examine_source(src, ws, walker, found, nproc, progress)
            step.inputs.append(art)
            source_digests[art.path] = art.digest
        progress.finish()
        flags = found.flags
        _flag_files(found.files, flags, walker, found.personal, found.phi)
        flags.extend(
            RedFlag("slice-series", severity, message, paths)
            for severity, message, paths in slice_findings(found.files)
        )
        _flag_missing_docs(ws, record, found)
        _flag_invalid_ome_zarr(walker.zarr_stores, ws, flags)
        _flag_sparse_arrays(walker.zarr_stores, ws, flags)
        _flag_sparse_n5(walker.n5_stores, ws, flags)
        checklist = _checklist(
            record, found.files, flags, walker, found.docs, found.licences, found.naming
        )
        flags.sort(key=lambda f: (SEVERITIES.index(f.severity), f.code))
        report = CheckReport(shown, found.files, checklist, flags, source_digests)
        if ws is not None and write:
            out = ws.root / CHECK_FILE
            report.write(out)
            report.path = ws.relative(out)
            step.add_output(out, role="check-report")
        result = report.to_result()
        step.message = result.message
        step.details = {
            "checklist": {a.id: a.answer for a in checklist},
            "flags": dict(Counter(f.code for f in flags)),
        }
    return report


def _flag_invalid_ome_zarr(
    found: Sequence[str], ws: Workspace | None, flags: list[RedFlag]
) -> None:
    """Run the NGFF validators on the OME-Zarr images handed in, at any depth of the sources
    (``found``: the outermost Zarr stores the walk met, :attr:`_Walker.zarr_stores`).

    A store that is not an image itself (a bioformats2raw container, a plain Zarr group of
    images) has its direct member groups that are images judged instead. Found here, a
    problem is the depositor's to explain or fix before anything is converted from the
    store; curated's own pyramid convention is not asked of other tools' stores."""
    from curated.images import read_ngff
    from curated.images.ngff import declares_image
    from curated.images.validate import store_problems

    def is_image(path: str | Path) -> bool:
        return declares_image(read_ngff(path, tolerant=True).attrs)

    images: list[Path] = []
    for root in found:
        if is_image(root):
            images.append(Path(root))
        elif not is_zarr_array(root):  # an array's members are its chunks: millions, maybe
            try:  # scandir's entry types: no stat per member
                with os.scandir(root) as entries:
                    images += sorted(
                        Path(e.path)
                        for e in entries
                        if e.is_dir(follow_symlinks=False)
                        and is_zarr_store(e.path)
                        and is_image(e.path)
                    )
            except OSError:
                continue  # the walk already flagged an unreadable folder
    for store in images:
        problems = store_problems(store, conventions=False)
        if problems:
            more = f" (+{len(problems) - 1} more)" if problems[1:] else ""
            shown = display_path(str(store if ws is None else ws.relative(store)))
            flags.append(
                RedFlag(
                    "invalid-ome-zarr",
                    "warning",
                    f"OME-Zarr image does not validate: {problems[0]}{more}; "
                    f"`curated metadata validate {shown}` lists every problem",
                    [shown],
                )
            )


SPARSE_ARRAYS_SEEN = 64
"""Most Zarr arrays of one store whose stored chunks :func:`_flag_sparse_arrays` counts."""


def _flag_sparse_arrays(found: Sequence[str], ws: Workspace | None, flags: list[RedFlag]) -> None:
    """Zarr arrays (at any depth of the stores the walk met) that claim a shape their stored
    chunks are far from filling: the claimed size against the chunks stored, as `convert`
    reads it (:func:`curated.images.stored.sparse_summary`; it refuses the emptiest)."""
    import zarr

    from curated.images.stored import sparse_summary, zarr_chunk_count

    for root in found:
        try:
            node = zarr.open(store=root, mode="r")
            arrays = (
                [("", node)]
                if isinstance(node, zarr.Array)
                else [
                    (name, m)
                    for name, m in node.members(max_depth=None)
                    if isinstance(m, zarr.Array)
                ][:SPARSE_ARRAYS_SEEN]
            )
            for name, arr in arrays:
                said = sparse_summary(
                    tuple(int(n) for n in arr.shape), zarr_chunk_count(arr, Path(root) / name)
                )
                if said is None:
                    continue
                where = Path(root) / name if name else Path(root)
                shown = display_path(str(where if ws is None else ws.relative(where)))
                severity = "error" if "refuses" in said else "warning"
                flags.append(RedFlag("sparse-array", severity, f"Zarr array {said}", [shown]))
        except Exception:  # noqa: BLE001 - unreadable metadata is the validators' to report
            continue


def _flag_sparse_n5(found: Sequence[str], ws: Workspace | None, flags: list[RedFlag]) -> None:
    """N5 arrays (of the containers the walk met) that claim a shape their stored blocks are
    far from filling, read as `convert` opens them (:func:`_flag_sparse_arrays` for Zarr)."""
    from curated.images.sources import open_source
    from curated.images.stored import n5_arrays, sparse_summary

    for root in found:
        for key in n5_arrays(Path(root))[:SPARSE_ARRAYS_SEEN]:
            try:
                src = open_source(f"{root}:{key}")
            except Exception:  # noqa: BLE001 - an array that does not open is convert's to report
                continue
            said = sparse_summary(tuple(int(n) for n in src.shape), getattr(src, "stored", None))
            if said is None:
                continue
            where = Path(root) / key.strip("/")
            shown = display_path(str(where if ws is None else ws.relative(where)))
            severity = "error" if "refuses" in said else "warning"
            flags.append(RedFlag("sparse-array", severity, f"N5 array {said}", [shown]))


def _source_paths(ws: Workspace | None, sources: Sequence[str | Path]) -> list[Path]:
    """The sources to check: those given, else the record's ``images[].path``; each must exist."""
    paths = [Path(s) for s in sources]
    if not paths and ws is not None:
        paths = _sources_from_metadata(ws)
        if not paths:
            raise InputError(
                "no SOURCE given and curated.yaml lists no images[].path; pass the files or folders to check",
                path=ws.metadata_path,
            )
    if not paths:
        raise InputError("no SOURCE given; pass the files or folders to check")
    for p in paths:
        if not os.path.lexists(p):
            raise InputError("source does not exist; check the path", path=p)
    return paths


@dataclass
class _Collected:
    """What the examination of every source gathers for the flags and the checklist."""

    flags: list[RedFlag]
    files: FileInventory = field(default_factory=FileInventory)
    personal: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    phi: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    naming: _NamingStats = field(default_factory=dict)
    docs: list[str] = field(default_factory=list)
    licences: list[str] = field(default_factory=list)


def _examine_source(
    src: Path,
    ws: Workspace | None,
    walker: _Walker,
    found: _Collected,
    nproc: int,
    progress: ProgressReporter,
) -> Artifact:
    """Examine one source's files (in worker processes when many); return it as a log input."""
    tree = TreeHasher() if src.is_dir() else None
    complete = True
    first_files = len(found.files)
    pending: deque[list[str]] = deque()
    for run, (rows, extras, records, nrec, nrec_bytes, notes), ran_here in map_batches(
        _examine_run,
        _runs_keeping_names(walker, src, pending),
        processes=nproc,
        local_args=(progress.advance,),
    ):
        shown_names = pending.popleft()
        if not ran_here:
            progress.advance(sum(r[0] or 0 for r in rows))
        complete = _collect_run(found, run, shown_names, rows, extras, notes) and complete
        if nrec and tree is not None:
            folder, names, tree_prefix, _ = run
            ok = [n for n, r in zip(names, rows, strict=True) if r[1] is not None]
            tree.add_records(
                records, f"{tree_prefix}{ok[0]}", f"{tree_prefix}{ok[-1]}", nrec, nrec_bytes
            )
    shown = display_path(str(src if ws is None else ws.relative(src)))
    if tree is not None:
        td = tree.result()
        return Artifact(shown, td.bytes, td.digest if complete else None, role="source")
    files = found.files
    one = files[first_files] if len(files) > first_files else None
    digest = f"sha256:{one.sha256}" if one and one.sha256 else None
    return Artifact(shown, one.size if one else None, digest, role="source")


def _collect_run(
    found: _Collected,
    run: _Run,
    shown_names: list[str],
    rows: list[tuple[int | None, str | None, str, str | None]],
    extras: dict[int, _Extra],
    notes: _RunNotes,
) -> bool:
    """Add one run's results to what was found; false when some file could not be read."""
    symlink = run[3]
    complete = True
    for i, (size, digest, fmt, puid) in enumerate(rows):
        extra = extras.get(i) if extras else None
        if extra is None:
            found.files.append(
                FileRecord(shown_names[i], size, digest, fmt, None, symlink, None, puid)
            )
        else:
            image, kinds, tags, error = extra
            shown = shown_names[i]
            found.files.append(FileRecord(shown, size, digest, fmt, image, symlink, error, puid))
            for k in kinds:
                found.personal[k].append(shown)
            for t in tags:
                found.phi[t].append(shown)
        if digest is None:
            complete = False
    _merge_naming(found.naming, shown_names[0].rpartition("/")[0], notes)
    found.docs.extend(shown_names[i] for i in notes.docs)
    found.licences.extend(shown_names[i] for i in notes.licences)
    for i in notes.extension_mismatch:
        found.flags.append(
            RedFlag(
                "extension-mismatch",
                "warning",
                f"content is {rows[i][2]} but the name's extension says otherwise",
                [shown_names[i]],
            )
        )
    return complete


def _flag_missing_docs(ws: Workspace | None, record: dict[str, Any], found: _Collected) -> None:
    """Red flags for a delivery without documentation or without a licence."""
    _workspace_docs_and_licences(ws, found.docs, found.licences)
    if not found.docs:
        found.flags.append(
            RedFlag(
                "no-documentation",
                "warning",
                "no README or other documentation; ask the depositor for one",
                [],
            )
        )
    if not found.licences and not get_at(record, ("study", "license"), None):
        found.flags.append(
            RedFlag(
                "no-licence",
                "warning",
                "no licence: neither a LICENSE file nor study.license in curated.yaml",
                [],
            )
        )


def _flag_files(
    files: Sequence[FileRecord],
    flags: list[RedFlag],
    walker: _Walker,
    personal: dict[str, list[str]],
    phi: dict[str, list[str]],
) -> None:
    for shown, problems in walker.bad_names:
        flags.append(
            RedFlag(
                "bad-name",
                "warning",
                f"name has {', '.join(problems)}; rename before packaging",
                [shown],
            )
        )
    _flag_pixel_types(files, flags)
    _flag_system_files(files, flags)
    in_memory = len(files) <= INVENTORY_IN_MEMORY
    first_with: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    for f in files:
        if f.error:
            flags.append(
                RedFlag(
                    "unreadable",
                    "error",
                    f"cannot be read ({f.error}); ask for a readable copy",
                    [f.path],
                )
            )
        elif f.size == 0:
            flags.append(
                RedFlag(
                    "empty-file",
                    "warning",
                    "zero-byte file: an export or copy probably failed",
                    [f.path],
                )
            )
        if f.image is not None and not f.image.get("opens"):
            code = "truncated-image" if f.image.get("truncated") else "corrupt-image"
            flags.append(
                RedFlag(
                    code, "error", f.image.get("problem") or "the image does not open", [f.path]
                )
            )
        elif f.image is not None and f.image.get("sparse"):
            said = f.image["sparse"]
            severity = "error" if "refuses" in said else "warning"
            flags.append(RedFlag("sparse-image", severity, said, [f.path]))
        digest = f.sha256
        if digest and f.size and in_memory:
            first = first_with.setdefault(digest, f.path)
            if first is not f.path:
                duplicates.setdefault(digest, [first]).append(f.path)
    if not in_memory:
        duplicates = _duplicates_on_disk(files)
    for digest, paths in sorted(duplicates.items()):
        flags.append(
            RedFlag(
                "duplicate-content",
                "warning",
                f"{len(paths)} files have identical content (sha256 {digest[:12]}...)",
                sorted(paths),
            )
        )
    for kind, paths in sorted(personal.items()):
        flags.append(
            RedFlag(
                "personal-data",
                "warning",
                f"image headers hold possible personal data ({kind}); review and remove before publishing",
                sorted(set(paths)),
            )
        )
    for tag, paths in sorted(phi.items()):
        flags.append(
            RedFlag(
                "dicom-phi",
                "error",
                f"DICOM header holds {tag}: protected health information must be removed before deposit",
                sorted(set(paths)),
            )
        )


SYSTEM_FILES = frozenset((".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"))
"""Names (lower case) of files an operating system leaves in folders: Finder's ``.DS_Store``,
Windows' thumbnail caches and folder settings (macOS ``._*`` AppleDouble files too)."""


def _flag_system_files(files: Sequence[FileRecord], flags: list[RedFlag]) -> None:
    """Files the depositor's operating system left beside the data (one flag, the first
    few named): they are no data, and a copy to another system turns each into noise."""
    shown_most = 20
    found: list[str] = []
    count = 0
    for f in files:
        name = f.path.rpartition("/")[2]
        if name.startswith("._") or name.lower() in SYSTEM_FILES:
            count += 1
            if len(found) < shown_most:
                found.append(f.path)
    if count:
        flags.append(
            RedFlag(
                "system-files",
                "warning",
                f"{count} files left by macOS or Windows (.DS_Store, ._* AppleDouble, Thumbs.db, "
                "desktop.ini): no data; leave them out of the deposit (delete them from a copy)",
                found,
            )
        )


def _flag_pixel_types(files: Sequence[FileRecord], flags: list[RedFlag]) -> None:
    """Images whose pixel type ``curated convert`` refuses (float64, complex, ...): found
    here, before anything is converted, the depositor can be asked for another export.
    One flag per type, naming the first few files and counting the rest."""
    from curated.images.sources import LABEL_ONLY_DTYPES, SUPPORTED_DTYPES

    shown_most = 20
    found: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    for f in files:
        image = f.image or {}
        dtype = image.get("dtype")
        if not dtype or not image.get("opens") or dtype in SUPPORTED_DTYPES:
            continue
        counts[dtype] += 1
        if len(paths := found.setdefault(dtype, [])) < shown_most:
            paths.append(f.path)
    for dtype, paths in sorted(found.items()):
        more = f" ({counts[dtype]} files)" if counts[dtype] > len(paths) else ""
        labels = (
            " (label volumes of this type are fine: `curated labels add`)"
            if dtype in LABEL_ONLY_DTYPES
            else ""
        )
        flags.append(
            RedFlag(
                "unsupported-pixel-type",
                "warning",
                f"pixel type {dtype}{more} cannot be converted to an OME-Zarr image "
                f"(supported: {', '.join(SUPPORTED_DTYPES)}){labels}; ask for such an export, "
                "or convert the files first",
                paths,
            )
        )


def _duplicates_on_disk(files: Sequence[FileRecord]) -> dict[str, list[str]]:
    """Files with the same content (non-empty), found through a temporary SQLite index.

    For inventories too large for an in-memory digest index: SQLite keeps a
    small page cache and sorts on disk, so memory stays flat.
    """
    import sqlite3

    with tempfile.TemporaryDirectory(prefix="curated-check-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "digests.sqlite"))
        try:
            # a scratch index: no journal, no fsync
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("CREATE TABLE d (sha TEXT, path TEXT)")
            db.executemany(
                "INSERT INTO d VALUES (?, ?)",
                ((f.sha256, f.path) for f in files if f.sha256 and f.size),
            )
            out: dict[str, list[str]] = {}
            rows = db.execute(
                "SELECT sha, path FROM d WHERE sha IN "
                "(SELECT sha FROM d GROUP BY sha HAVING COUNT(*) > 1) ORDER BY sha, rowid"
            )
            for sha, path in rows:
                out.setdefault(sha, []).append(path)
            return out
        finally:
            db.close()


def _workspace_docs_and_licences(
    ws: Workspace | None, docs: list[str], licences: list[str]
) -> None:
    """Add the workspace's own README and licence files to what the sources hold."""
    if ws is None:
        return
    for name in ("README.md", "README.txt", "README"):
        if (ws.root / name).is_file():
            docs.append(name)
    for name in ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING"):
        if (ws.root / name).is_file():
            licences.append(name)
