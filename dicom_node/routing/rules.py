"""Route conditions as typed config: the `match:` mapping of a route, validated at load.

A condition is data (STYLE.md rule 6): one operator key per mapping, validated here and compiled
into a matcher (`matchers`); nothing is evaluated as code. docs/ROUTING.md is the user's guide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydicom.datadict import dictionary_VR, keyword_dict, tag_for_keyword

__all__ = [
    "OPERATORS",
    "SERIES_FIELDS",
    "ConditionConfig",
    "MatchConfig",
    "RangeConfig",
    "Scalar",
]

# Fields that are not DICOM attributes but facts of how the series arrived.
SERIES_FIELDS = ("calling_ae", "called_ae", "instance_count")
OPERATORS = ("equals", "one_of", "regex", "range", "contains", "not", "all_of")
_CASE_OPERATORS = ("equals", "one_of", "contains")
# Bulk data and sequences have no text value to compare (PS3.5 6.2 value representations).
_UNMATCHABLE_VRS = frozenset({"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"})

Scalar = str | int | float


def _check_scalar(value: object) -> object:
    """An expected value: text, or a number to compare numerically. YAML turns `yes`, `on`,
    `2024-01-01` and the like into other types; those are refused instead of guessed."""
    if value is None:
        raise ValueError("a value is required")
    if isinstance(value, bool):
        raise ValueError("YAML reads this as a boolean (yes/no/on/off/true/false): quote it")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("expected a finite number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("an empty value never matches (empty counts as absent)")
        return value
    raise ValueError(f"expected text or a number, got {type(value).__name__}: quote the value")


def _compile_regex(value: object) -> object:
    if isinstance(value, str):
        try:
            return re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    return value


ExpectedValue = Annotated[Scalar, BeforeValidator(_check_scalar)]
Bound = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeConfig(_Model):
    """Inclusive numeric bounds; either may be left out, not both."""

    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> RangeConfig:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self


@dataclass(frozen=True)
class _UnknownField:
    """Stands in for the condition of a field that cannot be matched, so that the problem is
    reported at `match.<field>` together with every other problem of the file."""

    problem: str


class ConditionConfig(_Model):
    """One condition on one field: exactly one operator (a bare value means `equals`)."""

    equals: ExpectedValue | None = None
    one_of: Annotated[list[ExpectedValue], Field(min_length=1)] | None = None
    regex: Annotated[re.Pattern[str], BeforeValidator(_compile_regex)] | None = None
    range: RangeConfig | None = None
    contains: ExpectedValue | None = None
    negated: ConditionConfig | None = Field(default=None, alias="not")
    all_of: Annotated[list[ConditionConfig], Field(min_length=1)] | None = None
    case_insensitive: Annotated[bool, Field(strict=True)] = False

    @model_validator(mode="before")
    @classmethod
    def _one_operator(cls, value: Any) -> Any:
        if isinstance(value, _UnknownField):
            raise ValueError(value.problem)
        if isinstance(value, list):
            raise ValueError(
                "a list is not a condition: use {one_of: [...]} for any of these values, "
                "or {all_of: [...]} for several conditions"
            )
        if not isinstance(value, dict):
            # A bare value means equals; checked here so a problem names the field itself.
            return {"equals": _check_scalar(value)}
        unknown = [key for key in value if key not in (*OPERATORS, "case_insensitive")]
        if unknown:
            raise ValueError(f"unknown operator {unknown[0]!r} (operators: {', '.join(OPERATORS)})")
        operators = [key for key in value if key in OPERATORS]
        if len(operators) != 1:
            found = ", ".join(operators) or "none"
            raise ValueError(f"a condition has exactly one operator (found: {found})")
        if "case_insensitive" in value and operators[0] not in _CASE_OPERATORS:
            raise ValueError(
                f"case_insensitive applies to {', '.join(_CASE_OPERATORS)} only"
                " (a regex can start with (?i))"
            )
        return value


def _field_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"{name!r} is not a DICOM keyword"
    if name in SERIES_FIELDS:
        return None
    tag = tag_for_keyword(name)
    if tag is None:
        choices = [*SERIES_FIELDS, *keyword_dict]
        same_but_case = [choice for choice in choices if choice.lower() == name.lower()]
        close = same_but_case or get_close_matches(name, choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown DICOM keyword {name!r}{hint}"
    if tag >> 16 == 0x0002:
        return f"{name} is a file meta attribute (PS3.10), not part of the series' data set"
    vr = dictionary_VR(tag)
    if any(part in _UNMATCHABLE_VRS for part in vr.split(" or ")):
        return f"{name} has VR {vr}: sequences and bulk data cannot be matched"
    return None


def _flag_unknown_fields(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {
        name: _UnknownField(problem) if (problem := _field_problem(name)) else condition
        for name, condition in value.items()
    }


# Field (a DICOM keyword or one of SERIES_FIELDS) -> condition; all must hold.
MatchConfig = Annotated[dict[str, ConditionConfig], BeforeValidator(_flag_unknown_fields)]
