"""The HTTP session every adapter uses: retries, Retry-After, auth errors, HTML, 2xx errors."""

from __future__ import annotations

import datetime
import email
import email.policy
import email.utils
import time

import pytest

from curated._secrets import REDACTED
from curated.deposit._base import body_errors
from curated.deposit.http import (
    FileSlice,
    HttpSession,
    MultipartBody,
    RetryPolicy,
    parse_retry_after,
)
from curated.errors import DepositError
from tests.fakes.base import FakeServer

SECRET = "s3cr3t-token-value"


class Echo(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.received = 0
        self.route("GET", r"/ok", lambda req: (200, {"fine": True}))
        self.route("PUT", r"/up", self.up)
        self.route("GET", r"/html", lambda req: (200, "<html><body>Login</body></html>"))
        self.route(
            "GET", r"/denied", lambda req: (403, {"message": f"token {SECRET} is not valid"})
        )
        self.route(
            "POST",
            r"/draft",
            lambda req: (
                201,
                {"id": 1, "errors": [{"field": "metadata.title", "messages": ["Missing"]}]},
            ),
        )

    def up(self, req):
        self.received = sum(len(c) for c in req.stream())
        return 200, {"size": self.received}


@pytest.fixture
def server():
    with Echo() as s:
        yield s


def session(url: str, sleeps: list[float], attempts: int = 4) -> HttpSession:
    return HttpSession(
        url,
        headers={"Authorization": f"Bearer {SECRET}"},
        secrets=[SECRET],
        credential="$TEST_TOKEN",
        retry=RetryPolicy(attempts=attempts, backoff=0.01, sleep=sleeps.append),
        repository="Echo",
    )


def test_429_is_retried_honouring_retry_after(server):
    server.inject(
        "GET",
        "/ok",
        status=429,
        body={"message": "slow down"},
        headers={"Retry-After": "7"},
        times=2,
    )
    sleeps: list[float] = []
    r = session(server.url, sleeps).request("GET", "/ok")
    assert r.data == {"fine": True}
    assert sleeps == [7.0, 7.0]
    assert server.count("GET", "/ok") == 3


def test_503_retries_are_bounded(server):
    server.inject("GET", "/ok", status=503, body={"message": "maintenance"}, times=10)
    sleeps: list[float] = []
    with pytest.raises(DepositError, match="still answers HTTP 503 after 3 attempts"):
        session(server.url, sleeps, attempts=3).request("GET", "/ok")
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0]  # exponential backoff


def test_wrong_token_names_the_variable_and_is_not_retried(server):
    sleeps: list[float] = []
    with pytest.raises(DepositError) as exc:
        session(server.url, sleeps).request("GET", "/denied")
    msg = str(exc.value)
    assert "$TEST_TOKEN" in msg and "HTTP 403" in msg
    assert SECRET not in msg and SECRET not in repr(exc.value.details)
    assert server.count("GET", "/denied") == 1 and sleeps == []


def test_html_instead_of_json_is_named(server):
    with pytest.raises(DepositError, match="HTML page instead of JSON"):
        session(server.url, []).request("GET", "/html")


def test_2xx_with_validation_errors_is_an_error(server):
    s = session(server.url, [])
    r = s.request("POST", "/draft", json_body={})
    with pytest.raises(DepositError, match="metadata.title: Missing"):
        body_errors(r, "creating the draft", s)


def test_dropped_upload_is_retried_with_a_fresh_body(server, tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(b"x" * 1_000_000)
    server.inject("PUT", "/up", drop_after=300_000)
    sleeps: list[float] = []
    slices: list[FileSlice] = []

    def body():
        slices.append(FileSlice(f))
        return slices[-1]

    r = session(server.url, sleeps).request("PUT", "/up", body=body)
    assert r.data == {"size": 1_000_000}
    assert len(slices) == 2 and len(sleeps) == 1
    assert slices[-1].hashes.size == 1_000_000


def test_connection_refused_gives_up_with_resume_advice():
    sleeps: list[float] = []
    with pytest.raises(DepositError, match="re-run with --resume"):
        session("http://127.0.0.1:9", sleeps, attempts=2).request("GET", "/ok")
    assert len(sleeps) == 1


def test_retry_after_forms_and_redaction():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    # the session's credential is scrubbed from every text it hands on (one marker everywhere)
    s = HttpSession("http://127.0.0.1:9", secrets=[SECRET])
    assert s.clean(f"bad {SECRET}!") == f"bad {REDACTED}!"
    s.close()


def test_file_slice_streams_a_range(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 10)
    s = FileSlice(f, 100, 50)
    assert len(s) == 50
    data = b""
    while chunk := s.read(7):
        data += chunk
    assert data == (bytes(range(256)) * 10)[100:150]


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("two\nlines.png", "two%0Alines.png"),
        ("a\r\n\r\nfake first bytes", "a%0D%0A%0D%0Afake first bytes"),
        ('say "hi".png', "say %22hi%22.png"),
        ("100% é 細 🦠 #?&+.png", "100% é 細 🦠 #?&+.png"),
    ],
)
def test_multipart_file_name_cannot_break_the_part_header(tmp_path, name, sent):
    """WHATWG HTML's multipart/form-data encoding: LF, CR and " in a file name as %0A, %0D, %22."""
    f = tmp_path / "f"
    f.write_bytes(b"payload")
    body = MultipartBody({"jsonData": "{}"}, "file", name, FileSlice(f))
    raw = b""
    while chunk := body.read(1 << 16):
        raw += chunk
    assert len(raw) == len(MultipartBody({"jsonData": "{}"}, "file", name, FileSlice(f)))
    msg = email.message_from_bytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP
    )
    parts = list(msg.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "jsonData",
        "file",
    ]
    assert parts[1].get_filename() == sent
    assert parts[1].get_payload(decode=True) == b"payload"


