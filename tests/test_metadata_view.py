"""The typed, tolerant view of curated.yaml: the schema's names, and reading never crashes."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from datetime import date, datetime

import pytest

from curated.errors import MetadataError
from curated.metadata import CuratedRecord, RecordView, record_view, to_datacite, view
from curated.metadata import model as strict
from curated.metadata.crosswalk import dataverse, dspace, figshare, invenio
from tests.document_workspaces import complete_record

VIEW_CLASSES = [
    c
    for c in vars(view).values()
    if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == view.__name__
]


@pytest.mark.parametrize("cls", VIEW_CLASSES, ids=lambda c: c.__name__)
def test_every_view_class_has_the_schema_s_names(cls):
    model = CuratedRecord if cls is RecordView else getattr(strict, cls.__name__)
    assert [f.name for f in dataclasses.fields(cls)] == list(model.model_fields)


def test_every_schema_class_has_a_view():
    names = {c.__name__ for c in VIEW_CLASSES} | {"CuratedRecord"}
    used = set()

    def walk(model):
        used.add(model.__name__)
        for f in model.model_fields.values():
            for arg in _types_in(f.annotation):
                if isinstance(arg, type) and issubclass(arg, strict.ConfiguredBaseModel):
                    walk(arg)

    walk(CuratedRecord)
    assert used <= names


def _types_in(annotation):
    import typing

    args = typing.get_args(annotation)
    return [annotation] if not args else [t for a in args for t in _types_in(a)]


def _plain(value):
    """A strict model's value as the view holds it (enums as text, lists as tuples)."""
    if isinstance(value, strict.ConfiguredBaseModel):
        # the view shows what is written: a schema default (rembi_version) is not filled in
        return {
            k: _plain(getattr(value, k)) if k in value.model_fields_set else None
            for k in type(value).model_fields
        }
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _viewed(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _viewed(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return tuple(_viewed(v) for v in value)
    return value


def _prune(strict_value, viewed):
    """Where the strict model has ``None`` for an object, the view has an empty one."""
    if isinstance(strict_value, dict):
        return {k: _prune(strict_value[k], viewed[k]) for k in strict_value}
    if isinstance(strict_value, tuple):
        return tuple(_prune(s, v) for s, v in zip(strict_value, viewed, strict=True))
    if strict_value is None and isinstance(viewed, dict):
        assert all(v in (None, ()) or isinstance(v, dict) for v in viewed.values())
        return None
    if strict_value is None and viewed == ():
        return None
    return viewed


def test_a_valid_record_reads_as_the_strict_model_reads_it():
    record = complete_record(non_ascii=True)
    model = _plain(CuratedRecord.model_validate(record))
    seen = _viewed(record_view(record))
    assert _prune(model, seen) == model


HOSTILE = [
    None,
    5,
    "curated.yaml",
    [1, 2],
    {"study": 5},
    {"study": [{"title": "t"}]},
    {"study": {"title": {"en": "t"}, "authors": "Ada", "keywords": 5, "funding": [None, 3]}},
    {"study": {"authors": [7, None, "x", {"family_name": ["a"], "affiliation": "EMBL"}]}},
    {"study": {"publication_year": "soon", "release_date": "2026-13-45", "doi": 10.1}},
    {"images": {"name": "not a list"}, "dataset": "FIB-SEM", "unknown": {"deep": [1]}},
    {"images": [{"size_x": "large", "voxel_size_x": "nan", "size_z": True, "dtype": 8}]},
    {"acquisition_protocols": [{"acquisition_date": "yesterday", "fibsem": [1]}]},
    {"biosamples": [{"organism": "mouse"}], "sources": "ome"},
    {"images": [{"size_x": float("inf")}] * 10_000},
]


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_malformed_fields_never_crash_a_reader(data):
    v = record_view(data)
    # every nested object exists, every list is a tuple of views
    assert v.study.title is None or isinstance(v.study.title, str)
    assert all(isinstance(a, view.Person) for a in v.study.authors)
    assert v.dataset.name is None or isinstance(v.dataset.name, str)
    for img in v.images:
        assert img.size_x is None or isinstance(img.size_x, int)
        assert img.voxel_size_x is None or img.voxel_size_x == img.voxel_size_x  # no NaN
    for proto in v.acquisition_protocols:
        assert proto.fibsem.dwell_time_us is None
    assert v.biosamples == () or v.biosamples[0].organism.scientific_name is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.study = None  # type: ignore[misc]


def test_values_of_the_wrong_kind_are_read_or_left_out():
    v = record_view(
        {
            "study": {
                "title": 2026,
                "keywords": "EM",
                "publication_year": "2026",
                "release_date": "2026-05-01",
                "authors": [7, {"family_name": "Doe", "role": "Editor", "contact": "yes"}],
            },
            "images": [{"size_x": "512", "size_y": 3.5, "voxel_size_x": 8, "dtype": "uint8"}],
            "acquisition_protocols": [{"acquisition_date": date(2024, 1, 2)}],
        }
    )
    assert v.study.title == "2026" and v.study.keywords == ("EM",)
    assert v.study.publication_year == 2026 and v.study.release_date == date(2026, 5, 1)
    (author,) = v.study.authors
    assert author.family_name == "Doe" and author.role == ("Editor",) and author.contact is None
    img = v.images[0]
    assert (img.size_x, img.size_y, img.voxel_size_x, img.dtype) == (512, None, 8, "uint8")
    assert v.acquisition_protocols[0].acquisition_date == datetime(2024, 1, 2)


def test_datacite_reads_a_keyword_written_as_a_number():
    """Regression: ``keywords: 5`` made to_datacite raise TypeError ('int' object is not iterable)."""
    rec = complete_record()
    rec["study"]["keywords"] = 5
    assert {"subject": "5"} in to_datacite(rec)["subjects"]


def test_datacite_reads_a_single_role_written_without_a_list():
    """Regression: ``role: DataCurator`` was read letter by letter, so the role was lost."""
    rec = complete_record()
    rec["study"]["authors"][0]["role"] = "DataCurator"
    contributors = to_datacite(rec).get("contributors", [])
    assert any(c["contributorType"] == "DataCurator" for c in contributors)


CROSSWALKS = {
    "datacite": lambda r: to_datacite(r, strict=False),
    "invenio": lambda r: invenio.to_invenio(r, today="2026-06-01"),
    "invenio-missing": invenio.missing_required,
    "dataverse": dataverse.to_dataverse,
    "dataverse-missing": dataverse.missing_required,
    "dspace": lambda r: dspace.to_dspace_patch(r, today="2026-06-01"),
    "dspace-missing": dspace.missing_required,
    "figshare": figshare.to_figshare,
    "figshare-categories": lambda r: figshare.pick_categories(r, [{"id": 1, "title": "x"}]),
    "figshare-missing": figshare.missing_required,
}


@pytest.mark.parametrize("data", [d for d in HOSTILE if isinstance(d, dict)], ids=str)
@pytest.mark.parametrize("crosswalk", sorted(CROSSWALKS))
def test_every_crosswalk_reads_a_malformed_record_without_crashing(crosswalk, data):
    """Regression: ``study: 5`` raised AttributeError ('int' object has no attribute 'get').

    A value that cannot be used may still be refused, with a clear MetadataError.
    """
    with contextlib.suppress(MetadataError):
        CROSSWALKS[crosswalk](data)


def test_a_malformed_record_is_reported_as_missing_not_crashed_on():
    assert invenio.missing_required({"study": 5}) == [
        "study.title (at least 3 characters)",
        "study.authors[].family_name",
    ]
    assert dataverse.missing_required({"study": {"authors": ["Ada"], "title": "t"}})[0] == (
        "study.authors"
    )


def test_a_validated_record_reads_like_its_mapping():
    record = complete_record()
    study = record_view(CuratedRecord.model_validate(record)).study
    assert study.rembi_version == "1.5"  # the model fills in the schema's default
    assert dataclasses.replace(study, rembi_version=None) == record_view(record).study
