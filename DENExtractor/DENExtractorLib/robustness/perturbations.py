"""Perturbed segmentations that model rater variability: a fixed, seeded plan and the function that applies it.

Every perturbation works on the label map as extraction sees it (after ``--labels``), on the case's own voxel grid,
and is described by its kind, parameters and seed, so :func:`perturb` rebuilds it exactly from its record:

- ``original``: the segmentation itself (one member of the set, as one rater's contour);
- ``dilate`` / ``erode``: the tumour grown or shrunk by one voxel (6-connected); a new rim voxel takes the largest
  label among its 6 neighbours, eroded voxels become background; inner label borders stay where they are;
- ``rotate``: a rigid rotation by ``degrees`` about the RAS axis ``axis``, through the tumour's centroid, applied in
  RAS millimetres through the case's affine and resampled by nearest neighbour (no new label values);
- ``translate``: a rigid shift by ``mm`` along the RAS axis ``axis``, resampled the same way;
- ``contour``: contour randomisation after Zwanenburg et al. (Sci Rep 2019): the tumour's surroundings are cut into
  supervoxels, and each supervoxel the contour crosses is kept with probability equal to the share of it inside the
  segmentation. A label map has no intensities for SLIC to follow, so the supervoxels are the Voronoi cells of a
  jittered grid of seeds ``cell_mm`` apart (drawn from ``seed``); a voxel added takes the label of the nearest
  tumour voxel.

Needs SciPy (``pip install -e '.[robustness]'`` from a checkout).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DENError
from ..volume import Volume, select_labels

KINDS = ("dilate", "erode", "rotate", "translate", "contour")
"""The kinds a plan may include (the original is always its first member)."""
ORIGINAL = "original"
RAS_AXES = ("R", "A", "S")
SIX_NEIGHBOURS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


@dataclass(frozen=True)
class Perturbation:
    """One perturbed input: its kind, parameters (JSON values) and seed (None for the deterministic kinds)."""

    kind: str
    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @property
    def name(self) -> str:
        """A short name for tables and messages, e.g. ``rotate +3° about S``."""
        values = self.parameters
        if self.kind in ("dilate", "erode"):
            return f"{self.kind} {values['voxels']} voxel"
        if self.kind == "rotate":
            return f"rotate {values['degrees']:+g}° about {values['axis']}"
        if self.kind == "translate":
            return f"translate {values['mm']:+g} mm along {values['axis']}"
        if self.kind == "contour":
            return f"contour randomisation (seed {self.seed})"
        return self.kind

    def record(self) -> dict:
        """The perturbation as JSON data: enough, with the input file, to rebuild it (:func:`perturb`)."""
        return {"kind": self.kind, "parameters": dict(self.parameters), "seed": self.seed}

    @classmethod
    def from_record(cls, record: dict) -> Perturbation:
        """The perturbation a :meth:`record` describes."""
        return cls(record["kind"], dict(record["parameters"]), record["seed"])


@dataclass(frozen=True)
class PerturbationPlan:
    """The perturbations every case of a run gets, in a fixed order: the original first, then per kind.

    ``rotation_degrees``: +- this angle about each RAS axis (6 inputs); ``translation_mm``: +- this shift along
    each RAS axis (6 inputs); ``contours``: how many contour randomisations, seeded ``seed``, ``seed + 1``...;
    ``contour_cell_mm``: the supervoxels' spacing.
    """

    kinds: tuple[str, ...] = KINDS
    rotation_degrees: float = 3.0
    translation_mm: float = 2.0
    contours: int = 3
    contour_cell_mm: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse kinds and sizes that make no perturbation, naming the option."""
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        checks = [
            ("kinds", not unknown and len(set(self.kinds)) == len(self.kinds) and bool(self.kinds),
             f"{', '.join(self.kinds) or 'none'}: choose distinct kinds among {', '.join(KINDS)}"),
            ("rotation_degrees", 0 < self.rotation_degrees <= 45, f"{self.rotation_degrees:g} must lie in (0, 45]"),
            ("translation_mm", 0 < self.translation_mm <= 50, f"{self.translation_mm:g} must lie in (0, 50]"),
            ("contours", 1 <= self.contours <= 100, f"{self.contours} must lie between 1 and 100"),
            ("contour_cell_mm", 1 <= self.contour_cell_mm <= 50, f"{self.contour_cell_mm:g} must lie in [1, 50]"),
            ("seed", 0 <= self.seed < 2**32 - 100, f"{self.seed} must be a whole number from 0 to {2**32 - 101}"),
        ]
        for name, passed, fault in checks:
            if not passed:
                raise DENError(name, fault)

    def perturbations(self) -> list[Perturbation]:
        """The perturbed inputs of every case, the original first."""
        members = [Perturbation(ORIGINAL)]
        for kind in KINDS:  # the order of KINDS, whatever order the kinds were given in
            if kind not in self.kinds:
                continue
            if kind in ("dilate", "erode"):
                members.append(Perturbation(kind, {"voxels": 1, "connectivity": 6}))
            elif kind == "rotate":
                members += [Perturbation(kind, {"degrees": sign * self.rotation_degrees, "axis": axis,
                                                "centre": "tumour centroid"})
                            for axis in RAS_AXES for sign in (1, -1)]
            elif kind == "translate":
                members += [Perturbation(kind, {"mm": sign * self.translation_mm, "axis": axis})
                            for axis in RAS_AXES for sign in (1, -1)]
            else:
                members += [Perturbation(kind, {"cell_mm": self.contour_cell_mm}, self.seed + index)
                            for index in range(self.contours)]
        return members

    def record(self) -> list[dict]:
        """The plan as JSON data: every member's record, in order (what resume and pooling compare)."""
        return [member.record() for member in self.perturbations()]