def test_credential_never_travels_to_another_host(server):
    with Echo() as other:  # a second loopback server stands in for presigned storage
        other_url = other.url.replace("127.0.0.1", "localhost")
        s = session(server.url, [])
        s.request("GET", "/ok")
        s.request("GET", other_url + "/ok")
        assert server.headers_seen[-1]["Authorization"] == f"Bearer {SECRET}"
        assert "Authorization" not in other.headers_seen[-1]


def test_429_retry_after_date_already_past_still_backs_off(server):
    """A ``Retry-After`` date already past (the server's clock behind ours) is no reason to
    retry at once: the backoff applies."""
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.inject("GET", "/ok", status=429, headers={"Retry-After": past}, times=2)
    sleeps: list[float] = []
    assert session(server.url, sleeps).request("GET", "/ok").data == {"fine": True}
    assert sleeps == [0.01, 0.02]


def test_429_retry_after_date_is_honoured_up_to_the_longest_delay(server):
    later = email.utils.format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1), usegmt=True
    )
    server.inject("GET", "/ok", status=429, headers={"Retry-After": later})
    sleeps: list[float] = []
    s = session(server.url, sleeps)
    s.retry.max_delay = 30.0
    assert s.request("GET", "/ok").data == {"fine": True}
    assert sleeps == [30.0]


@pytest.fixture
def tokyo(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_retry_after_asctime_date_is_utc_whatever_the_local_zone(tokyo):
    """RFC 9110 dates are UTC; the asctime form names no zone and is not local time."""
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
    wait = parse_retry_after(soon.strftime("%a %b %d %H:%M:%S %Y"))
    assert wait is not None and 55 < wait <= 60


@pytest.mark.parametrize(
    ("status", "named"),
    [
        (413, "refuses a request of 1000 bytes as too large"),
        (507, "quota of the account or the record, is full"),
    ],
)
def test_refusals_for_size_and_quota_are_named_not_retried(server, status, named):
    page = "<html><head><title>Request Entity Too Large</title></head></html>"
    server.inject("PUT", "/up", status=status, body=page, content_type="text/html")
    sleeps: list[float] = []
    with pytest.raises(DepositError, match=f"HTTP {status}") as err:
        session(server.url, sleeps).request("PUT", "/up", raw=b"x" * 1000)
    assert named in str(err.value) and "administrators" in str(err.value)
    assert sleeps == [] and server.count("PUT", "/up") == 1


# A 403 is not always about the credential: the servers' own messages say when the state of
# the record refused the request (invenio-files-rest BucketLockedError and
# MultipartAlreadyCompleted, Dataverse file.api.alreadyHasPackageFile, a review workflow, a
# full quota); only a message about access, or none, is a refused credential.
STATE_REFUSALS = [
    ({"status": 403, "message": "Bucket is locked for modifications."}, "locked for changes"),
    ({"status": 403, "message": "Multipart upload is already completed."}, "completed already"),
    (
        {"status": "ERROR", "message": "The dataset already holds a package file."},
        "holds a package file",
    ),
    ({"status": 403, "message": "Editing is not allowed in workflow."}, "review workflow"),
    ({"message": "Storage quota exceeded", "code": "Forbidden"}, "quota"),
]


@pytest.mark.parametrize(("body", "said"), STATE_REFUSALS)
def test_a_403_about_the_record_is_not_called_a_credential_problem(server, body, said):
    server.inject("GET", "/ok", status=403, body=body)
    sleeps: list[float] = []
    with pytest.raises(DepositError) as exc:
        session(server.url, sleeps).request("GET", "/ok", what="uploading data.bin")
    msg = str(exc.value)
    assert msg.startswith("uploading data.bin: Echo refused it (HTTP 403: ")
    assert body["message"] in msg and said in msg
    assert "refused the credential" not in msg and "$TEST_TOKEN" not in msg
    assert exc.value.details["server"] == body["message"]
    assert server.count("GET", "/ok") == 1 and sleeps == []


def test_a_403_with_another_message_says_it_and_mentions_the_credential_last(server):
    server.inject("GET", "/ok", status=403, body={"message": "Item cannot be edited now"})
    with pytest.raises(DepositError) as exc:
        session(server.url, []).request("GET", "/ok", what="saving metadata")
    msg = str(exc.value)
    assert msg.startswith(
        "saving metadata: Echo refused it (HTTP 403: Item cannot be edited now); do what its message asks"
    )
    assert "refused the credential" not in msg and "$TEST_TOKEN" in msg


@pytest.mark.parametrize(
    "body",
    [
        {
            "status": 403,
            "message": "You don't have the permission to access the requested resource.",
        },
        {"status": 403, "error": "Forbidden", "message": "Access is denied"},
        {"message": "Invalid or expired token", "code": "Forbidden"},
        "",
        "<html><body>Forbidden</body></html>",
    ],
)
def test_a_403_about_access_or_saying_nothing_is_a_refused_credential(server, body):
    server.inject("GET", "/ok", status=403, body=body)
    with pytest.raises(DepositError) as exc:
        session(server.url, []).request("GET", "/ok", what="reading")
    msg = str(exc.value)
    assert msg.startswith("reading: Echo refused the credential in $TEST_TOKEN (HTTP 403")
    assert msg.endswith("check that it is valid, not expired, and allowed to deposit")
