"""DENExtractorLib: deep features of glioblastoma segmentations with DEN, the Deep Features NIfTI Network.

The Slicer-free core of the DENExtractor extension. TensorFlow is imported only when a network is built.

Example::

    import DENExtractorLib as den

    extractor = den.DENExtractor(mode="reference")         # settings checked once; model built on first use
    result = extractor.extract_file("pat0001/OTMultiClass.nii.gz")
    result.features      # (slices, 4096) float32, one row per slice
    result.pooled        # (8192,) mean and max over the slices holding tumour
    result.to_dataframe()  # the slices as a pandas DataFrame (with pandas installed)

Segmentations may be NIfTI, NRRD, Slicer ``.seg.nrrd`` or DICOM SEG files, images also DICOM series folders, and
both may be nibabel or SimpleITK images already in memory.
"""

import logging

from ._version import __version__
from .cohorts.table import cohort_dataframe
from .errors import DENError, ExtractionCancelled
from .extraction.extractor import DENExtractor, extract, extract_file
from .extraction.result import ExtractionResult
from .network.architecture import FEATURE_COUNT, INPUT_SIZE, PARAMETER_COUNT
from .network.bundled import MODEL_ID, REFERENCE_WEIGHTS_SHA256
from .network.model import build_model
from .outputs.files import output_paths, write_outputs
from .readers import load_case, load_image, load_segmentation
from .settings import MODES, PLANES, ExtractionSettings
from .volume import (
    Volume,
    distinct_label_values,
    image_from_array,
    segmentation_from_array,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())  # records reach the application's handlers only

__all__ = [
    "FEATURE_COUNT",
    "INPUT_SIZE",
    "MODEL_ID",
    "MODES",
    "PARAMETER_COUNT",
    "PLANES",
    "REFERENCE_WEIGHTS_SHA256",
    "DENError",
    "DENExtractor",
    "ExtractionCancelled",
    "ExtractionResult",
    "ExtractionSettings",
    "Volume",
    "__version__",
    "build_model",
    "cohort_dataframe",
    "distinct_label_values",
    "extract",
    "extract_file",
    "image_from_array",
    "load_case",
    "load_image",
    "load_segmentation",
    "output_paths",
    "segmentation_from_array",
    "write_outputs",
]
