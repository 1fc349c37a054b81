"""Small file-system primitives every layer needs: atomic writes, canonical JSON, reading a mapping."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from curated._crash import crash_point
from curated.errors import MetadataError


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, are flushed to disk, then
    renamed over ``path`` (rename is atomic on POSIX within one file system).
    """
    return atomic_write_chunks(path, (data,), mode=mode)


def atomic_write_chunks(
    path: str | Path, chunks: Iterable[bytes], *, mode: int | None = None
) -> Path:
    """:func:`atomic_write_bytes` for content made piece by piece (never all in memory)."""

    def write(name: str) -> None:
        with open(name, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)

    return atomic_write_via(path, write, mode=mode)


def atomic_write_via(
    path: str | Path, write: Callable[[str], Any], *, mode: int | None = None
) -> Path:
    """Write ``path`` atomically with a writer that wants a file name (``pyarrow``, ``tifffile``).

    ``write(name)`` writes the whole file to ``name``, a temporary file beside ``path``
    (``.NAME.XXXXXXXX.tmp``, see :func:`is_temp_name`), which is flushed to disk and then
    renamed over ``path`` (atomic on POSIX within one file system). The replaced file's
    mode is kept, else the umask's default (mkstemp alone would make it 0600); ``mode``
    sets it instead (``0o600`` for a file only its owner may read).

    The temporary file is locked (``flock``) from its creation to its rename, so that a
    later write of the same ``path`` can tell a killed writer's leftover (unlocked: its
    process ended, and the kernel let go of its lock) from a live writer's file: once
    the new file is in place, the leftovers of ``path`` are removed (:func:`drop_stale_temps`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        _lock(fd)
        os.fchmod(fd, mode)
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
    finally:
        os.close(fd)  # lets go of the lock
    drop_stale_temps(path)
    return path


TEMP_SUFFIX = ".tmp"
ASIDE_SUFFIX = ".old.tmp"
_RANDOM = r"[a-z0-9_]{8}"  # mkstemp / mkdtemp: 8 random characters
_TEMP_NAME = re.compile(rf"\.[^/]+\.(?:{_RANDOM}|old)\.tmp")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is what a write beside its target leaves when killed: never content.

    Two names, for a target ``NAME``: ``.NAME.XXXXXXXX.tmp``, the temporary file of an
    atomic write (:func:`atomic_write_via`) or the folder an output is built in
    (:class:`DirBuild`), and ``.NAME.old.tmp``, the output being replaced, set aside for
    the moment between two renames. A process killed before its rename (``kill -9``,
    power loss) leaves them behind, whole or half written; the target is the old
    output or the new one. Bags leave such names out.
    """
    return _TEMP_NAME.fullmatch(name) is not None


def temps_of(target: Path) -> list[Path]:
    """The temporary files and folders (``.NAME.XXXXXXXX.tmp``) beside ``target`` that are its own.

    The name proves whose they are: ``.a.b.XXXXXXXX.tmp`` is of ``a.b``, never of ``a``.
    The parent folder is listed once (one ``scandir``).
    """
    own = re.compile(re.escape(f".{target.name}.") + _RANDOM + re.escape(TEMP_SUFFIX))
    try:
        with os.scandir(target.parent) as it:
            names = sorted(e.name for e in it if own.fullmatch(e.name))
    except OSError:  # gone, or a folder that may be written but not listed
        return []
    return [target.parent / n for n in names]


