"""Comparing a predicted label map with a reference, structure by structure.

Structures are paired across the two inputs (`match_structures`):

- when both inputs name their labels (SEG segments, or a label-name file for NIfTI/npy), by
  name first: SegmentLabel or label name, compared in lower case with runs of other characters
  than letters and digits read as one underscore ("Left lung" = "left-lung"); a name from the
  node's code table also answers to the SegmentLabel the node writes for it ("lung_left" =
  "Left lung"). Then, among the rest, by Segmented Property Type code (scheme, value and
  modifier, e.g. laterality; PS3.3 C.8.20.2). Pairing is greedy in ascending reference value.
- otherwise by value: label value = SEG Segment Number.

A structure without a partner is still scored (against an empty mask: Dice 0). Scored are the
structures with a voxel in either input, plus those asked for by name or value, even if empty
in both (Dice 1.0, HD95 n/a). The scores are those of `dicom_node.evaluation.metrics`, on the
evaluation grid of `dicom_node.evaluation.grid` (the reference's grid, prediction resampled).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from dicom_node.evaluation.errors import EvaluationError, GridMismatchError
from dicom_node.evaluation.grid import (
    Grid,
    LabelArray,
    Vector3,
    content_box,
    grow_grid,
    pad_into,
    resample_nearest,
)
from dicom_node.evaluation.metrics import OverlapScores, score_masks
from dicom_node.evaluation.readers import CodeKey, LabelImage, SegmentInfo, normalized_name

__all__ = [
    "EvaluationReport",
    "Structure",
    "StructureScores",
    "compare_label_images",
    "match_structures",
]

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Structure:
    """One structure as it appears in each input (None: not in that input)."""

    name: str
    prediction_value: int | None
    reference_value: int | None
    names: frozenset[str] = frozenset()  # normalised names and aliases on both sides


@dataclass(frozen=True)
class StructureScores:
    structure: Structure
    scores: OverlapScores


@dataclass(frozen=True)
class EvaluationReport:
    structures: tuple[StructureScores, ...]
    grid: Grid  # the evaluation grid
    prediction_resampled: bool  # False: both inputs were already on this grid

    def means(self) -> dict[str, float]:
        """Plain mean of each score over the structures where it is defined (NaN if none)."""
        names = [f.name for f in fields(OverlapScores)]
        names += ["volume_difference_ml", "volume_difference_percent"]
        means = {}
        for name in names:
            values = [getattr(item.scores, name) for item in self.structures]
            defined = [value for value in values if not math.isnan(value)]
            means[name] = sum(defined) / len(defined) if defined else math.nan
        return means


def compare_label_images(
    prediction: LabelImage,
    reference: LabelImage,
    *,
    labels: Sequence[str] = (),
    spacing: Vector3 | None = None,
) -> EvaluationReport:
    """Scores of every structure (or of those `labels` names: names or reference values).

    `spacing` (mm per array axis) is for two inputs without geometry (numpy arrays); it is
    an error with inputs that have one."""
    grid, prediction_layers, reference_layers, resampled = _common_layers(
        prediction, reference, spacing
    )
    structures = match_structures(prediction, reference)
    chosen = _select(structures, labels) if labels else None
    prediction_boxes = _boxes(prediction_layers)
    reference_boxes = _boxes(reference_layers)
    scored = []
    for structure in structures:
        predicted = _value_boxes(prediction_boxes, structure.prediction_value)
        expected = _value_boxes(reference_boxes, structure.reference_value)
        if chosen is not None and structure not in chosen:
            continue
        if chosen is None and not predicted and not expected:
            continue  # in neither image: nothing to score
        scores = _score(
            prediction_layers, structure.prediction_value, reference_layers,
            structure.reference_value, _union(predicted + expected), grid.spacing,
        )  # fmt: skip
        scored.append(StructureScores(structure, scores))
    return EvaluationReport(tuple(scored), grid, resampled)


def match_structures(prediction: LabelImage, reference: LabelImage) -> list[Structure]:
    """The structures of both inputs, paired as the module docstring says, in ascending
    reference value, then the prediction's unpaired ones in ascending value."""
    predicted = sorted(set(prediction.segments) | prediction.values())
    expected = sorted(set(reference.segments) | reference.values())
    if not prediction.segments or not reference.segments:
        pairs = [(value, value) for value in sorted(set(predicted) | set(expected))]
        return [
            _structure(
                p if p in predicted else None, r if r in expected else None, prediction, reference
            )
            for p, r in pairs
        ]
    partner: dict[int, int] = {}
    taken: set[int] = set()
    keys: tuple[Callable[[SegmentInfo | None], set[Any]], ...] = (_name_keys, _code_keys)
    for key in keys:
        for ref_value in expected:
            if ref_value in partner:
                continue
            wanted = key(reference.segments.get(ref_value))
            for pred_value in predicted:
                if pred_value not in taken and wanted & key(prediction.segments.get(pred_value)):
                    partner[ref_value] = pred_value
                    taken.add(pred_value)
                    break
    structures = [
        _structure(partner.get(value), value, prediction, reference) for value in expected
    ]
    structures += [
        _structure(value, None, prediction, reference) for value in predicted if value not in taken
    ]
    return structures


