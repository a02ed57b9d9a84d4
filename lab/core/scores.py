"""Pacemaker scores: INFINITY is 1000000 and every sum is clamped to it."""

from __future__ import annotations

import re

INFINITY = 1_000_000


def parse_score(text: str | None) -> int | None:
    """The score pacemaker reads from text (char2score), or None for text it rejects."""
    if text is None:
        return None
    value = text.strip()
    lowered = value.lower()
    if lowered in ("infinity", "+infinity"):
        return INFINITY
    if lowered == "-infinity":
        return -INFINITY
    return parse_int(value, INFINITY)


_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")


def parse_int(text: str | None, limit: int) -> int | None:
    """An integer of ASCII digits clamped to +/-limit, as pacemaker's strtoll-based parsing
    reads it; None for anything else (int() takes other scripts' digits and
    fails on 5000 of them)."""
    match = _INTEGER.fullmatch(text.strip()) if text is not None else None
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits) > len(str(limit)):
        return -limit if sign == "-" else limit
    number = int(sign + digits)
    return max(-limit, min(limit, number))


def format_score(score: int) -> str:
    if score >= INFINITY:
        return "INFINITY"
    if score <= -INFINITY:
        return "-INFINITY"
    return str(score)


def is_true(text: str | None) -> bool:
    """Pacemaker's crm_is_true: true, on, yes, y, 1 (any case)."""
    return text is not None and text.strip().lower() in ("true", "on", "yes", "y", "1")