def _lock(fd: int) -> None:
    """Hold an exclusive lock on ``fd`` until it is closed (or the process ends, even killed)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # no locks on this file system: its leftovers are then never taken for stale


def writer_gone(temp: Path) -> bool:
    """Whether the process that made the temporary file or folder ``temp`` has ended.

    Writers hold a lock on their temporary file or folder until it is renamed; the kernel
    releases it when the process ends, however it ends. Unlocked means stale; locked (a
    live writer, here or on another machine sharing the file system) or cannot be told
    (a file system without locks, a link, gone meanwhile) means leave it alone.

    A writer takes its lock right after creating the file or folder, before writing to
    it: only a check in those few microseconds can find a live writer's file unlocked.
    A file removed then is made again by the writer's ``write(name)`` (its mode then the
    umask's default); a folder removed then fails that build with an error, never a
    half output. Temporary files of a curated older than these locks count as stale.
    """
    try:
        fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def drop_stale_temps(target: str | Path) -> list[Path]:
    """Remove the temporary files a killed atomic write of ``target`` left beside it.

    Only files named like ``target``'s own temporary files (:func:`temps_of`) whose
    writer has ended (:func:`writer_gone`) go: another live write of the same target,
    other targets' temporary files and folders (an output being built) stay. Returns
    what was removed.
    """
    removed = []
    for temp in temps_of(Path(target)):
        if temp.is_file() and not temp.is_symlink() and writer_gone(temp):
            try:
                temp.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: the write itself succeeded
                continue
            removed.append(temp)
    return removed


BUILDING_MARKER = ".curated-building"
"""Written first into a folder being built (:class:`DirBuild`), removed once it is complete."""


def aside_of(dest: Path) -> Path:
    """Where the output being replaced at ``dest`` waits between the two renames of a swap."""
    return dest.parent / f".{dest.name}{ASIDE_SUFFIX}"


class Leftovers(NamedTuple):
    """What :func:`recover_swap` found beside a destination and left alone."""

    foreign: list[Path]
    """Named like a build's leftovers but not made by one of this kind (a user's folder)."""
    busy: list[Path]
    """Another live run's temporary folder (or one whose lock cannot be told)."""
    restored: bool
    """The output set aside by a run killed between its two renames was put back."""


def recover_swap(
    dest: str | Path,
    *,
    is_ours: Callable[[Path], bool],
    finished: Callable[[Path], bool] | None = None,
) -> Leftovers:
    """Finish or undo what a build of ``dest`` killed part way (:class:`DirBuild`) left beside it.

    ``is_ours(path)`` says whether a folder (or file) is an output of this kind. A run
    ended by ``kill -9`` leaves at most temporary folders or files (``.NAME.XXXXXXXX.tmp``)
    and the old output set aside (``.NAME.old.tmp``). Temporary ones whose writer has
    ended (:func:`writer_gone`) are removed: files by their name, folders when empty,
    marked (:data:`BUILDING_MARKER`: half built) or ``is_ours`` (complete, killed before
    its rename); a complete one that ``finished`` accepts (its log says it was made) is
    renamed into place instead. Then an output set aside is put back where ``dest`` is
    missing (the new one never landed: the old output is never lost), else removed.
    Nothing else is touched: what is named like a leftover but not ours, and everything
    while another run is building ``dest``, is returned for the caller to refuse.
    """
    dest = Path(dest)
    foreign: list[Path] = []
    busy: list[Path] = []
    for temp in temps_of(dest):
        if not writer_gone(temp):
            (foreign if temp.is_symlink() else busy).append(temp)
        elif temp.is_file():
            temp.unlink(missing_ok=True)
        elif not temp.is_dir() or not _drop_temp_dir(temp, dest, is_ours, finished):
            foreign.append(temp)
    aside = aside_of(dest)
    if busy or not os.path.lexists(aside):
        return Leftovers(foreign, busy, restored=False)
    if aside.is_symlink() or not is_ours(aside):
        return Leftovers([*foreign, aside], busy, restored=False)
    if occupied(dest):
        remove(aside)  # the new output landed: the old one only waited to be removed
        return Leftovers(foreign, busy, restored=False)
    if os.path.lexists(dest):
        dest.rmdir()  # an empty folder made since: the old output is worth more
    os.replace(aside, dest)  # the new output never landed: the old one is put back
    return Leftovers(foreign, busy, restored=True)


def _drop_temp_dir(
    temp: Path, dest: Path, is_ours: Callable[[Path], bool], finished: Callable[[Path], bool] | None
) -> bool:
    """Remove (or, complete and ``finished``, swap in) a dead build's folder; ``False``: not ours."""
    if not any(temp.iterdir()):
        temp.rmdir()
        return True
    marked = (temp / BUILDING_MARKER).is_file()
    if not marked and not is_ours(temp):
        return False
    if marked or finished is None or not finished(temp):
        shutil.rmtree(temp)
    elif not occupied(dest):  # killed between its two renames (or before the only one)
        if os.path.lexists(dest):
            dest.rmdir()
        os.replace(temp, dest)  # the old output set aside, if any, is removed next
    elif not os.path.lexists(aside_of(dest)):  # killed before setting the old output aside
        swap_into(temp, dest)
    else:
        shutil.rmtree(temp)  # two outputs already: this third one is not placed
    return True


