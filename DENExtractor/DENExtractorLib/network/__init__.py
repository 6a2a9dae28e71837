"""The network layer: DEN's layer table (:mod:`.architecture`), its bundled reference weights (:mod:`.bundled`), a
user's weights files (:mod:`.weights_files`) and the record ``den-train`` writes beside them
(:mod:`.trained_record`), building the Keras model (:mod:`.model`), TensorFlow's runtime settings
(:mod:`.runtime`), the exact windowed forward pass (:mod:`.windowed`) and the numeric environment the
features depend on (:mod:`.environment`); running it over a slice stack is extraction's
(:mod:`DENExtractorLib.extraction.stack_features`). TensorFlow is imported only when a model is built.
"""

from .model import LoadedModel, build_model, load_model

__all__ = ["LoadedModel", "build_model", "load_model"]
