"""Routing a series: its metadata and the compiled routes in, one decision per matching route out.

Every route whose conditions all hold applies (not only the first), each as one decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pydicom
from pydicom.multival import MultiValue

from dicom_node.routing.matchers import FieldCondition, Values

if TYPE_CHECKING:
    from dicom_node.config.models import RouteConfig

__all__ = [
    "ConditionExplanation",
    "RouteDecision",
    "RouteExplanation",
    "SeriesDescriptor",
    "evaluate_routes",
    "explain_routes",
    "series_values",
]


@dataclass(frozen=True)
class SeriesDescriptor:
    """What routing sees of a series: one instance's header and how the series arrived."""

    dataset: pydicom.Dataset  # header of one instance (no pixel data needed)
    instance_count: int
    calling_ae_title: str | None = None
    called_ae_title: str | None = None


@dataclass(frozen=True)
class RouteDecision:
    route: str  # route name
    pipeline: str
    send_to: tuple[str, ...]


@dataclass(frozen=True)
class ConditionExplanation:
    field: str  # DICOM keyword, or calling_ae / called_ae / instance_count
    operator: str  # e.g. 'regex "(?i).*lung.*"'
    actual: str | None  # the field's value (multi-valued: joined with backslashes); None: absent
    matched: bool


@dataclass(frozen=True)
class RouteExplanation:
    route: str
    pipeline: str
    send_to: tuple[str, ...]
    matched: bool
    conditions: tuple[ConditionExplanation, ...]


def _texts(value: object) -> Values:
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    texts = tuple(
        (item.decode("ascii", "replace") if isinstance(item, bytes) else str(item)).strip()
        for item in items
        if item is not None
    )
    return texts if any(texts) else ()


def series_values(series: SeriesDescriptor, field: str) -> Values:
    """The values of `field` as text: () when the attribute is absent or empty."""
    if field == "instance_count":
        return (str(series.instance_count),)
    if field == "calling_ae":
        return _texts(series.calling_ae_title)
    if field == "called_ae":
        return _texts(series.called_ae_title)
    if field not in series.dataset:
        return ()
    return _texts(series.dataset[field].value)


def _matches(conditions: Sequence[FieldCondition], series: SeriesDescriptor) -> bool:
    return all(item.condition.test(series_values(series, item.field)) for item in conditions)


def evaluate_routes(routes: Sequence[RouteConfig], series: SeriesDescriptor) -> list[RouteDecision]:
    """Every route whose conditions all hold, in config order (docs/ROUTING.md)."""
    return [
        RouteDecision(route.name, route.pipeline, tuple(route.send_to))
        for route in routes
        if _matches(route.conditions, series)
    ]


def explain_routes(
    routes: Sequence[RouteConfig], series: SeriesDescriptor
) -> list[RouteExplanation]:
    """What `evaluate_routes` decides and why: each condition with the value it saw."""
    explanations: list[RouteExplanation] = []
    for route in routes:
        conditions = []
        for item in route.conditions:
            values = series_values(series, item.field)
            conditions.append(
                ConditionExplanation(
                    field=item.field,
                    operator=item.condition.describe(),
                    actual="\\".join(values) if values else None,
                    matched=item.condition.test(values),
                )
            )
        explanations.append(
            RouteExplanation(
                route=route.name,
                pipeline=route.pipeline,
                send_to=tuple(route.send_to),
                matched=all(condition.matched for condition in conditions),
                conditions=tuple(conditions),
            )
        )
    return explanations