def remove(path: Path) -> None:
    """Remove a file, link or folder tree (nothing if absent)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def swap_into(src: Path, dest: Path, *, crash: str = "swap") -> None:
    """Rename ``src`` (a file or folder beside ``dest``) to ``dest``; an old ``dest`` is set aside first.

    The old output leaves ``dest`` whole in one rename (never half deleted) to
    ``.NAME.old.tmp``, the new one takes its place in a second, and the old one is
    removed last; a kill in between leaves the old output recoverable by
    :func:`recover_swap`. Crash points ``CRASH-swap-aside`` and ``CRASH-swap-in``
    (:mod:`curated._crash`) stand between the steps.
    """
    aside = aside_of(dest)
    if os.path.lexists(aside):  # recover_swap runs first: this is no leftover of ours
        raise FileExistsError(errno.EEXIST, "is in the way of the replacement", str(aside))
    if os.path.lexists(dest):
        os.replace(dest, aside)
        crash_point(f"{crash}-swap-aside")
    os.replace(src, dest)
    crash_point(f"{crash}-swap-in")
    remove(aside)


class DirBuild:
    """A folder built beside ``dest`` under a temporary name, then swapped into place whole.

    :meth:`start` makes ``.NAME.XXXXXXXX.tmp`` (as an atomic write's temporary file is
    named, so bags leave it out), marked (:data:`BUILDING_MARKER`) and locked while this
    process lives; :meth:`finished` removes the marker, :meth:`swap_in` renames it (or a
    file made from it) into place by :func:`swap_into`. ``dest`` is at every moment
    absent, the old output whole or the new one whole; what a kill leaves is cleared by
    :func:`recover_swap` on the next run.
    """

    def __init__(self, dest: str | Path, *, crash: str = "swap") -> None:
        self.dest = Path(dest)
        self.crash = crash
        self.path: Path | None = None
        self._fd = -1

    def start(self) -> Path:
        """Make the temporary folder (the umask's default mode, as ``mkdir`` would) and lock it;
        the destination's missing parent folders are made first."""
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        path = Path(
            tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=TEMP_SUFFIX, dir=self.dest.parent)
        )
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        _lock(self._fd)
        os.chmod(path, 0o777 & ~_umask())  # mkdtemp makes 0700
        self.path = path
        (path / BUILDING_MARKER).write_bytes(b"")
        return path

    def finished(self) -> None:
        """The folder is complete: without its marker, a kill from here on leaves it whole."""
        assert self.path is not None
        (self.path / BUILDING_MARKER).unlink()

    def swap_in(self, made: Path | None = None) -> None:
        """Put the folder (or ``made``, a file built from it beside ``dest``) at ``dest``."""
        assert self.path is not None
        swap_into(made or self.path, self.dest, crash=self.crash)
        if made is not None:
            shutil.rmtree(self.path)
        self.release()

    def discard(self) -> None:
        """Remove the folder (a failed build): nothing half built stays behind."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def occupied(path: Path) -> bool:
    """Whether ``path`` holds something (an empty folder holds nothing)."""
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return os.path.lexists(path)


@contextmanager
def building_dir(
    dest: str | Path,
    *,
    is_ours: Callable[[Path], bool],
    overwrite: bool = False,
    crash: str = "swap",
) -> Iterator[Path]:
    """Build a folder for ``dest`` beside it (:class:`DirBuild`) and swap it in whole when the block ends.

    First what a killed run left is recovered (:func:`recover_swap`); ``dest`` holding
    something is replaced only with ``overwrite`` and when ``is_ours`` (an output of the
    same kind). Callers refuse those cases first with their own words; here they raise
    :class:`FileExistsError`. An exception in the block removes the folder.
    """
    dest = Path(dest)
    left = recover_swap(dest, is_ours=is_ours)
    if left.foreign or left.busy:
        why = "was not made by this command" if left.foreign else "is another run's, still building"
        raise FileExistsError(errno.EEXIST, why, str((left.foreign or left.busy)[0]))
    if occupied(dest) and not (overwrite and is_ours(dest)):
        raise FileExistsError(errno.EEXIST, "exists and is not to be replaced", str(dest))
    build = DirBuild(dest, crash=crash)
    try:
        yield build.start()
    except BaseException:
        build.discard()
        raise
    crash_point(f"{crash}-built")  # complete, still marked: the next run removes it
    build.finished()
    build.swap_in()


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


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Text flavour of :func:`atomic_write_bytes` (UTF-8, ``\\n`` newlines)."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no insignificant whitespace and UTF-8 kept as is.

    This is the byte form that digests in the curator log are computed over.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def write_json(path: str | Path, obj: Any, *, mode: int | None = None) -> Path:
    """Atomically write pretty JSON (2-space indent, trailing newline); ``mode``: see
    :func:`atomic_write_via`."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", mode=mode
    )


