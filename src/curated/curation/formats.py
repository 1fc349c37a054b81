"""What a file is, from its first bytes, and what an image file's header says.

Formats are told by content (magic bytes), never by the name's extension; the
extension is only compared afterwards to flag names that lie. TIFF headers are
read with tifffile without loading pixels; DICOM headers are scanned for
identifying (PHI) tags by their byte patterns, so no DICOM library is needed.
"""

from __future__ import annotations

import logging
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 512
"""How many leading bytes :func:`sniff_format` looks at."""

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "BigTIFF"),
    (0, b"MM\x00+", "BigTIFF"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xffO\xffQ", "JPEG 2000 codestream"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"%PDF-", "PDF"),
    (0, b"\x89HDF\r\n\x1a\n", "HDF5"),
    (0, b"ZISRAWFILE", "Zeiss CZI"),
    (0, b"\x93NUMPY", "NumPy array"),
    (0, b"NRRD", "NRRD"),
    (0, b"PK\x03\x04", "ZIP"),
    (0, b"PK\x05\x06", "ZIP"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"BZh", "bzip2"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"(\xb5/\xfd", "zstd"),
    (0, b"7z\xbc\xaf'\x1c", "7z"),
    (0, b"\x7fELF", "ELF executable"),
    (128, b"DICM", "DICOM"),
    (344, b"n+1\x00", "NIfTI-1"),
    (344, b"ni1\x00", "NIfTI-1"),
    (4, b"n+2\x00", "NIfTI-2"),
    (208, b"MAP", "MRC"),  # MRC2000/MRC2014 and CCP4 maps: "MAP " (some writers "MAP\x00")
)

_AT_START: dict[bytes, list[tuple[bytes, str]]] = {}
for _offset, _magic, _fmt in _MAGIC:
    if _offset == 0:
        _AT_START.setdefault(_magic[:2], []).append((_magic, _fmt))
_ELSEWHERE = [(o, m, f) for o, m, f in _MAGIC if o != 0]

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "TIFF": (
        ".tif",
        ".tiff",
        ".ome.tif",
        ".ome.tiff",
        ".btf",
        ".tf8",
        ".lsm",
        ".stk",
        ".svs",
        ".ndpi",
        ".scn",
        ".qptiff",
        ".dng",
    ),
    "BigTIFF": (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".tf8", ".tf2"),
    "OME-TIFF": (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".ome.btf", ".btf"),
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "JPEG 2000": (".jp2", ".jpx", ".j2k"),
    "GIF": (".gif",),
    "PDF": (".pdf",),
    "HDF5": (".h5", ".hdf5", ".hdf", ".he5", ".emd", ".ims", ".nwb", ".n5h5", ".keras"),
    "Zeiss CZI": (".czi",),
    "DICOM": (".dcm", ".dicom", ".ima", ""),
    "NIfTI-1": (".nii",),
    "MRC": (".mrc", ".mrcs", ".rec", ".st", ".ali", ".preali", ".map", ".ccp4", ".tomo"),
    "gzip": (".gz", ".tgz"),
    "ZIP": (".zip", ".docx", ".xlsx", ".pptx", ".ozx", ".jar"),
}
"""Extensions that may honestly carry each format (used to flag misleading names)."""


def sniff_format(head: bytes, name: str = "") -> str:
    """Name the format of a file from its first bytes (see :data:`HEAD_BYTES`).

    Text files are told apart from binary by content (valid UTF-8, no NUL);
    only then does the extension refine *which* text (Markdown, YAML, ...).
    Returns ``"empty"`` for no bytes and ``"unknown binary"`` when nothing matches.
    """
    if not head:
        return "empty"
    for magic, fmt in _AT_START.get(head[:2], ()):
        if head.startswith(magic):
            return fmt
    for offset, magic, fmt in _ELSEWHERE:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if _is_old_mrc(head, name):
        return "MRC"
    if b"\x00" not in head:
        try:
            # a cut multi-byte character at the end of the sample is not binary
            head.decode("utf-8") if len(head) < HEAD_BYTES else head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return _text_kind(head, name)
    return "unknown binary"


_MRC_MODES = frozenset((0, 1, 2, 3, 4, 6, 12, 101))
"""MRC data modes (int8, int16, float32, complex int16, complex float32, uint16, float16, 4-bit)."""


