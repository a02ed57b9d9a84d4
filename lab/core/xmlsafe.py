"""Read input that may come from a student's machine: bounded in size, depth and kind.

XML: no DTDs, no entities, no network (defusedxml), and no nesting deeper than
MAX_XML_DEPTH, refused while parsing, before any code walks the tree recursively.
JSON: no nesting deeper than MAX_JSON_DEPTH (the json module recurses per level).
Files: regular files only, at most MAX_INPUT_BYTES, never opened for a blocking read.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from lab.core.errors import InputError

# The largest CIB (or crm_mon view, or shadow) read from a file or from one gather section.
# The CIB of a large production cluster (hundreds of resources, a long status history) is a
# few MiB, and pacemaker itself passes the whole CIB in one (compressed) IPC message; 16 MiB
# leaves room for several times that while bounding what a hostile input costs to parse
# (an element tree takes several times the text's size in memory).
MAX_INPUT_BYTES = 16 * 1024 * 1024
# libxml2, which pacemaker parses with, refuses documents nested deeper than 256 levels
# (xmlParserMaxDepth without XML_PARSE_HUGE), so deeper XML is no CIB pacemaker could act on;
# a real CIB or crm_mon view is about 12 levels deep (bundles and nested rules included).
MAX_XML_DEPTH = 256
# pcsd's known-hosts and tokens files are 3 levels deep.
MAX_JSON_DEPTH = 32


class _TooDeep(Exception):
    """Raised from inside the parser's callbacks; expat passes it straight out of feed()."""


class _DepthLimitedBuilder(TreeBuilder):
    """A TreeBuilder that counts open elements and stops at the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:  # type: ignore[override]
        self.depth += 1
        if self.depth > self.limit:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag: str) -> Element:  # type: ignore[override]
        self.depth -= 1
        return super().end(tag)


def parse_untrusted(text: str, what: str, *, max_depth: int = MAX_XML_DEPTH) -> Element:
    """Parse text as XML or raise InputError saying what was wrong with `what`."""
    if not text.strip():
        raise InputError(f"{what} is empty")
    if len(text) > MAX_INPUT_BYTES:
        raise InputError(f"{what} is larger than {MAX_INPUT_BYTES // 2**20} MiB")
    parser = DefusedXMLParser(target=_DepthLimitedBuilder(max_depth), forbid_dtd=True,
                              forbid_entities=True, forbid_external=True)
    try:
        parser.feed(text)
        return parser.close()
    except _TooDeep:
        raise InputError(f"{what} is refused: XML nested deeper than {max_depth} levels") from None
    except DefusedXmlException as exc:
        raise InputError(f"{what} is refused: {type(exc).__name__} (DTDs and entities are not allowed)") from None
    except ParseError as exc:
        raise InputError(f"{what} is not well-formed XML: {exc}") from None


# A JSON string (with escapes) or one bracket; everything else cannot change the depth.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)


def json_depth(text: str) -> int:
    """How deeply text's arrays and objects nest, without parsing (and recursing into) it."""
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(text):
        first = match.group()[0]
        if first in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif first in "]}":
            depth -= 1
    return deepest


def loads_untrusted_json(text: str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads with a depth and size limit; InputError says what was wrong with `what`."""
    if len(text) > MAX_INPUT_BYTES:
        raise InputError(f"{what} is larger than {MAX_INPUT_BYTES // 2**20} MiB")
    if json_depth(text) > max_depth:
        raise InputError(f"{what} is refused: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None


def read_untrusted_file(path: Path, what: str = "file", *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else one clear InputError.

    A FIFO, device or socket is refused from its type alone: it is opened (non-blocking)
    only after stat says it is a regular file, and checked again on the open descriptor.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    _require_regular(path, what, info.st_mode)
    if info.st_size > limit:
        raise InputError(f"{path} is {info.st_size // 2**20} MiB, larger than the "
                         f"{limit // 2**20} MiB a {what} may have")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        _require_regular(path, what, os.fstat(fd).st_mode)  # replaced since the stat?
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise InputError(f"{path} is larger than the {limit // 2**20} MiB a {what} may have")
    return b"".join(chunks)


def _require_regular(path: Path, what: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise InputError(f"{path} is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise InputError(f"{path} is {kind}, not a {what}: save it to a regular file first")


def one_line(text: str, limit: int = 300) -> str:
    """Untrusted text made safe for one line of a terminal: control, format and line-separator
    characters are escaped (\\n, \\x1b, \\u2028) and the result is cut at `limit` characters
    (0: no cut); a newline entity in a CIB attribute cannot forge a report line."""
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                    for ch in text)
    if not limit:
        return shown
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
