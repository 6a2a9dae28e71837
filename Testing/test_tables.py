"""Tables a statistician opens directly: den_cohort.csv typed by pandas, the settings per row, Parquet, the
per-slice table, and DataFrames from the API."""

from __future__ import annotations

import numpy as np
import pytest
from DENExtractorLib.cohorts.cases import Case
from DENExtractorLib.cohorts.run import run_cohort
from DENExtractorLib.cohorts.table import SETTINGS_COLUMNS, cohort_dataframe, write_cohort_parquet
from DENExtractorLib.network.bundled import MODEL_ID, REFERENCE_WEIGHTS_SHA256
from DENExtractorLib.outputs.output_folder import prepare_output_folder
from helpers import DATA, run_cli

pandas = pytest.importorskip("pandas")

CAPTK = DATA / "captk_AAAC0"
CAPTK_MASK = CAPTK / "AAAC0_flair_pp_shrunk_testTumor.nii.gz"
CAPTK_FLAIR = CAPTK / "AAAC0_flair_pp_shrunk.nii.gz"


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory, small_case):
    """den-extract --cases with a real image-mode case, a small label map keeping label 4, and a missing file,
    writing every table."""
    folder = tmp_path_factory.mktemp("tables")
    cases = folder / "cases.csv"
    cases.write_text("ID,Image,Mask,Label,site\n"
                     f"captk,{CAPTK_FLAIR},{CAPTK_MASK},,Philadelphia\n"
                     f"small,,{small_case},4,synthetic\n"
                     "lost,,lost.nii.gz,,nowhere\n", encoding="utf-8")
    out = folder / "out"
    from DENExtractorLib.cli.extract import main

    assert main(["--cases", str(cases), "-o", str(out), "--no-png", "--quiet", "--parquet", "--slice-table"]) == 1
    return out


@pytest.mark.slow
@pytest.mark.needs_data
def test_pandas_reads_every_feature_column_as_float_and_each_row_says_its_settings(cohort_run):
    table = pandas.read_csv(cohort_run / "den_cohort.csv")
    features = [name for name in table.columns if name.startswith(("mean_", "max_"))]
    assert len(features) == 8192
    assert set(table[features].dtypes) == {np.dtype("float64")}
    assert (table.loc[table.case_id == "small", features] == 0).sum(axis=1).iloc[0] > 0  # zero columns, still floats
    assert list(table.columns[:5]) == ["case_id", "Label", "site", "status", "message"]  # columns added, none moved
    rows = table.set_index("case_id")
    assert set(SETTINGS_COLUMNS) <= set(table.columns)
    assert set(rows["model_id"]) == {MODEL_ID} and set(rows["weights_sha256"]) == {REFERENCE_WEIGHTS_SHA256}
    assert set(rows["mode"]) == {"reference"} and rows["plane"].isna().all()
    assert rows.loc["small", "labels"] == "4" and rows.loc["captk", "labels"] == "all"
    assert rows["image_mode"].to_dict() == {"captk": True, "small": False, "lost": False}
    assert rows.loc["captk", "segmentation_path"] == str(CAPTK_MASK)
    assert rows.loc["captk", "image_path"] == str(CAPTK_FLAIR)
    assert rows.loc["lost", "status"] == "failed" and np.isnan(rows.loc["lost", "mean_0"])


@pytest.mark.slow
@pytest.mark.needs_data
def test_the_parquet_table_holds_the_csv_values(cohort_run):
    csv_table = pandas.read_csv(cohort_run / "den_cohort.csv")
    parquet = pandas.read_parquet(cohort_run / "den_cohort.parquet")
    assert list(parquet.columns) == list(csv_table.columns)
    assert parquet["mean_0"].dtype == np.float32 and parquet["image_mode"].dtype == bool
    features = [name for name in csv_table.columns if name.startswith(("mean_", "max_"))]
    np.testing.assert_array_equal(parquet[features].to_numpy(), csv_table[features].to_numpy().astype(np.float32))
    assert parquet["case_id"].tolist() == csv_table["case_id"].tolist()
    rows = dict(zip(parquet["case_id"], parquet["rows"], strict=True))
    assert (rows["captk"], rows["small"]) == (96, 64) and rows["lost"] is pandas.NA
    assert csv_table.set_index("case_id").loc[["captk", "small"], "rows"].tolist() == [96, 64]


