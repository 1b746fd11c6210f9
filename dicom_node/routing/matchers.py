"""Compiled route conditions: matchers built once from ConditionConfig, tested per series.

Every field's values arrive as text (`Values`); an absent or empty field has no values, and every
matcher except `Not` fails on it. Multi-valued attributes: `equals`, `one_of` and `regex` see
the whole value joined with backslashes (PS3.5 6.4), `contains` tests each value, `range` needs
exactly one numeric value.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from dicom_node.routing.rules import ConditionConfig, Scalar

__all__ = [
    "AllOf",
    "Condition",
    "Contains",
    "Equals",
    "FieldCondition",
    "Not",
    "OneOf",
    "Range",
    "Regex",
    "Values",
    "compile_condition",
    "compile_match",
]

# The values of one field of a series as text, one per value multiplicity; () when absent/empty.
Values = tuple[str, ...]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _quoted(value: Scalar) -> str:
    return f'"{value}"' if isinstance(value, str) else _number_text(value)


class Condition(ABC):
    """A compiled condition on the values of one field. No values (absent) fail every test
    but `Not`, which inverts another."""

    @abstractmethod
    def test(self, values: Values) -> bool: ...

    @abstractmethod
    def describe(self) -> str:
        """The operator and its operand(s), for `route explain`."""


@dataclass(frozen=True)
class _Expected:
    """One expected value: a number compares numerically, text exactly or case-folded."""

    value: Scalar
    case_insensitive: bool
    text: str  # the value as compared: case-folded when case-insensitive

    @classmethod
    def of(cls, value: Scalar, case_insensitive: bool) -> _Expected:
        if isinstance(value, str) and case_insensitive:
            return cls(value, case_insensitive, value.casefold())
        return cls(value, case_insensitive, str(value))

    def matches(self, actual: str) -> bool:
        if not isinstance(self.value, str):
            return _number(actual) == self.value
        return (actual.casefold() if self.case_insensitive else actual) == self.text

    def __str__(self) -> str:
        return _quoted(self.value)


def _case_note(case_insensitive: bool) -> str:
    return " (case-insensitive)" if case_insensitive else ""


@dataclass(frozen=True)
class Equals(Condition):
    expected: _Expected

    def test(self, values: Values) -> bool:
        return bool(values) and self.expected.matches("\\".join(values))

    def describe(self) -> str:
        return f"equals {self.expected}{_case_note(self.expected.case_insensitive)}"


@dataclass(frozen=True)
class OneOf(Condition):
    expected: tuple[_Expected, ...]

    def test(self, values: Values) -> bool:
        whole = "\\".join(values)
        return bool(values) and any(item.matches(whole) for item in self.expected)

    def describe(self) -> str:
        items = ", ".join(str(item) for item in self.expected)
        return f"one of [{items}]{_case_note(self.expected[0].case_insensitive)}"


@dataclass(frozen=True)
class Regex(Condition):
    pattern: re.Pattern[str]

    def test(self, values: Values) -> bool:
        return bool(values) and self.pattern.fullmatch("\\".join(values)) is not None

    def describe(self) -> str:
        return f'regex "{self.pattern.pattern}"'


@dataclass(frozen=True)
class Range(Condition):
    min: float | None
    max: float | None

    def test(self, values: Values) -> bool:
        number = _number(values[0]) if len(values) == 1 else None
        if number is None or math.isnan(number):
            return False
        return (self.min is None or number >= self.min) and (self.max is None or number <= self.max)

    def describe(self) -> str:
        low = "" if self.min is None else _number_text(self.min)
        high = "" if self.max is None else _number_text(self.max)
        return f"range {low}..{high}"


@dataclass(frozen=True)
class Contains(Condition):
    expected: _Expected

    def test(self, values: Values) -> bool:
        return any(self.expected.matches(value) for value in values)

    def describe(self) -> str:
        return f"contains {self.expected}{_case_note(self.expected.case_insensitive)}"


@dataclass(frozen=True)
class Not(Condition):
    inner: Condition

    def test(self, values: Values) -> bool:
        return not self.inner.test(values)

    def describe(self) -> str:
        return f"not ({self.inner.describe()})"


@dataclass(frozen=True)
class AllOf(Condition):
    items: tuple[Condition, ...]

    def test(self, values: Values) -> bool:
        return all(item.test(values) for item in self.items)

    def describe(self) -> str:
        return "all of (" + ", ".join(item.describe() for item in self.items) + ")"


def compile_condition(config: ConditionConfig) -> Condition:
    case = config.case_insensitive
    if config.equals is not None:
        return Equals(_Expected.of(config.equals, case))
    if config.one_of is not None:
        return OneOf(tuple(_Expected.of(item, case) for item in config.one_of))
    if config.regex is not None:
        return Regex(config.regex)
    if config.range is not None:
        return Range(config.range.min, config.range.max)
    if config.contains is not None:
        return Contains(_Expected.of(config.contains, case))
    if config.negated is not None:
        return Not(compile_condition(config.negated))
    if config.all_of is not None:
        return AllOf(tuple(compile_condition(item) for item in config.all_of))
    raise AssertionError("ConditionConfig validation guarantees one operator")


@dataclass(frozen=True)
class FieldCondition:
    field: str  # a DICOM keyword or one of SERIES_FIELDS
    condition: Condition


def compile_match(match: Mapping[str, ConditionConfig]) -> tuple[FieldCondition, ...]:
    return tuple(FieldCondition(name, compile_condition(config)) for name, config in match.items())
