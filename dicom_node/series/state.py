"""The state of a series as the admin API reports it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

__all__ = ["SeriesState", "series_state"]


class SeriesState(StrEnum):
    RECEIVING = "receiving"  # an instance arrived less than `series.stable_after_s` ago
    STABLE = "stable"  # quiet for `series.stable_after_s`


def series_state(last_received_at: datetime, now: datetime, stable_after_s: float) -> SeriesState:
    quiet_for = (now - last_received_at).total_seconds()
    return SeriesState.STABLE if quiet_for >= stable_after_s else SeriesState.RECEIVING
