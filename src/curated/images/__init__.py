"""Transform: very large TIFF stacks → OME-Zarr multiscale images and labels, out of core.

Public API::

    convert_to_ome_zarr(source, dest, ...)   TIFF / OME-TIFF / ImageJ / slice folder → OME-Zarr
    write_ome_zarr(array, dest, ...)         numpy / dask / zarr array → OME-Zarr
    open_image(path) -> OmeZarrImage         read a finished image (and its labels)
    read_ngff(path, tolerant=False)          the image's NGFF metadata, typed (the one reader)
    add_labels(image, name, labels, ...)     whole label volume → labels/<name>
    create_label_image / finalize_label_image   label volume written block by block
    validate_ome_zarr(path) -> list[str]     ome-zarr-models + yaozarrs + own checks
    measure_labels(image, name, ...)         per-object measurements of labels/<name> → Parquet
"""

from __future__ import annotations

from curated.images.convert import convert_to_ome_zarr, write_ome_zarr
from curated.images.labels import add_labels, create_label_image, finalize_label_image
from curated.images.measure import measure_labels
from curated.images.ngff import NgffMetadata, is_zarr_store, read_ngff
from curated.images.reader import OmeZarrImage, open_image
from curated.images.validate import validate_ome_zarr

__all__ = [
    "NgffMetadata",
    "OmeZarrImage",
    "add_labels",
    "convert_to_ome_zarr",
    "create_label_image",
    "finalize_label_image",
    "is_zarr_store",
    "measure_labels",
    "open_image",
    "read_ngff",
    "validate_ome_zarr",
    "write_ome_zarr",
]
