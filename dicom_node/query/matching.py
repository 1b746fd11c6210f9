"""Matching key values: parsing them (PS3.4 C.2.2.2) and turning them into SQL.

- Single value matching is exact and case-sensitive, except for PN, which is matched
  case-insensitively (PS3.4 C.2.2.2.1 allows it for PN; what users expect).
- Wild cards `*` and `?` (C.2.2.2.4) become SQL LIKE patterns with `%`, `_` and `\\` escaped
  (PostgreSQL, and PN everywhere, lower-cased on both sides), or a SQLite GLOB pattern with
  `[` escaped (SQLite's LIKE ignores case, GLOB does not). A value that is only `*` is
  universal matching.
- A list (backslash-separated, or comma-separated in QIDO-RS for UI and CS) matches any of its
  items: UID list matching (C.2.2.2.2) and multiple value matching (C.2.2.2.8).
- DA/TM/DT accept `a-b`, `a-` and `-b` ranges (C.2.2.2.5), bounds inclusive; an upper time
  bound of reduced precision includes the whole hour/minute/second it names. Entities with an
  empty value never match a range.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, false, func, or_, true
from sqlalchemy.sql.elements import ColumnElement

from dicom_node.query.model import Exact, Matching, QueryError, Range, Term, Wildcard, describe_tag
from dicom_node.uids import is_valid_uid

__all__ = ["matches_value", "matching_clause", "parse_matching"]

_DATE_TIME_VRS = {"DA", "TM", "DT"}
_INTEGER_VRS = {"IS", "US", "SS", "UL", "SL", "UV", "SV"}
_NO_WILDCARD_VRS = _DATE_TIME_VRS | _INTEGER_VRS | {"UI", "DS", "FL", "FD", "AT"}
_FORMATS = {
    "DA": re.compile(r"\d{8}"),
    "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?"),
}
_FORMAT_NAMES = {"DA": "YYYYMMDD", "TM": "HHMMSS.FFFFFF", "DT": "YYYYMMDDHHMMSS.FFFFFF"}


def parse_matching(tag: int, vr: str, values: Sequence[str]) -> Matching:
    """The matching the request's `values` (already split into list items) ask for.

    Raises QueryError naming the tag (never the value: it may be PHI) when a value cannot be
    used with the attribute's VR."""
    items = [value.strip() for value in values if value.strip()]
    if not items or "*" in items:
        return Matching()
    return Matching(tuple(_parse_term(tag, vr, item) for item in items))


def _parse_term(tag: int, vr: str, item: str) -> Term:
    name = describe_tag(tag)
    if vr in _DATE_TIME_VRS:
        return _parse_date_time(tag, vr, item)
    if ("*" in item or "?" in item) and vr in _NO_WILDCARD_VRS:
        raise QueryError(f"{name}: wild card matching is not allowed for VR {vr}", (tag,))
    if vr == "UI" and not is_valid_uid(item):
        raise QueryError(f"{name}: not a valid UID", (tag,))
    if vr in _INTEGER_VRS:
        try:
            return Exact(str(int(item)))
        except ValueError:
            raise QueryError(f"{name}: not an integer", (tag,)) from None
    if vr == "PN":
        item = item.rstrip("^=")
    if "*" in item or "?" in item:
        return Wildcard(item)
    return Exact(item)


def _parse_date_time(tag: int, vr: str, item: str) -> Term:
    name = describe_tag(tag)
    expected = f"{name}: expected {_FORMAT_NAMES[vr]} or a range of it (a-b, a-, -b)"
    lower, dash, upper = item.partition("-")
    if not all(not bound or _FORMATS[vr].fullmatch(bound) for bound in (lower, upper)):
        raise QueryError(expected, (tag,))
    if not dash:
        return Exact(lower)
    if not lower and not upper:
        raise QueryError(expected, (tag,))
    if lower and upper and lower > _pad_upper(vr, upper):
        raise QueryError(f"{name}: range lower bound is after its upper bound", (tag,))
    return Range(lower, upper)


_WHOLE_DIGITS = {"TM": 6, "DT": 14}


def _pad_upper(vr: str, upper: str) -> str:
    """An upper bound of reduced precision includes all it names: TM `13` ends at
    `135959.999999`, so that string comparison with stored values is inclusive."""
    digits = _WHOLE_DIGITS.get(vr)
    if digits is None:
        return upper
    whole, _, fraction = upper.partition(".")
    return whole.ljust(digits, "9") + "." + fraction.ljust(6, "9")


def _like_pattern(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _glob_pattern(pattern: str) -> str:
    return pattern.replace("[", "[[]")


def _term_clause(term: Term, column: Any, vr: str, dialect: str) -> ColumnElement[bool]:
    if isinstance(term, Exact):
        if vr == "PN":
            return func.lower(column) == term.value.lower()
        if vr in _INTEGER_VRS:
            return column == int(term.value)  # type: ignore[no-any-return]
        return column == term.value  # type: ignore[no-any-return]
    if isinstance(term, Wildcard):
        if vr == "PN":
            return func.lower(column).like(_like_pattern(term.pattern.lower()), escape="\\")
        if dialect == "sqlite":
            return column.op("GLOB")(_glob_pattern(term.pattern))  # type: ignore[no-any-return]
        return column.like(_like_pattern(term.pattern), escape="\\")  # type: ignore[no-any-return]
    bounds = [column != ""]
    if term.lower:
        bounds.append(column >= term.lower)
    if term.upper:
        bounds.append(column <= _pad_upper(vr, term.upper))
    return and_(*bounds)


def matching_clause(matching: Matching, column: Any, vr: str, dialect: str) -> ColumnElement[bool]:
    """SQL that is true where `column` matches (any term of) `matching`."""
    if matching.is_universal:
        return true()
    return or_(*(_term_clause(term, column, vr, dialect) for term in matching.terms))


def matches_value(matching: Matching, value: str) -> ColumnElement[bool]:
    """SQL true/false for a value that is the same for every entity (Instance Availability)."""
    if matching.is_universal:
        return true()
    for term in matching.terms:
        if isinstance(term, Exact) and term.value == value:
            return true()
        if isinstance(term, Wildcard) and _wildcard_regex(term.pattern).fullmatch(value):
            return true()
    return false()


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(_WILDCARD_REGEX.get(char, re.escape(char)) for char in pattern))


_WILDCARD_REGEX = {"*": ".*", "?": "."}
