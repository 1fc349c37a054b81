"""Check a bag offline: RFC 8493 structure, Payload-Oxum, every checksum, its profile and its RO-Crate.

``validate_bag`` streams the payload through the same one-pass hasher that built
it. It holds the manifests' entries in memory (one dict entry per payload file,
about 0.3 KB each); the payload itself is never held. A serialized bag
(``.tar``/``.zip``) is unpacked into a temporary folder first.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from curated.errors import PackageError
from curated.package.hashing import READ, SUPPORTED_ALGORITHMS, HashTask, hash_stream
from curated.package.names import decode_path
from curated.package.profiles import (
    check_profile,
    load_profile,
    profile_for_identifier,
    read_tag_file,
    tag_lines,
)
from curated.package.walk import links_and_specials
from curated.progress import ProgressReporter, ensure_progress
from curated.results import Result
from curated.walk import Files, Special, walk

_BAGIT_KEYS = ("BagIt-Version", "Tag-File-Character-Encoding")
_BAGIT_TXT_MAX = 64 * 1024


@dataclass
class BagReport:
    """What :func:`validate_bag` found."""

    path: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    fast: bool = False
    profile: str | None = None
    to_fetch: int = 0
    """Files listed in ``fetch.txt`` and not (yet) present (only with ``allow_holes``)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_result(self) -> Result:
        if self.ok:
            how = "Payload-Oxum only (--fast)" if self.fast else "all checksums"
            msg = f"valid: {self.files} files, {self.bytes} bytes ({how})"
            if self.profile:
                msg += f"; profile {self.profile}"
            if self.to_fetch:
                msg += f"; {self.to_fetch} files still to fetch (fetch.txt)"
        else:
            msg = f"{len(self.problems)} problem(s): " + "; ".join(self.problems[:5])
            if len(self.problems) > 5:
                msg += f"; ... {len(self.problems) - 5} more"
        return Result(
            action="bag-validate",
            status="ok" if self.ok else "error",
            path=self.path,
            message=msg,
            details={
                "problems": self.problems,
                "warnings": self.warnings,
                "files": self.files,
                "bytes": self.bytes,
                "fast": self.fast,
                "profile": self.profile,
                "to_fetch": self.to_fetch,
            },
        )


def _unpack(archive: Path, into: str) -> Path:
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf:
                if member.issym() or member.islnk() or not (member.isfile() or member.isdir()):
                    msg = f"{member.name!r} in the archive is a link or special file; a bag holds regular files only"
                    raise PackageError(msg, path=archive)
            try:
                tf.extractall(into, filter="data")
            except tarfile.TarError as exc:  # FilterError: absolute or ../ member names
                msg = f"unsafe member in the archive ({exc}); nothing was written outside it"
                raise PackageError(msg, path=archive) from None
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename
                if name.startswith("/") or ".." in name.split("/"):
                    msg = f"unsafe member {name!r} in the archive"
                    raise PackageError(msg, path=archive)
                if stat.S_ISLNK(info.external_attr >> 16):  # unzip would make it a link
                    msg = f"{name!r} in the archive is a link; a bag holds regular files only"
                    raise PackageError(msg, path=archive)
            try:
                zf.extractall(into)
            except OSError as exc:  # members that clash (a file and a folder of one name)
                msg = f"cannot be unpacked ({exc.strerror}: {Path(exc.filename or '').name!r})"
                raise PackageError(msg, path=archive) from None
    else:
        msg = "is neither a bag folder nor a tar/zip serialization of one"
        raise PackageError(msg, path=archive)
    tops = os.listdir(into)
    if len(tops) != 1 or not os.path.isdir(os.path.join(into, tops[0])):
        msg = f"a serialized bag must hold exactly one top-level folder, found {sorted(tops)}"
        raise PackageError(msg, path=archive)
    return Path(into) / tops[0]


def _manifest_lines(path: Path, report: BagReport) -> Iterator[tuple[str, str]]:
    for lineno, line in tag_lines(path):
        if not line:
            continue
        digest, sep, rel = line.partition(" ")
        rel = rel.lstrip(" ")
        if not sep or not rel:
            report.problems.append(f"{path.name} line {lineno}: not '<checksum> <path>'")
            continue
        stray = (
            rel.replace("%25", "")
            .replace("%0D", "")
            .replace("%0A", "")
            .replace("%0d", "")
            .replace("%0a", "")
        )
        if "%" in stray:
            report.problems.append(
                f"{path.name} line {lineno}: '%' in {rel!r} is not percent-encoded as %25 (RFC 8493 2.1.3)"
            )
        yield digest.lower(), decode_path(rel)


