"""What the HTTP adapters share: session set-up and the 2xx-with-errors check."""

from __future__ import annotations

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


def body_errors(reply: Reply, what: str, session: HttpSession, *, key: str = "errors") -> None:
    """Raise when a successful answer carries validation errors (Invenio drafts, Figshare, DSpace)."""
    data = reply.data
    errs = data.get(key) if isinstance(data, dict) else None
    if errs:
        lines = [
            session.clean(describe_error(e)) for e in (errs if isinstance(errs, list) else [errs])
        ][:10]
        msg = f"{what}: {session.repository} accepted the request but reports errors: {'; '.join(lines)}"
        raise DepositError(msg, details={"errors": lines})


def need(data: Any, *keys: str, what: str) -> Any:
    """``data[k1][k2]...`` or a DepositError saying the answer lacks it."""
    cur = data
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            msg = f"{what}: the repository's answer lacks {'.'.join(keys)}; is --url the right kind of repository?"
            raise DepositError(msg)
        cur = cur[k]
    return cur
