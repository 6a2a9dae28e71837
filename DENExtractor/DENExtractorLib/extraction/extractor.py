"""The extractor: validated settings and the model they need, held together, then ``extract`` per case.

Like pyradiomics' ``RadiomicsFeatureExtractor``: settings are checked once when the extractor is made, the network is
built once on first use (so bad input is refused before TensorFlow loads), and every case goes through
:meth:`DENExtractor.extract`. :func:`extract` and :func:`extract_file` are one-line conveniences over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ExtractionCancelled
from ..network.model import LoadedModel, load_model
from ..readers import load_case
from ..settings import ExtractionSettings
from ..volume import Volume, select_labels
from .preprocessing import SliceStack, preprocess
from .provenance import build_provenance
from .result import ExtractionResult, pooled_vector
from .stack_features import CancelCheck, ProgressCallback, run_network

logger = logging.getLogger(__name__)


class DENExtractor:
    """Extract DEN features with one set of settings; the model is built on first use and kept.

    Example::

        extractor = DENExtractor(mode="oriented", plane="coronal")
        for path in paths:
            result = extractor.extract_file(path)
    """

    def __init__(self, settings: ExtractionSettings | None = None, **options) -> None:
        """Take an :class:`ExtractionSettings`, or its fields as keywords (``mode``, ``plane``, ``labels``, ``weights``)."""
        if settings is not None and options:
            raise TypeError("give either settings or keyword options, not both")
        self.settings = settings if settings is not None else ExtractionSettings(**options)
        self._model: LoadedModel | None = None

    @property
    def model(self) -> LoadedModel:
        """The network with these settings' weights, built (importing TensorFlow) the first time it is needed."""
        if self._model is None:
            started = time.perf_counter()
            self._model = load_model(self.settings.weights, identity=self.settings.identity)
            logger.info("model %s built in %.1f s (weights sha256 %s, %s)", self._model.model_id,
                        time.perf_counter() - started, self._model.weights_sha256, self._model.weights_source)
        return self._model

    def extract_file(
        self,
        path: str | Path | Any,
        image: str | Path | Any | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> ExtractionResult:
        """Read a segmentation file (and, for image mode, its MRI) and return its DEN features.

        Either may also be a nibabel or SimpleITK image already in memory. Both are read and checked before the
        network is built. Raises :class:`DENError` for any bad input.
        """
        segmentation, image_volume = load_case(path, image)
        return self.extract(segmentation, image_volume, progress=progress, cancel=cancel)

    def extract(
        self,
        segmentation: Volume,
        image: Volume | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
        labels: Sequence[int] | None = None,
    ) -> ExtractionResult:
        """Return the DEN features of a validated segmentation volume (and optional image volume).

        ``progress(done, total)`` is called as slices are computed; when ``cancel()`` returns True the work stops
        with :class:`ExtractionCancelled` before anything is returned. ``labels`` keeps those label values for this
        case instead of the settings' own (a cases CSV row's ``Label``); the model is the same.
        """
        started = time.perf_counter()
        settings = self.settings.with_labels(labels)
        stack = prepare_stack(settings, segmentation, image)
        if cancel is not None and cancel():
            raise ExtractionCancelled(segmentation.source)
        features = run_network(self.model, stack, progress=progress, cancel=cancel, source=segmentation.source)
        elapsed = time.perf_counter() - started
        provenance = build_provenance(segmentation, image, stack, self.model, elapsed, settings.provenance_record())
        logger.info("%s: %d slices (%d with tumour), %s mode, labels %s: %.2f s", segmentation.source, stack.row_count,
                    stack.foreground_rows.size, settings.mode, stack.parameters["labels"], elapsed)
        return ExtractionResult(features, stack.foreground_rows, pooled_vector(features, stack.foreground_rows), provenance)


def prepare_stack(settings: ExtractionSettings, segmentation: Volume, image: Volume | None = None) -> SliceStack:
    """The network inputs of a case as extraction computes them: labels kept, then mode and plane (and image).

    Training (``den-train``) calls this too, so a trained network sees exactly what extraction feeds it.
    """
    if settings.labels is not None:
        segmentation = select_labels(segmentation, settings.labels)
    stack = preprocess(segmentation, image=image, mode=settings.mode, plane=settings.effective_plane,
                       label_scale=settings.label_scale)
    stack.parameters["labels"] = settings.labels_record
    return stack


def extract_file(
    path: str | Path | Any,
    image: str | Path | Any | None = None,
    *,
    mode: str = "reference",
    plane: str | None = None,
    labels: Sequence[int] | None = None,
    weights: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> ExtractionResult:
    """One file with a new extractor: ``extract_file("pat0001/OTMultiClass.nii.gz").features`` is (240, 4096).

    Builds the network on each call; for many files make one :class:`DENExtractor` and call it per file.
    """
    extractor = DENExtractor(ExtractionSettings(mode, plane, _labels(labels), _path(weights)))
    return extractor.extract_file(path, image, progress=progress, cancel=cancel)


def extract(
    segmentation: Volume,
    image: Volume | None = None,
    *,
    mode: str = "reference",
    plane: str | None = None,
    labels: Sequence[int] | None = None,
    weights: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> ExtractionResult:
    """One validated volume with a new extractor (see :func:`extract_file`)."""
    extractor = DENExtractor(ExtractionSettings(mode, plane, _labels(labels), _path(weights)))
    return extractor.extract(segmentation, image, progress=progress, cancel=cancel)


def _labels(labels: Sequence[int] | None) -> tuple[int, ...] | None:
    """Labels as the settings type holds them."""
    return None if labels is None else tuple(labels)


def _path(weights: str | Path | None) -> Path | None:
    """A weights argument as a path."""
    return None if weights is None else Path(weights)
