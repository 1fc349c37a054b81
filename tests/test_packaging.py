"""What a plain ``pip install`` gets: declared dependencies match src/'s imports, and the lock."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "curated"

# Imports that run only with a development tool installed, and why a plain install is fine
# without them. Anything else src/ imports from outside the standard library must be a
# runtime dependency in pyproject.toml.
OPTIONAL = {
    "linkml": "metadata/generate.py regenerates the committed model (a development step)",
    "linkml_runtime": "the same generator",
    "packaging": "the same generator reads the SPDX list from packaging",
    "datacite": "validate_datacite raises a one-line MetadataError naming the package",
    "rocrate_validator": "RO-Crate checks skip roc-validator when it is not installed",
    "requests_cache": "only used to seed roc-validator's cache, when it is installed",
    "urllib3": "the same, together with requests_cache",
    "s3fs": "the s3 extra: only s3:// destinations and sources need it, and without it they "
    "stop with a one-line error naming `pip install 'curated[s3]'`",
    "aiobotocore": "the s3 extra (s3fs's HTTP layer): _s3session.py keeps it from following "
    "redirects, imported only where an s3:// store is used",
    "fsspec": "the s3 extra: objstore.guard_redirects sets fsspec's s3 defaults, and skips "
    "them when fsspec is absent",
    "bagit": "package/compat.py patches bagit-python for callers that read bags with it "
    "(the tests); curated itself never does, and bagit-profile brings it anyway",
}
# Runtime dependencies that other libraries load as plug-ins, so src/ never imports them.
PLUGINS = {
    "imagecodecs": "tifffile decodes LZW/zstd/JPEG-compressed TIFFs with it",
    "empiar-depositor": "export empiar reads EMPIAR's schema from its package data (importlib.resources)",
}
# Module names whose distribution is named differently and may be absent here.
MODULE_DIST = {"yaml": "pyyaml", "PIL": "pillow", "ruamel": "ruamel-yaml"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _imports() -> dict[str, list[str]]:
    """Top-level module -> files of src/ that import it (absolute imports only)."""
    found: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                found.setdefault(top, []).append(str(path.relative_to(SRC)))
    return found


def _third_party() -> dict[str, list[str]]:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    return {m: f for m, f in _imports().items() if m not in stdlib and m != "curated"}


def _dist_of(module: str) -> str:
    if module in MODULE_DIST:
        return MODULE_DIST[module]
    dists = metadata.packages_distributions().get(module)
    assert dists, f"no installed distribution provides {module!r}"
    return canonicalize_name(dists[0])


def test_every_runtime_import_is_a_declared_dependency():
    declared = {canonicalize_name(Requirement(r).name) for r in _project()["dependencies"]}
    missing = {
        m: files
        for m, files in _third_party().items()
        if m not in OPTIONAL and _dist_of(m) not in declared
    }
    assert not missing, f"imported at run time but not in [project.dependencies]: {missing}"


def test_every_declared_dependency_is_imported():
    imported = {_dist_of(m) for m in _third_party() if m not in OPTIONAL}
    declared = {canonicalize_name(Requirement(r).name) for r in _project()["dependencies"]}
    unused = declared - imported - set(PLUGINS)
    assert not unused, f"declared but never imported by src/: {sorted(unused)}"


def test_optional_imports_are_not_runtime_dependencies_or_are_documented():
    declared = {canonicalize_name(Requirement(r).name) for r in _project()["dependencies"]}
    for module in OPTIONAL:
        if module in _third_party():
            assert _dist_of(module) not in declared or module == "urllib3"


def test_lock_pins_every_dependency_within_the_declared_bounds():
    lock = ROOT / "constraints.txt"
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    project = _project()
    for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside {req.specifier}"
        )


def test_lock_excludes_pydantic_that_breaks_bioimageio_validation():
    # pydantic 2.14.4 makes bioimageio.spec reject every package (package_file_descr_serializer)
    pydantic = next(r for r in _project()["dependencies"] if r.startswith("pydantic"))
    assert not Requirement(pydantic).specifier.contains("2.14.4")


def test_package_is_marked_typed():
    assert (SRC / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["curated"]


@pytest.mark.parametrize("module", sorted(OPTIONAL))
def test_optional_import_has_a_reason(module):
    assert OPTIONAL[module]
