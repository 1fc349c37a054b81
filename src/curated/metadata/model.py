from __future__ import annotations

import re
import sys
from datetime import (
    date,
    datetime,
    time
)
from decimal import Decimal
from enum import Enum
from typing import (
    Any,
    ClassVar,
    Literal,
    Optional,
    Union
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer
)


metamodel_version = "1.11.0"
version = "1.0.0"


class ConfiguredBaseModel(BaseModel):
    model_config = ConfigDict(
        serialize_by_alias = True,
        validate_by_name = True,
        validate_assignment = True,
        validate_default = True,
        extra = "forbid",
        arbitrary_types_allowed = True,
        use_enum_values = True,
        strict = False,
    )





class LinkMLMeta(RootModel):
    root: dict[str, Any] = {}
    model_config = ConfigDict(frozen=True)

    def __getattr__(self, key:str):
        return getattr(self.root, key)

    def __getitem__(self, key:str):
        return self.root[key]

    def __setitem__(self, key:str, value):
        self.root[key] = value

    def __contains__(self, key:str) -> bool:
        return key in self.root


linkml_meta = LinkMLMeta({'default_prefix': 'curated',
     'default_range': 'string',
     'description': 'The single source of truth for the metadata `curated` keeps '
                    'about one dataset. Modules follow REMBI (Sarkans et al. '
                    "2021); class names follow the BioImage Archive's shared data "
                    'models where they exist (Study, Dataset, BioSample, Specimen, '
                    'ImageAcquisitionProtocol, ImageRepresentation, '
                    'AnnotationMethod) so that export to the BIA is a rename. '
                    'Annotations follow MIFA. A FIB-SEM / vEM extension carries '
                    'the beam and milling parameters OME lacks. Slots marked '
                    '`required: true` must be present for a record to be valid; '
                    'slots marked `recommended: true` are graded warnings (level '
                    "`warning`, or the level named by the slot's `warning_level` "
                    'annotation, e.g. `alert`).',
     'id': 'https://w3id.org/curated/schema',
     'imports': ['linkml:types'],
     'license': 'MIT',
     'name': 'curated',
     'prefixes': {'bia': {'prefix_prefix': 'bia',
                          'prefix_reference': 'http://bia/'},
                  'curated': {'prefix_prefix': 'curated',
                              'prefix_reference': 'https://w3id.org/curated/schema/'},
                  'dcterms': {'prefix_prefix': 'dcterms',
                              'prefix_reference': 'http://purl.org/dc/terms/'},
                  'linkml': {'prefix_prefix': 'linkml',
                             'prefix_reference': 'https://w3id.org/linkml/'},
                  'obo': {'prefix_prefix': 'obo',
                          'prefix_reference': 'http://purl.obolibrary.org/obo/'},
                  'pav': {'prefix_prefix': 'pav',
                          'prefix_reference': 'http://purl.org/pav/'},
                  'schema': {'prefix_prefix': 'schema',
                             'prefix_reference': 'http://schema.org/'}},
     'source_file': 'schemas/curated.yaml',
     'title': 'curated — REMBI-aligned metadata for volume EM datasets'} )

class PersonRole(str, Enum):
    ContactPerson = "ContactPerson"
    DataCollector = "DataCollector"
    DataCurator = "DataCurator"
    DataManager = "DataManager"
    ProjectLeader = "ProjectLeader"
    Researcher = "Researcher"
    Supervisor = "Supervisor"
    Other = "Other"


class RelatedIdentifierType(str, Enum):
    DOI = "DOI"
    URL = "URL"
    ARK = "ARK"
    Handle = "Handle"
    PMID = "PMID"
    arXiv = "arXiv"
    URN = "URN"


