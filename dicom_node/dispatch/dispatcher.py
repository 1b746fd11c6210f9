"""The dispatcher: a thread of the main process that works through the outbox.

Every due delivery is sent whole to its destination (C-STORE for kind `dimse`, STOW-RS for
kind `dicomweb`); success marks it sent, any failure schedules the next attempt with
exponential backoff or dead-letters it after the destination's `max_attempts`. Deliveries a
crash left half-sent are pending again at start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from dicom_node.config.models import (
    DestinationConfig,
    DicomWebDestinationConfig,
    DimseDestinationConfig,
    NodeConfig,
)
from dicom_node.dispatch.dicomweb import send_dicomweb
from dicom_node.dispatch.dimse import send_dimse
from dicom_node.dispatch.outbox import Delivery, DeliveryState, Outbox
from dicom_node.errors import DispatchError
from dicom_node.index import Index

__all__ = ["Dispatcher", "Sender"]

logger = logging.getLogger(__name__)

Sender = Callable[[DestinationConfig, str, Sequence[Path]], None]


def _send(destination: DestinationConfig, calling_ae_title: str, files: Sequence[Path]) -> None:
    if isinstance(destination, DimseDestinationConfig):
        send_dimse(destination, calling_ae_title, files)
    elif isinstance(destination, DicomWebDestinationConfig):
        send_dicomweb(destination, files)


class Dispatcher:
    def __init__(
        self,
        config: NodeConfig,
        index: Index,
        outbox: Outbox,
        *,
        poll_s: float = 0.2,
        sender: Sender = _send,
    ) -> None:
        self._config = config
        self._index = index
        self._outbox = outbox
        self._poll_s = poll_s
        self._sender = sender
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        requeued = self._outbox.requeue_interrupted()
        if requeued:
            logger.warning("%d interrupted delivery(ies) will be sent again", requeued)
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                due = self._outbox.claim_due()
            except Exception:
                logger.exception("reading the outbox failed")
                due = []
            for delivery in due:
                if self._stop.is_set():
                    break
                self.deliver(delivery)
            if not due:
                self._wake.wait(self._poll_s)
                self._wake.clear()
        # Claimed but not attempted: pending again at the next start (requeue_interrupted).

    def deliver(self, delivery: Delivery) -> DeliveryState:
        extra = {"job": delivery.job_id, "destination": delivery.destination}
        destination = self._config.destinations.get(delivery.destination)
        if destination is None:
            # The destination was removed from the config since the job ran: nothing to retry
            # against until it is configured again (then `jobs retry` sends it).
            return self._outbox.failed(
                delivery,
                f"destination {delivery.destination!r} is no longer configured",
                backoff_s=60,
                backoff_max_s=600,
            )
        try:
            files = [self._path(uid) for uid in delivery.sop_instance_uids]
            self._sender(destination, self._config.node.ae_title, files)
        except (DispatchError, OSError, KeyError) as exc:
            state = self._outbox.failed(
                delivery,
                str(exc),
                backoff_s=destination.retry_backoff_s,
                backoff_max_s=destination.retry_backoff_max_s,
            )
            log = logger.error if state is DeliveryState.DEAD else logger.warning
            log(
                "delivery attempt %d failed (%s): %s",
                delivery.attempts,
                state.value,
                exc,
                extra=extra,
            )
            return state
        except Exception as exc:
            logger.exception("delivery attempt failed unexpectedly", extra=extra)
            return self._outbox.failed(
                delivery,
                f"unexpected error: {type(exc).__name__}: {exc}",
                backoff_s=destination.retry_backoff_s,
                backoff_max_s=destination.retry_backoff_max_s,
            )
        self._outbox.sent(delivery)
        logger.info("delivered %d instance(s)", len(delivery.sop_instance_uids), extra=extra)
        return DeliveryState.SENT

    def _path(self, sop_instance_uid: str) -> Path:
        found = self._index.find_instance(sop_instance_uid)
        if found is None:
            raise KeyError(f"result {sop_instance_uid} is not in the index")
        return self._config.storage.path / found.file_path
