"""A typed, tolerant view of ``curated.yaml``, for code that *reads* a record.

:class:`~curated.metadata.model.CuratedRecord` (generated from the LinkML schema) is
strict: it is what :func:`~curated.metadata.validate_record` checks a record against.
Readers (README, crosswalks, bags, the CLI) must also cope with records that are not
valid yet, and used to do so with ``(record.get("study") or {}).get("title")`` chains.
:func:`record_view` gives them the same names, typed, with every field optional:

- a scalar that is missing or of the wrong kind is ``None`` (a number where text is
  expected is kept as its text; ``"12"`` where a number is expected is read as 12);
- a nested object is never ``None``: a missing or malformed one (``study: 5``) is an
  empty object whose fields are ``None``, so ``view.study.title`` always works;
- a list is a tuple, empty when missing or not a list; items of the wrong kind are
  left out; a single text where a list of texts is expected (``keywords: EM``) is a
  one-item tuple;
- unknown keys are ignored; enumerations are their text; nothing here raises.

What is wrong with a record is :func:`~curated.metadata.validate_record`'s to say;
the view only promises that reading never crashes. It is read-only (frozen): edits
go through :func:`~curated.metadata.set_field`.

>>> view = record_view({"study": {"title": "Mouse cortex", "authors": [{"family_name": "Ada"}, 7]}})
>>> view.study.title, [a.family_name for a in view.study.authors], view.dataset.name
('Mouse cortex', ['Ada'], None)
>>> record_view({"study": 5}).study.title is None
True
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

__all__ = ["RecordView", "record_view", "view_of"]


@dataclass(frozen=True)
class FibsemParameters:
    """``FibsemParameters``: FIB-SEM / vEM extension: the beam and milling parameters OME 2016-06 has no home for (after the vEM community's draft metadata columns)."""

    sem_accelerating_voltage_kv: float | None = None
    sem_beam_current_na: float | None = None
    fib_accelerating_voltage_kv: float | None = None
    fib_beam_current_na: float | None = None
    dwell_time_us: float | None = None
    milling_step_nm: float | None = None
    working_distance_mm: float | None = None
    detector: tuple[str, ...] = ()
    sample_preparation_type: str | None = None
    contrast_inverted: bool | None = None


@dataclass(frozen=True)
class Organisation:
    """Schema class ``Organisation``."""

    name: str | None = None
    ror: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Person:
    """Schema class ``Person``."""

    family_name: str | None = None
    given_name: str | None = None
    email: str | None = None
    orcid: str | None = None
    affiliation: Organisation = field(default_factory=Organisation)
    role: tuple[str, ...] = ()
    contact: bool | None = None


@dataclass(frozen=True)
class Grant:
    """Schema class ``Grant``."""

    funder: str | None = None
    funder_ror: str | None = None
    award_id: str | None = None
    award_title: str | None = None


@dataclass(frozen=True)
class Publication:
    """Schema class ``Publication``."""

    title: str | None = None
    authors: str | None = None
    year: int | None = None
    doi: str | None = None


@dataclass(frozen=True)
class RelatedIdentifier:
    """Schema class ``RelatedIdentifier``."""

    identifier: str | None = None
    identifier_type: str | None = None
    relation_type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Study:
    """``Study``: REMBI Study module — the deposit as a whole."""

    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    license: str | None = None
    authors: tuple[Person, ...] = ()
    funding: tuple[Grant, ...] = ()
    publications: tuple[Publication, ...] = ()
    related_identifiers: tuple[RelatedIdentifier, ...] = ()
    acknowledgements: str | None = None
    doi: str | None = None
    publisher: str | None = None
    publication_year: int | None = None
    release_date: date | None = None
    rembi_version: str | None = None


@dataclass(frozen=True)
class Dataset:
    """``Dataset``: REMBI Study Component (the BIA's Dataset) — one coherent set of images."""

    name: str | None = None
    description: str | None = None
    imaging_method_name: str | None = None


@dataclass(frozen=True)
class Taxon:
    """Schema class ``Taxon``."""

    scientific_name: str | None = None
    common_name: str | None = None
    ncbi_taxon_id: str | None = None


@dataclass(frozen=True)
class BioSample:
    """``BioSample``: REMBI Biosample — what the biological material is."""

    title: str | None = None
    organism: Taxon = field(default_factory=Taxon)
    biological_entity: str | None = None
    description: str | None = None
    intrinsic_variables: tuple[str, ...] = ()
    extrinsic_variables: tuple[str, ...] = ()
    experimental_variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Specimen:
    """``Specimen``: REMBI Specimen — how the biosample was prepared for imaging."""

    title: str | None = None
    sample_preparation: str | None = None
    signal_contrast_mechanism: str | None = None
    growth_protocol: str | None = None


@dataclass(frozen=True)
class ImageAcquisitionProtocol:
    """``ImageAcquisitionProtocol``: REMBI Image Acquisition — instrument and parameters."""

    title: str | None = None
    imaging_method_name: str | None = None
    fbbi_id: str | None = None
    imaging_instrument: str | None = None
    instrument_manufacturer: str | None = None
    instrument_model: str | None = None
    detector_description: str | None = None
    image_acquisition_parameters: str | None = None
    acquisition_date: datetime | None = None
    fibsem: FibsemParameters = field(default_factory=FibsemParameters)


@dataclass(frozen=True)
class ImageRepresentation:
    """``ImageRepresentation``: REMBI Image Data — one stored form of an image."""

    name: str | None = None
    image_format: str | None = None
    path: str | None = None
    dtype: str | None = None
    size_x: int | None = None
    size_y: int | None = None
    size_z: int | None = None
    size_c: int | None = None
    size_t: int | None = None
    voxel_size_x: float | None = None
    voxel_size_y: float | None = None
    voxel_size_z: float | None = None
    voxel_size_unit: str | None = None
    compression: str | None = None
    total_size_in_bytes: int | None = None
    processing: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class ImageCorrelation:
    """``ImageCorrelation``: REMBI Image Correlation — how images relate spatially/temporally."""

    spatial_temporal_alignment: str | None = None
    fiducials_used: str | None = None
    transformation_matrix: str | None = None
    related_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnnotationMethod:
    """``AnnotationMethod``: MIFA annotation metadata for one label image."""

    name: str | None = None
    annotation_overview: str | None = None
    annotation_type: tuple[str, ...] = ()
    annotation_method: str | None = None
    annotation_criteria: str | None = None
    annotation_coverage: str | None = None
    annotation_confidence_level: str | None = None
    ai_generated: bool | None = None
    model: str | None = None
    source_image: str | None = None


@dataclass(frozen=True)
class ImageAnalysis:
    """``ImageAnalysis``: REMBI Analysed Data."""

    analysis_overview: str | None = None
    result_type: str | None = None
    data_used: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class FieldSource:
    """``FieldSource``: Where one value in this record came from."""

    field: str | None = None
    source_kind: str | None = None
    source_path: str | None = None
    source_file: str | None = None
    source_value: str | None = None


@dataclass(frozen=True)
class RecordView:
    """``CuratedRecord``: Everything `curated` knows about one dataset (one workspace)."""

    schema_version: str | None = None
    study: Study = field(default_factory=Study)
    dataset: Dataset = field(default_factory=Dataset)
    biosamples: tuple[BioSample, ...] = ()
    specimens: tuple[Specimen, ...] = ()
    acquisition_protocols: tuple[ImageAcquisitionProtocol, ...] = ()
    images: tuple[ImageRepresentation, ...] = ()
    image_correlations: tuple[ImageCorrelation, ...] = ()
    annotations: tuple[AnnotationMethod, ...] = ()
    analyses: tuple[ImageAnalysis, ...] = ()
    sources: tuple[FieldSource, ...] = ()


V = TypeVar("V")


def record_view(record: Any) -> RecordView:
    """The typed view of ``record``: the parsed ``curated.yaml`` or a ``CuratedRecord``; never raises."""
    dump = getattr(record, "model_dump", None)
    if callable(dump):  # a validated CuratedRecord: read what it holds
        record = dump(mode="json", exclude_none=True)
    return view_of(RecordView, record)


def view_of(cls: type[V], data: Any) -> V:
    """``data`` read as the view class ``cls`` (one of this module's classes), tolerantly."""
    if not isinstance(data, Mapping):
        data = {}
    kwargs: dict[str, Any] = {}
    types: dict[str, Any] = _field_types(cls)  # type: ignore[arg-type]
    for name, kind in types.items():
        if name in data:
            value = _coerce(data[name], kind)
            if value is not None:
                kwargs[name] = value
    return cls(**kwargs)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``, or ``None`` when it cannot be read as one."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        (item_kind, _) = typing.get_args(kind)
        items: Sequence[Any]
        if isinstance(item_kind, type) and dataclasses.is_dataclass(item_kind):
            items = [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
        else:
            items = value if isinstance(value, list | tuple) else [value]
        coerced = (_coerce(v, item_kind) for v in items)
        return tuple(v for v in coerced if v is not None)
    if origin is not None:  # X | None
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return view_of(kind, value) if isinstance(value, Mapping) else kind()
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    return _SCALARS[kind](value)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum member
        return str(value.value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | date):
        return value.isoformat() if isinstance(value, date) else str(value)
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _number(value)
    return int(number) if number is not None and float(number).is_integer() else None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # kept as written (8, not 8.0), as the record's readers print it
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


_SCALARS: dict[Any, Any] = {
    str: _text,
    int: _integer,
    float: _number,
    bool: _flag,
    date: _day,
    datetime: _moment,
}
