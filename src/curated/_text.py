"""Text every layer writes the same way: byte sizes, Markdown table cells, the package's templates."""

from __future__ import annotations

from typing import Any


def binary_size(n: float | None) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 GiB`` (powers of 1024; ``""`` for ``None``)."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def decimal_size(n: float) -> str:
    """``999 B``, ``1.5 kB``, ``3.2 TB`` (powers of 1000, as repositories state their limits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover - the loop always returns


def markdown_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def fmt_number(value: Any, digits: int = 3) -> str:
    """A float to ``digits`` decimals, anything else as text, ``None`` as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_interval(value: Any) -> str:
    """A ``[low, high]`` confidence interval as ``0.512–0.873`` (``n/a`` when absent)."""
    if not value:
        return "n/a"
    return f"{value[0]:.3f}–{value[1]:.3f}"


def fmt_percent(value: Any) -> str:
    """A share in [0, 1] as a whole percentage (``31%``), ``None`` as ``n/a``."""
    if value is None:
        return "n/a"
    return f"{float(value):.0%}"


def render_template(template: str, *, strict: bool = True, **context: Any) -> str:
    """Render one of the package's Jinja2 templates (``curated/templates``).

    ``strict`` makes a missing value an error (for records curated writes itself);
    otherwise missing fields of foreign records render empty and chain. Every
    template gets the filters ``cell``, ``fmt``, ``ci``, ``pct`` and ``bytes``.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("curated", "templates"),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined if strict else jinja2.ChainableUndefined,
    )
    env.filters["cell"] = markdown_cell
    env.filters["fmt"] = fmt_number
    env.filters["ci"] = fmt_interval
    env.filters["pct"] = fmt_percent
    env.filters["bytes"] = binary_size
    return env.get_template(template).render(**context)
