"""Lenient JSON decoding of a model's reply: the JSON is taken out of code fences and prose
around it; trailing commas, single-quoted strings and a reply cut off mid-list are repaired.
`decode_leniently` says whether a repair (beyond finding the JSON) was needed.

Hand-written rather than the `json-repair` package, by measurement (2026-11-30): put in place of
`json_values`, json-repair failed 6 of the 26 tests of tests/test_qa_llm.py — it does not say
*whether* a reply was repaired (stats.json counts it), and it reads the wrong region of a reply
whose prose holds brackets before the JSON (e.g. "<think>maybe [1]?</think>[...]").
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Iterator

# Opening brackets tried as the start of the JSON (prose before it may contain some).
_MAX_JSON_STARTS = 20


def _json_region(reply: str) -> str:
    """Where the JSON is: inside the first code fence that holds a bracket, else the whole reply."""
    text = re.sub(r"(?s)<think>.*?</think>", "", reply)  # reasoning models' thoughts
    fence = re.search(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|$)", text, re.DOTALL)
    if fence and re.search(r"[\[{]", fence.group(1)):
        return fence.group(1)
    return text


def _single_to_double_quotes(text: str) -> str:
    """Rewrite 'single-quoted' strings as "double-quoted" ones (apostrophes inside "..." kept)."""
    out: list[str] = []
    quote = None  # the delimiter of the string we are in, if any
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None:
            if ch in "\"'":
                quote = ch
                out.append('"')
            else:
                out.append(ch)
        elif ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(nxt if (quote == "'" and nxt == "'") else ch + nxt)
            i += 1
        elif ch == quote:
            quote = None
            out.append('"')
        elif ch == '"':  # a double quote inside a single-quoted string
            out.append('\\"')
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def scan_json(text: str):
    """(index, character, inside a string) for each character of JSON-like text; a string's
    quotes count as inside it."""
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            yield i, ch, True
        else:
            in_string = ch == '"'
            yield i, ch, in_string


def _remove_trailing_commas(text: str) -> str:
    """Drop commas before a closing bracket, outside strings."""
    out: list[str] = []
    for _, ch, inside in scan_json(text):
        if not inside and ch in "]}":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
        out.append(ch)
    return "".join(out)


def _close_truncated(text: str) -> str | None:
    """Cut a reply that stops mid-list back to its last complete element and close it.

    `[{"answer": "a", "questions": ["q"]}, {"answer": "b", "quest` -> `[{"answer": "a", ...}]`
    """
    stack: list[str] = []
    last_cut: tuple[int, list[str]] | None = None
    for i, ch, inside in scan_json(text):
        if inside:
            continue
        if ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}":
            if not stack or stack[-1] != ch:
                return None
            stack.pop()
            if not stack:
                return text[: i + 1]  # complete after all; nothing to close
            if len(stack) == 1 and stack[0] == "]":
                last_cut = (i + 1, list(stack))  # an element of the top-level list just ended
    if last_cut is None:
        return None
    end, closers = last_cut
    return text[:end] + "".join(reversed(closers))


def _decode(text: str) -> Any:
    """The first JSON value in `text` (trailing prose ignored); ValueError when there is none."""
    value, _ = json.JSONDecoder().raw_decode(text)
    return value


def decode_leniently(text: str) -> tuple[Any, bool] | None:
    """(value, repaired) or None. Tries the text as is, then with each repair in turn."""
    try:
        return _decode(text), False
    except ValueError:
        pass
    candidates = []
    fixed = _remove_trailing_commas(text)
    candidates.append(fixed)
    if "'" in text:
        candidates.append(_remove_trailing_commas(_single_to_double_quotes(text)))
    for candidate in list(candidates):
        closed = _close_truncated(candidate)
        if closed is not None:
            candidates.append(closed)
    for candidate in candidates:
        try:
            return _decode(candidate), True
        except ValueError:
            continue
    try:  # Python-literal style: single quotes with apostrophes escaped, True/None, ...
        value = ast.literal_eval(text.strip())
        if isinstance(value, (list, dict)):
            return value, True
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    return None


def json_values(reply: str) -> Iterator[tuple[Any, bool]]:
    """(value, repaired) for each place in the reply where JSON can be read. The JSON may start
    at any bracket (prose before it may hold brackets too), so each opening bracket is tried in
    turn, up to _MAX_JSON_STARTS of them."""
    text = _json_region(reply)
    for n, start in enumerate(re.finditer(r"[\[{]", text)):
        if n == _MAX_JSON_STARTS:
            return
        decoded = decode_leniently(text[start.start():])
        if decoded is not None:
            yield decoded


def escape_newlines_in_strings(text: str) -> str:
    """Raw line breaks and tabs inside "double-quoted" strings escaped, as JSON requires (models
    often break a long passage over lines)."""
    escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(escapes.get(ch, ch) if inside else ch for _, ch, inside in scan_json(text))
