"""How payload file names become manifest paths (RFC 8493 section 2.1.3), and back.

A manifest line is ``<checksum> <path>``; the path is UTF-8 with ``/`` separators
and with CR, LF and ``%`` percent-encoded (``%0D``, ``%0A``, ``%25``). Names
that are not valid UTF-8, and sibling names that are equal after Unicode NFC
normalisation, cannot be represented unambiguously and are refused.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable

from curated.errors import PackageError

_ENCODE = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_ENCODE_RE = re.compile(r"[%\r\n]")
_DECODE_RE = re.compile(r"%(25|0D|0A)", re.IGNORECASE)
_DECODE = {"25": "%", "0D": "\r", "0A": "\n"}


def encode_path(path: str) -> str:
    """Percent-encode CR, LF and ``%`` in a manifest/fetch path (RFC 8493 section 2.1.3)."""
    return _ENCODE_RE.sub(lambda m: _ENCODE[m.group(0)], path)


def decode_path(path: str) -> str:
    """Inverse of :func:`encode_path`, in one pass (so ``%250A`` decodes to ``%0A``)."""
    return _DECODE_RE.sub(lambda m: _DECODE[m.group(1).upper()], path)


_TSV_ENCODE = {**_ENCODE, "\t": "%09"}
_TSV_RE = re.compile(r"[%\r\n\t]")


def encode_tsv_field(text: str) -> str:
    """Percent-encode for a tab-separated tag file (manifest rules plus TAB as ``%09``)."""
    return _TSV_RE.sub(lambda m: _TSV_ENCODE[m.group(0)], text)


def check_name(name: str, folder: str | os.PathLike[str]) -> None:
    """Refuse a file name that a UTF-8 manifest cannot carry (undecodable bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        msg = (
            f"file name {raw!r} is not valid UTF-8, so no BagIt manifest can name it; "
            "rename it (e.g. with `convmv`) and bag again"
        )
        raise PackageError(msg, path=os.fsdecode(folder)) from None


def check_siblings(names: Iterable[str], folder: str | os.PathLike[str]) -> None:
    """Refuse two names in one folder that are equal after Unicode NFC normalisation.

    RFC 8493 says implementations SHOULD refuse such files: after a copy through
    a normalising file system (macOS) they become one file.
    """
    seen: dict[str, str] = {}
    for name in names:
        key = unicodedata.normalize("NFC", name)
        other = seen.get(key)
        if other is not None:
            msg = (
                f"two files differ only in Unicode normalisation: {other!r} and {name!r}; "
                "rename one of them (a bag cannot hold both)"
            )
            raise PackageError(msg, path=os.fsdecode(folder), details={"names": [other, name]})
        seen[key] = name