def _structure(
    prediction_value: int | None,
    reference_value: int | None,
    prediction: LabelImage,
    reference: LabelImage,
) -> Structure:
    described = [
        info
        for info in (
            None if reference_value is None else reference.segments.get(reference_value),
            None if prediction_value is None else prediction.segments.get(prediction_value),
        )
        if info is not None
    ]
    value = reference_value if reference_value is not None else prediction_value
    name = described[0].name if described else f"label {value}"
    names = frozenset(key for info in described for key in _name_keys(info))
    return Structure(name, prediction_value, reference_value, names)


def _name_keys(info: SegmentInfo | None) -> set[str]:
    if info is None:
        return set()
    return {normalized_name(name) for name in (info.name, *info.aliases)} - {""}


def _code_keys(info: SegmentInfo | None) -> set[CodeKey]:
    return set() if info is None or info.code is None else {info.code}


def _select(structures: Sequence[Structure], labels: Iterable[str]) -> list[Structure]:
    chosen: list[Structure] = []
    for label in labels:
        key = normalized_name(label)
        found = [
            structure
            for structure in structures
            if key in structure.names
            or key == normalized_name(structure.name)
            or (label.strip().isdigit() and int(label) == _value_of(structure))
        ]
        if not found:
            raise EvaluationError(f"--labels: {label!r} is no structure of either input")
        chosen.extend(structure for structure in found if structure not in chosen)
    return chosen


def _value_of(structure: Structure) -> int | None:
    if structure.reference_value is not None:
        return structure.reference_value
    return structure.prediction_value


# --- grids -----------------------------------------------------------------------------------


def _common_layers(
    prediction: LabelImage, reference: LabelImage, spacing: Vector3 | None
) -> tuple[Grid, tuple[LabelArray, ...], tuple[LabelArray, ...], bool]:
    if spacing is not None and (prediction.grid is not None or reference.grid is not None):
        raise GridMismatchError(
            "--spacing is for two inputs without geometry (.npy); "
            f"the {(prediction if prediction.grid is not None else reference).kind} has one"
        )
    if prediction.grid is None or reference.grid is None:
        known = reference.grid or prediction.grid
        grid = (
            known if known is not None else Grid.unit(reference.shape, spacing or (1.0, 1.0, 1.0))
        )
        for image, role in ((prediction, "prediction"), (reference, "reference")):
            if image.shape != grid.shape:
                raise GridMismatchError(
                    f"the {role} ({image.kind}) has shape {_shape(image.shape)}, the grid it "
                    f"must share {_shape(grid.shape)}; an array without geometry cannot be "
                    "placed on another grid"
                )
        return grid, prediction.layers, reference.layers, False
    uids = (prediction.frame_of_reference_uid, reference.frame_of_reference_uid)
    if None not in uids and uids[0] != uids[1]:
        raise GridMismatchError(
            f"prediction and reference are in different frames of reference ({uids[0]} and "
            f"{uids[1]}): their positions cannot be compared"
        )
    if prediction.grid.same_as(reference.grid):
        return reference.grid, prediction.layers, reference.layers, False
    grid, offset = grow_grid(reference.grid, prediction.grid, content_box(prediction.layers))
    reference_layers = tuple(pad_into(layer, grid, offset) for layer in reference.layers)
    prediction_layers = tuple(
        resample_nearest(layer, prediction.grid, grid) for layer in prediction.layers
    )
    return grid, prediction_layers, reference_layers, True


def _shape(shape: tuple[int, int, int]) -> str:
    return "x".join(str(size) for size in shape)


# --- scoring ---------------------------------------------------------------------------------

LayerBoxes = list[list[Box | None]]


def _boxes(layers: tuple[LabelArray, ...]) -> LayerBoxes:
    """Per layer, the bounding box of each value (index value - 1), in one pass per layer."""
    found: LayerBoxes = []
    for layer in layers:
        boxes: list[Box | None] = []
        for box in ndimage.find_objects(layer):
            boxes.append(None if box is None else (box[0], box[1], box[2]))
        found.append(boxes)
    return found


def _value_boxes(boxes: LayerBoxes, value: int | None) -> list[Box]:
    found: list[Box] = []
    if value is None or value < 1:
        return found
    for layer in boxes:
        box = layer[value - 1] if value <= len(layer) else None
        if box is not None:
            found.append(box)
    return found


def _union(boxes: Sequence[Box]) -> Box | None:
    if not boxes:
        return None
    first, rows, columns = (
        slice(min(box[axis].start for box in boxes), max(box[axis].stop for box in boxes))
        for axis in range(3)
    )
    return first, rows, columns


def _score(
    prediction_layers: tuple[LabelArray, ...],
    prediction_value: int | None,
    reference_layers: tuple[LabelArray, ...],
    reference_value: int | None,
    box: Box | None,
    spacing: Vector3,
) -> OverlapScores:
    if box is None:  # empty in both
        return score_masks(np.zeros((1, 1, 1), bool), np.zeros((1, 1, 1), bool), spacing)
    return score_masks(
        _mask(prediction_layers, prediction_value, box),
        _mask(reference_layers, reference_value, box),
        spacing,
    )


def _mask(layers: tuple[LabelArray, ...], value: int | None, box: Box) -> np.ndarray:
    mask = np.zeros(layers[0][box].shape, dtype=bool)
    if value is not None:
        for layer in layers:
            mask |= layer[box] == value
    return mask
