"""Secrets this process holds (tokens, passwords), so that whatever is written can drop them.

A credential is registered where it is read (the environment variable of a deposit,
the password of a ``user:password@`` URL). Two functions, two contracts:

:func:`scrub`
    Replaces each *registered* secret (also percent-encoded) by ``<redacted>`` and
    nothing else, so the value stays usable: what a server answered (a body echoing the
    token back in a link) is scrubbed before it is parsed, kept or shown.
:func:`redact`
    For everything written where others read it (the curator log, deposit receipts,
    bags): :func:`scrub`, and also whatever *looks* like a credential although it was
    never registered (a value under a ``token``/``password`` key, ``user:pass@`` in a
    URL, ``?access_token=``, a bearer token).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
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


_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|api[_-]?key|authori[sz]ation|credential|cookie|private[_-]?key)",
    re.I,
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.I)
_URL_SECRET_QUERY = re.compile(
    r"(?P<key>[?&](?:x-amz-|x-goog-)?(?:access_token|token|api_key|apikey|key|secret|signature|sig|password|credential|security-token)=)[^&#\s]+",
    re.I,
)
_BEARER = re.compile(r"(?P<key>bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I)

T = TypeVar("T")


def redact(value: T) -> T:
    """``value`` (text or parsed JSON) fit to be written where others read it.

    Every registered secret is replaced by ``<redacted>`` (:func:`scrub`); so is what
    looks like a credential although nobody registered it: the value of a key naming a
    secret (``token``, ``password``, ``api_key``...; a ``*_env`` / ``*_var`` key holds a
    variable's *name* and is kept), the password of a ``scheme://user:pass@`` URL, secret
    query parameters (``?access_token=...``) and bearer tokens. Tuples come back as
    lists (JSON has no tuples); other values are returned as they are.

    >>> redact({"token": "abc123", "url": "https://u:pw@example.org/x?sig=1&a=2"})
    {'token': '<redacted>', 'url': 'https://<redacted>@example.org/x?sig=<redacted>&a=2'}
    """
    return _redact(scrub(value))  # type: ignore[no-any-return]


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if (
                isinstance(k, str)
                and _SECRET_KEY.search(k)
                and v not in (None, "", False)
                and not isinstance(v, (dict, list, bool))
            ):
                out[k] = v if k.lower().endswith(("_env", "_var")) else REDACTED
            else:
                out[k] = _redact(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{REDACTED}@", value)
        value = _URL_SECRET_QUERY.sub(lambda m: f"{m['key']}{REDACTED}", value)
        return _BEARER.sub(lambda m: f"{m['key']}{REDACTED}", value)
    return value
