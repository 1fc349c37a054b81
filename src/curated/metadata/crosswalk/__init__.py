"""Crosswalks from a curated record to the metadata schemas repositories take.

One module per target (``datacite``; repository-specific ones sit beside it) and
shared normalisers in :mod:`curated.metadata.crosswalk.common`.
"""

from curated.metadata.crosswalk.datacite import missing_mandatory, to_datacite, validate_datacite

__all__ = ["missing_mandatory", "to_datacite", "validate_datacite"]