class RelationType(str, Enum):
    IsCitedBy = "IsCitedBy"
    Cites = "Cites"
    IsSupplementTo = "IsSupplementTo"
    IsSupplementedBy = "IsSupplementedBy"
    IsDescribedBy = "IsDescribedBy"
    Describes = "Describes"
    IsDerivedFrom = "IsDerivedFrom"
    IsSourceOf = "IsSourceOf"
    References = "References"
    IsReferencedBy = "IsReferencedBy"
    IsPartOf = "IsPartOf"
    HasPart = "HasPart"
    IsNewVersionOf = "IsNewVersionOf"
    IsPreviousVersionOf = "IsPreviousVersionOf"
    IsDocumentedBy = "IsDocumentedBy"
    Documents = "Documents"


class FibsemDetector(str, Enum):
    SE = "SE"
    """
    Secondary electrons (Everhart-Thornley).
    """
    BSE = "BSE"
    """
    Backscattered electrons.
    """
    InLens = "InLens"
    """
    In-lens secondary electron detector.
    """
    EsB = "EsB"
    """
    Energy-selective backscatter (in-column).
    """
    Other = "Other"


class VemSamplePreparation(str, Enum):
    HPF = "HPF"
    """
    High-pressure freezing and freeze substitution.
    """
    conventional = "conventional"
    """
    Chemical fixation and room-temperature embedding.
    """
    cryo = "cryo"
    """
    Vitreous, imaged frozen (cryo-FIB-SEM).
    """
    other = "other"


class PixelType(str, Enum):
    uint8 = "uint8"
    uint16 = "uint16"
    uint32 = "uint32"
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    float32 = "float32"
    float64 = "float64"


class LengthUnit(str, Enum):
    """
    UDUNITS-2 length unit names (as OME-Zarr requires).
    """
    angstrom = "angstrom"
    nanometer = "nanometer"
    micrometer = "micrometer"
    millimeter = "millimeter"
    centimeter = "centimeter"
    meter = "meter"


class ImageRole(str, Enum):
    raw = "raw"
    derived = "derived"
    label = "label"


class AnnotationType(str, Enum):
    """
    MIFA annotation types.
    """
    class_labels = "class_labels"
    bounding_boxes = "bounding_boxes"
    counts = "counts"
    derived_annotations = "derived_annotations"
    geometrical_annotations = "geometrical_annotations"
    graphs = "graphs"
    point_annotations = "point_annotations"
    segmentation_mask = "segmentation_mask"
    tracks = "tracks"
    weak_annotations = "weak_annotations"
    other = "other"


class SourceKind(str, Enum):
    ome_xml = "ome_xml"
    tiff_tag = "tiff_tag"
    imagej = "imagej"
    submitter = "submitter"
    curated_inference = "curated_inference"
    default = "default"
    file_header = "file_header"
    """
    Read from an image file's own metadata: HDF5, Zarr or N5 array attributes, the MRC header, OME-Zarr multiscales.
    """



