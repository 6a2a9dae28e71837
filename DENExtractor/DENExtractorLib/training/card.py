"""The model card (``den_trained_card.md``) written with every training run, from the training record alone.

Data (cases, groups, split sizes, class counts), settings, the test patients' metrics with their intervals beside
the baselines', the verdict and its tests, calibration, intended use and limitations, in Markdown.
"""

from __future__ import annotations

from ..robustness.feature_filter import describe_filter

LIMITATIONS = (
    "Trained and tested on one cohort: the test patients come from the same source as the training patients, so "
    "these numbers say nothing about other scanners, centres, segmentation methods or label schemes.",
    "The inputs are segmentation label maps (or image intensities inside them), not the raw MRI: whatever the "
    "segmentation misses, the model cannot see.",
    "Reference mode divides each case by the maximum of its bicubic-resized stack (as the published code) and "
    "slices along the first stored voxel axis: the same label can enter as different numbers in different cases, "
    "and the field of view and tumour position move the features. Oriented mode uses a fixed label scale.",
    "Every foreground slice is pooled, including stray islands far from the tumour.",
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
    lines = ["## Data", "", f"Split: {record['split']['method']}. {_patients(groups)}", "",
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


def _patients(groups: dict) -> str:
    """Where the patients come from: the ``group`` column, the user's statement, or nowhere."""
    if groups["from_column"]:
        return "Groups (patients) from the CSV's `group` column."
    if groups.get("one_case_per_patient"):
        return "No `group` column; every case is a different patient, as stated with `--one-case-per-patient`."
    return ("No `group` column: every case is taken as its own patient, which nothing confirms, so no 'better' claim "
            "is made.")


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
            f"{record['baseline']['base_weights']['fit']['features_in']}"
            + describe_filter(record["baseline"].get("robustness_filter")))


def _results(record: dict) -> str:
    """The test patients' metrics with intervals, and the tests behind the verdict."""
    verdict = record["verdict"]
    if record["test"] is None:
        return "## Results on test patients\n\nNone: this run had no test patients."
    rows = [("trained network", verdict["network"]), ("linear probe, base weights", verdict["baseline"]),
            ("linear probe, trained weights", verdict.get("trained_weights_probe"))]
    lines = ["## Results on the test patients", "",
             f"{verdict['test_patients']} patients ({verdict['test_cases']} cases); {verdict['interval_method']} "
             f"({verdict['resamples']} resamples). Brier: summed over classes (0 best; a constant "
             f"1/K scores {1 - 1 / len(record['classes']):.3f}).", "",
             "| model | ROC AUC | balanced accuracy | Brier |", "|---|---|---|---|"]
    for name, scores in rows:
        if scores is not None:
            lines.append(f"| {name} | " + " | ".join(_with_interval(scores[key]) for key in
                                                       ("roc_auc", "balanced_accuracy", "brier")) + " |")
    chance, paired = verdict["against_chance"], verdict["against_baseline"]
    lines += ["", f"- Against chance: {chance['permutation']}, p = {chance['p_text']} "
              f"(smallest p these patients can support: {verdict['smallest_reachable_p']:.4f}) -> "
              f"**{verdict['chance']}**; the baseline: p = {verdict['baseline_against_chance']['p_text']} -> "
              f"**{verdict['baseline_chance']}**",
              f"- Against the baseline (base weights' probe): AUC difference "
              f"{_number(paired['difference'], '+.3f')} {_bounds(paired)}, {paired['test']}, "
              f"p = {paired['p_text']} (smallest reachable: {verdict['smallest_reachable_paired_p']:.4f}) -> "
              f"**{verdict['baseline_comparison']}**",
              f"- A claim needs p < {verdict['alpha']:g} (a Monte Carlo p with all of its 99% interval below) and a "
              "95% interval, where one can be computed, that excludes chance (0.5) or no difference (0)."]
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
    """Intended use, and the limitations of this run first, then of every run."""
    return ("## Intended use\n\n"
            f"Research only: scoring glioblastoma segmentations prepared like the training cases (same label scheme, "
            f"preprocessing mode {record['preprocessing']['mode']}) for **{record['label_column']}**, with "
            "`den-score --model MODEL_DIR --cases CSV -o scores.csv`, or extracting the trained trunk's features with "
            "`den-extract --weights`. Not for clinical decisions.\n\n## Limitations\n\n"
            + "\n".join(f"- {item}" for item in (*_run_limitations(record), *LIMITATIONS)))


def _run_limitations(record: dict) -> list[str]:
    """What this run's test set allows: its patients, how labels vary, the smallest p, what cannot be claimed."""
    verdict = record["verdict"]
    if record["test"] is None:
        return ["This run has no test patients, so it makes no claim; the validation patients chose the epoch and "
                "their scores are optimistic."]
    design, patients = verdict["design"], verdict["test_patients"]
    varying = design["patients_with_varying_labels"]
    items = [f"This run's verdict rests on {patients} test patients ({verdict['test_cases']} cases). "
             + (f"Labels vary within {varying} of them: those are judged within the patient (their cases' labels "
                "shuffled among themselves), and each counts once towards the number of patients."
                if varying else "Every test patient has one label: labels are permuted between patients.")
             + f" The smallest p-value these patients can support is {verdict['smallest_reachable_p']:.4f} against "
             f"chance and {verdict['smallest_reachable_paired_p']:.4f} against the baseline (alpha "
             f"{verdict['alpha']:g})."]
    if not verdict["patients_known"]:
        items.append("The CSV has no `group` column and `--one-case-per-patient` was not given: if a patient has "
                     "several cases, the network and the baseline can recognise the patient instead of the label, "
                     "so no 'better' claim is made.")
    auc = verdict["network"]["roc_auc"]
    spread = (f"is compatible with a true AUC anywhere in {_bounds(auc)}" if auc["interval"] is not None else
              f"has no interval ({auc['no_interval']}), and a true AUC well away from it is not ruled out")
    items.append(f"The verdict cannot claim more than these patients show: the network's AUC of {auc['value']:.3f} on "
                 f"{patients} patients {spread}; 'no evidence' is not evidence of no effect.")
    return items


def _with_interval(entry: dict) -> str:
    """``value [low, high]``."""
    return f"{_number(entry['value'], '.3f')} {_bounds(entry)}"


def _bounds(entry: dict) -> str:
    """``[low, high]``, or ``[no interval: why]``."""
    bounds = entry["interval"]
    return f"[no interval: {entry['no_interval']}]" if bounds is None else f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _number(value: float | None, style: str) -> str:
    """A formatted number, or "n/a"."""
    return "n/a" if value is None else format(value, style)
