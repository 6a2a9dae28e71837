"""The whole verdict over many simulated test sets (seeded; scores drawn, nothing trained): how often it makes a
false claim when nothing predicts the label, patients clustered, and how often it finds a planted effect.

Null designs: every patient's cases share a patient-level part of both models' scores (SD 1, case noise SD 0.3),
independent of the labels. Two families: few patients with many cases whose labels mostly follow the patient (90%
of a patient's cases carry its label: where shuffling cases said "better" 6.7% of the time), and 6-16 patients of
1-5 cases with one label per patient or 80% following it. A false claim is "better than chance" for the network or
the baseline, or either direction against the baseline (the two models are exchangeable). Each rate, per family,
must stay within alpha plus its Monte Carlo error (2.33 standard errors, one-sided 99%).

Planted effects: 24 patients (12 per class, 1-3 cases, the label adding 1.5 to the network's logit), and 12 patients
of 4-8 cases whose labels vary within them (the label adding 1.0 within the patient). Run with ``-s`` to see the
figures quoted in docs/training.md.
"""

from __future__ import annotations

from math import sqrt

import numpy as np
import pytest
from DENExtractorLib.training.verdict import ALPHA, TOO_FEW, judge

pytestmark = pytest.mark.slow  # no training, but 800 verdicts: about a minute

NULL_DESIGNS = 300
"""Designs per null family."""

EFFECT_DESIGNS = 100
"""Designs per planted effect."""


def probabilities(logits: list[float]) -> np.ndarray:
    """(cases, 2) probabilities from class-1 logits."""
    scores = 1 / (1 + np.exp(-np.asarray(logits)))
    return np.stack([1 - scores, scores], axis=1)


def draw_design(generator: np.random.Generator, patients: int, cases: tuple[int, int], follow: float,
                between: float = 0.0, within: float = 0.0):
    """One test set: half the patients of each class, each case carrying its patient's class with probability
    ``follow`` (else the other); logits = patient level + ``between`` x patient class + ``within`` x (case label -
    patient class) + case noise for the network, the same without effects for the baseline."""
    truth, network, baseline, groups = [], [], [], []
    for patient, label in enumerate(generator.permutation(np.arange(patients) % 2)):
        count = int(generator.integers(*cases))
        labels = np.where(generator.random(count) < follow, label, 1 - label)
        network += list(generator.normal() + between * label + within * (labels - label)
                        + 0.3 * generator.normal(size=count))
        baseline += list(generator.normal() + 0.3 * generator.normal(size=count))
        truth += list(labels)
        groups += [f"p{patient:02d}"] * count
    return np.asarray(truth), probabilities(network), probabilities(baseline), groups


def verdicts(seed: int, designs: int, draw) -> list[dict]:
    """``designs`` verdicts on test sets from ``draw(generator)`` (sets with a single class are drawn again)."""
    generator = np.random.default_rng(seed)
    found: list[dict] = []
    while len(found) < designs:
        truth, network, baseline, groups = draw(generator)
        if len(set(truth.tolist())) == 2:
            found.append(judge(truth, network, baseline, groups, "baseline", seed=len(found), patients_known=True))
    return found


def rate(values: list[bool]) -> float:
    """The share of true values."""
    return sum(values) / len(values)


def test_false_claims_stay_within_alpha_on_patient_clustered_null_designs():
    families = {
        "2-5 patients, 6-12 cases, labels 90% by patient": lambda generator: draw_design(
            generator, int(generator.integers(2, 6)), (6, 13), 0.9),
        "6-16 patients, 1-5 cases, one label or 80% by patient": lambda generator: draw_design(
            generator, int(generator.integers(6, 17)), (1, 6), 1.0 if generator.random() < 0.5 else 0.8),
    }
    margin = 2.33 * sqrt(ALPHA * (1 - ALPHA) / NULL_DESIGNS)
    for seed, (family, draw) in enumerate(families.items()):
        found = verdicts(seed, NULL_DESIGNS, draw)
        claims = {
            "network better than chance": [verdict["better_than_chance"] for verdict in found],
            "baseline better than chance": [verdict["baseline_better_than_chance"] for verdict in found],
            "either better than the other": [verdict["baseline_comparison"] in (
                "better than the baseline", "the baseline is better") for verdict in found],
        }
        print(f"\n{family}: {NULL_DESIGNS} designs, too few patients to tell in "
              f"{rate([verdict['chance'] == TOO_FEW for verdict in found]):.1%}; false claims (bound "
              f"{ALPHA + margin:.1%}): " + ", ".join(f"{claim} {rate(made):.1%}" for claim, made in claims.items()))
        for claim, made in claims.items():
            assert rate(made) <= ALPHA + margin, (family, claim)


def test_a_planted_effect_is_found_between_and_within_patients():
    between = verdicts(10, EFFECT_DESIGNS, lambda generator: draw_design(generator, 24, (1, 4), 1.0, between=1.5))
    within = verdicts(11, EFFECT_DESIGNS, lambda generator: draw_design(generator, 12, (4, 9), 0.5, within=1.0))
    for name, found in (("24 patients, effect between patients", between),
                        ("12 patients, labels varying within them, effect within", within)):
        power = rate([verdict["better_than_chance"] for verdict in found])
        print(f"\npower, {name}: {power:.1%} 'better than chance' over {len(found)} designs; 'better than the "
              f"baseline' {rate([verdict['better_than_baseline'] for verdict in found]):.1%}")
        assert power >= 0.5, name
    assert all(verdict["design"]["patients_with_varying_labels"] == 0 for verdict in between)
    assert all(verdict["chance"] != TOO_FEW for verdict in between + within)