MAX_MAPPING_BYTES = 16 * 1024 * 1024
"""The largest metadata file (``curated.yaml``, a JSON record) :func:`load_mapping` reads."""
MAX_MAPPING_DEPTH = 64
MAX_MAPPING_VALUES = 1_000_000
"""Values a mapping may hold once YAML aliases are expanded: every later reader expands them."""
_TOO_DEEP = f"is nested more than {MAX_MAPPING_DEPTH} levels deep; no metadata file is"

_YamlBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses 10x faster


class MetadataLoader(_YamlBase):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader with the YAML 1.2 core schema, text keys and no duplicate keys.

    YAML 1.1 (PyYAML's default) reads ``no``/``yes``/``on``/``off`` as booleans, ``1:20``
    as 80, ``010`` as 8, ``1_000`` as 1000 and ``2024-01-02`` as a date; a depositor's
    text changed before anyone reads it. Here plain scalars resolve as YAML 1.2's core
    schema says (``true``/``false``, ``null``/``~``, decimal, ``0o`` and ``0x`` integers,
    floats); everything else is the text as written. Mapping keys are always the text
    written (``1:`` is the key ``"1"``), a key given twice is an error naming both lines
    (PyYAML keeps the last one silently), and tags beyond the core schema's (``!!binary``,
    ``!!set``, ``!!timestamp``, ``!!python/...``) are refused, as is YAML 1.1's merge key
    (``<<``), which YAML 1.2 dropped.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}
    yaml_constructors: dict[Any, Any] = {}

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        mapping: dict[str, Any] = {}
        first: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be text, not a list or mapping", key_node.start_mark
                )
            key = key_node.value
            if key == "<<" and not key_node.style:  # plain (libyaml says "", PyYAML None)
                msg = "YAML 1.1 merge keys (<<) are not read (YAML 1.2 has none); write the fields out"
                raise yaml.constructor.ConstructorError(None, None, msg, key_node.start_mark)
            if key in first:
                msg = f"the key {key!r} is given twice (first at line {first[key].line + 1}); a later one would silently replace the first"
                raise yaml.constructor.ConstructorError(None, None, msg, key_node.start_mark)
            first[key] = key_node.start_mark
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: Any) -> int:
        text = self.construct_scalar(node)
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)

    def construct_yaml_float(self, node: Any) -> float:
        text = self.construct_scalar(node).lower()
        if text.lstrip("+-") in (".inf", ".nan"):
            return float(text.replace(".", ""))
        return float(text)

    def construct_disallowed(self, node: Any) -> Any:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"the tag {node.tag!r} is not allowed in a metadata file (text, numbers, "
            "true/false, null, lists and mappings only)",
            node.start_mark,
        )


_CORE = "tag:yaml.org,2002:"
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    MetadataLoader.add_implicit_resolver(_CORE + _tag, re.compile(_pattern), list(_first))
_constructors: tuple[tuple[str | None, Any], ...] = (
    ("null", yaml.SafeLoader.construct_yaml_null),
    ("bool", yaml.SafeLoader.construct_yaml_bool),
    ("int", MetadataLoader.construct_yaml_int),
    ("float", MetadataLoader.construct_yaml_float),
    ("str", yaml.SafeLoader.construct_yaml_str),
    ("seq", yaml.SafeLoader.construct_yaml_seq),
    ("map", yaml.SafeLoader.construct_yaml_map),
    (None, MetadataLoader.construct_disallowed),
)
for _name, _make in _constructors:
    MetadataLoader.add_constructor(_CORE + _name if _name else None, _make)


