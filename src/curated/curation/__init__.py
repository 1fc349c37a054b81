"""The Check and Request steps of CURATE(D): what the depositor sent, and what to ask them."""

from curated.curation.check import ChecklistAnswer, CheckReport, FileRecord, RedFlag, check
from curated.curation.request import Ask, request

__all__ = ["Ask", "CheckReport", "ChecklistAnswer", "FileRecord", "RedFlag", "check", "request"]
