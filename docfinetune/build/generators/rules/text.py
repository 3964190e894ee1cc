"""What every fact family shares: a document's text, its sentences, common patterns, facts."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable

from docfinetune.core.config import RulesQAConfig
from docfinetune.core.records import Chunk
from docfinetune.core.score import ParsedDate, find_durations, words_to_numbers

# --------------------------------------------------------------------------- shared patterns

NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    "ninety|hundred"
)
NUM = rf"(?:\d+|(?:{NUMBER_WORDS})(?:[\s-]+(?:{NUMBER_WORDS}))*)(?:\s*\(\s*\d+\s*\))?"
UNIT = r"(?:calendar\s+|business\s+|working\s+)?(?:years?|months?|weeks?|days?)"
DURATION = re.compile(rf"\b{NUM}[\s-]*{UNIT}\b(?:['’]s?)?", re.IGNORECASE)
LONG_DURATION = re.compile(rf"\b{NUM}[\s-]*(?:years?|months?)\b", re.IGNORECASE)
MONEY = re.compile(
    # digits end on a digit: "shall be $24,250, prorated" is $24,250
    r"(?:US\s?\$|U\.S\.\s?\$|\$|USD\s?|EUR\s?|€|£|GBP\s?)\s?\d(?:[\d,]*\d)?(?:\.\d+)?"
    r"(?:\s*(?:million|thousand|billion))?(?:\s*\(\s*[^)]{0,60}\))?",
    re.IGNORECASE,
)
ABBREVIATIONS = {
    "inc", "corp", "ltd", "co", "no", "nos", "mr", "mrs", "ms", "dr", "st", "e.g", "i.e", "etc",
    "vs", "sec", "art", "approx", "l.p", "n.a", "u.s", "u.s.a", "p.o", "s.a", "b.v", "n.v",
    "llc", "plc", "para", "cl", "ft", "jr", "sr", "p.m", "a.m", "no", "cf",
}
CORP_SUFFIX = (
    r"(?i:Inc|Incorporated|Corp|Corporation|LLC|L\.L\.C|Ltd|Limited|Co|Company|PLC|plc|"
    r"L\.?P|LLP|GmbH|S\.A|AG|B\.V|N\.V|Pty|Pte|S\.r\.l|S\.p\.A|Partnership)\b\.?"
)
ORG_FORMS = (
    r"corporation|company|limited|partnership|entity|organization|organisation|individual|"
    r"bank|trust|association|society|firm|business|national|resident|citizen"
)


def spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def format_date(date: ParsedDate) -> str:
    month = calendar.month_name[date.month] if date.month else "____"
    day = str(date.day) if date.day else "__"
    year = str(date.year) if date.year else "____"
    return f"{month} {day}, {year}"


def duration_months(text: str) -> tuple[int, int] | None:
    """(months, days) of a duration such as "three (3) years" or "ninety (90) days"."""
    found = find_durations(re.sub(r"\(\s*(\d+)\s*\)", "", words_to_numbers(text)))
    if not found:
        return None
    (unit, amount), _, _ = found[0]
    if unit == "months":
        return int(amount), 0
    return 0, int(amount)


def add_months_days(date: ParsedDate, months: int, days: int) -> ParsedDate | None:
    if date.year is None or date.month is None:
        return None
    total = date.month - 1 + months
    year, month = date.year + total // 12, total % 12 + 1
    if date.day is None:
        return ParsedDate(year, month, None) if days == 0 else None
    day = min(date.day, calendar.monthrange(year, month)[1])
    result = dt.date(year, month, day) + dt.timedelta(days=days)
    return ParsedDate(result.year, result.month, result.day)


# --------------------------------------------------------------------------- document text


class DocText:
    """A document's chunks joined without their overlaps, with a map back to chunk ids."""

    def __init__(self, chunks: list[Chunk]):
        parts: list[str] = []
        self.spans: list[tuple[int, int, str]] = []  # (start, end, chunk_id) in self.text
        length = 0
        previous: Chunk | None = None
        for chunk in chunks:
            overlap = self._overlap(previous, chunk, "".join(parts[-2:])) if previous else 0
            if previous is not None and overlap == 0:
                parts.append("\n")
                length += 1
            start = length - overlap
            parts.append(chunk.text[overlap:])
            length += len(chunk.text) - overlap
            self.spans.append((start, length, chunk.chunk_id))
            previous = chunk
        self.text = "".join(parts)
        self._preambles: dict[int, tuple[int, int]] = {}

    @staticmethod
    def _overlap(previous: Chunk, chunk: Chunk, tail: str) -> int:
        declared = previous.char_end - chunk.char_start
        if 0 < declared <= len(chunk.text) and tail.endswith(chunk.text[:declared]):
            return declared
        for k in range(min(len(chunk.text), len(previous.text), 400), 15, -1):
            if tail.endswith(chunk.text[:k]):
                return k
        return 0

    def chunk_ids(self, start: int, end: int) -> list[str]:
        """Ids of the fewest chunks that together hold text[start:end]."""
        for s, e, cid in self.spans:  # one chunk holds all of it
            if s <= start and end <= e:
                return [cid]
        return [cid for s, e, cid in self.spans if s < end and start < e]

    def sentence(self, position: int) -> tuple[int, int]:
        return sentence_around(self.text, position)

    def preamble(self, chars: int) -> tuple[int, int]:
        """Where the opening paragraph (parties, date) is: after any cover page or contents."""
        if chars not in self._preambles:
            self._preambles[chars] = _preamble(self.text, chars)
        return self._preambles[chars]


