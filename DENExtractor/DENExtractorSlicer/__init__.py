"""DENExtractorSlicer: the 3D Slicer side of DEN Extractor (MRML nodes in; features, files and result nodes out).

It ships with the Slicer module (listed in ``DENExtractor/CMakeLists.txt``), not in the ``DENExtractorLib`` wheel,
and loads without TensorFlow, nibabel or any package Slicer does not bundle: those are needed, and installed with
consent (:mod:`.install`), only for the first extraction. One module per stage:

* :mod:`.checks` whether the inputs can be extracted (the one rule, for the run and the module's status line);
* :mod:`.nodes` MRML nodes to the core's volumes, the same arrays ``den-extract`` reads from the same file;
* :mod:`.results` feature tables, the Plots chart and the Viridis heatmap volume;
* :mod:`.views` the results layout, and the user's views given back;
* :mod:`.export` the chosen inputs, transforms hardened, to a private case folder (:mod:`.case_files`), in steps;
* :mod:`.worker` the worker process that runs the core on it (TensorFlow lives there, never in Slicer);
* :mod:`.background` the worker kept warm, and a run advanced by ``poll()`` from the module's timer;
* :mod:`.runs` a run from the module's choices (``start_extraction``), or run to its end (``process``);
* :mod:`.install` the Python requirements; :mod:`.sample` the synthetic sample segmentation.

Example (Slicer Python console)::

    from DENExtractorSlicer import process
    outcome = process(getNode("OTMultiClass"), output_folder="/tmp/den")
    outcome.result.features.shape    # (slices, 4096)
"""

from .background import BackgroundExtraction, ProcessOutcome
from .runs import process, start_extraction

__all__ = ["BackgroundExtraction", "ProcessOutcome", "process", "start_extraction"]
