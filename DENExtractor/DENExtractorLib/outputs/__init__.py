"""The outputs layer: the feature files of one case (:mod:`.files`), their record (:mod:`.record`), the
heatmap picture (:mod:`.heatmap`), writes that never leave a half-written file (:mod:`.atomic`) and the output
folder checks (:mod:`.output_folder`).
"""

from .files import output_paths, write_outputs

__all__ = ["output_paths", "write_outputs"]
