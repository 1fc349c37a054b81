"""The registry of deposit targets: one entry per ``--to`` value.

Each :class:`Target` says how to make its adapter (class and default options), where
its credential comes from, which crosswalk shapes the record for it, and which limits
profile the preflight checks by default. Nothing else in :mod:`curated.deposit` chooses
a repository by name: a new target is one more entry here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from curated.deposit.protocol import Repository
from curated.errors import InputError

DSPACE_USER_ENV = "DSPACE_USER"


def _dspace_options() -> dict[str, Any]:
    """The DSpace account (e-mail) comes from ``$DSPACE_USER`` unless given."""
    return {"user": os.environ.get(DSPACE_USER_ENV)}


def _dspace_sections(repo: Any) -> dict[str, Any]:
    return {"sections": getattr(repo, "sections", ("traditionalpageone", "traditionalpagetwo"))}


def _figshare_licences(repo: Any) -> dict[str, Any]:
    return {"licences": getattr(repo, "licences", None)}


@dataclass(frozen=True)
class Target:
    """One deposit target."""

    name: str
    """The ``--to`` value."""
    adapter: str
    """``module:Class`` of the adapter in :mod:`curated.deposit`."""
    token_env: str | None
    """Default environment variable of the credential; ``None``: the target needs none."""
    limits: str
    """Default :data:`curated.deposit.preflight.LIMITS` profile (the host may pick another)."""
    crosswalk: str | None = None
    """``module:function`` in :mod:`curated.metadata.crosswalk` shaping the record;
    ``None``: the record is deposited as it is."""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Default adapter options (overridden by the caller's)."""
    env_options: Callable[[], dict[str, Any]] | None = None
    """Options read from the environment when the adapter is made."""
    crosswalk_options: Callable[[Any], dict[str, Any]] | None = None
    """Options the crosswalk takes from the adapter (what it read from the target)."""
    local: bool = False
    """The URL is a folder, not a web address (no credential, no retries, no redaction)."""

    def adapter_class(self) -> Any:
        module, _, attr = self.adapter.partition(":")
        return getattr(importlib.import_module(f"curated.deposit.{module}"), attr)

    def make(
        self,
        url: str,
        *,
        token: str | None,
        token_env: str | None,
        collection: str | None,
        retry: Any = None,
        options: dict[str, Any] | None = None,
    ) -> Repository:
        """The adapter for ``url`` with the target's default options, then the caller's."""
        factory = self.adapter_class()
        if self.local:
            return factory(url, collection=collection)  # type: ignore[no-any-return]
        opts = {**self.options, **(self.env_options() if self.env_options else {})}
        opts.update(options or {})
        common = {"token": token, "token_env": token_env, "collection": collection, "retry": retry}
        return factory(url, **common, **opts)  # type: ignore[no-any-return]

    def metadata(self, record: dict[str, Any], repo: Any, *, today: str | None = None) -> Any:
        """The record in the target's shape."""
        if self.crosswalk is None:
            return record
        fn = self._crosswalk_attr(self.crosswalk.partition(":")[2])
        extra = self.crosswalk_options(repo) if self.crosswalk_options else {}
        return fn(record, today=today, **extra)

    def missing(self, record: dict[str, Any]) -> list[str]:
        """Record fields the target requires that are empty."""
        if self.crosswalk is None:
            return []
        return list(self._crosswalk_attr("missing_required")(record))

    def keeps_folders(self) -> bool:
        return bool(self.adapter_class().keeps_folders)

    def _crosswalk_attr(self, name: str) -> Any:
        module = (self.crosswalk or "").partition(":")[0]
        return getattr(importlib.import_module(f"curated.metadata.crosswalk.{module}"), name)


REGISTRY: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "invenio",
            "invenio:InvenioRepository",
            "INVENIO_TOKEN",
            "invenio",
            crosswalk="invenio:to_invenio",
        ),
        Target(
            "zenodo",
            "invenio:InvenioRepository",
            "ZENODO_TOKEN",
            "zenodo",
            crosswalk="invenio:to_invenio",
            options=MappingProxyType({"name": "Zenodo", "kind": "zenodo"}),
        ),
        Target(
            "dataverse",
            "dataverse:DataverseRepository",
            "DATAVERSE_TOKEN",
            "dataverse",
            crosswalk="dataverse:to_dataverse",
        ),
        Target(
            "dspace",
            "dspace:DSpaceRepository",
            "DSPACE_PASSWORD",
            "dspace",
            crosswalk="dspace:to_dspace_patch",
            env_options=_dspace_options,
            crosswalk_options=_dspace_sections,
        ),
        Target(
            "figshare",
            "figshare:FigshareRepository",
            "FIGSHARE_TOKEN",
            "figshare-institution",
            crosswalk="figshare:to_figshare",
            crosswalk_options=_figshare_licences,
        ),
        Target("directory", "directory:DirectoryRepository", None, "directory", local=True),
    )
}
"""Every deposit target, by ``--to`` value."""


def get_target(name: str) -> Target:
    """The registered target ``name``, or an InputError listing the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        msg = f"unknown deposit target {name!r}; choose one of {', '.join(REGISTRY)}"
        raise InputError(msg, field="to") from None
