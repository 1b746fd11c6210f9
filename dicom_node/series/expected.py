"""How many instances a series will have, where its own data says so.

Rules (`series.expected_count_rules`, tried in order; docs/SERIES.md says when each is trusted):

- ``images_in_acquisition``: ImagesInAcquisition (0020,1002), PS3.3 C.7.6.1 "number of images
  that resulted from this acquisition of data". Trusted only when every instance carries the
  same value and the same AcquisitionNumber (a series of several acquisitions says nothing
  about the series total).
- ``pet_slices``: PET (Modality PT) NumberOfSlices (0054,0081) x NumberOfTimeSlices
  (0054,0101, 1 when absent), PS3.3 C.8.9.4: the images of a PET series by definition.
- ``cardiac_single_location``: CardiacNumberOfImages (0018,1090) when every instance is at one
  slice position: a cine series holding one location. Off by default: a multi-location cine
  sent location by location reaches that count after its first location.

A rule that the full series contradicts (more instances than expected, values that differ) is
dropped for that series, which then completes by its quiet period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicom_node.config.models import ExpectedCountRule

__all__ = ["ExpectedCount", "announced_count", "confirm_count"]


@dataclass(frozen=True)
class ExpectedCount:
    instances: int
    rule: ExpectedCountRule
    detail: str  # e.g. "ImagesInAcquisition=300"


def _positive_int(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


def _announced_by(rule: ExpectedCountRule, header: Dataset) -> ExpectedCount | None:
    if rule is ExpectedCountRule.IMAGES_IN_ACQUISITION:
        count = _positive_int(header, "ImagesInAcquisition")
        if count is not None:
            return ExpectedCount(count, rule, f"ImagesInAcquisition={count}")
    elif rule is ExpectedCountRule.PET_SLICES:
        slices = _positive_int(header, "NumberOfSlices")
        if str(header.get("Modality", "")).upper() == "PT" and slices is not None:
            times = _positive_int(header, "NumberOfTimeSlices") or 1
            return ExpectedCount(
                slices * times, rule, f"NumberOfSlices={slices} x NumberOfTimeSlices={times}"
            )
    elif rule is ExpectedCountRule.CARDIAC_SINGLE_LOCATION:
        count = _positive_int(header, "CardiacNumberOfImages")
        if count is not None:
            return ExpectedCount(count, rule, f"CardiacNumberOfImages={count}")
    return None


def announced_count(header: Dataset, rules: Sequence[ExpectedCountRule]) -> ExpectedCount | None:
    """The count one instance's header announces, by the first rule that applies."""
    for rule in rules:
        expected = _announced_by(rule, header)
        if expected is not None:
            return expected
    return None


def _same(headers: Sequence[Dataset], keyword: str) -> bool:
    return len({str(header.get(keyword, "")) for header in headers}) == 1


def _one_position(headers: Sequence[Dataset]) -> bool:
    positions = set()
    for header in headers:
        position = header.get("ImagePositionPatient")
        if position is None or len(position) != 3:
            return False
        positions.add(tuple(round(float(v), 2) for v in position))
    return len(positions) == 1


def confirm_count(expected: ExpectedCount, headers: Sequence[Dataset]) -> bool:
    """True when the headers of every instance of the series agree with `expected` and their
    number equals it: the series is complete."""
    if len(headers) != expected.instances:
        return False
    rule = expected.rule
    if rule is ExpectedCountRule.IMAGES_IN_ACQUISITION:
        return _same(headers, "ImagesInAcquisition") and _same(headers, "AcquisitionNumber")
    if rule is ExpectedCountRule.PET_SLICES:
        return _same(headers, "NumberOfSlices") and _same(headers, "NumberOfTimeSlices")
    return _same(headers, "CardiacNumberOfImages") and _one_position(headers)
