"""Measurements a lab runs on its own machine and data (``curated bench ...``)."""

from curated.bench.formats import FORMATS, bench_formats

__all__ = ["FORMATS", "bench_formats"]
