"""Parse XML that may come from a student's machine: no DTDs, no entities, no network."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from lab.errors import InputError


def parse_untrusted(text: str, what: str) -> Element:
    """Parse text as XML or raise InputError saying what was wrong with `what`."""
    if not text.strip():
        raise InputError(f"{what} is empty")
    try:
        return fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InputError(f"{what} is refused: {type(exc).__name__} (DTDs and entities are not allowed)") from None
    except ParseError as exc:
        raise InputError(f"{what} is not well-formed XML: {exc}") from None
