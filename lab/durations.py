"""Pacemaker's duration notations, parsed the way pacemaker parses them.

An operation interval of 30 s may be written `30`, `30s`, `30sec`, `30000ms`,
`0.5min`... or as an ISO 8601 duration `PT30S`; all mean the same to the cluster.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"[ \t\n\r\f]*([0-9.]+)[ \t\n\r\f]*(.*)$", re.S)
_ISO = re.compile(
    r"P(?:(?P<Y>\d+)Y)?(?:(?P<Mo>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<H>\d+)H)?(?:(?P<Mi>\d+)M)?(?:(?P<S>\d+)S)?)?$"
)
# Pacemaker compares unit prefixes case-insensitively, in this order
# ("30sec", "30 seconds" and "30s" are all 30 s; "30x" is rejected).
_UNIT_PREFIXES = (("ms", 1.0), ("us", 0.001), ("s", 1000.0), ("m", 60_000.0), ("h", 3_600_000.0))


def parse_ms(text: str | None) -> int | None:
    """Milliseconds that pacemaker reads from text, or None when pacemaker would reject it.

    Mirrors pacemaker's interval parsing: ISO 8601 when the text starts with "P",
    otherwise an integer (decimals are truncated, as pacemaker does) and an optional
    unit that defaults to seconds.
    """
    if text is None:
        return None
    if text.startswith("P"):
        return _parse_iso(text)
    match = _NUMBER.match(text)
    if not match:
        return None
    number, unit = match.group(1), match.group(2).lower()
    digits = number.split(".", 1)[0]
    if not digits.isdigit():
        return None
    if unit in ("", "\n", "\r") or unit[0] in "\n\r":
        factor = 1000.0
    else:
        for prefix, unit_factor in _UNIT_PREFIXES:
            if unit.startswith(prefix):
                factor = unit_factor
                break
        else:
            return None
    return int(int(digits) * factor)


def _parse_iso(text: str) -> int | None:
    match = _ISO.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "Y" in parts or "Mo" in parts:
        return None  # calendar lengths are not a fixed interval
    seconds = (
        parts.get("W", 0) * 604_800
        + parts.get("D", 0) * 86_400
        + parts.get("H", 0) * 3_600
        + parts.get("Mi", 0) * 60
        + parts.get("S", 0)
    )
    return seconds * 1000


def format_ms(ms: int) -> str:
    """A short human form: 30000 -> '30s'."""
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
