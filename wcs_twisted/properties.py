# -*- test-case-name: tests.test_config -*-
"""
The Java-properties syntax of WCS's flashphoner.properties: lines, comments, continuations,
escapes.  Only the syntax: what the keys mean is L{wcs_twisted.config}'s business.
"""

from __future__ import annotations

import re

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str):
    """
    Yield (line number, logical line): comments dropped, backslash continuations joined.
    """
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip(" \t\f")
        if not pending:
            start = number
            if not line or line[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, "".join(pending)
        pending = []
    if pending:
        yield start, "".join(pending)


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[index + 2 : index + 6]):
                out.append(chr(int(text[index + 2 : index + 6], 16)))
                index += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def parse_properties(text: str) -> list[tuple[int, str, str]]:
    """
    Parse Java-properties text into (line number, key, value) triples, in file order.

    Separators are C{=}, C{:} or whitespace; values keep inner whitespace; C{\\uXXXX} and the usual
    backslash escapes are decoded.

    @raise ValueError: a line is not key=value, naming its number.
    """
    entries = []
    for number, line in _logical_lines(text):
        match = re.match(r"((?:\\.|[^=:\s\\])+)\s*[=:\s]?\s*(.*)$", line, re.S)
        if match is None:
            raise ValueError(f"line {number}: cannot read {line!r} as key=value")
        key, value = match.group(1), match.group(2)
        entries.append((number, _unescape(key), _unescape(value.rstrip("\r\n"))))
    return entries