def perturb(segmentation: Volume, perturbation: Perturbation) -> Volume:
    """The segmentation perturbed as ``perturbation`` says, on the same grid, with the same label dtype.

    Raises :class:`DENError` naming the segmentation when the perturbation leaves no tumour.
    """
    data = segmentation.data
    if perturbation.kind == ORIGINAL:
        return segmentation
    mask = data != 0
    if perturbation.kind in ("dilate", "erode"):
        box = _tumour_box(mask, np.ones(3))  # the voxels a one-voxel change can reach
        changed = np.zeros_like(data)
        changed[box] = (_dilated(data[box], mask[box]) if perturbation.kind == "dilate"
                        else np.where(_eroded(mask[box]), data[box], 0))
    elif perturbation.kind in ("rotate", "translate"):
        changed = _moved(data, mask, segmentation.affine, perturbation)
    elif perturbation.kind == "contour":
        changed = _randomised_contour(data, mask, segmentation.affine, perturbation)
    else:
        raise DENError(segmentation.source, f"unknown perturbation kind {perturbation.kind!r}")
    if not changed.any():
        raise DENError(segmentation.source, f"{perturbation.name} leaves no tumour voxel: the segmentation is too "
                                            "small for this perturbation (leave its kind out with --kinds)")
    return Volume(changed, segmentation.affine, f"{segmentation.source} [{perturbation.name}]", None,
                  segmentation.segments)


def rebuild_perturbation(segmentation: Volume, member: dict, labels: str | list[int] = "all") -> Volume:
    """A perturbed input rebuilt from the segmentation it was made from and its record (an entry of a case
    record's ``perturbations``; ``labels``: the record's ``settings["labels"]``), checked against the sha256 recorded
    for it. Raises :class:`DENError` when the rebuilt label map differs (another file, or another SciPy's
    resampling)."""
    kept = segmentation if isinstance(labels, str) else select_labels(segmentation, labels)
    rebuilt = perturb(kept, Perturbation.from_record(member))
    if label_sha256(rebuilt.data) != member["label_sha256"]:
        raise DENError(segmentation.source, f"{rebuilt.source}: the rebuilt label map differs from the one recorded")
    return rebuilt


def label_sha256(data: np.ndarray) -> str:
    """The sha256 of a label array's shape, dtype and values (C order): a rebuilt perturbation must match it."""
    digest = hashlib.sha256(f"{data.shape}{data.dtype.str}".encode())
    digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()


def tumour_volume_mm3(segmentation: Volume) -> float:
    """The tumour's volume: its voxels (non-zero labels) times one voxel's volume from the affine."""
    voxel_mm3 = abs(float(np.linalg.det(segmentation.affine[:3, :3])))
    return float(np.count_nonzero(segmentation.data)) * voxel_mm3


