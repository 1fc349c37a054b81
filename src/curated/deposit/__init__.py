"""Deposit a bag into a repository: InvenioRDM/Zenodo, Dataverse, DSpace 7, Figshare, a folder.

One protocol (:class:`~curated.deposit.protocol.Repository`), one HTTP session
(:mod:`curated.deposit.http`), one resumable journal (:mod:`curated.deposit.journal`),
limits as data (:mod:`curated.deposit.preflight`), and :func:`deposit` tying them together.

What is sent (see :mod:`curated.deposit.payload`):

==============  ============================  ====================================
target          bag folder                    serialized bag (.zip/.tar)
==============  ============================  ====================================
invenio/zenodo  each file, key = bag path     the archive (one file)
dataverse       each file, directoryLabel     the archive (a .zip direct or wrapped)
dspace          one stored zip ``<bag>.zip``  the archive (one multipart POST)
figshare        one stored zip ``<bag>.zip``  the archive (in Figshare's parts)
directory       a copy of the folder          a copy of the archive
==============  ============================  ====================================

Zenodo's 100-file cap means a folder bag with unarchived Zarr stores is refused in
preflight with the advice to run ``curated bag --zarr archive`` (or to serialize).
"""

from curated.deposit.core import (
    DEFAULT_TOKEN_ENV,
    TARGETS,
    Receipt,
    deposit,
    discover_workspace,
    make_repository,
)
from curated.deposit.http import RetryPolicy
from curated.deposit.preflight import LIMITS, Limits
from curated.deposit.targets import REGISTRY, Target, get_target

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "LIMITS",
    "REGISTRY",
    "TARGETS",
    "Limits",
    "Receipt",
    "RetryPolicy",
    "Target",
    "deposit",
    "discover_workspace",
    "get_target",
    "make_repository",
]
