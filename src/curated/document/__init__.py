"""Documents a deposit explains itself with: the dataset README and the FAIR checklist.

- :func:`write_readme` — ``README.md`` with Cornell's sections, the DCN take-away
  block, orthogonal-view pictures with label overlays, and the curation history.
- :func:`fair_checklist` — FAIR metrics (F-UJI / RDA identifiers) evaluated offline,
  written to ``curation/fair.json`` and ``curation/fair.md``; :func:`bag_fair_report`
  evaluates them on what a bag packages (``curated bag`` writes that into the bag).
"""

from curated.document.fair import (
    FairReport,
    MetricResult,
    bag_fair_report,
    fair_checklist,
    load_metrics,
)
from curated.document.readme import ReadmeReport, render_readme, todo_fields, write_readme
from curated.document.survey import WorkspaceSurvey, survey_workspace

__all__ = [
    "FairReport",
    "MetricResult",
    "ReadmeReport",
    "WorkspaceSurvey",
    "bag_fair_report",
    "fair_checklist",
    "load_metrics",
    "render_readme",
    "survey_workspace",
    "todo_fields",
    "write_readme",
]