class CuratedRecord(ConfiguredBaseModel):
    """
    Everything `curated` knows about one dataset (one workspace).
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema', 'tree_root': True})

    schema_version: str = Field(default=..., description="""Version of this schema the record follows.""", json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord']} })
    study: Study = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord']} })
    dataset: Optional[Dataset] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord'], 'recommended': True} })
    biosamples: Optional[list[BioSample]] = Field(default=None, json_schema_extra = { "linkml_meta": {'annotations': {'warning_level': {'tag': 'warning_level', 'value': 'alert'}},
         'domain_of': ['CuratedRecord'],
         'recommended': True} })
    specimens: Optional[list[Specimen]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord'], 'recommended': True} })
    acquisition_protocols: Optional[list[ImageAcquisitionProtocol]] = Field(default=None, json_schema_extra = { "linkml_meta": {'annotations': {'warning_level': {'tag': 'warning_level', 'value': 'alert'}},
         'domain_of': ['CuratedRecord'],
         'recommended': True} })
    images: Optional[list[ImageRepresentation]] = Field(default=None, json_schema_extra = { "linkml_meta": {'annotations': {'warning_level': {'tag': 'warning_level', 'value': 'alert'}},
         'domain_of': ['CuratedRecord'],
         'recommended': True} })
    image_correlations: Optional[list[ImageCorrelation]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord']} })
    annotations: Optional[list[AnnotationMethod]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord']} })
    analyses: Optional[list[ImageAnalysis]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord']} })
    sources: Optional[list[FieldSource]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['CuratedRecord']} })


class Study(ConfiguredBaseModel):
    """
    REMBI Study module — the deposit as a whole.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'class_uri': 'schema:Dataset',
         'from_schema': 'https://w3id.org/curated/schema'})

    title: str = Field(default=..., description="""Title of the study, as it should appear in a citation.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study',
                       'Publication',
                       'BioSample',
                       'Specimen',
                       'ImageAcquisitionProtocol'],
         'slot_uri': 'schema:name'} })
    description: str = Field(default=..., description="""What was studied and why (a paragraph; at least 25 characters recommended).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'RelatedIdentifier', 'Dataset', 'BioSample'],
         'slot_uri': 'schema:description'} })
    keywords: Optional[list[str]] = Field(default=None, description="""Free-text keywords.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study'], 'recommended': True, 'slot_uri': 'schema:keywords'} })
    license: Optional[str] = Field(default=None, description="""SPDX licence identifier (e.g. CC-BY-4.0, CC0-1.0).""", json_schema_extra = { "linkml_meta": {'annotations': {'warning_level': {'tag': 'warning_level', 'value': 'alert'}},
         'domain_of': ['Study'],
         'recommended': True,
         'slot_uri': 'schema:license'} })
    authors: list[Person] = Field(default=..., description="""People who created the data, in citation order.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'Publication'], 'slot_uri': 'schema:author'} })
    funding: Optional[list[Grant]] = Field(default=None, description="""Grants that funded the work.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study'], 'recommended': True, 'slot_uri': 'schema:funding'} })
    publications: Optional[list[Publication]] = Field(default=None, description="""Publications describing or using the data.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study']} })
    related_identifiers: Optional[list[RelatedIdentifier]] = Field(default=None, description="""Other persistent identifiers related to this dataset (DataCite relatedIdentifier).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study']} })
    acknowledgements: Optional[str] = Field(default=None, description="""Acknowledgements text.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study']} })
    doi: Optional[str] = Field(default=None, description="""DOI of the dataset once assigned (filled after deposit).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'Publication'], 'slot_uri': 'schema:identifier'} })
    publisher: Optional[str] = Field(default=None, description="""Repository or institution that publishes the dataset (DataCite publisher).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study'], 'recommended': True, 'slot_uri': 'schema:publisher'} })
    publication_year: Optional[int] = Field(default=None, description="""Year the dataset is or will be published.""", ge=1900, le=2200, json_schema_extra = { "linkml_meta": {'domain_of': ['Study']} })
    release_date: Optional[date] = Field(default=None, description="""Date the data may be made public (embargo end), if not at once.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study']} })
    rembi_version: Optional[str] = Field(default="1.5", description="""REMBI version the record follows.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study'], 'ifabsent': 'string(1.5)'} })

    @field_validator('doi')
    def pattern_doi(cls, v):
        pattern=re.compile(r"^(https://doi\.org/)?10\.\d{4,9}/\S+$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid doi format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid doi format: {v}"
            raise ValueError(err_msg)
        return v


class Person(ConfiguredBaseModel):
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'class_uri': 'schema:Person', 'from_schema': 'https://w3id.org/curated/schema'})

    family_name: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Person'], 'slot_uri': 'schema:familyName'} })
    given_name: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Person'], 'recommended': True, 'slot_uri': 'schema:givenName'} })
    email: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Person'], 'recommended': True, 'slot_uri': 'schema:email'} })
    orcid: Optional[str] = Field(default=None, description="""ORCID iD (16 digits with an ISO 7064 11,2 check character).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Person'], 'recommended': True, 'slot_uri': 'schema:identifier'} })
    affiliation: Optional[Organisation] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Person'], 'recommended': True, 'slot_uri': 'schema:affiliation'} })
    role: Optional[list[PersonRole]] = Field(default=None, description="""What the person did (DataCite contributor types).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Person', 'ImageRepresentation']} })
    contact: Optional[bool] = Field(default=None, description="""This person is the contact for the dataset.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Person']} })

    @field_validator('email')
    def pattern_email(cls, v):
        pattern=re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid email format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid email format: {v}"
            raise ValueError(err_msg)
        return v

    @field_validator('orcid')
    def pattern_orcid(cls, v):
        pattern=re.compile(r"^(https://orcid\.org/)?\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid orcid format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid orcid format: {v}"
            raise ValueError(err_msg)
        return v


class Organisation(ConfiguredBaseModel):
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'class_uri': 'schema:Organization',
         'from_schema': 'https://w3id.org/curated/schema'})

    name: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Organisation',
                       'Dataset',
                       'ImageRepresentation',
                       'AnnotationMethod'],
         'slot_uri': 'schema:name'} })
    ror: Optional[str] = Field(default=None, description="""ROR identifier of the organisation.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Organisation'], 'recommended': True} })
    country: Optional[str] = Field(default=None, description="""Country (ISO 3166-1 alpha-2).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Organisation']} })

    @field_validator('ror')
    def pattern_ror(cls, v):
        pattern=re.compile(r"^(https://ror\.org/)?0[a-hj-km-np-tv-z0-9]{6}[0-9]{2}$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid ror format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid ror format: {v}"
            raise ValueError(err_msg)
        return v


class Grant(ConfiguredBaseModel):
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'class_uri': 'schema:Grant', 'from_schema': 'https://w3id.org/curated/schema'})

    funder: str = Field(default=..., description="""Name of the funding organisation.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Grant']} })
    funder_ror: Optional[str] = Field(default=None, description="""ROR identifier of the funder.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Grant']} })
    award_id: str = Field(default=..., description="""The funder's identifier of the award.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Grant']} })
    award_title: Optional[str] = Field(default=None, description="""Title of the award.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Grant']} })

    @field_validator('funder_ror')
    def pattern_funder_ror(cls, v):
        pattern=re.compile(r"^(https://ror\.org/)?0[a-hj-km-np-tv-z0-9]{6}[0-9]{2}$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid funder_ror format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid funder_ror format: {v}"
            raise ValueError(err_msg)
        return v


class Publication(ConfiguredBaseModel):
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'class_uri': 'schema:ScholarlyArticle',
         'from_schema': 'https://w3id.org/curated/schema'})

    title: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Study',
                       'Publication',
                       'BioSample',
                       'Specimen',
                       'ImageAcquisitionProtocol']} })
    authors: Optional[str] = Field(default=None, description="""Author list as printed.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'Publication']} })
    year: Optional[int] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Publication']} })
    doi: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'Publication'], 'recommended': True} })

    @field_validator('doi')
    def pattern_doi(cls, v):
        pattern=re.compile(r"^(https://doi\.org/)?10\.\d{4,9}/\S+$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid doi format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid doi format: {v}"
            raise ValueError(err_msg)
        return v


class RelatedIdentifier(ConfiguredBaseModel):
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    identifier: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['RelatedIdentifier']} })
    identifier_type: RelatedIdentifierType = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['RelatedIdentifier']} })
    relation_type: RelationType = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['RelatedIdentifier']} })
    description: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'RelatedIdentifier', 'Dataset', 'BioSample']} })


