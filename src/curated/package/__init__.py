"""Packaging: BagIt bags (RFC 8493) with an RO-Crate, built to a destination and checked offline.

Public API: :func:`make_bag`, :func:`validate_bag`, :func:`load_profile`,
:func:`list_profiles`.
"""

from curated.package.bag import BAGIT_TXT, DEFAULT_FETCH_MIN_SIZE, make_bag
from curated.package.hashing import FileChangedError
from curated.package.names import decode_path, encode_path
from curated.package.profiles import Profile, list_profiles, load_profile
from curated.package.validate import BagReport, validate_bag

__all__ = [
    "BAGIT_TXT",
    "DEFAULT_FETCH_MIN_SIZE",
    "BagReport",
    "FileChangedError",
    "Profile",
    "decode_path",
    "encode_path",
    "list_profiles",
    "load_profile",
    "make_bag",
    "validate_bag",
]
