"""Evaluating a segmentation against a reference: Dice, IoU, HD95 and volumes per structure.

`read_label_image` reads a DICOM SEG, NIfTI or numpy label map; `compare_label_images` puts
both on one grid, pairs their structures and scores each; `format_table` and `report_as_json`
present the result. Used by `dicom-node evaluate`; see docs/EVALUATE.md.
"""

from dicom_node.evaluation.comparison import (
    EvaluationReport,
    Structure,
    StructureScores,
    compare_label_images,
    match_structures,
)
from dicom_node.evaluation.errors import EvaluationError, GridMismatchError, UnreadableInputError
from dicom_node.evaluation.grid import Grid
from dicom_node.evaluation.metrics import (
    OverlapScores,
    dice,
    hausdorff_distance_95,
    iou,
    score_masks,
)
from dicom_node.evaluation.readers import (
    LabelImage,
    SegmentInfo,
    input_kind,
    read_label_image,
    read_label_names,
)
from dicom_node.evaluation.report import NOT_AVAILABLE, format_table, report_as_json

__all__ = [
    "NOT_AVAILABLE",
    "EvaluationError",
    "EvaluationReport",
    "Grid",
    "GridMismatchError",
    "LabelImage",
    "OverlapScores",
    "SegmentInfo",
    "Structure",
    "StructureScores",
    "UnreadableInputError",
    "compare_label_images",
    "dice",
    "format_table",
    "hausdorff_distance_95",
    "input_kind",
    "iou",
    "match_structures",
    "read_label_image",
    "read_label_names",
    "report_as_json",
    "score_masks",
]
