"""curated: from raw volume-EM files to a well-described, trustworthy repository deposit.

The Python API lab pipelines import. Each subpackage is one layer:

- :mod:`curated.metadata` — REMBI metadata (LinkML schema → pydantic), OME import, DataCite
- :mod:`curated.provenance` — the curator log, digests, PROV / RO-Crate exports
- :mod:`curated.images` — OME-Zarr conversion, labels
- :mod:`curated.segment` — synthetic sample, sparse annotations, 3D U-Net, evaluation
- :mod:`curated.document` — README, FAIR checklist
- :mod:`curated.package` — BagIt bags with RO-Crate
- :mod:`curated.deposit` — repository adapters
"""

from curated._version import __version__
from curated.errors import CuratedError
from curated.results import Result
from curated.workspace import Workspace, recorder

__all__ = ["CuratedError", "Result", "Workspace", "__version__", "recorder"]
