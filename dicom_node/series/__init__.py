"""Series state: when a series counts as complete."""

from dicom_node.series.state import SeriesState, series_state

__all__ = ["SeriesState", "series_state"]
