"""The verdict on the test patients: permutation tests against chance, a paired comparison with the baseline and
bootstrap intervals, every one with the patient as its unit, so that a claim is printed only when the numbers support
it.

The score judged is the ROC AUC (one-vs-rest macro average for more than two classes): it ranks, so a network that
orders patients well but is badly calibrated is not mistaken for one at chance, and chance is 0.5 whatever the class
balance. Who is exchanged with whom is :class:`~.patient_design.PatientDesign`'s: labels permuted between patients
(a patient's cases keep their label together) or shuffled within a patient whose labels vary.

- "better than chance": the permutation p-value (exact when the labellings are at most 100,000, else Monte Carlo
  beyond sampling doubt) is below :data:`ALPHA`, and the bootstrap interval of the AUC, where one can be computed,
  lies above 0.5.
- "better than the baseline": the paired sign-flip p-value (network and baseline predictions swapped per patient)
  is below :data:`ALPHA` and the interval of the AUC difference, where one can be computed, lies above 0 ("the
  baseline is better" the other way round).
- "too few patients to tell": the patients cannot support p < :data:`ALPHA` whatever the predictions (counted by
  patients; for the paired comparison, 2 / 2^patients), for the network, the baseline and the comparison alike.
- "not claimed": a "better" result when the cases are not known to be separate patients (no ``group`` column and no
  ``--one-case-per-patient``).
- otherwise "no evidence".
"""

from __future__ import annotations

from math import sqrt

import numpy as np
from scipy.stats import norm, t

from .batch_metrics import auc_differences_of_swaps, auc_of_labellings, weighted_metrics
from .patient_design import EXACT_LIMIT, PatientDesign
from .permutation import permutation_p

ALPHA = 0.05
RESAMPLES = 4000
"""Bootstrap resamples of the test patients."""

CONFIDENCE = 0.95
TOO_FEW = "too few patients to tell"
NOT_CLAIMED = "not claimed: cases not known to be separate patients"
UNKNOWN_PATIENTS = ("Each test case was taken as its own patient (the CSV has no 'group' column): no 'better' claim "
                    "is made unless a 'group' column names the patients or --one-case-per-patient states that every "
                    "case is a different patient.")
METRICS = ("roc_auc", "balanced_accuracy", "brier")


def judge(truth: np.ndarray, network: np.ndarray, baseline: np.ndarray, groups: list[str], baseline_name: str,
          seed: int, *, patients_known: bool, others: dict[str, np.ndarray] | None = None) -> dict:
    """The verdict on the test patients: network and baseline against chance, network against the baseline.

    ``network`` and ``baseline`` are (cases, classes) probabilities of the same test cases; ``groups`` their patient;
    ``patients_known``: whether ``groups`` is known to name the patients (a ``group`` column, or one case per patient
    stated); ``others``: more predictions of the same cases, reported with intervals (not judged).
    """
    design = PatientDesign(truth, groups)
    if len(np.unique(design.truth)) < 2:
        raise ValueError("the verdict needs test cases of at least two classes")
    streams = np.random.SeedSequence(seed).spawn(3)
    weights = design.bootstrap_weights(RESAMPLES, np.random.default_rng(streams[0]))
    too_few = design.smallest_p >= ALPHA
    no_interval = _why_no_interval(design, too_few)
    models = {"network": network, "baseline": baseline, **(others or {})}
    resampled = {name: weighted_metrics(values, design.truth, weights) for name, values in models.items()}
    scores = {name: _scores(values, design, resampled[name], no_interval) for name, values in models.items()}
    chance = _against_chance(network, design, streams[1])
    baseline_chance = _against_chance(baseline, design, streams[1])
    paired_too_few = too_few or design.smallest_paired_p >= ALPHA
    paired = _against_baseline(network, baseline, design, resampled, streams[2],
                               _why_no_interval(design, paired_too_few))
    claims = {
        "chance": _chance_claim(chance, scores["network"]["roc_auc"], too_few, patients_known),
        "baseline_chance": _chance_claim(baseline_chance, scores["baseline"]["roc_auc"], too_few, patients_known),
        "baseline_comparison": _paired_claim(paired, paired_too_few, patients_known),
    }
    return {
        "test_patients": design.patients,
        "test_cases": len(design.truth),
        "design": _design_record(design),
        "patients_known": patients_known,
        "score": "ROC AUC (one-vs-rest macro average for more than two classes)",
        "alpha": ALPHA,
        "resamples": RESAMPLES,
        "interval_method": f"{CONFIDENCE:.0%} expanded percentile bootstrap (Hesterberg 2015) over patients, drawn "
                           "within strata of patients with the same labels",
        "smallest_reachable_p": design.smallest_p,
        "smallest_reachable_paired_p": design.smallest_paired_p,
        **scores,
        "against_chance": chance,
        "baseline_against_chance": baseline_chance,
        "against_baseline": paired,
        **claims,
        "baseline_better_than_chance": claims["baseline_chance"] == "better than chance",
        "better_than_chance": claims["chance"] == "better than chance",
        "better_than_baseline": claims["baseline_comparison"] == "better than the baseline",
        "text": _text(claims, scores["network"]["roc_auc"], chance, paired, design, baseline_name, patients_known),
    }


