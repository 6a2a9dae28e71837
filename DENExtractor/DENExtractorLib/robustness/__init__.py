"""Robustness of DEN features to segmentation variability, and the tumour-volume confound (``den-robustness``),
one stage per module.

``perturbations`` (the seeded plan of perturbed segmentations and how each is made), ``perturbed_case`` (a case read
once, every perturbation extracted with one model: a cohort runner's case job), ``case_outputs`` (a case's pooled
vectors and their record), ``reliability`` (the ICC of every feature, with intervals), ``confound`` (each feature's
correlation with the tumour's size), ``figures`` (the two pictures), ``cohort_summary`` (the cohort's tables,
pictures and summary from the cases' outputs) and ``feature_filter`` (``den-train --min-icc``: robust features from
the training patients only). Needs SciPy: ``pip install -e '.[robustness]'`` from a checkout.

Example::

    from DENExtractorLib.readers import load_segmentation
    from DENExtractorLib.robustness import PerturbationPlan, perturb

    segmentation = load_segmentation("pat0001/OTMultiClass.nii.gz")
    for perturbation in PerturbationPlan(kinds=("dilate", "contour"), contours=2).perturbations():
        print(perturbation.name, perturb(segmentation, perturbation).data.astype(bool).sum())
"""

from .perturbations import KINDS, Perturbation, PerturbationPlan, perturb, rebuild_perturbation
from .reliability import ICC_FORMS, Reliability, intraclass_correlation

__all__ = [
    "ICC_FORMS",
    "KINDS",
    "Perturbation",
    "PerturbationPlan",
    "Reliability",
    "intraclass_correlation",
    "perturb",
    "rebuild_perturbation",
]