@pytest.mark.slow
@pytest.mark.needs_data
def test_the_per_slice_table_has_one_row_per_case_and_slice_equal_to_the_npy(cohort_run):
    slices = pandas.read_parquet(cohort_run / "den_slices.parquet")
    for case_id in ("captk", "small"):
        matrix = np.load(cohort_run / f"{case_id}_den.npy")
        rows = slices[slices.case_id == case_id]
        assert rows["slice"].tolist() == list(range(matrix.shape[0]))
        assert rows.filter(like="feature_").to_numpy().tobytes() == matrix.tobytes()
    assert set(slices.case_id) == {"captk", "small"}  # the failed case has no slices


@pytest.mark.slow
def test_a_cohort_dataframe_round_trips_through_parquet_and_the_csv_slice_table(tmp_path, small_case, capsys):
    from DENExtractorLib import DENExtractor

    out = prepare_output_folder(tmp_path / "out")
    outcomes = run_cohort([Case("small", small_case), Case("small4", small_case, labels=(4,))], out, DENExtractor(),
                          png=False)
    assert [outcome.status for outcome in outcomes] == ["done", "done"], [outcome.message for outcome in outcomes]
    frame = cohort_dataframe(outcomes)
    assert frame["labels"].tolist() == ["all", "4"]
    np.testing.assert_array_equal(frame.filter(like="mean_").to_numpy()[0], outcomes[0].pooled[:4096])
    path = write_cohort_parquet(outcomes, tmp_path / "cohort.parquet")
    pandas.testing.assert_frame_equal(pandas.read_parquet(path), frame)

    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation\nsmall,{small_case}\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", tmp_path / "csv", "--no-png", "--slice-table"], capsys)
    assert status == 0, lines
    slices = pandas.read_csv(tmp_path / "csv" / "den_slices.csv")
    matrix = np.load(tmp_path / "csv" / "small_den.npy")
    assert set(slices.filter(like="feature_").dtypes) == {np.dtype("float64")}
    np.testing.assert_array_equal(slices.filter(like="feature_").to_numpy().astype(np.float32), matrix)
    assert slices["foreground"].dtype == bool and slices["foreground"].sum() == outcomes[0].foreground_rows


@pytest.mark.slow
@pytest.mark.needs_data
def test_an_extraction_result_gives_its_slices_and_pooled_vector_as_pandas(reference_result):
    frame = reference_result.to_dataframe()
    assert frame.shape == (240, 4098)
    assert frame.filter(like="feature_").to_numpy().tobytes() == reference_result.features.tobytes()
    assert np.flatnonzero(frame["foreground"].to_numpy()).tolist() == reference_result.foreground_rows.tolist()
    pooled = reference_result.pooled_series()
    assert pooled.index[0] == "mean_0" and pooled.index[-1] == "max_4095"
    assert pooled.to_numpy().tobytes() == reference_result.pooled.tobytes()


def test_tables_outside_a_cohort_are_refused_before_any_work(tmp_path, small_case, capsys):
    with pytest.raises(SystemExit):
        run_cli([small_case, "-o", tmp_path / "out", "--parquet"], capsys)
    assert "--parquet and --slice-table write cohort tables" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.scale
def test_merging_an_array_job_writes_the_parquet_and_per_slice_tables_too(tmp_path, small_case, capsys):
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation,Label\na,{small_case},4\nb,{small_case},\n", encoding="utf-8")
    out = tmp_path / "out"
    for part in ("0", "1"):
        status, lines = run_cli(["--cases", cases, "-o", out, "--no-png", "--num-parts", "2", "--part-id", part],
                                capsys)
        assert status == 0, lines
    status, lines = run_cli(["--merge", out, "--parquet", "--slice-table"], capsys)
    assert status == 0, lines
    merged = pandas.read_csv(out / "den_cohort.csv")
    parquet = pandas.read_parquet(out / "den_cohort.parquet")
    assert merged["labels"].tolist() == parquet["labels"].tolist() == ["4", "all"]
    np.testing.assert_array_equal(parquet.filter(like="max_").to_numpy(),
                                  merged.filter(like="max_").to_numpy().astype(np.float32))
    slices = pandas.read_parquet(out / "den_slices.parquet")
    assert slices.groupby("case_id").size().to_dict() == {"a": 64, "b": 64}


@pytest.mark.parametrize("column", ["mode", "Labels", "weights_sha256", "image_path"])
def test_a_cases_csv_column_named_like_a_new_table_column_is_refused(tmp_path, small_case, capsys, column):
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation,{column}\nsmall,{small_case},x\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", tmp_path / "out"], capsys)
    assert status == 2
    assert lines == [f"den-extract: error: {cases}: the column {column!r} would clash with den_cohort.csv's own column "
                     "of that name: rename it"]
