"""When a received series is complete, and its hand-over to routing.

A series is ready when no instance arrived for `series.stable_after_s`, as soon as the count
its data announces is reached (`dicom_node.series.expected`), or when an operator asks
(`POST /api/series/{uid}/ready`). Ready is recorded in the series row together with the jobs
routing made of it, in one transaction that only commits if no instance arrived meanwhile
(compare-and-set on the series' receipt counter). An instance arriving later re-opens the series: it
becomes pending again and is handed over anew (new content, so new jobs).

The node's own results (origin "result") are never handed over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar, cast

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Connection, Table, update

from dicom_node.config.models import ExpectedCountRule, SeriesConfig
from dicom_node.index import Index
from dicom_node.index.schema import SeriesRow
from dicom_node.series.expected import ExpectedCount, announced_count, confirm_count
from dicom_node.series.snapshot import SeriesSnapshot, load_snapshot, pending_series

__all__ = ["HandOver", "ReadyReason", "SeriesCompletion", "SeriesReady", "read_header"]

logger = logging.getLogger(__name__)

_SERIES = cast(Table, SeriesRow.__table__)
_COUNT_TAGS = [
    "ImagesInAcquisition",
    "AcquisitionNumber",
    "NumberOfSlices",
    "NumberOfTimeSlices",
    "CardiacNumberOfImages",
    "ImagePositionPatient",
    "Modality",
]


class ReadyReason(StrEnum):
    STABLE = "stable"  # quiet for series.stable_after_s
    EXPECTED_COUNT = "expected_count"  # the announced number of instances arrived
    REQUESTED = "requested"  # POST /api/series/{uid}/ready


@dataclass(frozen=True)
class SeriesReady:
    snapshot: SeriesSnapshot
    reason: ReadyReason
    at: datetime


PlanT = TypeVar("PlanT")


@dataclass(frozen=True)
class HandOver(Generic[PlanT]):
    """What happens to a ready series: `plan` (routing; may read files, runs outside any
    transaction), then `commit` (creating jobs; runs inside the ready transaction and returns
    the job ids)."""

    plan: Callable[[SeriesReady], PlanT]
    commit: Callable[[Connection, SeriesReady, PlanT], list[int]]


def read_header(path: Path, tags: Sequence[str] | None = None) -> Dataset:
    """The header of a stored instance, without pixel data."""
    return dcmread(path, stop_before_pixels=True, specific_tags=list(tags) if tags else None)


class SeriesCompletion(Generic[PlanT]):
    def __init__(
        self,
        index: Index,
        storage_root: Path,
        config: SeriesConfig,
        hand_over: HandOver[PlanT],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._index = index
        self._root = storage_root
        self._config = config
        self._hand_over = hand_over
        self._clock = clock

    def check(self) -> list[SeriesReady]:
        """One scheduler tick: hand over every pending series that is now complete."""
        with self._index.read_connection() as connection:
            uids = pending_series(connection)
        handed: list[SeriesReady] = []
        for uid in uids:
            try:
                ready = self._check_one(uid)
            except Exception:
                # One unreadable series must not stop the others; it is tried again next tick.
                logger.exception("completion check failed", extra={"series": uid})
                continue
            if ready is not None:
                handed.append(ready)
        return handed

    def request(self, series_instance_uid: str) -> tuple[SeriesReady, list[int]] | None:
        """Hand a series over now (operator request); None if the series is unknown."""
        for _ in range(5):  # an instance arriving in between makes us look again
            snapshot = self._snapshot(series_instance_uid)
            if snapshot is None:
                return None
            ready = SeriesReady(snapshot, ReadyReason.REQUESTED, self._clock())
            job_ids = self._commit(ready)
            if job_ids is not None:
                return ready, job_ids
        raise RuntimeError("the series kept changing; try again when it is quiet")

    def _snapshot(self, uid: str) -> SeriesSnapshot | None:
        with self._index.read_connection() as connection:
            return load_snapshot(connection, uid)

    def _check_one(self, uid: str) -> SeriesReady | None:
        snapshot = self._snapshot(uid)
        if snapshot is None or snapshot.origin != "received" or snapshot.is_ready:
            return None
        if not snapshot.instances:
            return None
        now = self._clock()
        quiet_for = (now - snapshot.last_received_at).total_seconds()
        if quiet_for >= self._config.stable_after_s:
            reason = ReadyReason.STABLE
        elif self._count_reached(snapshot):
            reason = ReadyReason.EXPECTED_COUNT
        else:
            return None
        ready = SeriesReady(snapshot, reason, now)
        return ready if self._commit(ready) is not None else None

    def _count_reached(self, snapshot: SeriesSnapshot) -> bool:
        rules = self._config.expected_count_rules
        if not rules:
            return False
        if snapshot.expected_from == "" and snapshot.expected_instances is None:
            first = self._root / snapshot.instances[0].file_path
            expected = announced_count(read_header(first, _COUNT_TAGS), rules)
            self._record_expected(snapshot, expected)
            if expected is None:
                return False
            return self._confirm(snapshot, expected)
        if snapshot.expected_instances is None:
            return False  # the data says nothing (or contradicted itself earlier)
        expected = self._recorded(snapshot)
        return expected is not None and self._confirm(snapshot, expected)

    @staticmethod
    def _recorded(snapshot: SeriesSnapshot) -> ExpectedCount | None:
        rule_name, _, detail = snapshot.expected_from.partition(":")
        for rule in ExpectedCountRule:
            if rule.value == rule_name and snapshot.expected_instances is not None:
                return ExpectedCount(snapshot.expected_instances, rule, detail)
        return None

    def _confirm(self, snapshot: SeriesSnapshot, expected: ExpectedCount) -> bool:
        if snapshot.instance_count < expected.instances:
            return False
        headers = [
            read_header(self._root / instance.file_path, _COUNT_TAGS)
            for instance in snapshot.instances
        ]
        if confirm_count(expected, headers):
            return True
        logger.info(
            "series contradicts its announced count (%s); completing by quiet period",
            expected.detail,
            extra={"series": snapshot.series_instance_uid},
        )
        self._record_expected(snapshot, None, contradicted=True)
        return False

    def _record_expected(
        self,
        snapshot: SeriesSnapshot,
        expected: ExpectedCount | None,
        *,
        contradicted: bool = False,
    ) -> None:
        if expected is not None:
            source = f"{expected.rule.value}:{expected.detail}"
        else:
            source = "contradicted" if contradicted else "none"
        with self._index.write_transaction() as connection:
            connection.execute(
                update(_SERIES)
                .where(_SERIES.c.id == snapshot.series_pk)
                .values(
                    expected_instances=expected.instances if expected else None,
                    expected_from=source,
                )
            )

    def _commit(self, ready: SeriesReady) -> list[int] | None:
        """Plan, then record ready + jobs unless an instance arrived meanwhile (then None)."""
        snapshot = ready.snapshot
        plan = self._hand_over.plan(ready)
        try:
            with self._index.write_transaction() as connection:
                job_ids = self._mark_ready(connection, ready, plan)
        except _ChangedMeanwhile:
            return None
        logger.info(
            "series ready (%s): %d instance(s), %d job(s)",
            ready.reason.value,
            snapshot.instance_count,
            len(job_ids),
            extra={"series": snapshot.series_instance_uid},
        )
        return job_ids

    def _mark_ready(self, connection: Connection, ready: SeriesReady, plan: PlanT) -> list[int]:
        snapshot = ready.snapshot
        changed = connection.execute(
            update(_SERIES)
            .where(
                _SERIES.c.id == snapshot.series_pk,
                _SERIES.c.receipts == snapshot.receipts,
            )
            .values(
                ready_at=ready.at,
                ready_reason=ready.reason.value,
                ready_count=_SERIES.c.ready_count + 1,
                ready_receipts=snapshot.receipts,
            )
        ).rowcount
        if changed != 1:
            raise _ChangedMeanwhile  # rolls the transaction back
        return self._hand_over.commit(connection, ready, plan)


class _ChangedMeanwhile(Exception):
    """An instance of the series arrived between the snapshot and the ready transaction."""
