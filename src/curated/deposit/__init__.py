"""Deposit a bag into a repository: InvenioRDM/Zenodo, Dataverse, DSpace 7, Figshare, a folder.

One protocol (:class:`~curated.deposit.protocol.Repository`), one HTTP session
(:mod:`curated.deposit.http`), one resumable journal (:mod:`curated.deposit.journal`),
limits as data (:mod:`curated.deposit.preflight`), and :func:`deposit` tying them together.
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

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "LIMITS",
    "TARGETS",
    "Limits",
    "Receipt",
    "RetryPolicy",
    "deposit",
    "discover_workspace",
    "make_repository",
]
