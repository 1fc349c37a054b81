"""Text every layer writes the same way: byte sizes, Markdown table cells, the package's templates."""

from __future__ import annotations

import re
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


_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
"""Zero-width, direction marks, overrides and isolates: they reorder or hide what a reader sees."""
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_RAW_HTML = re.compile(r"<(?!TODO: )(?=[A-Za-z/!?])")
_UNSAFE_LINK = re.compile(r"\]\((?=\s*<?\s*(?:javascript|vbscript|data|file):)", re.IGNORECASE)


def shown_invisible(text: str) -> str:
    """``text`` with control characters removed and invisible ones shown (``⟨U+202E⟩``).

    A right-to-left override makes ``evil\u202egpj.exe`` read as ``evilexe.jpg``; a
    zero-width space hides inside an identifier. In a document they are named, not obeyed.
    """
    text = _CONTROL.sub("", text)
    return _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def inline_text(value: Any) -> str:
    """A metadata value as one line of text: line breaks become spaces (see :func:`shown_invisible`)."""
    text = "" if value is None else str(value)
    return shown_invisible(_LINE_BREAK.sub(" ", text))


def one_line_strings(value: Any) -> Any:
    """A copy of a record whose every text is :func:`inline_text` (for one-line places in documents)."""
    if isinstance(value, dict):
        return {k: one_line_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [one_line_strings(v) for v in value]
    return inline_text(value) if isinstance(value, str) else value


def markdown_safe(value: Any) -> Any:
    """What a Markdown template may print of ``value``: no raw HTML, no script links, nothing invisible.

    Applied to every ``{{ ... }}`` of the package's Markdown templates. Text from
    metadata may hold ``<script>``, ``<img onerror=...>`` or ``[x](javascript:...)``:
    tags become text (``&lt;script>``), such a link's target is left unlinked, control
    characters go and invisible ones are shown. Other Markdown is left as it is (the
    templates build links and emphasis of their own); ``<TODO: field>`` markers stay.
    """
    if not isinstance(value, str):
        return value
    text = _UNSAFE_LINK.sub("]\\(", shown_invisible(value))
    return _RAW_HTML.sub("&lt;", text)


def markdown_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped (see :func:`markdown_safe`)."""
    return markdown_safe(inline_text(value).replace("|", "\\|"))


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


def end_sentence(value: Any) -> str:
    """Text followed by a full stop unless it already ends a sentence (``.``, ``!``, ``?``,
    ``…``, also before a closing quote or bracket): free text from a record or a message
    often carries its own, and ``{{ x }}.`` printed two."""
    text = str(value).rstrip()
    core = text.rstrip("\"')]»”’*_")
    return text if core.endswith((".", "!", "?", "…")) else text + "."


def render_template(template: str, *, strict: bool = True, **context: Any) -> str:
    """Render one of the package's Jinja2 templates (``curated/templates``).

    ``strict`` makes a missing value an error (for records curated writes itself);
    otherwise missing fields of foreign records render empty and chain. Whatever
    a template prints passes :func:`markdown_safe`. Every template gets the filters ``cell``, ``fmt``, ``ci``, ``pct``, ``bytes`` and ``sentence``.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("curated", "templates"),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined if strict else jinja2.ChainableUndefined,
        finalize=markdown_safe,  # every template is Markdown
    )
    env.filters["cell"] = markdown_cell
    env.filters["fmt"] = fmt_number
    env.filters["ci"] = fmt_interval
    env.filters["pct"] = fmt_percent
    env.filters["bytes"] = binary_size
    env.filters["sentence"] = end_sentence
    return env.get_template(template).render(**context)
