"""Secrets this process holds (tokens, passwords), so that whatever is written can drop them.

A credential is registered where it is read (the environment variable of a deposit,
the password of a ``user:password@`` URL). Every writer of shareable text (the curator
log, deposit receipts and journals) passes through :func:`scrub`, which replaces each
registered secret (also percent-encoded) by ``<redacted>``: a server echoing a token back
in a link cannot put it on disk.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)

REDACTED = "<redacted>"
_SECRETS: set[str] = set()
MIN_LENGTH = 4
"""Shorter strings are not registered: replacing them would mangle ordinary text."""


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret for the rest of this process."""
    if value and len(value) >= MIN_LENGTH:
        _SECRETS.add(value)
        encoded = quote(value, safe="")
        if encoded != value:
            _SECRETS.add(encoded)


def forget_secrets() -> None:
    """Forget every registered secret (tests)."""
    _SECRETS.clear()


def scrub(value: Any) -> Any:
    """``value`` (text or parsed JSON) with every registered secret replaced."""
    if not _SECRETS:
        return value
    if isinstance(value, str):
        # longest first, so a secret containing another is replaced whole
        for s in sorted(_SECRETS, key=len, reverse=True):
            if s in value:
                value = value.replace(s, REDACTED)
        return value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def without_userinfo(value: Any) -> Any:
    """``value`` with every URL's ``user:password@`` removed (strings, dicts, lists)."""
    if isinstance(value, str):
        return _USERINFO.sub(lambda m: m["scheme"], value) if "@" in value else value
    if isinstance(value, dict):
        return {k: without_userinfo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_userinfo(v) for v in value]
    return value
