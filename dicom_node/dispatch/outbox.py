"""The outbox: results owed to destinations, persisted with the job that made them.

An entry is written in the same transaction that marks its job succeeded, so a result is
never made without being owed, nor owed twice. States: pending -> sent, or pending -> dead
after the destination's `max_attempts` (dead letters stay visible; `revive` sends them again).
A send in which any instance failed is a failed attempt: it is retried whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update

from dicom_node.index import Index, as_utc
from dicom_node.index.schema import DeliveryRow

__all__ = ["Delivery", "DeliveryState", "Outbox"]

_DELIVERY = cast(Table, DeliveryRow.__table__)


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"  # gave up after max_attempts; `dicom-node jobs retry` revives it


@dataclass(frozen=True)
class Delivery:
    id: int
    job_id: int
    destination: str
    sop_instance_uids: tuple[str, ...]
    state: DeliveryState
    attempts: int
    max_attempts: int
    error: str
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None


def _delivery(row: Any) -> Delivery:
    next_attempt_at, created_at = as_utc(row.next_attempt_at), as_utc(row.created_at)
    assert next_attempt_at is not None
    assert created_at is not None
    return Delivery(
        id=row.id,
        job_id=row.job_id,
        destination=row.destination,
        sop_instance_uids=tuple(json.loads(row.sop_instance_uids)),
        state=DeliveryState(row.state),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        error=row.error,
        next_attempt_at=next_attempt_at,
        created_at=created_at,
        sent_at=as_utc(row.sent_at),
    )


class Outbox:
    def __init__(
        self, index: Index, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._index = index
        self._clock = clock

    def add(
        self,
        connection: Connection,
        job_id: int,
        destination: str,
        sop_instance_uids: Sequence[str],
        max_attempts: int,
    ) -> None:
        now = self._clock()
        connection.execute(
            insert(_DELIVERY).values(
                job_id=job_id,
                destination=destination,
                sop_instance_uids=json.dumps(list(sop_instance_uids)),
                state=DeliveryState.PENDING.value,
                attempts=0,
                max_attempts=max_attempts,
                error="",
                next_attempt_at=now,
                created_at=now,
            )
        )

    def claim_due(self, limit: int = 16) -> list[Delivery]:
        """Take due pending deliveries (state sending until `sent` or `failed` is recorded)."""
        now = self._clock()
        due = (_DELIVERY.c.state == DeliveryState.PENDING.value) & (
            _DELIVERY.c.next_attempt_at <= now
        )
        # Polled often: look with a read first, take the write lock only when work is due.
        with self._index.read_connection() as connection:
            if connection.execute(select(_DELIVERY.c.id).where(due).limit(1)).first() is None:
                return []
        with self._index.write_transaction() as connection:
            rows = connection.execute(
                select(_DELIVERY)
                .where(due)
                .order_by(_DELIVERY.c.next_attempt_at, _DELIVERY.c.id)
                .limit(limit)
            ).all()
            ids = [row.id for row in rows]
            if ids:
                connection.execute(
                    update(_DELIVERY)
                    .where(_DELIVERY.c.id.in_(ids))
                    .values(state=DeliveryState.SENDING.value, attempts=_DELIVERY.c.attempts + 1)
                )
                rows = connection.execute(
                    select(_DELIVERY).where(_DELIVERY.c.id.in_(ids)).order_by(_DELIVERY.c.id)
                ).all()
        return [_delivery(row) for row in rows]

    def sent(self, delivery: Delivery) -> None:
        with self._index.write_transaction() as connection:
            connection.execute(
                update(_DELIVERY)
                .where(_DELIVERY.c.id == delivery.id)
                .values(state=DeliveryState.SENT.value, error="", sent_at=self._clock())
            )

    def failed(
        self, delivery: Delivery, error: str, *, backoff_s: float, backoff_max_s: float
    ) -> DeliveryState:
        """A failed attempt: pending again after backoff, or dead when attempts are used up."""
        values: dict[str, Any] = {"error": error[:2000]}
        if delivery.attempts >= delivery.max_attempts:
            values["state"] = DeliveryState.DEAD.value
        else:
            delay = min(backoff_max_s, backoff_s * 2 ** max(0, delivery.attempts - 1))
            values["state"] = DeliveryState.PENDING.value
            values["next_attempt_at"] = self._clock() + timedelta(seconds=delay)
        with self._index.write_transaction() as connection:
            connection.execute(
                update(_DELIVERY).where(_DELIVERY.c.id == delivery.id).values(**values)
            )
        return DeliveryState(values["state"])

    def requeue_interrupted(self) -> int:
        """Deliveries a stop or crash left in `sending` are pending again (node start)."""
        with self._index.write_transaction() as connection:
            return connection.execute(
                update(_DELIVERY)
                .where(_DELIVERY.c.state == DeliveryState.SENDING.value)
                .values(state=DeliveryState.PENDING.value, next_attempt_at=self._clock())
            ).rowcount

    def revive(self, connection: Connection, job_id: int) -> int:
        """Dead deliveries of a job are pending again with fresh attempts."""
        return connection.execute(
            update(_DELIVERY)
            .where(_DELIVERY.c.job_id == job_id, _DELIVERY.c.state == DeliveryState.DEAD.value)
            .values(state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=self._clock())
        ).rowcount

    def for_jobs(self, job_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        if not job_ids:
            return {}
        with self._index.read_connection() as connection:
            rows = connection.execute(
                select(_DELIVERY)
                .where(_DELIVERY.c.job_id.in_(list(job_ids)))
                .order_by(_DELIVERY.c.id)
            ).all()
        found: dict[int, list[Delivery]] = {}
        for row in rows:
            found.setdefault(row.job_id, []).append(_delivery(row))
        return found
