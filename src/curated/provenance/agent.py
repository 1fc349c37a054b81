"""Who acts: the curator every log entry names, asked once and kept in a user config file.

Resolution, first found wins:

1. ``CURATED_AGENT_NAME`` / ``CURATED_AGENT_ORCID`` (a shared machine, a CI job);
2. the ``agent`` section of the user's config file, written once by
   ``curated init DIR --title T --curator "Name" --orcid 0000-...``:
   ``$CURATED_CONFIG``, else ``$XDG_CONFIG_HOME/curated/config.yaml``, else
   ``~/.config/curated/config.yaml``;
3. nobody (``{"name": null, "orcid": null}``); ``curated init`` then says how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from curated._io import atomic_write_text
from curated.errors import InputError

NAME_ENV = "CURATED_AGENT_NAME"
ORCID_ENV = "CURATED_AGENT_ORCID"
CONFIG_ENV = "CURATED_CONFIG"


def config_path() -> Path:
    """The user's ``curated`` config file (it need not exist)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "curated" / "config.yaml"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def current_agent() -> dict[str, str | None]:
    """``{"name", "orcid"}`` of the curator acting now (see the module docstring)."""
    name, orcid = os.environ.get(NAME_ENV), os.environ.get(ORCID_ENV)
    if name or orcid:
        return {"name": name or None, "orcid": orcid or None}
    agent = _read_config(config_path()).get("agent")
    if isinstance(agent, dict):
        n, o = agent.get("name"), agent.get("orcid")
        return {"name": str(n) if n else None, "orcid": str(o) if o else None}
    return {"name": None, "orcid": None}


def save_agent(name: str, orcid: str | None = None) -> Path:
    """Remember the curator in the user's config file (other settings kept); return its path."""
    from curated.metadata.identifiers import check_orcid

    name = " ".join(str(name).split())
    if not name:
        raise InputError("the curator's name must not be empty", field="curator")
    if orcid:
        orcid = orcid.strip().removeprefix("https://orcid.org/")
        problem = check_orcid(orcid)
        if problem:
            raise InputError(f"{orcid!r}: {problem}", field="orcid")
    path = config_path()
    data = _read_config(path)
    data["agent"] = {"name": name, "orcid": orcid or None}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path