def _preamble(text: str, chars: int) -> tuple[int, int]:
    opening = re.search(
        r"(?i)\b(?:by\s+and\s+(?:between|among)|entered\s+into|made\s+(?:and\s+entered|this|as\s+of|on|effective)|"
        r"(?:between|among)\b(?=\s*:?\s*(?:(?-i:the\s+)?(?-i:[A-Z0-9_\[])|the\s+following|,)))",
        text[: 5 * chars],
    )
    start = max(0, opening.start() - 600) if opening else 0
    # "X, a Michigan corporation (X) and Y, Inc. ("Agency") agree as follows:" opens without
    # "between" or "entered into": an agreement clause on the first page, before any such
    # words further on, marks the opening as the document's start.
    agreed = re.search(r"(?i)\bagrees?\s+as\s+follows|\bhereby\s+agrees?\b", text[:chars])
    if (opening and opening.start() < chars) or (agreed and (not opening or agreed.start() < opening.start())):
        start = 0
    end = min(len(text), start + chars)
    stop = re.search(
        r"NOW,?\s+THEREFORE|agrees?\s+as\s+follows|IT\s+IS\s+(?:HEREBY\s+)?AGREED|"
        r"RECITALS|BACKGROUND|WITNESSETH",
        text[start:end],
    )
    if stop and stop.start() > 150:
        end = start + stop.start()
    return start, end


_BOUNDARY = re.compile(r"(?<=[.!?])[\"”’)]*\s+(?=[\"“(]?[A-Z0-9])|\n\s*\n|\s{4,}(?=\d+(?:\.\d+)*\.?\s+[A-Z])")


def _is_boundary(text: str, match: re.Match) -> bool:
    if match.group(0).startswith("\n") or text[match.start() - 1 : match.start()] not in ".!?":
        return True
    before = text[max(0, match.start() - 12) : match.start() - 1]
    word = re.split(r"[\s(]", before)[-1].lower()
    if word in ABBREVIATIONS or re.fullmatch(r"[a-z]|\d+(?:\.\d+)*|[ivx]+", word):
        return False
    return True


def sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of text[start:end]."""
    end = len(text) if end is None else end
    spans, begin = [], start
    for match in _BOUNDARY.finditer(text, start, end):
        if _is_boundary(text, match):
            if text[begin : match.start()].strip():
                spans.append((begin, match.start()))
            begin = match.end()
    if text[begin:end].strip():
        spans.append((begin, end))
    return spans


def sentence_around(text: str, position: int, reach: int = 1500) -> tuple[int, int]:
    lo = max(0, position - reach)
    for s, e in sentences(text, lo, min(len(text), position + reach)):
        if s <= position < e:
            return s, e
    return position, min(len(text), position + 200)


# --------------------------------------------------------------------------- facts


@dataclass
class Fact:
    field: str
    answer: str
    questions: list[str]  # templates with {doc} (mid-sentence) and {Doc} (sentence start)
    spans: list[tuple[int, int]]  # where the answer comes from, in the document text
    meta: dict = field(default_factory=dict)


# The facts found so far in one document, by extractor name (later extractors may build on them).
Known = dict[str, list[Fact]]
# An extractor: one fact family of one document.
Extractor = Callable[[DocText, RulesQAConfig, Known], list[Fact]]


def title_words(title: str) -> str:
    title = spaces(title)
    if title.isupper() or title.islower():
        words = [w if re.search(r"\d", w) else w.capitalize() for w in title.lower().split()]
        small = {"and", "of", "the", "for", "to", "in", "on", "a", "an", "or"}
        words = [w.lower() if i and w.lower() in small else w for i, w in enumerate(words)]
        title = " ".join(words)
    return title
