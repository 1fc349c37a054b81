"""What a writer put into a store, and whether the store kept it.

An object store may answer a ``PUT`` ``200 OK`` and keep nothing, or fewer bytes (its
checksum ignored). zarr reads a missing chunk or shard as fill values, so such a store
holds a hole that nothing notices. Writers therefore record what they wrote (keys,
sizes, sha256: :class:`RecordingStore` for arrays zarr writes), and before a store is
marked finished one listing is compared with the record (:func:`unkept`): no object is
read back. A folder needs no check: its files are renamed into place, whole or not at all.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from zarr.storage import WrapperStore

from curated.objstore import open_sink


class RecordingStore(WrapperStore[Any]):
    """A zarr store that records the size and sha256 of every object set through it, and
    forgets the ones deleted through it (a chunk or shard equal to the fill value)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self._lock = threading.Lock()
        self.written: dict[str, tuple[int, str]] = {}

    async def set(self, key: str, value: Any) -> None:
        await self._store.set(key, value)
        data = value.to_bytes()
        with self._lock:
            self.written[key] = (len(data), hashlib.sha256(data).hexdigest())

    async def delete(self, key: str) -> None:
        await self._store.delete(key)
        with self._lock:
            self.written.pop(key, None)

    def take(self, prefix: str = "") -> dict[str, tuple[int, str]]:
        """What was written since the last call, keys under ``prefix`` (``"<prefix>/<key>"``)."""
        with self._lock:
            got, self.written = self.written, {}
        return {f"{prefix}/{k}" if prefix else k: v for k, v in got.items()}


def open_recording(path: str) -> tuple[Any, RecordingStore]:
    """The zarr array at ``path`` (folder or ``s3://`` URL) opened for writing, and the
    store that records what is written to it."""
    import zarr

    store = RecordingStore(open_sink(path).zarr_store())
    return zarr.open_array(store=store, mode="r+"), store


def unkept(listed: dict[str, int], known: dict[str, tuple[int, str]]) -> list[str]:
    """The keys of ``known`` (key → size, sha256 as written) that the listing ``listed``
    (key → size) lacks or shows at another size, sorted."""
    return sorted(rel for rel, (size, _) in known.items() if listed.get(rel) != size)


def unkept_message(bad: list[str], listed: dict[str, int] | Any) -> str:
    """What :func:`unkept` found, said as the listing checks of every writer say it."""
    short = sum(rel in listed for rel in bad)
    what = [f"lacks {len(bad) - short} object(s) written to it"] if len(bad) > short else []
    what += [f"shows {short} object(s) at another size than written"] if short else []
    return (
        f"the store's listing {' and '.join(what)} (e.g. {bad[0]}): the object store did not "
        "keep what it acknowledged; re-run to write them again"
    )
