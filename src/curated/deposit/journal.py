"""The resumable upload journal kept next to the bag: ``<bag>.deposit-journal.json``.

One JSON file, rewritten atomically after every confirmed step, holds per target
(``kind`` + URL) the draft's state, each file's progress (pending parts, confirmed
checksums) and the history of finished deposits. It never holds a credential; it does keep
the presigned upload URLs of a Dataverse direct upload in progress (time-limited write access
to one object each, needed to resume it), so it is written readable by its owner only (0600).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from curated._io import write_json
from curated._secrets import scrub, without_userinfo
from curated.errors import DepositError

FORMAT = "curated-deposit-journal/1"
JOURNAL_MODE = 0o600
"""Owner only, whatever the umask or an older journal's mode: presigned upload URLs inside."""


def journal_path(bag: str | Path) -> Path:
    """``<bag>.deposit-journal.json`` beside the bag (folder or archive)."""
    bag = Path(bag)
    return bag.parent / f"{bag.name}.deposit-journal.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Journal:
    """The journal of one bag; :meth:`entry` is the section for one target."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, bag: str | Path) -> Journal:
        path = journal_path(bag)
        if not path.exists():
            return cls(path, {"format": FORMAT, "bag": Path(bag).name, "deposits": {}})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"the deposit journal cannot be read ({exc}); move it aside to start over"
            raise DepositError(msg, path=path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            msg = f"not a curated deposit journal (expected format {FORMAT}); move it aside to start over"
            raise DepositError(msg, path=path)
        return cls(path, data)

    @staticmethod
    def key(kind: str, url: str, collection: str | None) -> str:
        return f"{kind} {url.rstrip('/')}" + (f" {collection}" if collection else "")

    def entry(self, key: str) -> dict[str, Any] | None:
        return self.data["deposits"].get(key)

    def start(
        self, key: str, *, kind: str, url: str, collection: str | None, bag_id: str
    ) -> dict[str, Any]:
        """A fresh section for ``key``, keeping the history of earlier deposits."""
        old = self.data["deposits"].get(key) or {}
        entry = {
            "kind": kind,
            "url": url,
            "collection": collection,
            "bag_id": bag_id,
            "stage": "started",
            "state": None,
            "files": {},
            "history": list(old.get("history") or []),
            "started": _now(),
        }
        self.data["deposits"][key] = entry
        return entry

    def save(self) -> None:
        self.data["updated"] = _now()
        # a credential echoed back by a server must not reach the disk (state, links)
        write_json(self.path, without_userinfo(scrub(self.data)), mode=JOURNAL_MODE)
