"""The pages say what the tool does (issue 27): den_cohort.csv's documented columns and ``cut`` examples are the
table's, pyradiomics' ``Label`` is documented as choosing labels, DICOM as read, every command in the CLI reference,
and no option's help text that the site would turn into a link."""

from __future__ import annotations

import re

from DENExtractorLib.cohorts.table import FEATURE_COLUMNS, cohort_rows
from helpers import REPO_ROOT

DOCS = REPO_ROOT / "docs"


def _leading_header(carried: tuple[str, ...] = ()) -> list[str]:
    """den_cohort.csv's columns before the features, as the tool writes them."""
    return cohort_rows([], carried).header[: -len(FEATURE_COLUMNS)]


def test_the_documented_cohort_columns_are_the_tables():
    page = (DOCS / "cohorts.md").read_text(encoding="utf-8")
    listed = re.search(r"`den_cohort.csv` has one row per case: `([^`]+)`", page)
    assert listed is not None
    names = [name.strip() for name in " ".join(listed.group(1).split()).split(",")]
    assert names == [*_leading_header(), "mean_0..mean_4095", "max_0..max_4095"]


def test_the_documented_cut_examples_name_the_columns_they_cut():
    page = (DOCS / "cohorts.md").read_text(encoding="utf-8")
    cuts = re.findall(r"cut -d, -f1-(\d+) \S+den_cohort.csv +# ([^\n]+)", page)
    assert len(cuts) == 2
    for (count, comment), carried in zip(cuts, [(), ("label", "site")], strict=True):
        header = _leading_header(carried)[: int(count)]
        named = re.findall(r"\w+", comment)  # "case_id ... foreground_rows": the first and last columns cut
        assert named[0] == header[0] and named[-1] == header[-1] and set(named) <= set(header), (header, comment)


def test_the_label_column_is_documented_as_choosing_labels():
    cohorts = (DOCS / "cohorts.md").read_text(encoding="utf-8")
    faq = (DOCS / "faq.md").read_text(encoding="utf-8")
    assert "pyradiomics' `Label`...) is carried" not in cohorts
    assert "**and it chooses the label values its row keeps**" in " ".join(cohorts.split())
    assert "chooses the label value each row extracts" in " ".join(faq.split())


def test_the_faq_says_dicom_is_read():
    faq = " ".join((DOCS / "faq.md").read_text(encoding="utf-8").split())
    assert "DICOM?** Convert first" not in faq
    assert "**DICOM?** Yes" in faq and "a DICOM SEG as the segmentation" in faq


def test_every_command_has_its_reference_and_the_cases_file_is_named():
    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    for command in ("extract", "train", "score"):
        assert f":module: DENExtractorLib.cli.{command}\n" in cli
    assert ":module: DENExtractorLib.cli.robustness\n" in (DOCS / "robustness.md").read_text(encoding="utf-8")
    assert "[robustness page](robustness.md)" in cli
    cohorts = (DOCS / "cohorts.md").read_text(encoding="utf-8")
    assert "The cases CSV, `cases.csv`:\n\n<!-- file: cases.csv -->" in cohorts


def test_no_help_text_holds_an_address_the_site_makes_a_link():
    from DENExtractorLib.cli import extract, score, train

    for module in (extract, score, train):
        helps = [action.help or "" for action in module.build_parser()._actions]
        assert not [text for text in helps if re.search(r"\b[a-z]+://\S", text)], module.__name__