def _is_old_mrc(head: bytes, name: str) -> bool:
    """An MRC file from before MRC2000, which has no ``MAP`` id at byte 208 (old IMOD, EMAN,
    SPIDER conversions): told by an MRC extension and a header that holds together.

    The 1024-byte header's first words are the grid size and mode, words 17-19 the axis
    order (a permutation of 1, 2, 3), in either byte order. Without an MRC extension such a
    file stays unknown: the test is too weak to claim any binary file.
    """
    if len(head) < 96 or not name.lower().endswith(EXTENSIONS["MRC"]):
        return False
    for order in ("<", ">"):
        nx, ny, nz, mode = struct.unpack_from(order + "4i", head, 0)
        axes = struct.unpack_from(order + "3i", head, 64)
        if (
            min(nx, ny, nz) >= 1
            and max(nx, ny, nz) < 1 << 24
            and mode in _MRC_MODES
            and sorted(axes) == [1, 2, 3]
        ):
            return True
    return False


def _text_kind(head: bytes, name: str) -> str:
    lower = name.lower()
    stripped = head.lstrip()
    if stripped.startswith((b"{", b"[")) and lower.endswith(
        (".json", ".zattrs", ".zarray", ".zgroup", ".jsonld")
    ):
        return "JSON"
    if stripped.startswith(b"<?xml") or stripped.startswith(b"<"):
        return "XML"
    for ext, kind in (
        (".md", "Markdown"),
        (".rst", "reStructuredText"),
        (".yaml", "YAML"),
        (".yml", "YAML"),
        (".csv", "CSV"),
        (".tsv", "TSV"),
        (".py", "Python source"),
        (".ijm", "ImageJ macro"),
        (".m", "MATLAB source"),
        (".r", "R source"),
        (".sh", "shell script"),
        (".json", "JSON"),
        (".ipynb", "Jupyter notebook"),
    ):
        if lower.endswith(ext):
            return kind
    if stripped.startswith(b"#!"):
        return "script"
    return "text"


def extension_matches(fmt: str, name: str) -> bool:
    """Whether ``name``'s extension is one that format ``fmt`` may carry (unknown formats always match)."""
    allowed = EXTENSIONS.get(fmt)
    if allowed is None:
        return True
    lower = name.lower()
    if "" in allowed and "." not in Path(lower).name:
        return True
    return any(lower.endswith(ext) for ext in allowed if ext)


# ------------------------------------------------------------------ TIFF
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PERSON_FIELD = re.compile(
    r"(?im)^\s*(?:[\w ]*?\b)?(user(?:[ _]?name)?|operator|patient(?:[ _]?name)?|author|artist|experimenter|owner|"
    r"first[ _]?name|last[ _]?name|full[ _]?name|subject[ _]?name|technician|physician|created[ _]?by|acquired[ _]?by)"
    r"\s*[:=]\s*(\S.*)$"
)
_OME_EXPERIMENTER = re.compile(r"<(?:\w+:)?Experimenter\b([^>]*)>")
_OME_PERSON_ATTR = re.compile(
    r"\b(FirstName|LastName|Email|UserName|MiddleName)\s*=\s*\"\s*[^\"\s][^\"]*\""
)
_NOT_A_NAME = {
    "",
    "n/a",
    "na",
    "none",
    "null",
    "unknown",
    "-",
    "0",
    "admin",
    "administrator",
    "user",
    "default",
    "supervisor",
    "guest",
}


def personal_data_in_text(text: str) -> list[str]:
    """What in a header text looks like personal data: the kinds found, never the values.

    Looks for e-mail addresses, fields that hold a person (``User:``,
    ``Operator=``, ``Patient Name:``, ``Artist``...) with a value that is not a
    placeholder, and OME ``Experimenter`` names or e-mails.
    """
    found: list[str] = []
    if _EMAIL.search(text.encode("utf-8", "replace")):
        found.append("e-mail address")
    for m in _PERSON_FIELD.finditer(text):
        value = m.group(2).strip().strip("\"'").strip()
        if value.lower() in _NOT_A_NAME or not any(c.isalpha() for c in value):
            continue
        found.append(f"person field '{m.group(1).strip()}'")
    for element in _OME_EXPERIMENTER.finditer(text):
        for m in _OME_PERSON_ATTR.finditer(element.group(1)):
            found.append(f"OME Experimenter {m.group(1)}")
    return sorted(set(found))


def personal_data_in_vendor_header(tif: Any) -> list[str]:
    """People named in a microscope vendor's header (see :mod:`curated.images.vendor`)."""
    from curated.images.vendor import personal_data_in_vendor_header as found

    return found(tif)


