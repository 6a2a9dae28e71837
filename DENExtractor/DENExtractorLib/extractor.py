"""The extractor: validated settings and the model they need, held together, then ``extract`` per case.

Like pyradiomics' ``RadiomicsFeatureExtractor``: settings are checked once when the extractor is made, the network is
built once on first use (so bad input is refused before TensorFlow loads), and every case goes through
:meth:`DENExtractor.extract`. :func:`extract` and :func:`extract_file` are one-line conveniences over it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from .errors import ExtractionCancelled
from .network.inference import CancelCheck, ProgressCallback, run_network
from .network.model import LoadedModel, load_model
from .outputs.provenance import build_provenance
from .preprocessing import SliceStack, preprocess
from .readers import load_image, load_segmentation
from .result import ExtractionResult, pooled_vector
from .settings import ExtractionSettings
from .volume import Volume, select_labels


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
            self._model = load_model(self.settings.weights)
        return self._model

    def extract_file(
        self,
        path: str | Path,
        image: str | Path | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> ExtractionResult:
        """Read a segmentation file (and, for image mode, its MRI) and return its DEN features.

        Both files are read and checked before the network is built. Raises :class:`DENError` for any bad input.
        """
        segmentation = load_segmentation(path)
        image_volume = load_image(image) if image is not None else None
        return self.extract(segmentation, image_volume, progress=progress, cancel=cancel)

    def extract(
        self,
        segmentation: Volume,
        image: Volume | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> ExtractionResult:
        """Return the DEN features of a validated segmentation volume (and optional image volume).

        ``progress(done, total)`` is called as slices are computed; when ``cancel()`` returns True the work stops
        with :class:`ExtractionCancelled` before anything is returned.
        """
        started = time.perf_counter()
        stack = prepare_stack(self.settings, segmentation, image)
        if cancel is not None and cancel():
            raise ExtractionCancelled(segmentation.source)
        features = run_network(self.model, stack, progress=progress, cancel=cancel, source=segmentation.source)
        provenance = build_provenance(segmentation, image, stack, self.model, time.perf_counter() - started)
        return ExtractionResult(features, stack.foreground_rows, pooled_vector(features, stack.foreground_rows), provenance)


def prepare_stack(settings: ExtractionSettings, segmentation: Volume, image: Volume | None = None) -> SliceStack:
    """The network inputs of a case as extraction computes them: labels kept, then mode and plane (and image).

    Training (``den-train``) calls this too, so a trained network sees exactly what extraction feeds it.
    """
    if settings.labels is not None:
        segmentation = select_labels(segmentation, settings.labels)
    stack = preprocess(segmentation, image=image, mode=settings.mode, plane=settings.effective_plane,
                       label_scale=settings.label_scale)
    stack.parameters["labels"] = "all" if settings.labels is None else list(settings.labels)
    return stack


def extract_file(
    path: str | Path,
    image: str | Path | None = None,
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