def _check_bagit_txt(bag: Path, report: BagReport) -> None:
    p = bag / "bagit.txt"
    if not p.is_file():
        report.problems.append("bagit.txt is missing")
        return
    with open(p, "rb") as fh:
        raw = fh.read(_BAGIT_TXT_MAX + 1)
    if len(raw) > _BAGIT_TXT_MAX:
        report.problems.append(
            f"bagit.txt is larger than {_BAGIT_TXT_MAX} bytes; it holds two short lines"
        )
        return
    if raw.startswith(b"\xef\xbb\xbf"):
        report.problems.append("bagit.txt starts with a byte-order mark (RFC 8493 forbids it)")
    lines = raw.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()
    keys = [ln.partition(":")[0] for ln in lines if ln.strip()]
    if keys != list(_BAGIT_KEYS):
        report.problems.append(
            f"bagit.txt must hold exactly 'BagIt-Version' then 'Tag-File-Character-Encoding' (this casing), found {keys}"
        )
    values = {ln.partition(":")[0]: ln.partition(":")[2].strip() for ln in lines}
    if values.get("Tag-File-Character-Encoding", "UTF-8").upper() != "UTF-8":
        report.warnings.append("tag files are not UTF-8; only UTF-8 is checked here")


def _fetch_entries(bag: Path, report: BagReport) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    p = bag / "fetch.txt"
    if not p.is_file():
        return out
    for lineno, line in tag_lines(p):
        parts = line.split(None, 2)
        if not parts:
            continue
        if len(parts) != 3:
            report.problems.append(f"fetch.txt line {lineno}: not 'URL LENGTH PATH'")
            continue
        url, length, rel = parts
        rel = decode_path(rel)
        if not rel.startswith("data/"):
            report.problems.append(
                f"fetch.txt line {lineno}: {rel!r} is not a payload path (fetch.txt must not list tag files)"
            )
        if "://" not in url:
            report.problems.append(f"fetch.txt line {lineno}: {url!r} is not a URL")
        out[rel] = None if length == "-" else int(length) if length.isdigit() else None
    return out


