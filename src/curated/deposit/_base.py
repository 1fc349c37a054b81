"""What the HTTP adapters share: session set-up and the 2xx-with-errors check."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlparse

from curated.deposit.http import HttpSession, Reply, RetryPolicy, Timeouts, describe_error
from curated.errors import DepositError


def make_session(
    base: str,
    *,
    headers: dict[str, str],
    token: str | None,
    token_env: str | None,
    repository: str,
    retry: RetryPolicy | None,
    timeouts: Timeouts | None = None,
) -> HttpSession:
    if not base.startswith(("https://", "http://")):
        raise DepositError(f"--url must be an http(s) address, not {base!r}", field="url")
    return HttpSession(
        base,
        headers=headers,
        secrets=[token] if token else [],
        credential=f"${token_env}" if token_env else "the credential",
        retry=retry or RetryPolicy(),
        timeouts=timeouts or Timeouts(),
        # the host only: a ``user:password@`` in --url must not reach a message
        repository=f"{repository} at {urlparse(base).netloc.rpartition('@')[2]}",
    )


def not_published(session: HttpSession, reply: Reply, lacking: str, record: Any) -> DepositError:
    """The error of a publish answered with a success status that does not show a publication
    (``lacking``: what the answer should have said): the draft stays, ``--resume`` retries."""
    said = session.clean(reply.text.strip()[:200]) or "an empty body"
    msg = (
        f"publishing: {session.repository} answered HTTP {reply.status} {lacking} (it answered "
        f"{said!r}); the draft and its files are kept: check it there, then re-run with --resume"
    )
    return DepositError(msg, details={"status": reply.status, "record": record})


def body_errors(reply: Reply, what: str, session: HttpSession, *, key: str = "errors") -> None:
    """Raise when a successful answer carries validation errors (Invenio drafts, Figshare, DSpace)."""
    data = reply.data
    errs = data.get(key) if isinstance(data, dict) else None
    status = data.get("status") if isinstance(data, dict) else None
    if not errs and isinstance(status, int) and not isinstance(status, bool) and status >= 400:
        # an error document (Invenio's, Spring's) under a success status
        errs = [str(data.get("message") or data.get("error") or f"status {status}")]
    if errs:
        lines = [
            session.clean(describe_error(e)) for e in (errs if isinstance(errs, list) else [errs])
        ][:10]
        msg = f"{what}: {session.repository} accepted the request but reports errors: {'; '.join(lines)}"
        raise DepositError(msg, details={"errors": lines})


def obj(data: Any) -> dict[str, Any]:
    """``data`` when it is a JSON object, else an empty one (a server's answer of another
    shape reads as one that lacks what was asked, never as a crash)."""
    return data if isinstance(data, dict) else {}


def rows(data: Any) -> list[dict[str, Any]]:
    """The JSON objects of a list answer (anything else in it, or a non-list, dropped)."""
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def need(data: Any, *keys: str, what: str) -> Any:
    """``data[k1][k2]...`` or a DepositError saying the answer lacks it."""
    cur = data
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            msg = f"{what}: the repository's answer lacks {'.'.join(keys)}; is --url the right kind of repository?"
            raise DepositError(msg)
        cur = cur[k]
    return cur


CLOCK_SKEW = dt.timedelta(minutes=10)
"""How far the repository's clock may be behind ours when matching a draft made by a
request whose answer was lost."""
MAX_LOOKUPS = 25
"""Most candidate drafts read one by one when looking for a lost draft."""


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 timestamp from a server (``Z`` or an offset; naive means UTC), else ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def made_since(when: Any, since: str) -> bool:
    """Whether a server timestamp is not earlier than ``since`` (less :data:`CLOCK_SKEW`).

    A missing or unreadable timestamp proves nothing: ``False``.
    """
    t, s = parse_time(when), parse_time(since)
    return t is not None and s is not None and t >= s - CLOCK_SKEW


def one_lost_draft(
    found: list[tuple[str, dict[str, Any]]], *, repository: str, since: str
) -> dict[str, Any] | None:
    """The one draft matching a lost create (``(label, state)`` pairs), ``None`` for none.

    Several matches cannot be told apart: the curator is asked to keep one, so that the
    deposit never adopts the wrong draft nor makes yet another.
    """
    if not found:
        return None
    if len(found) == 1:
        return found[0][1]
    labels = ", ".join(label for label, _ in found[:10])
    msg = (
        f"an earlier run asked {repository} to create the draft at {since} but its answer was "
        f"lost, and {len(found)} drafts made since then match it ({labels}): delete all but one "
        "there, then re-run with --resume to continue with the one left"
    )
    raise DepositError(msg, details={"creating": since, "candidates": [lb for lb, _ in found]})
