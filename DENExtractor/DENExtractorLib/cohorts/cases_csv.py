"""Reading a cohort from a cases CSV: one row per case, ``case_id, segmentation[, image]``, any other columns kept.

The format, as a user writes it::

    case_id,segmentation,image,label,site
    pat0001,pat0001/OTMultiClass.nii.gz,pat0001/Flair.nii.gz,1,Bern
    pat0002,/data/pat0002/OTMultiClass.nii.gz,,0,Bern

- Column names are matched without regard to case or surrounding spaces. pyradiomics' batch headers work as they
  are: ``Mask`` stands for ``segmentation``, ``Image`` for ``image`` and ``ID`` for ``case_id`` (each only when our
  own name is absent). Without an id column, a case is named by its segmentation's file name (``pat1.nii.gz`` ->
  ``pat1``), or by its folder's name where file names are equal or generic (``pat0002/OTMultiClass.nii.gz`` ->
  ``pat0002``), as files given on the command line are.
- Relative paths resolve against the CSV's folder, not the working directory. An empty ``image`` cell means the
  case has no MRI. An optional ``grid`` column names the image (a DICOM series folder) whose grid a DICOM SEG is
  placed on in label mode (``--grid``); ``series`` the Series Instance UID to read from a DICOM folder holding
  several (``--series``); ``roi`` the ROI an RTSTRUCT is read for (``--roi``).
- Every other column (``label``, ``site``, pyradiomics' ``Label``...) is carried through unchanged, in order.
- pyradiomics' ``Label`` column (spelt so, as pyradiomics writes it; a lower-case ``label`` is a class for
  ``den-train``) keeps that label value for its row exactly as ``--labels`` does for a run (``1,4``, quoted, keeps
  two); an empty cell means the run's ``--labels``. ``Label_channel`` may be empty or 0 (DEN reads one label map
  per case; a ``.seg.nrrd``'s layers are merged, each segment keeping its own value). A value that cannot be
  honoured (``0``, ``1.5``, ``tumour``, channel 1) is that row's problem, named with its row number. den-extract
  asks for this with ``select_labels=True``; den-train reads the column as any other.
- Row numbers are the file's line numbers (the header's line counts), so an editor jumps straight to a fault.

Faults of the whole file (no such file, not UTF-8 text, empty, a missing ``segmentation`` column, a
repeated column name, a case id used twice, no rows) raise :class:`~DENExtractorLib.errors.DENError`. A fault of one
row (an empty or unusable case id, a missing file, a wrong number of cells) does not: the row is kept with its
``problem``, so the cohort runs every other case and reports that one as failed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DENError
from ..readers import strip_volume_suffix
from .cases import Case, file_case_ids

CASE_ID_COLUMN, SEGMENTATION_COLUMN, IMAGE_COLUMN, GRID_COLUMN = "case_id", "segmentation", "image", "grid"
SERIES_COLUMN, ROI_COLUMN = "series", "roi"
PYRADIOMICS_ALIASES = {CASE_ID_COLUMN: "id", SEGMENTATION_COLUMN: "mask", IMAGE_COLUMN: "image", GRID_COLUMN: "grid",
                       SERIES_COLUMN: "series", ROI_COLUMN: "roi"}
MAX_CASE_ID_LENGTH = 200
LABEL_COLUMN, LABEL_CHANNEL_COLUMN = "Label", "Label_channel"
"""pyradiomics' batch-file columns choosing the label value (and the channel of a multi-channel mask) per row."""


@dataclass(frozen=True)
class CaseRow:
    """One data row of a cases CSV.

    ``row`` is its line number in the file; ``columns`` holds the carried-through cells by column name, in the
    file's order; ``problem`` is the one-line reason this case cannot run (``None`` when it can). A row with a
    problem may lack its segmentation path (``None``).
    """

    row: int
    case_id: str
    segmentation: Path | None
    image: Path | None
    columns: Mapping[str, str]
    problem: str | None = None
    labels: tuple[int, ...] | None = None
    grid: Path | None = None
    series: str | None = None
    roi: str | None = None

    @property
    def case(self) -> Case:
        """The row as a cohort :class:`~DENExtractorLib.cohorts.cases.Case` (only for rows without a problem)."""
        if self.problem is not None or self.segmentation is None:
            raise ValueError(f"row {self.row} has a problem and cannot run: {self.problem}")
        return Case(self.case_id, self.segmentation, self.image, self.labels, self.grid, self.series, self.roi)


@dataclass(frozen=True)
class CasesTable:
    """A read cases CSV: its path, the carried-through column names, and every data row in file order."""

    source: Path
    carried_columns: tuple[str, ...]
    rows: tuple[CaseRow, ...]

    @property
    def cases(self) -> list[Case]:
        """The runnable cases (rows without a problem), in file order."""
        return [row.case for row in self.rows if row.problem is None]

    @property
    def problems(self) -> list[CaseRow]:
        """The rows that cannot run, each with its one-line ``problem``."""
        return [row for row in self.rows if row.problem is not None]

    @property
    def carried_cells(self) -> dict[str, Mapping[str, str]]:
        """Every row's carried-through cells by case id, as the cohort tables take them
        (``cohort_dataframe(outcomes, table.carried_columns, table.carried_cells, settings=...)``)."""
        return {row.case_id: row.columns for row in self.rows}

    def columns_of(self, case_id: str) -> Mapping[str, str]:
        """The carried-through cells of the case ``case_id`` (empty if no row has that id)."""
        return next((row.columns for row in self.rows if row.case_id == case_id), {})