class Dataset(ConfiguredBaseModel):
    """
    REMBI Study Component (the BIA's Dataset) — one coherent set of images.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    name: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Organisation',
                       'Dataset',
                       'ImageRepresentation',
                       'AnnotationMethod']} })
    description: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'RelatedIdentifier', 'Dataset', 'BioSample']} })
    imaging_method_name: Optional[str] = Field(default=None, description="""Short name of the method used (e.g. FIB-SEM).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Dataset', 'ImageAcquisitionProtocol'], 'recommended': True} })


class BioSample(ConfiguredBaseModel):
    """
    REMBI Biosample — what the biological material is.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    title: str = Field(default=..., description="""Short name of the biosample.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Study',
                       'Publication',
                       'BioSample',
                       'Specimen',
                       'ImageAcquisitionProtocol']} })
    organism: Taxon = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['BioSample']} })
    biological_entity: str = Field(default=..., description="""What is imaged (e.g. HeLa cells, mouse cortex).""", json_schema_extra = { "linkml_meta": {'domain_of': ['BioSample']} })
    description: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Study', 'RelatedIdentifier', 'Dataset', 'BioSample'],
         'recommended': True} })
    intrinsic_variables: Optional[list[str]] = Field(default=None, description="""Intrinsic characteristics (e.g. genotype).""", json_schema_extra = { "linkml_meta": {'domain_of': ['BioSample']} })
    extrinsic_variables: Optional[list[str]] = Field(default=None, description="""External treatment (e.g. drug).""", json_schema_extra = { "linkml_meta": {'domain_of': ['BioSample']} })
    experimental_variables: Optional[list[str]] = Field(default=None, description="""What was varied on purpose.""", json_schema_extra = { "linkml_meta": {'domain_of': ['BioSample']} })


