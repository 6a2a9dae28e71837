"""The verdict's metrics for many labellings, bootstrap resamples or prediction swaps at once, as matrix products.

Each equals :mod:`.evaluation`'s metric on one labelling, on the resampled cases (a case drawn twice counts twice)
or on the swapped predictions (tested): ROC AUC (class 1 against class 0 for two classes, else the macro
one-vs-rest average over the classes present), balanced accuracy at the argmax, multi-class Brier score.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _one_vs_rest(probabilities: np.ndarray, truth: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(column, positive cases, negative cases) of each AUC averaged: class 1 vs 0, or each present class vs rest."""
    if probabilities.shape[1] == 2:
        return [(1, truth == 1, truth == 0)]
    return [(int(label), truth == label, truth != label) for label in np.unique(truth)]


def auc_of_labellings(probabilities: np.ndarray, labellings: np.ndarray) -> np.ndarray:
    """(labellings,): the AUC of fixed ``probabilities`` under each row of ``labellings`` (the rows share their
    class counts, as permutations do), from mid-ranks: (rank sum of the positives - n1(n1+1)/2) / (n1 n0)."""
    values = []
    for column, _, _ in _one_vs_rest(probabilities, labellings[0]):
        ranks = rankdata(probabilities[:, column])
        positive = labellings == column
        negative = labellings == 0 if probabilities.shape[1] == 2 else ~positive
        first, second = positive.sum(axis=1), negative.sum(axis=1)
        values.append((positive @ ranks - first * (first + 1) / 2) / (first * second))
    return np.mean(values, axis=0)


def _comparisons(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(len(first), len(second)): 1 where first > second, 0.5 where equal, else 0."""
    return (first[:, np.newaxis] > second[np.newaxis, :]) + 0.5 * (first[:, np.newaxis] == second[np.newaxis, :])


def weighted_metrics(probabilities: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """ROC AUC, balanced accuracy and Brier score for each row of case ``weights`` (a bootstrap resample's draw
    counts); every row must give weight to every class of ``truth``."""
    aucs = []
    for column, positive, negative in _one_vs_rest(probabilities, truth):
        scores = probabilities[:, column]
        pairs = ((weights[:, positive] @ _comparisons(scores[positive], scores[negative])) * weights[:, negative])
        aucs.append(pairs.sum(axis=1) / (weights[:, positive].sum(axis=1) * weights[:, negative].sum(axis=1)))
    correct = (np.argmax(probabilities, axis=1) == truth).astype(np.float64)
    recalls = [weights[:, truth == label] @ correct[truth == label] / weights[:, truth == label].sum(axis=1)
               for label in np.unique(truth)]
    brier = np.sum((probabilities - np.eye(probabilities.shape[1])[truth]) ** 2, axis=1)
    return {"roc_auc": np.mean(aucs, axis=0), "balanced_accuracy": np.mean(recalls, axis=0),
            "brier": weights @ brier / weights.sum(axis=1)}


def auc_differences_of_swaps(network: np.ndarray, baseline: np.ndarray, truth: np.ndarray,
                             swaps: np.ndarray) -> np.ndarray:
    """(swaps,): AUC of the first model minus AUC of the second when, in each row of boolean ``swaps`` (per case),
    the cases marked take the baseline's prediction as the first model's and the network's as the second's.

    The difference is linear in the signs s = 1 - 2 swap: a positive i and a negative j compare the first model's
    scores as C[a_i, a_j] and the second's as C[1 - a_i, 1 - a_j], a the source of each score (C[0, 1]: network
    positive, baseline negative), which makes ((s_i + s_j) D + (s_i - s_j) E) / 2 with D = C[0, 0] - C[1, 1] and
    E = C[0, 1] - C[1, 0]; summed over the pairs, each case contributes its sign times a fixed amount.
    """
    return (1 - 2 * swaps.astype(np.float64)) @ swap_contributions(network, baseline, truth)


def swap_contributions(network: np.ndarray, baseline: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(cases,): each case's share of the AUC difference (network minus baseline), whose sign a swap flips."""
    contributions = np.zeros((len(truth), 1))
    pairs = _one_vs_rest(network, truth)
    for column, positive, negative in pairs:
        mine, theirs = network[:, column], baseline[:, column]
        same = _comparisons(mine[positive], mine[negative]) - _comparisons(theirs[positive], theirs[negative])
        crossed = _comparisons(mine[positive], theirs[negative]) - _comparisons(theirs[positive], mine[negative])
        scale = 2 * positive.sum() * negative.sum() * len(pairs)
        contributions[positive, 0] += (same + crossed).sum(axis=1) / scale
        contributions[negative, 0] += (same - crossed).sum(axis=0) / scale
    return contributions[:, 0]