def inspect_png(path: str | Path, size: int) -> dict[str, Any]:
    """Check a PNG's header and end without decoding it: shape, bit depth, colour type, health.

    A PNG opens when its signature and IHDR chunk are whole and its last 12 bytes are
    the IEND chunk, which a truncated copy lacks (:func:`curated.images.sources.png_header`).
    Returns the keys of :func:`inspect_tiff` (``opens``, ``format``, ``shape``, ``dtype``,
    ``truncated``, ``problem``, ``personal_data``, ``photometric`` as ``convert`` reads it:
    ``MinIsBlack``, ``MinIsWhite`` or ``palette`` for a palette PNG, ``RGB``... for one it
    refuses) plus ``bit_depth`` and ``colour_type``.
    """
    from curated.images.sources import png_grey_kind, png_header

    info: dict[str, Any] = {"opens": False, "truncated": False, "problem": None, "format": "PNG"}
    info["personal_data"] = []
    try:
        h = png_header(path)
        if h is not None:  # named as `convert` reads it: a grey-ramp palette is MinIsBlack
            info["photometric"] = png_grey_kind(path, h)
    except OSError as exc:
        info["problem"] = f"cannot be read: {exc.strerror or exc}"
        return info
    if h is None:
        info["truncated"] = size < 33
        info["problem"] = "the PNG header (IHDR) is missing or cut short"
        return info
    info["shape"] = [h.height, h.width]
    info["bit_depth"], info["colour_type"] = h.bit_depth, h.colour_type
    info["dtype"] = "uint16" if h.bit_depth == 16 else "uint8"
    if not h.ends_whole:
        info["truncated"] = True
        info["problem"] = "the PNG does not end with its end chunk (IEND): the file is truncated"
        return info
    info["opens"] = True
    return info


def inspect_tiff(path: str | Path, size: int) -> dict[str, Any]:
    """Read a TIFF's header (never its pixels beyond one tile/strip): shape, dtype, pages, health.

    Returns a dict with ``opens`` (bool), ``format`` (``TIFF``/``BigTIFF``/``OME-TIFF``),
    ``shape``, ``dtype``, ``pages``, ``axes``, ``compression``, ``truncated``
    (a page's data lies beyond the end of the file), ``problem`` (why it does
    not open or is damaged), ``sparse`` (strips or tiles without data, which `convert`
    reads as 0: :func:`curated.images.sources.sparse_note`, else ``None``), ``pixel_size``
    (as `convert` reads it), ``data_bar`` (the rows of a vendor data bar that `convert` crops,
    else ``None``) and ``personal_data`` (kinds found in text tags).
    """
    import tifffile

    from curated.images.sources import (
        empty_segments,
        one_page_series,
        photometric_name,
        sparse_note,
        stated_data_bar,
        stated_pixel_size,
        unused_pixel_size,
    )

    info: dict[str, Any] = {
        "opens": False,
        "truncated": False,
        "problem": None,
        "personal_data": [],
    }
    complaints = _TifffileComplaints()
    tlog = logging.getLogger("tifffile")
    tlog.addHandler(complaints)
    try:
        with tifffile.TiffFile(path) as tif:
            info["format"] = "OME-TIFF" if tif.is_ome else ("BigTIFF" if tif.is_bigtiff else "TIFF")
            first = tif.pages.first
            npages = len(tif.pages)
            info["pages"] = npages
            try:
                series = tif.series[0]
                info["shape"] = [int(s) for s in series.shape]
                info["dtype"] = str(series.dtype)
                info["axes"] = series.axes
                if one_page_series(tif):  # a page per tifffile write() call: one stack
                    info["shape"], info["axes"] = [npages, *info["shape"]], "I" + series.axes
            except Exception:  # series parsing is best effort (odd vendor layouts)
                info["shape"] = [int(s) for s in first.shape]
                info["dtype"] = str(first.dtype) if first.dtype is not None else None
            info["compression"] = getattr(first.compression, "name", str(first.compression))
            info["photometric"] = photometric_name(first)
            try:
                info["pixel_size"] = stated_pixel_size(tif, path)
                unused = unused_pixel_size(tif, path)  # stated in the header, not used: why
                if unused:
                    info["pixel_size_not_used"] = unused
                info["data_bar"] = stated_data_bar(tif, path)  # rows `convert` crops
            except Exception:  # a damaged header: its other problems are reported below
                info["pixel_size"] = info["data_bar"] = None
            pages = [first] if npages == 1 else [first, tif.pages[npages - 1]]
            for page in pages:
                offsets = getattr(page, "dataoffsets", ()) or ()
                counts = getattr(page, "databytecounts", ()) or ()
                ends = [int(o) + int(c) for o, c in zip(offsets, counts, strict=False) if c]
                if ends and max(ends) > size:
                    info["truncated"] = True
                    info["problem"] = (
                        f"page {page.index}'s image data ends at byte {max(ends)} but the file has {size} bytes: the file is truncated"
                    )
                    break
            lie = None if info["truncated"] else _header_lie(tif, path, complaints.messages)
            if lie is not None:
                info["problem"] = lie
                info["truncated"] = "puts its pixel data" in lie  # past the end of the file
            elif not info["truncated"]:
                _decode_first_segment(tif, first)
                info["sparse"] = sparse_note(empty_segments(tif))  # read as 0 by `convert`
            texts = []
            for page in pages:
                tags = getattr(page, "tags", None)
                if tags is None:
                    continue
                for tag in tags.values():
                    if isinstance(tag.value, str):
                        texts.append(
                            f"{tag.name}: {tag.value}" if tag.name in ("Artist",) else tag.value
                        )
            if tif.is_ome and tif.ome_metadata:
                texts.append(tif.ome_metadata)
            kinds: set[str] = set()
            for text in texts:
                kinds.update(personal_data_in_text(text))
            kinds.update(
                personal_data_in_vendor_header(tif)
            )  # Zeiss/FEI/JEOL: user names, user folders
            info["personal_data"] = sorted(kinds)
            if complaints.messages and not info["truncated"] and lie is None:
                # tifffile logs, rather than raises, when a page's IFD lies beyond the file's end
                info["truncated"] = any("offset" in m for m in complaints.messages)
                info["problem"] = "damaged page list: " + complaints.messages[0]
            info["opens"] = not info["truncated"] and not complaints.messages and lie is None
    except Exception as exc:  # tifffile raises many types on damaged files
        info["opens"] = False
        info["problem"] = info["problem"] or f"cannot be read as TIFF: {type(exc).__name__}: {exc}"
        if "IFD" in str(exc) or "offset" in str(exc):
            info["truncated"] = True
        if "truncat" in str(exc).lower() or isinstance(exc, (EOFError, struct.error)):
            info["truncated"] = True
    finally:
        tlog.removeHandler(complaints)
    return info


