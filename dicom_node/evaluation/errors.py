"""Errors of the evaluation tools.

DicomNodeError
└── EvaluationError          an evaluation cannot be made; the message says why, on one line
    ├── UnreadableInputError     a prediction, reference or label-name file cannot be read
    └── GridMismatchError        two label maps cannot be put on one grid
"""

from __future__ import annotations

from dicom_node.errors import DicomNodeError

__all__ = ["EvaluationError", "GridMismatchError", "UnreadableInputError"]


class EvaluationError(DicomNodeError):
    """Base of the errors `dicom-node evaluate` reports (exit status 2)."""


class UnreadableInputError(EvaluationError):
    """A file is missing, of an unknown kind, or not a label map."""


class GridMismatchError(EvaluationError):
    """The two inputs are in different frames of reference, or one without geometry has a
    shape other than the grid it is assumed to share."""