def _payload_files(bag: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """Payload entries that are not folders, in name order (links and specials too: refused later)."""
    for rel, full in _files(bag / "data", "data"):
        yield rel, full, os.lstat(full)


def _files(root: Path, rel: str = "", skip_data: bool = False) -> Iterator[tuple[str, str]]:
    """``(rel, path)`` of the files under ``root`` (a link or special file too, a link to a folder not)."""

    def skip(prefix: str, name: str, kind: str) -> bool:
        return skip_data and not prefix and name == "data"

    for ev in walk(root, rel=rel, order="files-first", skip=skip):
        if type(ev) is Files:
            for name in ev.names:
                yield ev.prefix + name, os.path.join(ev.folder, name)
        elif type(ev) is Special and not (ev.kind == "link" and os.path.isdir(ev.path)):
            yield ev.rel, ev.path


def validate_bag(
    path: str | Path,
    *,
    profile: str | None = None,
    fast: bool = False,
    processes: int = 1,
    allow_holes: bool = False,
    check_crate: bool = True,
    progress: ProgressReporter | None = None,
) -> BagReport:
    """Validate the bag at ``path`` (a folder, or a ``.tar``/``.zip`` serialization).

    Parameters
    ----------
    path
        The bag.
    profile
        A packaged profile name or profile JSON path to check against; by
        default the packaged profile named by the bag's
        ``BagIt-Profile-Identifier`` (never fetched from the network).
    fast
        Check only structure and ``Payload-Oxum`` (no checksums).
    processes
        Hashing processes.
    allow_holes
        Accept a holey bag: files listed in ``fetch.txt`` may be absent
        (they are still required to be in every manifest).
    check_crate
        Check ``data/ro-crate-metadata.json`` offline: ro-crate-py reads it
        back and the Process Run Crate rules are checked
        (:func:`curated.provenance.rocrate_check.validate_crate` with
        ``validator=False``; the full ``roc-validator`` run takes tens of
        seconds, call that function directly for it).
    """
    src = Path(path)
    if not src.exists():
        raise PackageError("no such bag", path=src)
    with tempfile.TemporaryDirectory(prefix="curated-bag-") as tmp:
        serialized = None
        bag = src
        if src.is_file():
            serialized = str(src)
            bag = _unpack(src, tmp)
        report = BagReport(path=str(src), fast=fast)
        _validate_dir(
            bag, report, fast=fast, processes=processes, allow_holes=allow_holes, progress=progress
        )
        info_path = bag / "bag-info.txt"
        info = read_tag_file(info_path) if info_path.is_file() else {}
        prof = None
        if profile is not None:
            prof = load_profile(profile)
        elif info.get("BagIt-Profile-Identifier"):
            ident = info["BagIt-Profile-Identifier"][0]
            prof = profile_for_identifier(ident)
            if prof is None:
                report.warnings.append(
                    f"profile {ident} is not packaged with curated; pass --profile FILE to check it"
                )
        if prof is not None and (bag / "bagit.txt").is_file():
            report.profile = prof.name
            report.problems.extend(
                f"profile {prof.name}: {p}" for p in check_profile(bag, prof, serialized=serialized)
            )
        crate = bag / "data" / "ro-crate-metadata.json"
        if check_crate and crate.is_file():
            from curated.provenance.rocrate_check import validate_crate

            report.problems.extend(
                f"RO-Crate: {p}" for p in validate_crate(bag / "data", validator=False)
            )
    return report


def _validate_dir(
    bag: Path,
    report: BagReport,
    *,
    fast: bool,
    processes: int,
    allow_holes: bool,
    progress: ProgressReporter | None,
) -> None:
    _check_bagit_txt(bag, report)
    strays = list(links_and_specials(bag))
    for rel, kind, target in strays[:20]:
        to = f" -> {target!r}" if target else ""
        report.problems.append(
            f"{rel}{to} is a {kind}: a bag holds regular files only (a link can bring in files "
            "from outside the bag); nothing is read through it"
        )
    if len(strays) > 20:
        report.problems.append(f"... and {len(strays) - 20} more links or special files")
    if strays:
        return  # hashing would read through the links
    if not (bag / "data").is_dir():
        report.problems.append("data/ is missing")
        return
    manifests = sorted(bag.glob("manifest-*.txt"))
    if not manifests:
        report.problems.append("no payload manifest (manifest-<algorithm>.txt)")
        return
    algs = [m.name.removeprefix("manifest-").removesuffix(".txt") for m in manifests]
    for a in algs:
        if a not in SUPPORTED_ALGORITHMS:
            report.problems.append(f"manifest-{a}.txt: unsupported algorithm {a!r}")
            return
    fetch = _fetch_entries(bag, report)
    info_path = bag / "bag-info.txt"
    info = read_tag_file(info_path) if info_path.is_file() else {}
    # Payload-Oxum first: the cheap early failure RFC 8493 intends it for.
    n_files = n_bytes = 0
    for _rel, _full, st in _payload_files(bag):
        n_files += 1
        n_bytes += st.st_size
    report.files, report.bytes = n_files, n_bytes
    oxum = info.get("Payload-Oxum")
    if oxum:
        if len(oxum) > 1:
            report.problems.append("Payload-Oxum appears more than once in bag-info.txt")
        try:
            want_bytes, want_files = (int(x) for x in oxum[0].split("."))
        except ValueError:
            report.problems.append(f"Payload-Oxum {oxum[0]!r} is not OCTETS.FILES")
        else:
            missing = [r for r in fetch if not (bag / r).exists()]
            have_files = n_files + (len(missing) if allow_holes else 0)
            have_bytes = n_bytes + (sum(fetch[r] or 0 for r in missing) if allow_holes else 0)
            if (have_bytes, have_files) != (want_bytes, want_files):
                hint = (
                    f"; {len(missing)} files listed in fetch.txt are not fetched yet"
                    if missing and not allow_holes
                    else ""
                )
                report.problems.append(
                    f"Payload-Oxum says {want_bytes} bytes in {want_files} files, the payload has {have_bytes} in {have_files}{hint}"
                )
    elif fast:
        report.warnings.append(
            "no Payload-Oxum in bag-info.txt, so --fast could not check the payload"
        )
    if fast:
        return
    _check_payload(
        bag,
        report,
        manifests,
        algs,
        fetch,
        processes=processes,
        allow_holes=allow_holes,
        progress=progress,
    )
    _check_tag_manifests(bag, report, manifests)


def _check_payload(
    bag: Path,
    report: BagReport,
    manifests: list[Path],
    algs: list[str],
    fetch: dict[str, int | None],
    *,
    processes: int,
    allow_holes: bool,
    progress: ProgressReporter | None,
) -> None:
    entries: dict[str, list[str | None]] = {}
    for i, m in enumerate(manifests):
        for digest, rel in _manifest_lines(m, report):
            if not rel.startswith("data/") or ".." in rel.split("/"):
                report.problems.append(f"{m.name}: {rel!r} is outside data/")
                continue
            slot = entries.setdefault(rel, [None] * len(manifests))
            if slot[i] is not None:
                report.problems.append(f"{m.name} lists {rel!r} more than once")
            slot[i] = digest
    nfc: dict[str, str] | None = None
    unexpected: list[str] = []

    def tasks() -> Iterator[HashTask]:
        nonlocal nfc
        for rel, full, st in _payload_files(bag):
            key = rel
            if key not in entries:
                if nfc is None:
                    nfc = {unicodedata.normalize("NFC", k): k for k in entries}
                key = nfc.get(unicodedata.normalize("NFC", rel), rel)
            if key not in entries:
                unexpected.append(rel)
                continue
            yield HashTask(key, full, None, st.st_size, st.st_mtime_ns, READ)

    prog = ensure_progress(progress)
    prog.start("verifying checksums", report.bytes, "bytes")
    try:
        for r in hash_stream(tasks(), tuple(algs), processes=processes, on_bytes=prog.advance):
            want = entries.pop(r.rel)
            for alg, expected, got in zip(algs, want, r.digests, strict=True):
                if expected is not None and expected != got:
                    report.problems.append(
                        f"{r.rel}: {alg} checksum mismatch (manifest {expected[:16]}..., file {got[:16]}...)"
                    )
            missing_in = [algs[i] for i, d in enumerate(want) if d is None]
            if missing_in:
                report.problems.append(
                    f"{r.rel} is not in manifest(s) {', '.join(missing_in)} (every payload file must be in every manifest)"
                )
    finally:
        prog.finish()
    for rel in unexpected:
        report.problems.append(f"{rel} is in data/ but in no manifest")
    for rel in sorted(entries):
        if rel in fetch and allow_holes:
            report.to_fetch += 1
        elif rel in fetch:
            report.problems.append(
                f"{rel} is listed in fetch.txt and not fetched yet (validate with --allow-holes to accept)"
            )
        else:
            report.problems.append(f"{rel} is in the manifests but missing from data/")
    if fetch:
        listed = set(fetch)
        for m in manifests:
            named = {rel for _d, rel in _manifest_lines(m, BagReport(path=""))}
            absent = listed - named
            if absent:
                report.problems.append(
                    f"{len(absent)} fetch.txt entries are not in {m.name} (e.g. {sorted(absent)[0]})"
                )


def _tag_files(bag: Path) -> Iterator[str]:
    """Files of the bag outside ``data/`` (relative posix paths)."""
    for rel, _full in _files(bag, skip_data=True):
        yield rel


def _check_tag_manifests(bag: Path, report: BagReport, manifests: list[Path]) -> None:
    for tm in sorted(bag.glob("tagmanifest-*.txt")):
        alg = tm.name.removeprefix("tagmanifest-").removesuffix(".txt")
        if alg not in SUPPORTED_ALGORITHMS:
            report.problems.append(f"{tm.name}: unsupported algorithm {alg!r}")
            continue
        listed: set[str] = set()
        for digest, rel in _manifest_lines(tm, report):
            listed.add(rel)
            if rel.startswith("/") or ".." in rel.split("/"):
                report.problems.append(
                    f"{tm.name} lists {rel!r}, outside the bag; nothing was read"
                )
                continue
            if rel.startswith("data/") or rel.startswith("tagmanifest-"):
                report.problems.append(
                    f"{tm.name} lists {rel!r}; tag manifests list tag files only"
                )
                continue
            p = bag / rel
            if not p.is_file():
                report.problems.append(f"{tm.name}: tag file {rel} is missing")
                continue
            st = p.stat()
            (res,) = list(
                hash_stream([HashTask(rel, str(p), None, st.st_size, st.st_mtime_ns, READ)], (alg,))
            )
            if res.digests[0] != digest:
                report.problems.append(f"{rel}: {alg} checksum mismatch in {tm.name}")
        for m in manifests:
            if m.name not in listed:
                report.problems.append(f"{tm.name} does not list the payload manifest {m.name}")
        for rel in _tag_files(bag):
            if rel not in listed and not rel.startswith("tagmanifest-"):
                report.problems.append(
                    f"{rel} is a tag file in no tag manifest ({tm.name}); a deposit would carry it unchecked"
                )
