"""Sending results to destinations: the outbox and its senders (DESIGN.md: dispatch)."""

from dicom_node.dispatch.outbox import Delivery, DeliveryState, Outbox

__all__ = ["Delivery", "DeliveryState", "Outbox"]
