"""The model card (``den_trained_card.md``) written with every training run, from the training record alone.

Data (cases, groups, split sizes, class counts), settings, the test patients' metrics with their intervals beside
the baselines', the verdict and its tests, calibration, intended use and limitations, in Markdown.
"""

from __future__ import annotations

LIMITATIONS = (
    "Trained and tested on one cohort: the test patients come from the same source as the training patients, so "
    "these numbers say nothing about other scanners, centres, segmentation methods or label schemes.",
    "The inputs are segmentation label maps (or image intensities inside them), not the raw MRI: whatever the "
    "segmentation misses, the model cannot see.",
    "Reference mode divides each case by the maximum of its bicubic-resized stack (as the published code) and "
    "slices along the first stored voxel axis: the same label can enter as different numbers in different cases, "
    "and the field of view and tumour position move the features. Oriented mode uses a fixed label scale.",
    "Every foreground slice is pooled, including stray islands far from the tumour.",
    "A verdict is a statement about these test patients at alpha 0.05, not a guarantee; intervals are percentile "
    "bootstrap intervals over patients, which are too narrow for very few patients.",
)


def model_card(record: dict) -> str:
    """The Markdown model card of a training record (as :func:`~DENExtractorLib.training.trainer.train` writes it)."""
    parts = [_header(record), _data(record), _settings(record), _results(record), _calibration(record),
             _validation(record), _use(record)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _header(record: dict) -> str:
    """Title, identity and the verdict."""
    verdict = record["verdict"]
    return (f"# Model card: {record['model_id']}\n\n"
            f"DEN (2-D CNN on segmentation slices) with a softmax head, trained by den-train to predict "
            f"**{record['label_column']}** ({', '.join(record['classes'])}) per case.\n\n"
            f"- Trunk: `{record['outputs']['weights']['file']}` (sha256 `{record['outputs']['weights']['sha256']}`), "
            f"head: `{record['outputs']['head']['file']}` (sha256 `{record['outputs']['head']['sha256']}`)\n"
            f"- Started from: {record['weights']['base']['model_id']} "
            f"(`{record['weights']['base']['sha256'][:16]}...`)\n"
            f"- Labels: `{record['labels_csv']['path']}` (sha256 `{record['labels_csv']['sha256']}`)\n"
            f"- Created: {record['created']}, DENExtractor {record['software'].get('denextractor')}\n\n"
            f"## Verdict\n\n**{verdict['text']}**")


def _data(record: dict) -> str:
    """Cases, groups and classes per side of the split, and the excluded cases."""
    groups = record["split"]["groups"]
    classes = record["classes"]
    lines = ["## Data", "", f"Split: {record['split']['method']}. "
             + ("Groups (patients) from the CSV's `group` column." if groups["from_column"]
                else "No `group` column: every case is its own patient."), "",
             "| side | patients | cases | " + " | ".join(f"cases {label}" for label in classes) + " |",
             "|---|---|---|" + "---|" * len(classes)]
    names = (("train", "training"), ("val", "validation (chooses the epoch)"), ("test", "test (scored once)"))
    for side, name in names:
        entry = groups[side]
        lines.append(f"| {name} | {entry['groups']} | {entry['cases']} | "
                     + " | ".join(str(entry["classes"][label]) for label in classes) + " |")
    if record["excluded"]:
        lines += ["", f"Excluded ({len(record['excluded'])}):"]
        lines += [f"- {item['case_id']}: {item['message']}" for item in record["excluded"][:20]]
    return "\n".join(lines)


def _settings(record: dict) -> str:
    """Preprocessing and training settings."""
    hyper, preprocessing = record["hyperparameters"], record["preprocessing"]
    scale = f", label scale {preprocessing['label_max']}" if preprocessing["mode"] == "oriented" else ""
    return ("## Settings\n\n"
            f"- Preprocessing: mode {preprocessing['mode']}"
            + (f", plane {preprocessing['plane']}" if preprocessing["plane"] else "")
            + f", labels {preprocessing['labels']}{scale}, image mode {preprocessing['image_mode']}\n"
            f"- Training: layers {hyper['train_layers']}, up to {hyper['epochs']} epochs "
            f"(patience {hyper['patience']}), "
            f"batch {hyper['batch_size']}, Adam learning rate {hyper['learning_rate']:g}, seed {hyper['seed']}; "
            f"kept epoch {record['best_epoch']} of {len(record['epochs'])} (lowest validation loss)\n"
            f"- Baseline: {record['baseline']['note']}; chosen C = {record['baseline']['base_weights']['fit']['C']:g} "
            f"(base weights), {record['baseline']['trained_weights']['fit']['C']:g} (trained weights); features kept "
            f"{record['baseline']['base_weights']['fit']['features_kept']} of "
            f"{record['baseline']['base_weights']['fit']['features_in']}")


def _results(record: dict) -> str:
    """The test patients' metrics with intervals, and the tests behind the verdict."""
    verdict = record["verdict"]
    if record["test"] is None:
        return "## Results on test patients\n\nNone: this run had no test patients."
    rows = [("trained network", verdict["network"]), ("linear probe, base weights", verdict["baseline"]),
            ("linear probe, trained weights", verdict.get("trained_weights_probe"))]
    lines = ["## Results on the test patients", "",
             f"{verdict['test_patients']} patients ({verdict['test_cases']} cases); 95% percentile bootstrap intervals "
             f"over patients ({verdict['resamples']} resamples). Brier: summed over classes (0 best; a constant "
             f"1/K scores {1 - 1 / len(record['classes']):.3f}).", "",
             "| model | ROC AUC | balanced accuracy | Brier |", "|---|---|---|---|"]
    for name, scores in rows:
        if scores is not None:
            lines.append(f"| {name} | " + " | ".join(_with_interval(scores[key]) for key in
                                                       ("roc_auc", "balanced_accuracy", "brier")) + " |")
    chance, paired = verdict["against_chance"], verdict["against_baseline"]
    lines += ["", f"- Against chance: {chance['permutation']}, p = {_p(chance['p_value'])} "
              f"(smallest reachable p with these patients: {verdict['smallest_reachable_p']:.4f}) -> "
              f"**{verdict['chance']}**",
              f"- Against the baseline (base weights' probe): AUC difference "
              f"{_number(paired['difference'], '+.3f')} {_bounds(paired['interval'])}, {paired.get('test', '')}, "
              f"p = {_p(paired['p_value'])} -> **{verdict['baseline_comparison']}**",
              f"- A claim needs p < {verdict['alpha']:g} and a 95% interval that excludes chance (0.5) or no "
              "difference (0)."]
    return "\n".join(lines)


def _calibration(record: dict) -> str:
    """Brier and ECE of the network and the probe on the test patients, and the reliability diagram."""
    if record["test"] is None:
        return ""
    lines = ["## Calibration (test patients)", "", "| model | Brier | ECE (10 bins) | mean confidence | accuracy |",
             "|---|---|---|---|---|"]
    for key, name in (("network", "trained network"), ("base_weights", "linear probe, base weights"),
                      ("trained_weights", "linear probe, trained weights")):
        entry = record["test"][key]
        bins = entry["reliability"]
        cases = sum(item["patients"] for item in bins)
        confidence = sum(item["confidence"] * item["patients"] for item in bins) / max(1, cases)
        lines.append(f"| {name} | {entry['brier']:.3f} | {entry['ece']:.3f} | {confidence:.3f} | "
                     f"{entry['accuracy']:.3f} |")
    lines += ["", f"Reliability diagram: `{record['outputs']['reliability']['file']}`."]
    return "\n".join(lines)


def _validation(record: dict) -> str:
    """The validation scores, labelled as optimistic."""
    validation = record["validation"]
    return ("## Validation patients (optimistic: they chose the epoch)\n\n"
            f"ROC AUC {_number(validation['roc_auc'], '.3f')}, "
            f"balanced accuracy {validation['balanced_accuracy']:.3f}, "
            f"Brier {validation['brier']:.3f} on {validation['patients']} cases.")


def _use(record: dict) -> str:
    """Intended use and limitations."""
    return ("## Intended use\n\n"
            f"Research only: scoring glioblastoma segmentations prepared like the training cases (same label scheme, "
            f"preprocessing mode {record['preprocessing']['mode']}) for **{record['label_column']}**, with "
            "`den-score --model MODEL_DIR --cases CSV -o scores.csv`, or extracting the trained trunk's features with "
            "`den-extract --weights`. Not for clinical decisions.\n\n## Limitations\n\n"
            + "\n".join(f"- {item}" for item in LIMITATIONS))


def _with_interval(entry: dict) -> str:
    """``value [low, high]``."""
    return f"{_number(entry['value'], '.3f')} {_bounds(entry['interval'])}"


def _bounds(bounds: list[float] | None) -> str:
    """``[low, high]`` or ``[no interval]``."""
    return "[no interval]" if bounds is None else f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _number(value: float | None, style: str) -> str:
    """A formatted number, or "n/a"."""
    return "n/a" if value is None else format(value, style)


def _p(value: float | None) -> str:
    """A p-value, or "n/a"."""
    return "n/a" if value is None else f"{value:.4f}"