def _design_record(design: PatientDesign) -> dict:
    """The design in the record: patients, how labels vary, how many labellings the permutations reach."""
    return {"patients_with_varying_labels": len(design.varying), "labellings": design.labellings,
            "patient_labellings": design.patient_labellings, "permutation": design.describe(),
            "exact": design.labellings <= EXACT_LIMIT, "sign_flips_exact": design.flips_exact}


def _why_no_interval(design: PatientDesign, too_few: bool) -> str | None:
    """Why no bootstrap interval can be computed for these patients (None if one can)."""
    if too_few:
        return "too few patients"
    if any(len(patients) < 2 for patients in design.strata.values()):
        return "a kind of patient (by labels) has one test patient, whose spread the bootstrap cannot measure"
    return None


def interval(values: np.ndarray, patients: int, no_interval: str | None) -> dict:
    """The expanded percentile interval of bootstrap ``values`` over ``patients``: the percentile interval with
    its tails narrowed for small samples, Phi(-sqrt(n / (n - 1)) t_{n-1, 1-alpha/2}) instead of alpha/2 (Hesterberg,
    "What teachers should know about the bootstrap", The American Statistician 2015); or why there is none."""
    if no_interval is None and np.ptp(values) == 0:
        no_interval = f"every resample gives {values[0]:.3f}"
    if no_interval is not None:
        return {"interval": None, "no_interval": no_interval}
    tail = float(norm.cdf(-sqrt(patients / (patients - 1)) * t.ppf(1 - (1 - CONFIDENCE) / 2, patients - 1)))
    return {"interval": [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]}


def _scores(probabilities: np.ndarray, design: PatientDesign, resampled: dict[str, np.ndarray],
            no_interval: str | None) -> dict:
    """AUC, balanced accuracy and Brier score of ``probabilities`` on the test cases, each with its interval."""
    every = weighted_metrics(probabilities, design.truth, np.ones((1, len(design.truth))))
    return {name: {"value": float(every[name][0]), **interval(resampled[name], design.patients, no_interval)}
            for name in METRICS}


def _against_chance(probabilities: np.ndarray, design: PatientDesign, stream: np.random.SeedSequence) -> dict:
    """Permutation p-value of the AUC over the design's labellings (exact or Monte Carlo)."""
    observed = float(auc_of_labellings(probabilities, design.truth[np.newaxis])[0])
    statistics = (auc_of_labellings(probabilities, labels)
                  for labels in design.labelling_chunks(np.random.default_rng(stream)))
    result = permutation_p(statistics, observed, design.labellings <= EXACT_LIMIT, ALPHA)
    return {**result.record(), "significant": result.below(ALPHA), "permutation": design.describe(),
            "p_text": result.text()}