def _shifted(mask: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """``mask`` moved by one voxel along ``offset`` (what a voxel's neighbour at ``-offset`` holds), False outside."""
    out = np.zeros_like(mask)
    source = tuple(slice(max(-step, 0), mask.shape[axis] - max(step, 0)) for axis, step in enumerate(offset))
    target = tuple(slice(max(step, 0), mask.shape[axis] - max(-step, 0)) for axis, step in enumerate(offset))
    out[target] = mask[source]
    return out


def _dilated(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Background voxels touching the tumour (6-connected) take the largest label among their neighbours."""
    grown = data.copy()
    largest = np.zeros_like(data)
    for offset in SIX_NEIGHBOURS:
        np.maximum(largest, _shifted(data, offset), out=largest)
    rim = ~mask & (largest != 0)
    grown[rim] = largest[rim]
    return grown


def _eroded(mask: np.ndarray) -> np.ndarray:
    """The tumour voxels whose 6 neighbours are all tumour (voxels at the volume's edge count as touching
    background)."""
    kept = mask.copy()
    for offset in SIX_NEIGHBOURS:
        kept &= _shifted(mask, offset)
    return kept


def _spacing(affine: np.ndarray) -> np.ndarray:
    """The voxel size along each stored axis, in mm."""
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


def _tumour_box(mask: np.ndarray, margin: np.ndarray) -> tuple[slice, ...]:
    """The tumour's bounding box grown by ``margin`` voxels per axis, within the volume."""
    found = np.nonzero(mask)
    return tuple(slice(max(int(axis.min()) - int(pad), 0), min(int(axis.max()) + int(pad) + 1, length))
                 for axis, pad, length in zip(found, margin, mask.shape, strict=True))


def _rigid_world_transform(perturbation: Perturbation, centroid: np.ndarray) -> np.ndarray:
    """The 4x4 RAS transform (mm) of a rotation about the centroid or a translation."""
    values = perturbation.parameters
    axis = RAS_AXES.index(values["axis"])
    transform = np.eye(4)
    if perturbation.kind == "translate":
        transform[axis, 3] = float(values["mm"])
        return transform
    angle = math.radians(float(values["degrees"]))
    first, second = [index for index in range(3) if index != axis]  # right-handed about R, A or S
    if axis == 1:
        first, second = second, first
    rotation = np.eye(3)
    rotation[first, first] = rotation[second, second] = math.cos(angle)
    rotation[first, second], rotation[second, first] = -math.sin(angle), math.sin(angle)
    transform[:3, :3] = rotation
    transform[:3, 3] = centroid - rotation @ centroid
    return transform


def _moved(data: np.ndarray, mask: np.ndarray, affine: np.ndarray, perturbation: Perturbation) -> np.ndarray:
    """The label map under a rigid RAS transform, resampled by nearest neighbour on its own grid: each voxel of
    the output takes the label at the inverse-transformed position. Only a box around the tumour is resampled."""
    from scipy import ndimage

    found = np.argwhere(mask)
    centroid = (affine @ np.append(found.mean(axis=0), 1.0))[:3]
    world = _rigid_world_transform(perturbation, centroid)
    voxel_map = np.linalg.inv(affine) @ np.linalg.inv(world) @ affine  # output voxel -> input voxel
    spacing = _spacing(affine)
    reach_mm = np.linalg.norm((found - found.mean(axis=0)) * spacing, axis=1).max()
    shift_mm = abs(math.radians(float(perturbation.parameters.get("degrees", 0)))) * reach_mm + abs(
        float(perturbation.parameters.get("mm", 0)))
    box = _tumour_box(mask, np.ceil(shift_mm / spacing) + 2)
    low = np.array([part.start for part in box], dtype=np.float64)
    out = np.zeros_like(data)
    out[box] = ndimage.affine_transform(data, voxel_map[:3, :3], offset=voxel_map[:3, :3] @ low + voxel_map[:3, 3],
                                        output_shape=tuple(part.stop - part.start for part in box), order=0,
                                        mode="constant", cval=0, output=data.dtype)
    return out


def _randomised_contour(data: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                        perturbation: Perturbation) -> np.ndarray:
    """Zwanenburg's contour randomisation on Voronoi supervoxels of a jittered seed grid (see the module)."""
    from scipy import ndimage

    spacing = _spacing(affine)
    cell = np.maximum(np.round(float(perturbation.parameters["cell_mm"]) / spacing), 1).astype(int)
    box = _tumour_box(mask, cell + 1)  # every supervoxel that can reach the tumour
    inside = mask[box]
    random = np.random.default_rng(perturbation.seed)
    corners = np.stack(np.meshgrid(*[np.arange(0, length, step) for length, step in zip(inside.shape, cell, strict=True)],
                                   indexing="ij"), axis=-1).reshape(-1, 3)
    seeds = corners + np.floor(random.random(corners.shape) * cell).astype(int)  # one voxel in each grid cell
    seeds = seeds[(seeds < inside.shape).all(axis=1)]
    seed_image = np.zeros(inside.shape, dtype=np.int64)
    seed_image[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    nearest_seed = ndimage.distance_transform_edt(seed_image == 0, sampling=spacing, return_distances=False,
                                                  return_indices=True)
    supervoxel = seed_image[tuple(nearest_seed)] - 1  # Voronoi cells in millimetres
    share_inside = (np.bincount(supervoxel.ravel(), weights=inside.ravel(), minlength=len(seeds))
                    / np.maximum(np.bincount(supervoxel.ravel(), minlength=len(seeds)), 1))
    kept = (random.random(len(seeds)) < share_inside)[supervoxel]
    nearest = ndimage.distance_transform_edt(~inside, sampling=spacing, return_distances=False, return_indices=True)
    out = np.zeros_like(data)
    out[box] = np.where(kept, data[box][tuple(nearest)], 0)
    return out
