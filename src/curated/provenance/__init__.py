"""Provenance: the curator log, digests, step recording, and exports (PROV, RO-Crate)."""

from curated.provenance.digest import (
    TreeDigest,
    TreeHasher,
    digest_path,
    digest_tree,
    sha256_file,
)
from curated.provenance.log import (
    STEPS,
    Artifact,
    CuratorLog,
    StepRecorder,
    VerifyReport,
    entry_hash,
    redact,
)

__all__ = [
    "STEPS",
    "Artifact",
    "CuratorLog",
    "StepRecorder",
    "TreeDigest",
    "TreeHasher",
    "VerifyReport",
    "digest_path",
    "digest_tree",
    "entry_hash",
    "redact",
    "sha256_file",
]
