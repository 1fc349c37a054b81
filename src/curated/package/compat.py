"""Work-arounds for bagit-python (the reference implementation we cross-check bags with).

bagit-python 1.9 decodes manifest paths with ``re.sub(r"%0D", "\\r", s, re.IGNORECASE)``:
it never decodes ``%25`` (so a file named ``a%b`` whose manifest line reads, as
RFC 8493 section 2.1.3 requires, ``data/a%25b`` is reported missing), and it
passes ``re.IGNORECASE`` as the *count* argument (so ``%0d`` is not decoded).
See LibraryOfCongress/bagit-python issue 157. :func:`rfc_path_decoding` swaps
in an RFC-correct decoder while bagit-python reads a bag.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from curated.package.names import decode_path


@contextmanager
def rfc_path_decoding() -> Iterator[None]:
    """Let ``bagit.Bag(...)`` decode ``%25``, ``%0D`` and ``%0A`` as RFC 8493 says, inside this block."""
    import bagit

    original = bagit._decode_filename
    bagit._decode_filename = decode_path
    try:
        yield
    finally:
        bagit._decode_filename = original