class Taxon(ConfiguredBaseModel):
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    scientific_name: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Taxon']} })
    common_name: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Taxon']} })
    ncbi_taxon_id: str = Field(default=..., description="""NCBI taxonomy id, e.g. NCBITaxon:9606.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Taxon']} })

    @field_validator('ncbi_taxon_id')
    def pattern_ncbi_taxon_id(cls, v):
        pattern=re.compile(r"^(NCBITaxon:)?[1-9][0-9]{0,7}$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid ncbi_taxon_id format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid ncbi_taxon_id format: {v}"
            raise ValueError(err_msg)
        return v


class Specimen(ConfiguredBaseModel):
    """
    REMBI Specimen — how the biosample was prepared for imaging.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    title: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Study',
                       'Publication',
                       'BioSample',
                       'Specimen',
                       'ImageAcquisitionProtocol']} })
    sample_preparation: str = Field(default=..., description="""Preparation protocol (fixation, staining, embedding...).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Specimen']} })
    signal_contrast_mechanism: Optional[str] = Field(default=None, description="""How contrast arises (e.g. heavy-metal staining, backscattered electrons).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Specimen'], 'recommended': True} })
    growth_protocol: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Specimen']} })


class ImageAcquisitionProtocol(ConfiguredBaseModel):
    """
    REMBI Image Acquisition — instrument and parameters.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    title: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['Study',
                       'Publication',
                       'BioSample',
                       'Specimen',
                       'ImageAcquisitionProtocol']} })
    imaging_method_name: str = Field(default=..., description="""Name of the imaging method (e.g. focused ion beam scanning electron microscopy).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Dataset', 'ImageAcquisitionProtocol']} })
    fbbi_id: str = Field(default=..., description="""Biological Imaging Methods Ontology (FBbi) term id of the imaging method; FIB-SEM is FBbi:00050000 (focussed ion beam scanning electron microscopy).""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol']} })
    imaging_instrument: Optional[str] = Field(default=None, description="""Instrument description (make and model).""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol'], 'recommended': True} })
    instrument_manufacturer: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol'], 'recommended': True} })
    instrument_model: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol'], 'recommended': True} })
    detector_description: Optional[str] = Field(default=None, description="""Detector(s) as the instrument reports them (manufacturer, model, type).""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol']} })
    image_acquisition_parameters: Optional[str] = Field(default=None, description="""Acquisition parameters not captured by structured fields.""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol'], 'recommended': True} })
    acquisition_date: Optional[datetime ] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol']} })
    fibsem: Optional[FibsemParameters] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAcquisitionProtocol'], 'recommended': True} })

    @field_validator('fbbi_id')
    def pattern_fbbi_id(cls, v):
        pattern=re.compile(r"^FBbi:\d{8}$")
        if isinstance(v, list):
            for element in v:
                if isinstance(element, str) and not pattern.match(element):
                    err_msg = f"Invalid fbbi_id format: {element}"
                    raise ValueError(err_msg)
        elif isinstance(v, str) and not pattern.match(v):
            err_msg = f"Invalid fbbi_id format: {v}"
            raise ValueError(err_msg)
        return v


class FibsemParameters(ConfiguredBaseModel):
    """
    FIB-SEM / vEM extension: the beam and milling parameters OME 2016-06 has no home for (after the vEM community's draft metadata columns).
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    sem_accelerating_voltage_kv: Optional[float] = Field(default=None, description="""SEM landing energy / accelerating voltage, kilovolts.""", ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'],
         'recommended': True,
         'unit': {'ucum_code': 'kV'}} })
    sem_beam_current_na: Optional[float] = Field(default=None, description="""SEM beam current, nanoamperes.""", ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'],
         'recommended': True,
         'unit': {'ucum_code': 'nA'}} })
    fib_accelerating_voltage_kv: Optional[float] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'], 'unit': {'ucum_code': 'kV'}} })
    fib_beam_current_na: Optional[float] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'], 'unit': {'ucum_code': 'nA'}} })
    dwell_time_us: Optional[float] = Field(default=None, description="""Pixel dwell time, microseconds.""", ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'],
         'recommended': True,
         'unit': {'ucum_code': 'us'}} })
    milling_step_nm: Optional[float] = Field(default=None, description="""Milling step (slice thickness), nanometres.""", ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'],
         'recommended': True,
         'unit': {'ucum_code': 'nm'}} })
    working_distance_mm: Optional[float] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters']} })
    detector: Optional[list[FibsemDetector]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'], 'recommended': True} })
    sample_preparation_type: Optional[VemSamplePreparation] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters'], 'recommended': True} })
    contrast_inverted: Optional[bool] = Field(default=None, description="""The stored image is contrast-inverted relative to the detector signal.""", json_schema_extra = { "linkml_meta": {'domain_of': ['FibsemParameters']} })


class ImageRepresentation(ConfiguredBaseModel):
    """
    REMBI Image Data — one stored form of an image.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    name: str = Field(default=..., description="""Short name (unique in the record).""", json_schema_extra = { "linkml_meta": {'domain_of': ['Organisation',
                       'Dataset',
                       'ImageRepresentation',
                       'AnnotationMethod']} })
    image_format: str = Field(default=..., description="""File format (e.g. OME-TIFF, OME-Zarr 0.5, TIFF stack).""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    path: Optional[str] = Field(default=None, description="""Path relative to the workspace, or the source path.""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation'], 'recommended': True} })
    dtype: PixelType = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    size_x: int = Field(default=..., ge=1, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    size_y: int = Field(default=..., ge=1, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    size_z: Optional[int] = Field(default=None, ge=1, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    size_c: Optional[int] = Field(default=None, ge=1, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    size_t: Optional[int] = Field(default=None, ge=1, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    voxel_size_x: Optional[float] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation'], 'recommended': True} })
    voxel_size_y: Optional[float] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation'], 'recommended': True} })
    voxel_size_z: Optional[float] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation'], 'recommended': True} })
    voxel_size_unit: Optional[LengthUnit] = Field(default=None, description="""UDUNITS-2 name of the unit of the voxel sizes.""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation'], 'recommended': True} })
    compression: Optional[str] = Field(default=None, description="""Compression codec, if any.""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    total_size_in_bytes: Optional[int] = Field(default=None, ge=0, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation']} })
    processing: Optional[str] = Field(default=None, description="""Processing applied (alignment, cropping, binning, denoising...).""", json_schema_extra = { "linkml_meta": {'domain_of': ['ImageRepresentation'], 'recommended': True} })
    role: Optional[ImageRole] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['Person', 'ImageRepresentation']} })


class ImageCorrelation(ConfiguredBaseModel):
    """
    REMBI Image Correlation — how images relate spatially/temporally.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    spatial_temporal_alignment: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['ImageCorrelation']} })
    fiducials_used: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['ImageCorrelation']} })
    transformation_matrix: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['ImageCorrelation']} })
    related_images: Optional[list[str]] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageCorrelation']} })


class AnnotationMethod(ConfiguredBaseModel):
    """
    MIFA annotation metadata for one label image.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    name: str = Field(default=..., description="""Name of the label image.""", json_schema_extra = { "linkml_meta": {'domain_of': ['Organisation',
                       'Dataset',
                       'ImageRepresentation',
                       'AnnotationMethod']} })
    annotation_overview: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod'], 'recommended': True} })
    annotation_type: list[AnnotationType] = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod']} })
    annotation_method: str = Field(default=..., description="""How the annotations were made (tool, manual, model).""", json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod']} })
    annotation_criteria: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod'], 'recommended': True} })
    annotation_coverage: Optional[str] = Field(default=None, description="""Which part of the data is annotated (e.g. 4 crops of 64³ voxels, 2% of the volume).""", json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod'], 'recommended': True} })
    annotation_confidence_level: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod'], 'recommended': True} })
    ai_generated: bool = Field(default=..., description="""The annotations were produced by a model (MIFA / white paper marking).""", json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod']} })
    model: Optional[str] = Field(default=None, description="""Identifier of the model that produced them, when AI-generated.""", json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod']} })
    source_image: Optional[str] = Field(default=None, description="""Name of the image the annotations belong to.""", json_schema_extra = { "linkml_meta": {'domain_of': ['AnnotationMethod']} })


class ImageAnalysis(ConfiguredBaseModel):
    """
    REMBI Analysed Data.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    analysis_overview: str = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAnalysis']} })
    result_type: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAnalysis']} })
    data_used: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAnalysis']} })
    method: Optional[str] = Field(default=None, json_schema_extra = { "linkml_meta": {'domain_of': ['ImageAnalysis']} })


class FieldSource(ConfiguredBaseModel):
    """
    Where one value in this record came from.
    """
    linkml_meta: ClassVar[LinkMLMeta] = LinkMLMeta({'from_schema': 'https://w3id.org/curated/schema'})

    field: str = Field(default=..., description="""Field path, e.g. images[0].voxel_size_x.""", json_schema_extra = { "linkml_meta": {'domain_of': ['FieldSource']} })
    source_kind: SourceKind = Field(default=..., json_schema_extra = { "linkml_meta": {'domain_of': ['FieldSource']} })
    source_path: Optional[str] = Field(default=None, description="""Location in the source, e.g. ome:Pixels@PhysicalSizeX.""", json_schema_extra = { "linkml_meta": {'domain_of': ['FieldSource']} })
    source_file: Optional[str] = Field(default=None, description="""File the value was read from.""", json_schema_extra = { "linkml_meta": {'domain_of': ['FieldSource']} })
    source_value: Optional[str] = Field(default=None, description="""The value as the source states it, with its original unit (e.g. 0.005 µm).""", json_schema_extra = { "linkml_meta": {'domain_of': ['FieldSource']} })


# Model rebuild
# see https://pydantic-docs.helpmanual.io/usage/models/#rebuilding-a-model
CuratedRecord.model_rebuild()
Study.model_rebuild()
Person.model_rebuild()
Organisation.model_rebuild()
Grant.model_rebuild()
Publication.model_rebuild()
RelatedIdentifier.model_rebuild()
Dataset.model_rebuild()
BioSample.model_rebuild()
Taxon.model_rebuild()
Specimen.model_rebuild()
ImageAcquisitionProtocol.model_rebuild()
FibsemParameters.model_rebuild()
ImageRepresentation.model_rebuild()
ImageCorrelation.model_rebuild()
AnnotationMethod.model_rebuild()
ImageAnalysis.model_rebuild()
FieldSource.model_rebuild()
