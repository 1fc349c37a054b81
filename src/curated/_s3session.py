"""The HTTP session s3fs talks to object stores through: aiobotocore's, without following redirects.

Workaround for aiobotocore (3.10 at the time of writing): its aiohttp session calls
``aiohttp.ClientSession.request`` with aiohttp's default ``allow_redirects=True``,
where botocore's own HTTP session never follows a redirect. A store (or anything
between) answering ``307``/``301`` with a ``Location`` on another host then receives
the request again, body and all: aiohttp drops the ``Authorization`` header across
origins but not ``X-Amz-Security-Token`` (a session token), and the other host's answer
is taken as the store's (a PUT "succeeds" without the object ever being written, a GET
returns the other host's bytes). With redirects left unfollowed, botocore sees the
``3xx`` itself: a region redirect (``PermanentRedirect`` with the bucket's region) is
re-signed and sent to the right regional endpoint by botocore, as with boto3; any other
redirect fails the request.

Imported only where an ``s3://`` store is used (it imports aiobotocore).
"""

from __future__ import annotations

from typing import Any

from aiobotocore.httpsession import AIOHTTPSession


class NoRedirects:
    """An ``aiohttp.ClientSession`` whose requests never follow a redirect."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        return self.session.request(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # anything else aiobotocore may ask of a session
        return getattr(self.session, name)


class NoRedirectSession(AIOHTTPSession):
    """aiobotocore's aiohttp session, with :class:`NoRedirects` sessions."""

    async def _get_session(self, proxy_url: Any) -> Any:
        return NoRedirects(await super()._get_session(proxy_url))