def _header_lie(tif: Any, path: str | Path, complaints: list[str]) -> str | None:
    """What the TIFF's headers claim that its pages contradict (the converter's own check,
    :func:`curated.images.sources.header_lies`); a file cut short is reported as such instead."""
    if any("invalid page offset" in m for m in complaints):
        return None
    from curated.images.sources import header_lies

    return header_lies(tif, Path(path), complaints)


class _TifffileComplaints(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # drop tifffile's "<tifffile.TiffPages @8>" object prefix
        self.messages.append(re.sub(r"^<[^>]*>\s*", "", record.getMessage()))


_MRC_MODE_BITS = {0: 8, 1: 16, 2: 32, 3: 32, 4: 64, 6: 16, 12: 16, 101: 4}
"""Bits per voxel of each MRC mode (3 and 4: complex; 101: 4-bit, two voxels a byte)."""
_HDF5_OBJECTS_SEEN = 10_000
"""Most objects of an HDF5 file whose kind :func:`inspect_hdf5` looks at."""


def inspect_mrc(path: str | Path, size: int) -> dict[str, Any]:
    """Read an MRC header (1024 bytes): shape, pixel type and whether the file holds the
    voxels it announces (a copy cut short does not). Keys as :func:`inspect_tiff`."""
    info: dict[str, Any] = {"opens": False, "truncated": False, "problem": None, "format": "MRC"}
    info["personal_data"] = []
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as exc:
        info["problem"] = f"cannot be read: {exc.strerror or exc}"
        return info
    if len(head) < 1024:
        info["truncated"] = True
        info["problem"] = f"the MRC header is cut short ({len(head)} of 1024 bytes)"
        return info
    order = "<" if head[212] in (0x44, 0x41) or head[212] == 0 else ">"  # MACHST: little / big
    nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
    nsymbt = struct.unpack(order + "i", head[92:96])[0]
    bits = _MRC_MODE_BITS.get(mode)
    if bits is None or min(nx, ny, nz) <= 0 or nsymbt < 0:
        info["problem"] = f"the MRC header is not valid (mode {mode}, size {nx} x {ny} x {nz})"
        return info
    info["shape"] = [nz, ny, nx]
    info["mode"] = mode
    expected = 1024 + nsymbt + -(-nx * bits // 8) * ny * nz
    if size < expected:
        info["truncated"] = True
        info["problem"] = (
            f"the header announces {nx} x {ny} x {nz} voxels of mode {mode} ({expected} bytes) "
            f"but the file has {size} bytes: the file is truncated"
        )
        return info
    info["opens"] = True
    return info


def inspect_hdf5(path: str | Path, size: int) -> dict[str, Any]:
    """Open an HDF5 file (its superblock and object headers, no data): whether it opens,
    its datasets (count; shape and type of the largest). Keys as :func:`inspect_tiff`."""
    import h5py

    info: dict[str, Any] = {"opens": False, "truncated": False, "problem": None, "format": "HDF5"}
    info["personal_data"] = []
    try:
        with h5py.File(path, "r") as f:
            found: list[tuple[int, list[int], str]] = []

            def visit(name: str, obj: Any) -> int | None:
                if isinstance(obj, h5py.Dataset):
                    found.append((int(obj.size or 0), [int(n) for n in obj.shape], str(obj.dtype)))
                    if obj.chunks and not sparse:
                        said = _hdf5_sparse(obj)
                        if said:
                            sparse.append(f"dataset /{name} {said}")
                return 1 if len(found) >= _HDF5_OBJECTS_SEEN else None

            sparse: list[str] = []
            f.visititems(visit)
            info["sparse"] = sparse[0] if sparse else None
    except Exception as exc:  # h5py raises OSError and others on damaged files
        text = str(exc)
        info["truncated"] = "truncated" in text.lower() or "eof" in text.lower()
        info["problem"] = f"cannot be opened as HDF5: {text}"
        return info
    info["datasets"] = len(found)
    if found:
        _, shape, dtype = max(found, key=lambda d: d[0])
        info["shape"], info["dtype"] = shape, dtype
    info["opens"] = True
    if str(path).lower().endswith(".emd"):
        info.update(_velox(path))
    return info


def _velox(path: str | Path) -> dict[str, Any]:
    """A Velox file's first image as `convert` reads it, and its pixel size with where it was
    read or why it is not used (:func:`curated.images.velox.velox_summary`)."""
    from curated.images.velox import velox_summary

    try:
        found = velox_summary(path)
    except Exception as exc:  # a damaged Metadata array: the file still opened as HDF5
        return {"velox": f"a Velox file whose image cannot be read ({type(exc).__name__}: {exc})"}
    if found is None:
        return {}
    return {"vendor": "Thermo Fisher Velox", **found}


def _hdf5_sparse(dset: Any) -> str | None:
    """What a chunked HDF5 dataset claims against the chunks it stores (from its chunk
    index, nothing read), else ``None``."""
    from curated.images.stored import ChunkCount, sparse_summary

    shape = tuple(int(n) for n in dset.shape)
    grid = tuple(int(c) for c in dset.chunks)
    expected = math.prod(-(-n // c) for n, c in zip(shape, grid, strict=True))
    fill = dset.fillvalue
    count = ChunkCount(
        int(dset.id.get_num_chunks()), expected, grid, getattr(fill, "item", lambda: fill)()
    )
    return sparse_summary(shape, count)


def _decode_first_segment(tif: Any, page: Any) -> None:
    """Decode the first strip or tile of ``page``: proves the codec and data are sane, reads kilobytes."""
    offsets = getattr(page, "dataoffsets", ()) or ()
    counts = getattr(page, "databytecounts", ()) or ()
    if not offsets or not counts or not counts[0] or not offsets[0]:
        return
    fh = tif.filehandle
    fh.seek(offsets[0])
    data = fh.read(counts[0])
    if len(data) < counts[0]:
        msg = "the first image segment is cut short"
        raise EOFError(msg)
    # JPEG-compressed TIFFs often keep their quantisation/Huffman tables once, in the
    # JPEGTables tag, and each strip as an abbreviated stream: decode with those tables
    page.decode(data, 0, jpegtables=getattr(page, "jpegtables", None))


# ------------------------------------------------------------------ DICOM
PHI_TAGS: dict[tuple[int, int], str] = {
    (0x0010, 0x0010): "PatientName",
    (0x0010, 0x0020): "PatientID",
    (0x0010, 0x0030): "PatientBirthDate",
    (0x0010, 0x1000): "OtherPatientIDs",
    (0x0010, 0x1001): "OtherPatientNames",
    (0x0010, 0x1040): "PatientAddress",
    (0x0010, 0x2154): "PatientTelephoneNumbers",
    (0x0008, 0x0090): "ReferringPhysicianName",
    (0x0008, 0x1050): "PerformingPhysicianName",
    (0x0008, 0x1070): "OperatorsName",
    (0x0008, 0x0080): "InstitutionName",
    (0x0032, 0x1032): "RequestingPhysician",
}
"""DICOM attributes that identify a person (or narrow one down), by (group, element)."""

_LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"}
DICOM_SCAN_BYTES = 4 * 1024 * 1024


def dicom_phi_tags(path: str | Path) -> list[str]:
    """Names of the PHI attributes (:data:`PHI_TAGS`) that hold a value in a DICOM file's header.

    Scans the first :data:`DICOM_SCAN_BYTES` for each tag's little-endian byte
    pattern and reads the value length after it (explicit or implicit VR), so
    pydicom is not needed. Only names are returned, never values.
    """
    with open(path, "rb") as fh:
        data = fh.read(DICOM_SCAN_BYTES)
    found: list[str] = []
    for (group, element), name in PHI_TAGS.items():
        pattern = struct.pack("<HH", group, element)
        start = 132
        while (i := data.find(pattern, start)) != -1:
            start = i + 1
            vr = data[i + 4 : i + 6]
            if len(vr) == 2 and vr.isalpha() and vr.isupper():
                if vr in _LONG_VRS:
                    if len(data) < i + 12:
                        break
                    length = struct.unpack("<I", data[i + 8 : i + 12])[0]
                    value = data[i + 12 : i + 12 + length]
                else:
                    length = struct.unpack("<H", data[i + 6 : i + 8])[0]
                    value = data[i + 8 : i + 8 + length]
            else:
                if len(data) < i + 8:
                    break
                length = struct.unpack("<I", data[i + 4 : i + 8])[0]
                if length > 4096:
                    continue  # not a real element: a chance byte match inside other data
                value = data[i + 8 : i + 8 + length]
            if value.strip(b" \x00^"):
                found.append(name)
                break
    return found


# ------------------------------------------------------------------ PRONOM
PRONOM_BASE = "https://www.nationalarchives.gov.uk/PRONOM/"
"""PRONOM identifiers (PUIDs) resolve under this base, e.g. ``…/PRONOM/fmt/353``."""


@dataclass(frozen=True)
class FormatId:
    """A file's format as preservation systems name it: a PRONOM identifier (PUID) and its name.

    ``profile`` names a community format that PRONOM has no record of but that
    this file follows (``OME-TIFF`` inside a TIFF, a ``Zarr`` metadata document
    inside JSON). ``basis`` says how the identification was made, for the
    PREMIS ``formatRegistry`` note and the reader.
    """

    puid: str | None
    name: str
    mime: str | None = None
    basis: str = ""
    profile: str | None = None

    @property
    def uri(self) -> str | None:
        """The PUID as a PRONOM URI (what RO-Crate's ``encodingFormat`` takes)."""
        return PRONOM_BASE + self.puid if self.puid else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"puid": self.puid, "name": self.name}
        for k in ("mime", "basis", "profile"):
            v = getattr(self, k)
            if v:
                d[k] = v
        return d


PRONOM: dict[str, tuple[str, str, str | None]] = {
    "TIFF": ("fmt/353", "Tagged Image File Format", "image/tiff"),
    "BigTIFF": ("fmt/1917", "BigTIFF", "image/tiff"),
    "JSON": ("fmt/817", "JSON Data Interchange Format", "application/json"),
    "JSON-LD": ("fmt/880", "JSON-LD", "application/ld+json"),
    "YAML": ("fmt/818", "YAML", "application/yaml"),
    "Markdown": ("fmt/1149", "Markdown", "text/markdown"),
    "reStructuredText": ("fmt/1565", "reStructuredText", "text/x-rst"),
    "text": ("x-fmt/111", "Plain Text File", "text/plain"),
    "CSV": ("x-fmt/18", "Comma Separated Values", "text/csv"),
    "TSV": ("x-fmt/13", "Tab-separated values", "text/tab-separated-values"),
    "XML": ("fmt/101", "Extensible Markup Language", "application/xml"),
    "Python source": ("fmt/938", "Python Script File", "text/x-python"),
    "Jupyter notebook": ("fmt/1119", "Jupyter Python Notebook", "application/x-ipynb+json"),
    "MATLAB source": ("fmt/1678", "MATLAB Script File", "text/x-matlab"),
    "ZIP": ("x-fmt/263", "ZIP Format", "application/zip"),
    "gzip": ("x-fmt/266", "GZIP Format", "application/gzip"),
    "7z": ("fmt/484", "7Zip format", "application/x-7z-compressed"),
    "JPEG 2000": ("x-fmt/392", "JP2 (JPEG 2000 part 1)", "image/jp2"),
}
"""Formats the content sniffer names unambiguously, with their PRONOM record (PUID, name, MIME).

Checked against PRONOM's own records (``nationalarchives/pronom`` signatures,
2026 snapshot) and, where fido's bundled signatures know the format, against
fido (``tests/test_pronom.py``). Formats PRONOM splits into versions (PNG 1.0 /
1.1 / 1.2, JPEG/JFIF, GIF 87a/89a, PDF, HDF5) are left to fido, which reads the
signatures that tell the versions apart.
"""

_FIDO_DECIDES = frozenset(
    (
        "PNG",
        "JPEG",
        "GIF",
        "PDF",
        "HDF5",
        "unknown binary",
        "text",
        "script",
        "DICOM",
        "NumPy array",
    )
)
"""Sniffed formats whose PRONOM identity needs fido's signatures (versions, or no sniffer answer)."""

_CHUNK_NAME = re.compile(r"^[0-9]+(?:[./][0-9]+)*$")
"""Names of Zarr chunks (``0``, ``0.1.2``): raw codec output that no registry identifies."""

_ZARR_METADATA = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")


def pronom_for(fmt: str, name: str = "", head: bytes = b"") -> FormatId | None:
    """PRONOM identity of a sniffed format (see :func:`sniff_format`) without reading more.

    OME-TIFF has no PRONOM record of its own: it is reported as the TIFF or
    BigTIFF it is stored in (``head`` tells which), with ``profile="OME-TIFF"``.
    Zarr metadata documents are JSON with ``profile="Zarr"``. Returns ``None``
    when the format needs fido's signatures (:data:`_FIDO_DECIDES`) or has no
    PRONOM record.
    """
    lower = name.lower()
    profile = None
    if fmt == "OME-TIFF":
        fmt = "BigTIFF" if head[2:4] in (b"+\x00", b"\x00+") else "TIFF"
        profile = "OME-TIFF"
    elif fmt == "JSON" and lower.endswith(".jsonld"):
        fmt = "JSON-LD"
    elif fmt == "JSON" and lower.rsplit("/", 1)[-1] in _ZARR_METADATA:
        profile = "Zarr"
    entry = PRONOM.get(fmt)
    if entry is None or (fmt == "text" and not lower.endswith(".txt")):
        return None
    puid, pname, mime = entry
    return FormatId(
        puid, pname, mime, "content signature (curated sniffer), PRONOM record", profile
    )


def is_ome_tiff(path: Path) -> bool:
    """Whether a TIFF's first page carries OME-XML (reads the first IFD only)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:  # a damaged TIFF is still a TIFF; check() reports the damage
        return False


class _Fido:
    """One fido identifier per process, loaded on first use (about a second)."""

    _instance: Any = None
    version = ""

    @classmethod
    def identify(cls, path: str | Path) -> list[tuple[str, str, str | None, str]]:
        """``(puid, name, mime, match type)`` for each of fido's best matches."""
        if cls._instance is None:
            from fido import __version__ as fido_version
            from fido.fido import Fido
            from fido.versions import get_local_versions

            local = get_local_versions()
            # fido 1.6.1 defaults to formats-v104.xml but ships formats-v109.xml: name the
            # files its own versions.xml lists, or it cannot start.
            cls._instance = Fido(
                quiet=True,
                nocontainer=True,
                handle_matches=cls._collect,
                format_files=[local.pronom_signature, local.fido_extension_signature],
            )
            cls.version = f"fido {fido_version}, PRONOM signatures v{local.pronom_version}"
        cls._matches = []
        cls._instance.identify_file(str(path))
        return cls._matches

    _matches: list[tuple[str, str, str | None, str]] = []

    @classmethod
    def _collect(cls, _name: str, matches: Any, _secs: float, matchtype: str) -> None:
        cls._matches = [
            (f.findtext("puid") or "", f.findtext("name") or "", f.findtext("mime"), matchtype)
            for f, _sig in matches
        ]


def identify_format(
    path: str | Path,
    *,
    fmt: str | None = None,
    head: bytes | None = None,
    name: str | None = None,
    memo: dict[tuple[str, str, str], FormatId] | None = None,
) -> FormatId:
    """Identify a file's format with a PRONOM identifier.

    The content sniffer (:func:`sniff_format`) runs first; when it names a format
    that has exactly one PRONOM record, that record is the answer (microseconds,
    and right for the BigTIFF, JSON and Markdown files fido's 2022 signatures get
    wrong). Otherwise fido matches PRONOM's byte signatures (PNG, JPEG, PDF,
    HDF5 versions; formats the sniffer does not know). Zarr chunks (numeric
    names) are never sent to fido: they are codec output with no registry entry.

    With ``memo`` (a dict the caller keeps for one run), files of one folder,
    sniffed format and extension share fido's answer for the first of them: fido
    takes tens of milliseconds a file, and a folder of slices is one kind of file.

    Returns a :class:`FormatId`; ``puid`` is ``None`` when nothing matched.
    """
    path = Path(path)
    name = name or path.name
    if head is None:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    if fmt is None:
        fmt = sniff_format(head, name)
        if fmt in ("TIFF", "BigTIFF") and is_ome_tiff(path):
            fmt = "OME-TIFF"
    known = identify_by_content(fmt, name, head)
    if known is not None:
        return known
    key = (str(path.parent), fmt, extension_key(name))
    if memo is not None and key in memo:
        return memo[key]
    fid = _identify_with_fido(path, fmt, name, head)
    if memo is not None:
        memo[key] = fid
    return fid


def identify_by_content(fmt: str, name: str, head: bytes) -> FormatId | None:
    """What :func:`identify_format` answers for a sniffed ``fmt`` without fido or reading more.

    ``None`` when fido's signatures must decide (or, for ``TIFF``/``BigTIFF``, when
    the caller has not yet told an OME-TIFF apart by reading its first page).
    """
    known = pronom_for(fmt, name, head)
    if known is not None:
        return known
    if fmt == "empty":
        return FormatId(None, "empty file", None, "no bytes to identify")
    if fmt == "MRC":
        # PRONOM has no MRC record, and fido's only answer for one is by extension: a .map
        # cryo-EM / tomography map would be named a Mapsforge street map (fmt/915)
        basis = "content signature (curated sniffer: MAP id at byte 208); no PRONOM record"
        if head[208:211] != b"MAP":
            basis = "MRC header without the MAP id (a file from before MRC2000) and an MRC extension; no PRONOM record"
        return FormatId(None, "MRC", None, basis)
    if _CHUNK_NAME.match(name) and fmt not in ("PNG", "JPEG", "GIF", "PDF", "HDF5"):
        return FormatId(None, fmt, None, "Zarr chunk name: codec output, no PRONOM record")
    return None


def extension_key(name: str) -> str:
    """The extension part of :func:`identify_format`'s memo key (lower case, ``""`` for none)."""
    return name.rpartition(".")[2].lower() if "." in name else ""


def _identify_with_fido(path: Path, fmt: str, name: str, head: bytes) -> FormatId:
    try:
        matches = _Fido.identify(path)
    except Exception as exc:  # fido is best effort: its failure leaves the sniffer's answer
        return FormatId(None, fmt, None, f"fido failed ({type(exc).__name__}); curated sniffer")
    signature = [m for m in matches if m[3] == "signature"]
    if len(signature) >= 1:
        puid, pname, mime, _ = signature[0]
        if puid == "fmt/898" and fmt == "BigTIFF" and not name.lower().endswith(".zif"):
            # fido's v109 signatures predate BigTIFF (fmt/1917, PRONOM v115): its Zoomify
            # signature is the only one that matches a plain BigTIFF header.
            return pronom_for("BigTIFF", name, head) or FormatId(None, fmt)
        basis = _Fido.version + " (byte signature)"
        if len(signature) > 1:
            basis += "; also matched " + ", ".join(m[0] for m in signature[1:])
        return FormatId(puid, pname, mime, basis)
    if fmt == "text" or fmt == "script":
        return FormatId("x-fmt/111", "Plain Text File", "text/plain", "curated sniffer: UTF-8 text")
    if len(matches) == 1:
        puid, pname, mime, _ = matches[0]
        return FormatId(puid, pname, mime, _Fido.version + " (file extension only)")
    return FormatId(None, fmt, None, "no PRONOM signature matched (" + _Fido.version + ")")
