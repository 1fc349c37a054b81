"""The main job end to end on the built-in synthetic FIB-SEM sample.

:func:`run_demo` plays a curator's whole path through CURATE(D) on a fresh
folder::

    DEST/
      raw/          what a depositor sends: an OME-TIFF stack + ground-truth labels (never modified)
      workspace/    the curated workspace (curated.yaml, curation/, derived/, package/, README.md)
      repository/   a local `directory` repository the package is deposited into

Each stage is one call of the public API, recorded in the curator log; the
demo stops at the first stage that fails and reports every stage's outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import CuratedError, InputError
from curated.progress import ProgressReporter
from curated.results import Result

DEMO_TITLE = "Synthetic FIB-SEM volume of a HeLa-like cell: mitochondria and nuclear envelope"

DEMO_METADATA: list[tuple[str, Any]] = [
    (
        "study.description",
        (
            "A synthetic focused-ion-beam scanning electron microscopy (FIB-SEM) volume made by "
            "curated's sample generator, with ground-truth labels for mitochondria and the nucleus, "
            "used to demonstrate curation, segmentation with a human in the loop, and deposit."
        ),
    ),
    (
        "study.keywords",
        ["FIB-SEM", "volume electron microscopy", "mitochondria", "segmentation", "OME-Zarr"],
    ),
    ("study.license", "CC-BY-4.0"),
    ("study.publisher", "curated demo repository"),
    (
        "study.authors[0]",
        {
            "family_name": "Curator",
            "given_name": "Demo",
            "email": "demo.curator@example.org",
            "orcid": "0000-0002-1825-0097",
            "affiliation": {
                "name": "Example University",
                "ror": "https://ror.org/02mhbdp94",
                "country": "GB",
            },
            "role": ["ProjectLeader", "ContactPerson"],
            "contact": True,
        },
    ),
    ("study.funding[0]", {"funder": "Example Research Council", "award_id": "ERC-0000-DEMO"}),
    (
        "dataset",
        {
            "name": "synthetic-fibsem",
            "description": "One synthetic FIB-SEM volume with dense ground truth and sparse annotations.",
            "imaging_method_name": "FIB-SEM",
        },
    ),
    (
        "biosamples[0]",
        {
            "title": "HeLa-like cell (synthetic)",
            "organism": {
                "scientific_name": "Homo sapiens",
                "common_name": "human",
                "ncbi_taxon_id": "NCBITaxon:9606",
            },
            "biological_entity": "cultured cell",
            "description": "Simulated cell with mitochondria and a nucleus with nuclear pores.",
        },
    ),
    ("study.publication_year", 2026),
    (
        "acquisition_protocols[0]",
        {
            "title": "FIB-SEM acquisition (simulated)",
            "imaging_method_name": "focused ion beam scanning electron microscopy",
            "fbbi_id": "FBbi:00050000",
            "imaging_instrument": "none: simulated by curated's synthetic FIB-SEM generator",
            "instrument_manufacturer": "none (simulated)",
            "instrument_model": "curated sample generator",
            "image_acquisition_parameters": "Simulated EM contrast, blur, Poisson and Gaussian noise; isotropic 8 nm voxels.",
            "acquisition_date": "2026-01-01T00:00:00",
            "fibsem": {
                "sem_accelerating_voltage_kv": 1.5,
                "sem_beam_current_na": 0.8,
                "dwell_time_us": 3.0,
                "milling_step_nm": 8.0,
                "detector": ["InLens"],
                "sample_preparation_type": "HPF",
                "contrast_inverted": False,
            },
        },
    ),
    (
        "annotations[0]",
        {
            "name": "truth",
            "annotation_overview": "Dense ground truth: 1 mitochondria, 2 nucleus.",
            "annotation_type": ["segmentation_mask"],
            "annotation_method": "Made by curated's synthetic sample generator together with the image: exact by construction.",
            "annotation_coverage": "The whole volume.",
            "ai_generated": False,
        },
    ),
    (
        "images[0].processing",
        "No processing; the stack is the simulator's output, written losslessly as OME-TIFF.",
    ),
    (
        "specimens[0]",
        {
            "title": "resin-embedded cell (synthetic)",
            "sample_preparation": "Simulated high-pressure freezing, freeze substitution and resin embedding.",
            "signal_contrast_mechanism": "heavy-metal staining, backscattered electrons",
        },
    ),
]


@dataclass
class DemoStage:
    """One stage of the demo and how it went."""

    name: str
    step: str
    status: str = "pending"
    message: str = ""
    path: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time in the stage, all threads together
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoReport:
    """What :func:`run_demo` made, where, and the key figures."""

    dest: Path
    stages: list[DemoStage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status in ("ok", "notneeded") for s in self.stages)

    @property
    def workspace(self) -> Path:
        return self.dest / "workspace"


def _write_raw_sources(
    raw: Path,
    *,
    shape: tuple[int, int, int],
    voxel_size: tuple[float, float, float],
    shading: float,
    seed: int,
) -> dict[str, Path]:
    """What a lab hands over: an OME-TIFF stack with its voxel size, and ground-truth labels."""
    import tifffile

    from curated.segment import generate_fibsem

    sample = generate_fibsem(shape, voxel_size, shading=shading, seed=seed)
    raw.mkdir(parents=True, exist_ok=True)
    image_path = raw / "cell01_fibsem.ome.tif"
    truth_path = raw / "cell01_truth_labels.tif"
    z, y, x = voxel_size
    tifffile.imwrite(
        image_path,
        np.asarray(sample.image),
        bigtiff=True,
        photometric="minisblack",
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": x / 1000.0,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": y / 1000.0,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": z / 1000.0,
            "PhysicalSizeZUnit": "µm",
        },
    )
    tifffile.imwrite(truth_path, np.asarray(sample.truth), photometric="minisblack")
    (raw / "NOTES.txt").write_text(
        "Synthetic FIB-SEM stack (curated demo). truth labels: 1 mitochondria, 2 nucleus.\n",
        encoding="utf-8",
    )
    return {"image": image_path, "truth": truth_path}


DEMO_FOLDERS = frozenset(("raw", "workspace", "repository"))
"""What a demo writes into its DEST: all that ``--overwrite`` may replace."""


def run_demo(
    dest: str | Path,
    *,
    shape: tuple[int, int, int] | None = None,
    voxel_size: tuple[float, float, float] = (8.0, 8.0, 8.0),
    shading: float = 0.0,
    crops: int = 6,
    crop_size: int = 32,
    iterations: int | None = None,
    depth: int | None = None,
    base_features: int | None = None,
    local_contrast: float | None = None,
    eval_blocks: int = 6,
    eval_block_size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressReporter | None = None,
    on_stage: Callable[[DemoStage], None] | None = None,
) -> DemoReport:
    """Run the whole pipeline on the synthetic sample into ``dest``.

    Parameters
    ----------
    dest
        A new folder (refused if it exists and is not empty, unless ``overwrite``).
    shape
        Sample size (z, y, x); defaults to the sample generator's default.
    local_contrast
        σ (voxels) of the local contrast normalisation; ``None`` is the library's
        default (400 nm), which needs a volume several times 100 voxels wide for
        held-out blocks to fit beside the crops; a small demo passes a smaller one.
    iterations, depth, base_features
        Training length and U-Net size; ``None`` takes the library's defaults
        (:mod:`curated.segment.defaults`, the same as ``curated segment train``'s), whose
        measured quality and time are in ``benchmarks/RESULTS.md`` (sections hitl, quality).
    on_stage
        Called after each stage (the CLI prints a line per stage).

    Returns
    -------
    DemoReport
        Every stage with status, output and key figures; ``report.ok`` is false if one failed.
    """
    import shutil

    from curated.segment.sample import DEFAULT_SHAPE

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        if not overwrite:
            msg = "exists and is not empty; choose a new folder or pass --overwrite"
            raise InputError(msg, path=dest)
        other = sorted(p.name for p in dest.iterdir() if p.name not in DEMO_FOLDERS)
        if other or dest.is_symlink():
            msg = (
                f"is not an earlier demo's folder (it holds {', '.join(other[:3]) or 'a link'}); "
                "--overwrite replaces only a demo's raw/, workspace/ and repository/: choose a new folder"
            )
            raise InputError(msg, path=dest)
        shutil.rmtree(dest)
    demo = _Demo(
        dest=dest,
        shape=tuple(shape or DEFAULT_SHAPE),  # type: ignore[arg-type]
        voxel_size=voxel_size,
        shading=shading,
        crops=crops,
        crop_size=crop_size,
        iterations=iterations,
        depth=depth,
        base_features=base_features,
        local_contrast=local_contrast,
        eval_blocks=eval_blocks,
        eval_block_size=eval_block_size,
        seed=seed,
        progress=progress,
    )
    report = DemoReport(dest=dest)
    stages = demo.curation_stages() + demo.segmentation_stages() + demo.packaging_stages()
    for name, step_letter, fn, figs in stages:
        if not _run_stage(report, name, step_letter, fn, figs, on_stage):
            for rest_name, rest_step, _, _ in stages[len(report.stages) :]:
                report.stages.append(DemoStage(name=rest_name, step=rest_step, status="skipped"))
            break
    return report


_Stage = tuple[str, str, Callable[[], Any], Callable[[Any], dict[str, Any]] | None]
"""A demo stage: name, REMBI/CURATED step letter, what it runs, and the figures it reports."""


def _result_figures(r: Any) -> tuple[str, str, str | None, dict[str, Any]]:
    """Status, message, path and details of whatever a stage returned."""
    if isinstance(r, Result):
        return r.status, r.message, r.path, dict(r.details)
    if hasattr(r, "to_result"):
        rr = r.to_result()
        return rr.status, rr.message, rr.path, dict(rr.details)
    ok = getattr(r, "ok", True)
    path = (
        getattr(r, "path", None)
        or getattr(r, "receipt_path", None)
        or getattr(r, "record_url", None)
    )
    return ("ok" if ok else "error"), getattr(r, "message", "") or "", path, {}


def _run_stage(
    report: DemoReport,
    name: str,
    step: str,
    fn: Callable[[], Any],
    figures: Callable[[Any], dict[str, Any]] | None,
    on_stage: Callable[[DemoStage], None] | None,
) -> bool:
    """Run one stage, timed, into ``report``; true when it went well."""
    st = DemoStage(name=name, step=step)
    report.stages.append(st)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = fn()
    except CuratedError as exc:
        st.status, st.message = "error", str(exc)
    else:
        st.status, st.message, st.path, details = _result_figures(out)
        st.figures = figures(out) if figures else {}
        if st.status not in ("ok", "notneeded") and not st.message:
            st.message = str(details)[:200]
    st.seconds = time.perf_counter() - t0
    st.cpu_seconds = time.process_time() - c0
    if on_stage:
        on_stage(st)
    return st.status in ("ok", "notneeded")


@dataclass
class _Demo:
    """The demo's settings and where it writes; its stages in three groups."""

    dest: Path
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    shading: float
    crops: int
    crop_size: int
    iterations: int | None
    depth: int | None
    base_features: int | None
    local_contrast: float | None
    eval_blocks: int
    eval_block_size: int
    seed: int
    progress: ProgressReporter | None
    state: dict[str, Any] = field(default_factory=dict)
    """What earlier stages made for later ones: the workspace, the raw image and truth."""

    @property
    def raw(self) -> Path:
        return self.dest / "raw"

    @property
    def wsdir(self) -> Path:
        return self.dest / "workspace"

    @property
    def image(self) -> Path:
        return self.wsdir / "derived" / "cell01.ome.zarr"

    @property
    def model(self) -> Path:
        return self.wsdir / "derived" / "models" / "mito-v1"

    def train_kwargs(self) -> dict[str, Any]:
        """Training settings the caller chose; the rest are the library's defaults."""
        out: dict[str, Any] = {}
        for key, value in (
            ("depth", self.depth),
            ("base_features", self.base_features),
            ("iterations", self.iterations),
        ):
            if value is not None:
                out[key] = value
        if self.local_contrast is not None:
            out["preprocessing"] = {"local_contrast_sigma": float(self.local_contrast)}
        return out

    def make_sources(self) -> Result:
        paths = _write_raw_sources(
            self.raw,
            shape=self.shape,
            voxel_size=self.voxel_size,
            shading=self.shading,
            seed=self.seed,
        )
        self.state.update(paths)
        return Result(
            "sample", "ok", str(self.raw), f"synthetic OME-TIFF {self.shape} and truth labels"
        )

    def init(self) -> Result:
        from curated.metadata import init_workspace

        ws = init_workspace(self.wsdir, DEMO_TITLE)
        self.state["ws"] = ws
        return Result("init", "ok", str(ws.root), "workspace created")

    def augment(self) -> Result:
        from curated.metadata import set_field, validate_record

        for field_path, value in DEMO_METADATA:
            set_field(self.state["ws"], field_path, value)
        rep = validate_record(self.state["ws"].metadata_path)
        return Result(
            "augment",
            "ok" if rep.valid else "error",
            str(self.state["ws"].metadata_path),
            f"{len(DEMO_METADATA)} fields set; {len(rep.errors)} errors, {len(rep.warnings)} warnings",
            {"errors": [str(e) for e in rep.errors]},
        )

    def verify_log(self) -> Result:
        v = self.state["ws"].log.verify(files=True)
        return Result(
            "log-verify",
            "ok" if v.ok else "error",
            str(self.state["ws"].log.path),
            f"{v.entries} entries, chain intact" if v.ok else "; ".join(v.problems),
            {"entries": v.entries},
        )

    def curation_stages(self) -> list[_Stage]:
        """From the lab's files to an OME-Zarr image with its truth labels."""
        from curated import images
        from curated.curation import check
        from curated.curation.request import request
        from curated.metadata import import_ome
        from curated.segment.sample import TRUTH_PROPERTIES

        state, progress, image = self.state, self.progress, self.image
        return [
            ("make raw sources", "-", self.make_sources, None),
            ("init workspace", "D", self.init, None),
            (
                "check sources",
                "C",
                lambda: check(state["ws"], [self.raw], progress=progress),
                lambda r: {"files": len(r.files), "red flags": len(r.flags)},
            ),
            ("import OME header", "A", lambda: import_ome(state["ws"], state["image"]), None),
            ("augment metadata", "A", self.augment, None),
            (
                "request e-mail",
                "R",
                lambda: request(state["ws"]),
                lambda r: {"asks": len(r.details.get("asks", []))},
            ),
            (
                "convert to OME-Zarr",
                "T",
                lambda: images.convert_to_ome_zarr(
                    state["image"],
                    image,
                    workspace=state["ws"],
                    chunks=32,
                    shard=64,
                    progress=progress,
                ),
                lambda r: {"levels": len(r.details.get("levels") or [])},
            ),
            (
                "add truth labels",
                "T",
                # the simulator drew these labels with the image: origin "simulated", classes named
                lambda: images.add_labels(
                    image,
                    "truth",
                    state["truth"],
                    kind="truth",
                    origin="simulated",
                    properties=TRUTH_PROPERTIES,
                    workspace=state["ws"],
                ),
                None,
            ),
        ]

    def segmentation_stages(self) -> list[_Stage]:
        """Annotate, train, predict, evaluate honestly, export the model."""
        from curated import segment
        from curated.segment.evaluate import evaluate
        from curated.segment.export import export_bioimageio

        state, progress, image, model = self.state, self.progress, self.image, self.model
        model_pkg = self.wsdir / "derived" / "models" / "mito-v1.bioimageio.zip"
        train_kwargs = self.train_kwargs()
        return [
            (
                "annotate crops",
                "A",
                lambda: segment.annotate_from_truth(
                    image,
                    truth="truth",
                    crops=self.crops,
                    size=self.crop_size,
                    seed=self.seed,
                    name="annotations",
                    workspace=state["ws"],
                ),
                lambda r: (
                    {"annotated %": round(100 * float(r.details.get("fraction", 0.0)), 2)}
                    if "fraction" in r.details
                    else {}
                ),
            ),
            (
                "train U-Net",
                "T",
                lambda: segment.train(
                    image,
                    labels="annotations",
                    label_value=1,
                    out=model,
                    seed=self.seed,
                    workspace=state["ws"],
                    progress=progress,
                    **train_kwargs,
                ),
                None,
            ),
            (
                "predict",
                "T",
                lambda: segment.predict(
                    model, image, name="mito-pred", workspace=state["ws"], progress=progress
                ),
                None,
            ),
            # the truth covers the volume: score every voxel outside the training regions next to the blocks
            (
                "evaluate (whole volume + held-out blocks)",
                "E",
                lambda: evaluate(
                    image,
                    pred="mito-pred",
                    truth="truth",
                    label_value=1,
                    blocks=self.eval_blocks,
                    block_size=self.eval_block_size,
                    seed=self.seed,
                    exclude_training=model,
                    whole_volume=True,
                    workspace=state["ws"],
                ),
                _eval_figures,
            ),
            (
                "export model (bioimage.io)",
                "D",
                lambda: export_bioimageio(model, model_pkg, workspace=state["ws"], image=image),
                None,
            ),
        ]

    def packaging_stages(self) -> list[_Stage]:
        """Archive submissions, README, FAIR checklist, bag, deposit, and the log verified."""
        from curated.archive import export_bia, export_empiar
        from curated.deposit import deposit
        from curated.document import fair_checklist, write_readme
        from curated.package import make_bag, validate_bag

        state, wsdir = self.state, self.wsdir
        bag = wsdir / "package" / "cell01-bag"
        return [
            # archive submissions (issue 20): before the README, which links them
            (
                "export EMPIAR package",
                "D",
                lambda: export_empiar(state["ws"], wsdir / "package" / "empiar"),
                lambda r: {"image sets": len(r.details["image_sets"])},
            ),
            (
                "export BioImage Archive submission",
                "D",
                lambda: export_bia(state["ws"], wsdir / "package" / "bia"),
                lambda r: {"files listed": r.details["files"]},
            ),
            ("README", "D", lambda: write_readme(state["ws"]), None),
            (
                "FAIR checklist",
                "E",
                lambda: fair_checklist(state["ws"]),
                lambda r: dict(r.summary["by_status"]),
            ),
            ("bag", "D", lambda: make_bag(state["ws"], bag, progress=self.progress), None),
            ("validate bag", "D", lambda: validate_bag(bag), None),
            (
                "deposit (directory)",
                "D",
                lambda: deposit(
                    bag,
                    to="directory",
                    url=str(self.dest / "repository"),
                    publish=True,
                    workspace=state["ws"],
                ),
                None,
            ),
            ("verify curator log", "D", self.verify_log, None),
        ]


def _eval_figures(rep: Any) -> dict[str, Any]:
    """Whole-volume scores first (the ones to quote), then the held-out blocks' for comparison."""
    out: dict[str, Any] = {}
    if getattr(rep, "label_name", None):
        out["class"] = rep.label_name
    whole = getattr(rep, "whole", None)
    if whole is not None:
        wov = whole.overall
        wraw = wov["raw"]
        out.update(
            {
                f"whole-volume {k}": round(float(wraw[k]), 3)
                for k in ("dice", "precision", "recall")
                if wraw.get(k) is not None
            }
        )
        if wov["ci95"].get("dice"):
            out["whole-volume dice 95% CI"] = [round(float(v), 3) for v in wov["ci95"]["dice"]]
    raw = rep.overall.get("raw", {}) if hasattr(rep, "overall") else {}
    out.update(
        {
            f"blocks {k}": round(float(raw[k]), 3)
            for k in ("dice", "precision", "recall")
            if raw.get(k) is not None
        }
    )
    ci = (getattr(rep, "ci95", None) or {}).get("dice")
    if ci:
        out["blocks dice 95% CI"] = [round(float(v), 3) for v in ci]
    if getattr(rep, "warnings", None):
        out["warnings"] = len(rep.warnings)
    picture = (getattr(rep, "files", None) or {}).get("whole_png")
    if picture:
        out["picture"] = picture  # where the errors are: look before quoting the score
    return out