class MetadataDumper(yaml.SafeDumper):
    """PyYAML's safe dumper quoting every text a YAML 1.1 *or* 1.2 reader would take for another type.

    ``"1e3"``, ``"0o17"`` are text to YAML 1.1 but numbers to :class:`MetadataLoader`;
    ``"no"``, ``"1:20"`` the other way round: both are written in quotes, so what
    curated writes reads back the same here and in any other YAML reader.
    """


for _first, _entries in list(MetadataLoader.yaml_implicit_resolvers.items()):
    for _resolved, _regexp in _entries:
        MetadataDumper.add_implicit_resolver(_resolved, _regexp, [_first])


def dump_yaml_text(data: Any, **options: Any) -> str:
    """``data`` as block-style YAML (UTF-8 kept, keys in the given order) by :class:`MetadataDumper`."""
    options = {"sort_keys": False, "allow_unicode": True, "default_flow_style": False} | options
    return str(yaml.dump(data, Dumper=MetadataDumper, **options))


def written_numbers(text: str) -> dict[tuple[str | int, ...], str]:
    """Where the YAML ``text`` holds a plain scalar read as a number: its place -> the text as written.

    ``award_id: 0123`` reads as 123 and ``version: 1.10`` as 1.1; a message asking to
    quote such a value should quote ``0123`` and ``1.10``. Places are key/index paths
    (``("study", "funding", 0, "award_id")``); a node shared through an alias is given
    at its first place only. ``{}`` when the text does not parse.
    """
    try:
        root = yaml.compose(text, Loader=MetadataLoader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError):
        return {}
    numbers = {_CORE + "int", _CORE + "float"}
    out: dict[tuple[str | int, ...], str] = {}
    seen: set[int] = set()
    todo: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while todo:
        node, place = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo += [
                (v, (*place, k.value)) for k, v in node.value if isinstance(k, yaml.ScalarNode)
            ]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(v, (*place, i)) for i, v in enumerate(node.value)]
        elif node.tag in numbers and not node.style:
            out[place] = node.value
    return out


def parse_yaml(text: str) -> Any:
    """``text`` read as :class:`MetadataLoader` reads it (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=MetadataLoader)  # noqa: S506 - a safe loader


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

    YAML is read by :class:`MetadataLoader` (YAML 1.2 core schema, no duplicate keys).
    Raises :class:`MetadataError` naming the file, line and column on a syntax error,
    a key given twice (YAML or JSON), bytes that are not UTF-8, and when the top level
    is not a mapping.
    """
    path = Path(path)
    return parse_mapping(_read_text(path), path=path, json_syntax=path.suffix.lower() == ".json")


def parse_mapping(text: str, *, path: str | Path, json_syntax: bool = False) -> dict[str, Any]:
    """:func:`load_mapping` for text already read (``path`` names it in errors).

    The same checks: YAML by :class:`MetadataLoader` (or JSON when ``json_syntax``),
    no key given twice, no alias bomb, nesting at most :data:`MAX_MAPPING_DEPTH`, a
    mapping at the top level (an empty document is ``{}``).
    """
    path = Path(path)
    if len(text) > MAX_MAPPING_BYTES:
        msg = f"is larger than {MAX_MAPPING_BYTES // (1024 * 1024)} MiB; a metadata file is far smaller"
        raise MetadataError(msg, path=path)
    try:
        data = json.loads(text, object_pairs_hook=_json_object) if json_syntax else parse_yaml(text)
    except json.JSONDecodeError as exc:
        msg = f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise MetadataError(msg, path=path) from None
    except _DuplicateKey as exc:
        raise MetadataError(str(exc), path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = (
            "YAML error"
            if isinstance(exc, yaml.constructor.ConstructorError)
            else "YAML syntax error"
        )
        raise MetadataError(f"{kind}{where}: {problem}", path=path) from None
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


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a leading BOM dropped); bytes that are not UTF-8 are named by line."""
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            msg = f"is larger than {MAX_MAPPING_BYTES // (1024 * 1024)} MiB; a metadata file is far smaller (is this the right file?)"
            raise MetadataError(msg, path=path)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MetadataError("file not found", path=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        msg = (
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column} "
            "(save the file as UTF-8)"
        )
        raise MetadataError(msg, path=path) from None


class _DuplicateKey(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once (``json`` keeps the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(
                f"the key {key!r} is given twice in one JSON object; a later one would silently replace the first"
            )
        out[key] = value
    return out
