"""The HTTP session s3fs talks to object stores through: aiobotocore's, without following
redirects, and reading at most :data:`ERROR_BODY` bytes of an error answer.

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

ERROR_BODY = 64 * 1024
"""Most bytes of an error answer's body read (an S3 error document is under a KiB)."""


class BoundedErrorBody:
    """An error answer (status 300 and up) whose body is read to :data:`ERROR_BODY` at most.

    aiobotocore reads an error answer's body whole (``await response.read()``) to parse
    the error document: a store, or anything posing as one, answering with gigabytes would
    have them all held in memory. Past the bound, the rest is left unread and the
    connection dropped; a document cut short is not parsed, and botocore names the error
    by its HTTP status instead.
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self._body: bytes | None = None

    async def read(self) -> bytes:
        if self._body is None:
            stream = self._response.content
            buf = bytearray()
            while len(buf) < ERROR_BODY:
                piece = await stream.read(ERROR_BODY - len(buf))
                if not piece:
                    break
                buf += piece
            if len(buf) >= ERROR_BODY and not stream.at_eof():
                self._response.close()  # the rest is never read: the connection goes
            else:
                self._response.release()
            self._body = bytes(buf)
        return self._body

    def __getattr__(self, name: str) -> Any:  # status, headers, url, ... of the answer
        return getattr(self._response, name)


class NoRedirects:
    """An ``aiohttp.ClientSession`` whose requests never follow a redirect, and whose error
    answers are read to :data:`ERROR_BODY` at most (:class:`BoundedErrorBody`)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        return self._bounded(self.session.request(*args, **kwargs))

    @staticmethod
    async def _bounded(pending: Any) -> Any:
        response = await pending
        return BoundedErrorBody(response) if response.status >= 300 else response

    def __getattr__(self, name: str) -> Any:  # anything else aiobotocore may ask of a session
        return getattr(self.session, name)


class NoRedirectSession(AIOHTTPSession):
    """aiobotocore's aiohttp session, with :class:`NoRedirects` sessions."""

    async def _get_session(self, proxy_url: Any) -> Any:
        return NoRedirects(await super()._get_session(proxy_url))
