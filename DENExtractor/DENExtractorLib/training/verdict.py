"""The verdict on the test patients: bootstrap intervals over patients, a label-permutation test against chance and
a paired comparison with the baseline, so that a claim is printed only when the numbers support it.

The score judged is the ROC AUC (one-vs-rest macro average for more than two classes): it ranks, so a network that
orders patients well but is badly calibrated is not mistaken for one at chance, and chance is 0.5 whatever the
class balance. The resampling unit is the group (patient): a patient's cases are drawn, and relabelled, together.

- "better than chance": the permutation p-value (labels shuffled over patients) is below :data:`ALPHA` and the
  bootstrap interval of the AUC lies above 0.5.
- "better than the baseline": the paired sign-flip p-value (network and baseline predictions swapped per patient)
  is below :data:`ALPHA` and the bootstrap interval of the AUC difference lies above 0 ("the baseline is better"
  the other way round).
- "too few patients to tell": even a perfect ranking of these test patients could not reach ``p < ALPHA``
  (for two classes of m and n patients the smallest permutation p-value is 1 / C(m + n, m)).
- otherwise "no evidence".
"""

from __future__ import annotations

from collections.abc import Callable
from math import factorial

import numpy as np

from .evaluation import balanced_accuracy, brier_score, multiclass_auc

ALPHA = 0.05
RESAMPLES = 2000
"""Bootstrap resamples and permutations (the smallest reachable p-value is 1 / 2001)."""

CONFIDENCE = 0.95


class PatientResampler:
    """Resampling of test cases by group: bootstrap draws of whole groups and label permutations over groups."""

    def __init__(self, truth: np.ndarray, groups: list[str], seed: int) -> None:
        names = sorted(set(groups))
        self.truth = truth
        self.group_of_case = np.asarray([names.index(group) for group in groups], dtype=np.int64)
        self.members = [np.flatnonzero(self.group_of_case == index) for index in range(len(names))]
        group_truth = [np.unique(truth[members]) for members in self.members]
        self.labels_per_group = all(len(found) == 1 for found in group_truth)
        self.group_truth = np.asarray([found[0] for found in group_truth]) if self.labels_per_group else None
        self.seed = seed

    @property
    def groups(self) -> int:
        """Number of test groups (patients)."""
        return len(self.members)

    def bootstrap(self) -> list[np.ndarray]:
        """:data:`RESAMPLES` case-index arrays, each the cases of groups drawn with replacement (seeded)."""
        generator = np.random.RandomState(self.seed)
        draws = generator.randint(0, self.groups, size=(RESAMPLES, self.groups))
        return [np.concatenate([self.members[group] for group in draw]) for draw in draws]

    def permuted_labels(self) -> list[np.ndarray]:
        """:data:`RESAMPLES` label vectors: group labels shuffled over groups (case labels if a group's vary)."""
        generator = np.random.RandomState(self.seed + 1)
        if self.group_truth is not None:
            return [self.group_truth[generator.permutation(self.groups)][self.group_of_case] for _ in range(RESAMPLES)]
        return [self.truth[generator.permutation(len(self.truth))] for _ in range(RESAMPLES)]

    def smallest_p(self) -> float:
        """The smallest p-value any permutation test on these labels can give: 1 / (distinct labellings)."""
        labels = self.group_truth if self.group_truth is not None else self.truth
        counts = np.bincount(labels)
        arrangements = factorial(int(counts.sum()))
        for count in counts:
            arrangements //= factorial(int(count))
        return max(1 / arrangements, 1 / (RESAMPLES + 1))


def interval(values: list[float | None]) -> list[float] | None:
    """The central :data:`CONFIDENCE` percentile interval of the defined bootstrap values."""
    found = np.asarray([value for value in values if value is not None], dtype=np.float64)
    if len(found) < RESAMPLES // 2:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    return [float(np.percentile(found, tail)), float(np.percentile(found, 100 - tail))]


def scores_with_intervals(probabilities: np.ndarray, resampler: PatientResampler, draws: list[np.ndarray]) -> dict:
    """AUC, balanced accuracy and Brier score of ``probabilities`` with bootstrap intervals over patients."""
    truth = resampler.truth
    metrics: dict[str, Callable[[np.ndarray], float | None]] = {
        "roc_auc": lambda rows: multiclass_auc(probabilities[rows], truth[rows]),
        "balanced_accuracy": lambda rows: balanced_accuracy(probabilities[rows], truth[rows]),
        "brier": lambda rows: brier_score(probabilities[rows], truth[rows]),
    }
    every = np.arange(len(truth))
    return {name: {"value": metric(every), "interval": interval([metric(rows) for rows in draws])}
            for name, metric in metrics.items()}


