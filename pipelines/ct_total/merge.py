"""Merging the label maps of several task models into one: one segment number per structure.

Each task model labels its own structures with its own values (the manifest's value -> name
map). The merged map numbers every structure name once, 1..n, in task order then label value,
so the same models give the same numbers for every series. A name several tasks share keeps
the number of its first task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["merged_dtype", "number_structures", "paint_task"]


def number_structures(task_labels: Sequence[Mapping[int, str]]) -> dict[str, int]:
    """Structure name -> merged label value, 1..n: task order, then label value in the task."""
    numbers: dict[str, int] = {}
    for labels in task_labels:
        for value in sorted(labels):
            if value > 0:
                numbers.setdefault(labels[value], len(numbers) + 1)
    return numbers


def merged_dtype(count: int) -> type[np.unsignedinteger]:
    """The smallest unsigned type holding labels 0..count."""
    return np.uint8 if count < 256 else np.uint16


def paint_task(
    merged: npt.NDArray[np.unsignedinteger],
    prediction: npt.NDArray[np.integer],
    labels: Mapping[int, str],
    numbers: Mapping[str, int],
) -> list[int]:
    """Write the task's labelled voxels into `merged` (in place; they win over what is there)
    under their merged numbers. Returns the prediction's values the manifest does not name
    (left as they were in `merged`; the caller says so)."""
    if prediction.shape != merged.shape:
        raise ValueError(f"prediction shape {prediction.shape} is not the grid {merged.shape}")
    top = max(int(prediction.max(initial=0)), *labels, 0)
    lookup = np.zeros(top + 1, dtype=merged.dtype)
    for value, name in labels.items():
        if value > 0:
            lookup[value] = numbers[name]
    unnamed: list[int] = []
    if any(value not in labels for value in range(1, top + 1)):  # else nothing to look for
        present = np.flatnonzero(np.bincount(prediction.ravel(), minlength=top + 1))
        unnamed = [int(value) for value in present if value > 0 and value not in labels]
    painted = lookup[prediction]
    np.copyto(merged, painted, where=painted > 0)
    return unnamed