def _against_baseline(network: np.ndarray, baseline: np.ndarray, design: PatientDesign,
                      resampled: dict[str, dict[str, np.ndarray]], stream: np.random.SeedSequence,
                      no_interval: str | None) -> dict:
    """Paired comparison of AUCs on the same patients: interval of the difference and two-sided sign-flip p-value."""
    truth = design.truth
    observed = float(auc_differences_of_swaps(network, baseline, truth, np.zeros((1, len(truth)), dtype=bool))[0])
    spread = interval(resampled["network"]["roc_auc"] - resampled["baseline"]["roc_auc"], design.patients,
                      no_interval)
    statistics = (np.abs(auc_differences_of_swaps(network, baseline, truth, swaps))
                  for swaps in design.flip_chunks(np.random.default_rng(stream)))
    result = permutation_p(statistics, abs(observed), design.flips_exact, ALPHA)
    return {"difference": observed, **spread, **result.record(), "significant": result.below(ALPHA),
            "p_text": result.text(),
            "test": "paired: bootstrap over patients; sign-flip permutation (predictions swapped per patient)"}


def _chance_claim(test: dict, auc: dict, too_few: bool, patients_known: bool) -> str:
    """The claim against chance: too few patients, better than chance (or not claimed), or no evidence."""
    if too_few:
        return TOO_FEW
    if not test["significant"] or (auc["interval"] is not None and auc["interval"][0] <= 0.5):
        return "no evidence"
    return "better than chance" if patients_known else NOT_CLAIMED


def _paired_claim(paired: dict, too_few: bool, patients_known: bool) -> str:
    """The claim against the baseline: too few patients, a direction (or not claimed), or no evidence."""
    if too_few:
        return TOO_FEW
    bounds = paired["interval"]
    if not paired["significant"] or paired["difference"] == 0:
        return "no evidence"
    if paired["difference"] > 0 and (bounds is None or bounds[0] > 0):
        return "better than the baseline" if patients_known else NOT_CLAIMED
    if paired["difference"] < 0 and (bounds is None or bounds[1] < 0):
        return "the baseline is better" if patients_known else NOT_CLAIMED
    return "no evidence"


def _text(claims: dict[str, str], auc: dict, chance: dict, paired: dict, design: PatientDesign,
          baseline_name: str, patients_known: bool) -> str:
    """The one-paragraph verdict printed at the end of a run and written into the model card."""
    where = f"on {design.patients} test patients"
    unknown = "" if patients_known else " " + UNKNOWN_PATIENTS
    if claims["chance"] == TOO_FEW:
        varying = (f"; labels vary within {len(design.varying)} of them, each counted once" if design.varying else "")
        return (f"Too few patients to tell: {where} even a perfect ranking could not reach p < {ALPHA:g} (smallest "
                f"p these patients can support {design.smallest_p:.3f}{varying}); no claim about chance or the "
                f"baseline.{unknown}")
    figures = f"AUC {auc['value']:.3f} {_bracket(auc)}, permutation p = {chance['p_text']}"
    first = {"better than chance": "Better than chance", "no evidence": "No evidence of better than chance",
             NOT_CLAIMED: "No claim of better than chance (the tests alone would make it)"}[claims["chance"]]
    second = {"better than the baseline": "better than the baseline", "the baseline is better": "the baseline is better",
              "no evidence": "no evidence of better than the baseline",
              TOO_FEW: f"too few patients to compare with the baseline (smallest paired p {design.smallest_paired_p:.3f})",
              NOT_CLAIMED: "no claim against the baseline (the tests alone would make one)"}[claims["baseline_comparison"]]
    against = (f"AUC difference to {baseline_name} {paired['difference']:+.3f} {_bracket(paired)}, "
               f"paired p = {paired['p_text']}")
    if claims["chance"] == claims["baseline_comparison"] == "no evidence":
        return (f"No evidence of either (better than chance, better than the baseline) {where} ({figures}; "
                f"{against}).{unknown}")
    return f"{first} {where} ({figures}); {second} ({against}).{unknown}"


def _bracket(entry: dict) -> str:
    """``[95% CI low, high]``, or why there is no interval."""
    bounds = entry["interval"]
    if bounds is None:
        return f"(no interval: {entry['no_interval']})"
    return f"[{CONFIDENCE:.0%} CI {bounds[0]:.3f}, {bounds[1]:.3f}]"