def judge(truth: np.ndarray, network: np.ndarray, baseline: np.ndarray, groups: list[str], baseline_name: str,
          seed: int, others: dict[str, np.ndarray] | None = None) -> dict:
    """The verdict on the test patients: network against chance, then against the baseline, with the tests' numbers.

    ``network`` and ``baseline`` are (cases, classes) probabilities of the same test cases; ``groups`` their patient;
    ``others``: more predictions of the same cases, reported with intervals on the same resamples (not judged).
    """
    resampler = PatientResampler(truth, groups, seed)
    draws = resampler.bootstrap()
    ours = scores_with_intervals(network, resampler, draws)
    theirs = scores_with_intervals(baseline, resampler, draws)
    chance = _against_chance(network, resampler, ours["roc_auc"])
    baseline_chance = _against_chance(baseline, resampler, theirs["roc_auc"])
    paired = _against_baseline(network, baseline, resampler, draws)
    too_few = resampler.smallest_p() >= ALPHA or ours["roc_auc"]["value"] is None
    if too_few:
        chance_claim = baseline_claim = "too few patients to tell"
    else:
        chance_claim = "better than chance" if chance["supported"] else "no evidence"
        baseline_claim = paired["claim"]
    text = _text(chance_claim, baseline_claim, ours, chance, paired, resampler, baseline_name)
    return {
        "test_patients": resampler.groups,
        "test_cases": len(truth),
        "score": "ROC AUC (one-vs-rest macro average for more than two classes)",
        "alpha": ALPHA,
        "resamples": RESAMPLES,
        "smallest_reachable_p": resampler.smallest_p(),
        "network": ours,
        "baseline": theirs,
        **{name: scores_with_intervals(values, resampler, draws) for name, values in (others or {}).items()},
        "against_chance": chance,
        "baseline_against_chance": baseline_chance,
        "baseline_better_than_chance": bool(baseline_chance["supported"] and not too_few),
        "against_baseline": paired,
        "chance": chance_claim,
        "baseline_comparison": baseline_claim,
        "better_than_chance": chance_claim == "better than chance",
        "better_than_baseline": baseline_claim == "better than the baseline",
        "text": text,
    }


def _against_chance(network: np.ndarray, resampler: PatientResampler, auc: dict) -> dict:
    """Permutation p-value of the network's AUC (labels shuffled over patients) and whether its interval clears 0.5."""
    observed = auc["value"]
    if observed is None:
        return {"p_value": None, "supported": False, "permutation": "not run: a class is missing"}
    null = [multiclass_auc(network, labels) for labels in resampler.permuted_labels()]
    exceed = sum(1 for value in null if value is not None and value >= observed)
    p_value = (1 + exceed) / (1 + len(null))
    supported = p_value < ALPHA and auc["interval"] is not None and auc["interval"][0] > 0.5
    unit = "patients" if resampler.labels_per_group else "cases (labels vary within a patient)"
    return {"p_value": p_value, "supported": bool(supported), "permutation": f"labels shuffled over {unit}"}


def _against_baseline(network: np.ndarray, baseline: np.ndarray, resampler: PatientResampler,
                      draws: list[np.ndarray]) -> dict:
    """Paired comparison of AUCs on the same patients: bootstrap interval of the difference and sign-flip p-value."""
    truth = resampler.truth

    def difference(ours: np.ndarray, theirs: np.ndarray, rows: np.ndarray) -> float | None:
        first, second = multiclass_auc(ours[rows], truth[rows]), multiclass_auc(theirs[rows], truth[rows])
        return None if first is None or second is None else first - second

    every = np.arange(len(truth))
    observed = difference(network, baseline, every)
    if observed is None:
        return {"difference": None, "interval": None, "p_value": None, "claim": "no evidence"}
    spread = interval([difference(network, baseline, rows) for rows in draws])
    generator = np.random.RandomState(resampler.seed + 2)
    exceed = 0
    for _ in range(RESAMPLES):
        swap = (generator.rand(resampler.groups) < 0.5)[resampler.group_of_case][:, np.newaxis]
        value = difference(np.where(swap, baseline, network), np.where(swap, network, baseline), every)
        exceed += value is not None and abs(value) >= abs(observed) - 1e-12
    p_value = (1 + exceed) / (1 + RESAMPLES)
    claim = "no evidence"
    if p_value < ALPHA and spread is not None and spread[0] > 0:
        claim = "better than the baseline"
    elif p_value < ALPHA and spread is not None and spread[1] < 0:
        claim = "the baseline is better"
    return {"difference": observed, "interval": spread, "p_value": p_value, "claim": claim,
            "test": "paired: bootstrap over patients; sign-flip permutation (predictions swapped per patient)"}


def _text(chance_claim: str, baseline_claim: str, ours: dict, chance: dict, paired: dict,
          resampler: PatientResampler, baseline_name: str) -> str:
    """The one-paragraph verdict printed at the end of a run and written into the model card."""
    auc = ours["roc_auc"]
    where = f"on {resampler.groups} test patients"
    if chance_claim == "too few patients to tell":
        return (f"Too few patients to tell: {where} even a perfect ranking could not reach p < {ALPHA:g} (smallest "
                f"reachable p {resampler.smallest_p():.3f}); no claim about chance or the baseline.")
    figures = f"AUC {auc['value']:.3f} {_bracket(auc['interval'])}, permutation p = {chance['p_value']:.4f}"
    first = ("Better than chance" if chance_claim == "better than chance" else "No evidence of better than chance")
    difference = paired["difference"]
    second = {
        "better than the baseline": "better than the baseline",
        "the baseline is better": "the baseline is better",
        "no evidence": "no evidence of better than the baseline",
    }[baseline_claim]
    against = (f"AUC difference to {baseline_name} {difference:+.3f} {_bracket(paired['interval'])}, "
               f"paired p = {paired['p_value']:.4f}") if difference is not None else "baseline AUC undefined"
    if chance_claim == baseline_claim == "no evidence":
        return f"No evidence of either (better than chance, better than the baseline) {where} ({figures}; {against})."
    return f"{first} {where} ({figures}); {second} ({against})."


def _bracket(bounds: list[float] | None) -> str:
    """``[low, high]`` with the confidence level, or a note that the interval is undefined."""
    if bounds is None:
        return "(no interval: too many resamples lack a class)"
    return f"[{CONFIDENCE:.0%} CI {bounds[0]:.3f}, {bounds[1]:.3f}]"
