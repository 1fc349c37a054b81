"""Regenerate the pydantic model and the packaged schema copy from ``schemas/curated.yaml``.

The LinkML schema is the source of truth; ``curated.metadata.model`` and
``curated/data/curated.yaml`` are generated from it and committed. Run after
every schema change::

    python -m curated.metadata.generate          # rewrite both files
    python -m curated.metadata.generate --check  # exit 1 when either has drifted

The generator options are fixed here (not on the command line) so that every
developer gets byte-identical output; a test regenerates in memory and fails on
any difference. Needs the full ``linkml`` package (the ``[dev]`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curated._io import atomic_write_text

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parents[1]
SCHEMA_REL = "schemas/curated.yaml"
"""The schema's path relative to the repository root, as recorded in the model's ``source_file``."""
REPO_SCHEMA = REPO_ROOT / SCHEMA_REL
PACKAGED_SCHEMA = PACKAGE_DIR / "data" / "curated.yaml"
MODEL_PATH = PACKAGE_DIR / "metadata" / "model.py"
SPDX_PATH = PACKAGE_DIR / "data" / "spdx_licenses.json"

GENERATOR_OPTIONS: dict[str, object] = {"extra_fields": "forbid"}
"""Fixed PydanticGenerator options (``gen-pydantic --extra-fields forbid``)."""


def generate_model(schema: str | Path = REPO_SCHEMA) -> str:
    """Return the source of ``curated.metadata.model`` generated from ``schema``.

    Parameters
    ----------
    schema
        The LinkML schema file; defaults to the repository's ``schemas/curated.yaml``.

    Returns
    -------
    str
        Python source, identical whatever the current directory is.
    """
    from linkml.generators.pydanticgen import PydanticGenerator
    from linkml_runtime.linkml_model import SchemaDefinition
    from linkml_runtime.loaders import yaml_loader

    definition = yaml_loader.load(str(schema), target_class=SchemaDefinition)
    # the model records where it came from; keep that independent of the caller's cwd
    definition.source_file = SCHEMA_REL
    return PydanticGenerator(definition, **GENERATOR_OPTIONS).serialize()


def drift(schema: str | Path = REPO_SCHEMA) -> list[str]:
    """Names of the generated files that differ from what ``schema`` generates (empty: none)."""
    schema = Path(schema)
    stale = []
    if MODEL_PATH.read_text(encoding="utf-8") != generate_model(schema):
        stale.append(str(MODEL_PATH))
    if not PACKAGED_SCHEMA.is_file() or PACKAGED_SCHEMA.read_bytes() != schema.read_bytes():
        stale.append(str(PACKAGED_SCHEMA))
    return stale


def write_generated(schema: str | Path = REPO_SCHEMA) -> list[Path]:
    """Rewrite the model and the packaged schema copy atomically; return the files written."""
    schema = Path(schema)
    atomic_write_text(MODEL_PATH, generate_model(schema))
    PACKAGED_SCHEMA.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(PACKAGED_SCHEMA, schema.read_text(encoding="utf-8"))
    return [MODEL_PATH, PACKAGED_SCHEMA]


def spdx_list_from_packaging() -> dict[str, object]:
    """The SPDX licence list as bundled by ``packaging`` (PyPA), in the form curated ships.

    Returns ``{"spdx_version", "source", "licenses": {id: deprecated}}``; ids keep the
    SPDX spelling. Used to refresh ``curated/data/spdx_licenses.json`` (``--spdx``).
    """
    from importlib.metadata import version

    from packaging.licenses import _spdx

    licenses = {entry["id"]: bool(entry["deprecated"]) for entry in _spdx.LICENSES.values()}
    return {
        "spdx_version": _spdx.VERSION,
        "source": f"packaging {version('packaging')} (packaging.licenses._spdx)",
        "licenses": dict(sorted(licenses.items(), key=lambda kv: kv[0].lower())),
    }


def write_spdx_list() -> Path:
    """Refresh the shipped SPDX licence list from the installed ``packaging``."""
    import json

    return atomic_write_text(SPDX_PATH, json.dumps(spdx_list_from_packaging(), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curated.metadata.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--schema", type=Path, default=REPO_SCHEMA, help="LinkML schema (default: %(default)s)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only report drift; exit 1 when a file is stale"
    )
    parser.add_argument(
        "--spdx", action="store_true", help="also refresh the SPDX licence list from `packaging`"
    )
    args = parser.parse_args(argv)
    if args.spdx and not args.check:
        print(f"wrote {write_spdx_list()}")
    if not args.schema.is_file():
        print(f"{args.schema}: schema not found (run from a source checkout)", file=sys.stderr)
        return 2
    if args.check:
        stale = drift(args.schema)
        for name in stale:
            print(
                f"{name}: out of date; run `python -m curated.metadata.generate`", file=sys.stderr
            )
        return 1 if stale else 0
    for written in write_generated(args.schema):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
