"""The cohorts layer: cases (:mod:`.cases`) found by pattern or listed in a cases CSV (:mod:`.cases_csv`), run in
this process (:mod:`.run`), in worker processes (:mod:`.processes`, :mod:`.case_worker`) or on a Dask cluster
(:mod:`.dask_cluster`), with the runner chosen in :mod:`.runners`; finished cases skipped (:mod:`.resume`), array
jobs (:mod:`.parts`) merged (:mod:`.merge`) into the cohort table (:mod:`.table`).
"""
