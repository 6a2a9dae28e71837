"""Training DEN's weights on a user's labelled cohort (``den-train``), one stage per module.

``labelled`` (the cases CSV: label, group and split columns), ``cache`` (preprocessed slices on disk), ``split``
(groups into training, validation and test, never slices), ``model`` (DEN plus a softmax head), ``data`` (slices in
batches), ``loop`` (training with early stopping on validation), ``evaluation`` (patient-level metrics and
calibration), ``baseline`` (the train-only linear probe), ``verdict`` (intervals and tests on the test patients),
``classifier`` (trunk plus head, saved and reloaded), ``scoring`` (new cases into a table), ``report`` and ``card``
(outputs, model card), ``trainer`` (the pipeline). The commands are :mod:`DENExtractorLib.cli.train` and
:mod:`DENExtractorLib.cli.score`; the record that links trained weights to extraction's provenance is read in
:mod:`DENExtractorLib.network.trained_record`.

Example::

    from DENExtractorLib.training import TrainingConfig, train
    result = train("labels.csv", "grade", "model", TrainingConfig(epochs=20, seed=1))
    result.paths["weights"]        # model/den_trained.weights.h5, for den-extract --weights
    result.record["verdict"]["text"]  # better than chance / the baseline on the test patients, or why not

TensorFlow is imported only when the network is built. Importing this package loads only ``config``; ``train``
and ``TrainingResult`` load the pipeline on first use.
"""

from typing import Any

from .config import TRAIN_LAYERS, TrainingConfig

_PIPELINE = ("TrainingResult", "train")


def __getattr__(name: str) -> Any:
    """Load ``train`` and ``TrainingResult`` from :mod:`.trainer` when first asked for."""
    if name in _PIPELINE:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["TRAIN_LAYERS", "TrainingConfig", "TrainingResult", "train"]
