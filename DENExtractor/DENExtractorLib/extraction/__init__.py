"""Extraction: what turns a volume into features, one stage above the readers, the network and the settings.

:mod:`.preprocessing` builds the stack of network inputs, :mod:`.stack_features` runs the network over it,
:mod:`.result` holds the features, :mod:`.provenance` records how they were computed, and :mod:`.extractor` ties
the four together per case. Nothing here reads from the layers above (outputs, cohorts, training, the CLI).
"""
