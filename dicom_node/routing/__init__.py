"""Routing: which pipelines a series runs and where the results go (docs/ROUTING.md).

Routes are data compiled once when the config loads (`RouteConfig.conditions`); evaluating them
is a pure function of the series' metadata. Every matching route applies.
"""

from dicom_node.routing.evaluate import (
    ConditionExplanation,
    RouteDecision,
    RouteExplanation,
    SeriesDescriptor,
    evaluate_routes,
    explain_routes,
)
from dicom_node.routing.folder import describe_series_folder
from dicom_node.routing.rules import ConditionConfig, MatchConfig, RangeConfig

__all__ = [
    "ConditionConfig",
    "ConditionExplanation",
    "MatchConfig",
    "RangeConfig",
    "RouteDecision",
    "RouteExplanation",
    "SeriesDescriptor",
    "describe_series_folder",
    "evaluate_routes",
    "explain_routes",
]
