"""Pacemaker scores: INFINITY is 1000000 and every sum is clamped to it."""

from __future__ import annotations

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
    try:
        number = int(value)
    except ValueError:
        return None
    return max(-INFINITY, min(INFINITY, number))


def format_score(score: int) -> str:
    if score >= INFINITY:
        return "INFINITY"
    if score <= -INFINITY:
        return "-INFINITY"
    return str(score)


def is_true(text: str | None) -> bool:
    """Pacemaker's crm_is_true: true, on, yes, y, 1 (any case)."""
    return text is not None and text.strip().lower() in ("true", "on", "yes", "y", "1")
