"""Settings files (``den-extract --params den.yaml``): every extraction setting in one checked YAML file.

The file, as a study records it::

    mode: oriented        # reference (default) or oriented
    plane: coronal        # oriented mode only: axial (default), coronal or sagittal
    labels: [1, 4]        # label values to keep (a number, a list, or "all")
    weights: den_grade.weights.h5   # relative to this file's folder; "bundled" or absent: den-ref-v1
    png: false            # draw the heatmap pictures (default true)
    parquet: true         # cohort tables as Parquet too (default false)
    slice_table: true     # the per-slice table (default false)

It is read with PyYAML's ``SafeLoader`` (plain data only: no tags, no code run), at most 64 KiB from a regular file
(never a FIFO, device or ``/proc`` file), with no aliases and at most four levels of nesting. Every key
and value is checked against :data:`SCHEMA` before any case is read, each fault refused in one line naming the file
and the key. An option given on the command line wins over the file; the provenance of every case records the
effective settings and where each came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DENError
from .readers.limits import read_bounded_bytes
from .settings import MODES, PLANES

MAX_PARAMS_BYTES = 64 * 1024
"""A settings file is a few lines; anything larger is not one."""

MAX_PARAMS_DEPTH = 4
"""How deeply a settings file may nest (a list of labels under a key is depth 2); deeper is not a settings file."""

SHOWN_VALUE_CHARACTERS = 60
"""How much of a refused value a message repeats."""


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr, cut to :data:`SHOWN_VALUE_CHARACTERS`."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARACTERS else text[: SHOWN_VALUE_CHARACTERS - 3] + "..."


def _choice(choices: tuple[str, ...]) -> Callable[[Any, Path], Any]:
    """A check that the value is one of ``choices``."""
    def check(value: Any, folder: Path) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{_shown(value)} is not one of {', '.join(choices)}")
        return value
    return check


def _labels(value: Any, folder: Path) -> tuple[int, ...] | None:
    """``all``, a positive whole number, or a list of them."""
    if value == "all":
        return None
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(item, bool) or not isinstance(item, int) or item <= 0 for item in values):
        raise ValueError(f"{_shown(value)} is not 'all', a positive whole number or a list of them, e.g. [1, 4]")
    return tuple(sorted(set(values)))


def _weights(value: Any, folder: Path) -> Path | None:
    """``bundled``, or a weights file, relative paths taken from the settings file's folder."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{_shown(value)} is not a file name (or 'bundled')")
    if value == "bundled":
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path


def _label_max(value: Any, folder: Path) -> float | str:
    """Oriented mode's label scale: a positive number, or ``case``."""
    if value == "case":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{_shown(value)} is not a positive number or 'case'")
    return float(value)


def _flag(value: Any, folder: Path) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{_shown(value)} is not true or false")
    return value


SCHEMA: dict[str, Callable[[Any, Path], Any]] = {
    "mode": _choice(MODES),
    "plane": _choice(PLANES),
    "labels": _labels,
    "weights": _weights,
    "label_max": _label_max,
    "png": _flag,
    "parquet": _flag,
    "slice_table": _flag,
}
"""Every key a settings file may hold, with the check (and conversion) of its value."""


@dataclass(frozen=True)
class ParamsFile:
    """A checked settings file: its path, its bytes' sha256, and the settings it gives (converted values)."""

    path: Path
    sha256: str
    values: dict[str, Any]

    @property
    def origin(self) -> str:
        """How the provenance names this file as a setting's source."""
        return f"params file {self.path} (sha256 {self.sha256})"


def read_params(path: str | Path) -> ParamsFile:
    """Read and check a settings file; raise one-line :class:`DENError` naming the file (and key) for any fault."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise DENError(path, "no such settings file")
    content = read_bounded_bytes(path, MAX_PARAMS_BYTES, "settings file")  # never a FIFO, device or /proc file
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise DENError(path, "not a UTF-8 text file") from None
    try:
        loaded = yaml.load(text, Loader=_settings_loader(yaml))  # a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "unreadable"
        raise DENError(path, f"not valid YAML{where}: {problem}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise DENError(path, "a settings file holds 'key: value' lines (mode: oriented ...), not a list or a value")
    return ParamsFile(path, hashlib.sha256(content).hexdigest(), _checked(loaded, path))


def _settings_loader(yaml: Any) -> type:
    """PyYAML's SafeLoader (plain data only) for a settings file: no aliases (``*name``: a few hundred bytes of
    them expand to gigabytes), at most :data:`MAX_PARAMS_DEPTH` levels of nesting, each key a plain value given
    once (a key given twice is refused instead of the last one kept silently)."""

    class SettingsLoader(yaml.SafeLoader):
        """SafeLoader with aliases, deep nesting and repeated or unhashable keys refused."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a settings file",
                                                  event.start_mark)
            if self.depth >= MAX_PARAMS_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_PARAMS_DEPTH} levels deep",
                                                  event.start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(None, None, "a key must be a setting name, not a list or "
                                                        "mapping", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {_shown(key)} appears twice",
                                                        key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    SettingsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return SettingsLoader


def _checked(loaded: dict, path: Path) -> dict[str, Any]:
    """Each key known and each value valid, converted."""
    values = {}
    for key, value in loaded.items():
        check = SCHEMA.get(key) if isinstance(key, str) else None
        if check is None:
            raise DENError(path, f"unknown setting {_shown(key)}; a settings file may hold {', '.join(SCHEMA)}")
        try:
            values[key] = check(value, path.parent)
        except ValueError as error:
            raise DENError(path, f"{key}: {error}") from None
    return values
