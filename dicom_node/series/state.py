"""The state of a series as the admin API reports it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

__all__ = ["SeriesState", "series_state"]


class SeriesState(StrEnum):
    RECEIVING = "receiving"  # an instance arrived less than `series.stable_after_s` ago
    STABLE = "stable"  # quiet for `series.stable_after_s`; the next completion check takes it
    READY = "ready"  # handed to routing after its last instance (jobs made, if any route matched)


def series_state(
    *,
    last_received_at: datetime,
    now: datetime,
    stable_after_s: float,
    receipts: int = 0,
    ready_receipts: int = 0,
) -> SeriesState:
    if receipts > 0 and ready_receipts >= receipts:
        return SeriesState.READY
    quiet_for = (now - last_received_at).total_seconds()
    return SeriesState.STABLE if quiet_for >= stable_after_s else SeriesState.RECEIVING