def read_cases_csv(path: str | Path, *, select_labels: bool = False) -> CasesTable:
    """Read a cases CSV (see the module docstring for its format) into a :class:`CasesTable`.

    Raises :class:`DENError` naming the file (and the rows) for a fault of the whole file; a fault of one row
    becomes that row's ``problem``. With ``select_labels``, pyradiomics' ``Label`` and ``Label_channel`` columns
    choose each row's label values (``CaseRow.labels``).
    """
    path = Path(path)
    records = _read_records(path)
    names = [name.strip() for name in records[0][1]]
    roles = _column_roles(names, path)
    carried = tuple(name for index, name in enumerate(names) if index not in roles.values())
    data = records[1:]
    if not data:
        raise DENError(path, "no cases: the header row is followed by no data rows")
    rows = tuple(_case_row(line, cells, names, roles, carried, path) for line, cells in data)
    if CASE_ID_COLUMN not in roles:
        rows = _named_by_files(rows)
    if select_labels:
        rows = tuple(_with_row_labels(row, path) for row in rows)
    _refuse_repeated_ids(rows, path)
    return CasesTable(path, carried, rows)


def _read_records(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank records of the file with their line numbers; the first is the header."""
    if not path.is_file():
        raise DENError(path, "no such cases file")
    records = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            line = 1
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    records.append((line, cells))
                line = reader.line_num + 1
    except UnicodeDecodeError:
        raise DENError(path, "not a UTF-8 text file; save the cases table as CSV (UTF-8)") from None
    except csv.Error as error:
        raise DENError(f"{path} row {reader.line_num}", f"unreadable CSV: {error}") from None
    if not records:
        raise DENError(path, "empty file: expected a header row such as 'case_id,segmentation,image'")
    return records


def _column_roles(names: list[str], path: Path) -> dict[str, int]:
    """Which column holds the case id, segmentation and image (by index); refuse repeated or missing columns."""
    folded = [name.lower() for name in names]
    for index, name in enumerate(folded):
        if name in folded[:index]:
            first = folded.index(name) + 1
            raise DENError(path, f"the column {names[index]!r} appears twice in the header" if name else
                                 f"columns {first} and {index + 1} of the header have no name: name them or remove them")
    roles = {}
    for role, alias in PYRADIOMICS_ALIASES.items():
        for name in (role, alias):
            if name in folded:
                roles[role] = folded.index(name)
                break
    if SEGMENTATION_COLUMN not in roles:
        found = ", ".join(repr(name) for name in names)
        raise DENError(path, f"no 'segmentation' (or pyradiomics 'Mask') column; the header has {found}")
    return roles


def _case_row(line: int, cells: list[str], names: list[str], roles: dict[str, int],
              carried: tuple[str, ...], path: Path) -> CaseRow:
    """One data row, with its problem if it cannot run."""
    cells = [cell.strip() for cell in cells]
    padded = cells + [""] * (len(names) - len(cells))
    by_name = dict(zip(names, padded, strict=False))  # extra cells are this row's problem, found below
    columns = {name: by_name[name] for name in carried}
    segmentation_cell = padded[roles[SEGMENTATION_COLUMN]]
    image_cell = padded[roles[IMAGE_COLUMN]] if IMAGE_COLUMN in roles else ""
    segmentation = _resolve(segmentation_cell, path) if segmentation_cell else None
    image = _resolve(image_cell, path) if image_cell else None
    grid_cell = padded[roles[GRID_COLUMN]] if GRID_COLUMN in roles else ""
    grid = _resolve(grid_cell, path) if grid_cell else None
    if CASE_ID_COLUMN in roles:
        case_id = padded[roles[CASE_ID_COLUMN]]
    else:
        case_id = strip_volume_suffix(segmentation_cell) if segmentation_cell else ""
    problem = _row_problem(cells, names, case_id, segmentation, image)
    if problem is None and grid is not None and not grid.exists():
        problem = f"case {case_id!r}: grid not found: {grid}"
    message = str(DENError(f"{path} row {line}", problem)) if problem else None
    series, roi = (padded[roles[role]] if role in roles else "" for role in (SERIES_COLUMN, ROI_COLUMN))
    return CaseRow(line, case_id, segmentation, image, columns, message, grid=grid, series=series or None,
                   roi=roi or None)


def _named_by_files(rows: tuple[CaseRow, ...]) -> tuple[CaseRow, ...]:
    """Rows without an id column named as segmentation files given on the command line are
    (:func:`~.cases.file_case_ids`): equal or generic file names take their folder's name."""
    named = {row.row: row.segmentation for row in rows if row.segmentation is not None}
    ids = dict(zip(named, file_case_ids(list(named.values())), strict=True))
    return tuple(replace(row, case_id=ids[row.row]) if row.row in ids else row for row in rows)


def _row_problem(cells: list[str], names: list[str], case_id: str, segmentation: Path | None,
                 image: Path | None) -> str | None:
    """Why a row cannot run, or None."""
    if len(cells) != len(names):
        return f"{len(cells)} cells where the header has {len(names)} columns"
    if segmentation is None:
        return "the segmentation cell is empty"
    id_fault = case_id_fault(case_id)
    if id_fault:
        return id_fault
    if not segmentation.is_file():
        return f"case {case_id!r}: segmentation file not found: {segmentation}"
    if image is not None and not (image.is_file() or image.is_dir()):  # a folder: a DICOM image series
        return f"case {case_id!r}: image file not found: {image}"
    return None


def _with_row_labels(row: CaseRow, path: Path) -> CaseRow:
    """The row with the label values its ``Label`` cell keeps, or with the problem of a cell that cannot be honoured."""
    if row.problem is not None:
        return row
    labels, problem = row_labels(row.columns.get(LABEL_COLUMN, ""), row.columns.get(LABEL_CHANNEL_COLUMN, ""))
    if problem is not None:
        return replace(row, problem=str(DENError(f"{path} row {row.row}", f"case {row.case_id!r}: {problem}")))
    return replace(row, labels=labels)


def row_labels(label_cell: str, channel_cell: str) -> tuple[tuple[int, ...] | None, str | None]:
    """(label values, None) that a ``Label`` cell keeps (None: the run's ``--labels``), or (None, why not).

    ``4`` keeps 4, ``1,4`` keeps 1 and 4, ``4.0`` (a spreadsheet's whole number) keeps 4; ``0``, negative,
    fractional or non-numeric values cannot be honoured, nor a ``Label_channel`` other than empty or 0.
    """
    channel = channel_cell.strip()
    if channel and _whole_number(channel) != 0:
        return None, (f"{LABEL_CHANNEL_COLUMN} {_shown_cell(channel)} cannot be honoured: DEN reads one label map per case (a "
                      ".seg.nrrd's layers are merged, each segment keeping its label value); give the segment's "
                      f"value in {LABEL_COLUMN} and leave {LABEL_CHANNEL_COLUMN} empty or 0")
    if not label_cell.strip():
        return None, None
    parts = [part.strip() for part in label_cell.split(",")]
    values = [_whole_number(part) for part in parts]
    if any(value is None or value <= 0 for value in values):
        return None, (f"{LABEL_COLUMN} {_shown_cell(label_cell)} cannot be honoured: give a positive whole label value "
                      "(0 is background), or several as '1,4'")
    return tuple(sorted({int(value) for value in values if value is not None})), None


SHOWN_CELL_CHARACTERS = 40
"""How much of a refused cell a message repeats."""


def _shown_cell(cell: str) -> str:
    """A cell as a message quotes it, cut to :data:`SHOWN_CELL_CHARACTERS`."""
    text = cell.strip()
    return repr(text if len(text) <= SHOWN_CELL_CHARACTERS else text[: SHOWN_CELL_CHARACTERS - 3] + "...")


def _whole_number(text: str) -> int | None:
    """``text`` as a whole number (``4`` or ``4.0``), or None when it is not one."""
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def case_id_fault(case_id: str) -> str | None:
    """Why ``case_id`` cannot name output files (``{id}_den.npy``...), or None when it can.

    An id must be one plain file-name part: not empty, no path separator, no leading dot, no control character,
    at most 200 characters, so outputs always land inside the output folder.
    """
    if not case_id:
        return "the case id is empty"
    if "/" in case_id or "\\" in case_id:
        return f"case id {case_id!r} contains a path separator; it must be a plain name"
    if case_id.startswith("."):
        return f"case id {case_id!r} starts with a dot; it must be a plain name"
    if any(ord(character) < 32 or ord(character) == 127 for character in case_id):
        return f"case id {case_id!r} contains a control character"
    if len(case_id) > MAX_CASE_ID_LENGTH:
        return f"case id is {len(case_id)} characters long; at most {MAX_CASE_ID_LENGTH} are allowed"
    return None


def _resolve(cell: str, path: Path) -> Path:
    """A path cell, relative paths taken against the CSV's folder."""
    written = Path(cell)
    return written if written.is_absolute() else path.parent / written


def _refuse_repeated_ids(rows: tuple[CaseRow, ...], path: Path) -> None:
    """Two rows with one case id would overwrite each other's outputs: refuse the file, naming both rows."""
    first_row: dict[str, int] = {}
    for row in rows:
        if not row.case_id:
            continue
        if row.case_id in first_row:
            raise DENError(path, f"case id {row.case_id!r} is used on rows {first_row[row.case_id]} and {row.row}; "
                                 "each case needs its own id")
        first_row[row.case_id] = row.row
