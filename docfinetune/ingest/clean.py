"""Cleanup that keeps the meaning of the text.

Per page: Unicode NFKC (ligatures, no-break spaces), straight quotes, no control characters;
running headers/footers and bare page numbers dropped; words hyphenated across line breaks
rejoined; wrapped lines rejoined into paragraphs (a blank line between paragraphs, so the chunker
can prefer paragraph boundaries); whitespace runs collapsed. Pages stay separate: the page
number is provenance.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u2010": "-", "\u2011": "-", "\u2212": "-", "\u2013": "-",
        "\u00ad": None,  # soft hyphen: only a hint where a word may break
        "\ufeff": None,
    }
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t]+")
_DIGITS = re.compile(r"\d+")
_BARE_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?[-\u2013\u2014]?\s*\d{1,4}\s*[-\u2013\u2014]?(?:\s*(?:of|/)\s*\d{1,4})?$"
    r"|^[-\u2013\u2014]?\s*[ivxlc]{1,6}\s*[-\u2013\u2014]?$",
    re.IGNORECASE,
)
# A match may start only at a word's first letter (the lookbehind), and the letters are taken
# possessively: each run of letters is scanned once, so a long run costs linear time. Without
# the lookbehind every position inside a run started a scan to its end: quadratic. Same matches:
# the leftmost match always started at a word's first letter anyway.
_HYPHEN_BREAK = re.compile(r"(?<![A-Za-z])([A-Za-z]++)-\n([a-z][A-Za-z]*+)")
_WORD = re.compile(r"(?<![-\w])[A-Za-z]+(?:-[A-Za-z]+)?(?![-\w])")  # "word" or "a-b", not halves
# A line that starts a new block: list items "(a) ", "(iv) ", "a. ", numbered sections "12. ",
# "5.2 ", and the words that open articles, sections, schedules and recitals.
_BLOCK_START = re.compile(
    r"^(?:\((?:[a-zA-Z]|[ivxIVX]{1,4}|\d{1,2})\)\s"
    r"|(?:[a-z]|\d{1,2}(?:\.\d{1,2})*)\.\s"
    r"|\d{1,2}(?:\.\d{1,2})+\s"
    r"|(?:ARTICLE|Article|SECTION|Section|SCHEDULE|Schedule|EXHIBIT|Exhibit|ANNEX|Annex)\s+[\dIVXLCA-Z]"
    r"|WHEREAS\b|NOW,? THEREFORE|IN WITNESS WHEREOF"
    r"|[-*\u2022#>]\s)"
)
# A section number glued to its text at a line start ("10.1Except", "11.CONFIDENTIALITY",
# "(i)information"): the PDF placed the text at a tab stop, and the extractor lost the gap.
_GLUED_NUMBER = re.compile(
    r"^(\d{1,2}(?:\.\d{1,2})*\.(?=[A-Z])|\d{1,2}(?:\.\d{1,2}){2,3}(?=[A-Za-z])"
    r"|\d{1,2}\.\d{1,2}(?=[A-Z][a-z]|[A-Z]\s)"
    r"|\((?:[a-z]|[ivx]{1,4}|\d{1,2})\)(?=[A-Za-z]))"
)
_CONTINUES = re.compile(r"(?:,|\b(?:AND|OR|OF|THE|TO|IN|A|AN|FOR|BY|WITH|SUCH|ANY|ON|AT|FROM|AS))$")
_TITLE_CASE_REFERENCE = re.compile(r"^(?:Article|Section|Schedule|Exhibit|Annex)\s")
_ARTICLE_LINE = re.compile(r"^(?:ARTICLE|Article)\s+(?:[IVXLC]+|\d+)\b")
_BARE_ARTICLE = re.compile(r"^(?:ARTICLE|Article)\s+(?:[IVXLC]+|\d+)\.?$")
_SENTENCE_END = re.compile(r"[.:;?!][\"')\]]?$")
HEADING_MAX_CHARS = 100
# A running header or footer is short (one printed line at most: the longest real ones are
# filing legends of ~140 characters, ~20 words), and the document has enough pages to tell.
HEADER_MAX_CHARS = 150
HEADER_MAX_WORDS = 25
RUNNING_MIN_PAGES = 3


def normalize_chars(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # PDFium marks a hyphen it found at a line end as \x02 (and may drop the break).
    text = re.sub("\x02\n?", "-\n", text)
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
    return _CONTROL.sub("", text)


def is_heading_line(line: str) -> bool:
    """Short lines that title a part: "ARTICLE V", "12. GOVERNING LAW", "# Fees", all caps."""
    if not line or len(line) > HEADING_MAX_CHARS:
        return False
    if _ARTICLE_LINE.match(line) or line.startswith("#"):
        return True
    letters = [c for c in line if c.isalpha()]
    if len(letters) < 4 or line.endswith(","):
        return False
    return sum(c.isupper() for c in letters) / len(letters) >= 0.85


def _page_lines(text: str) -> list[str]:
    lines = (_SPACES.sub(" ", line).strip() for line in normalize_chars(text).split("\n"))
    return [_GLUED_NUMBER.sub(r"\1 ", line) for line in lines]


def _edge_positions(lines: list[str], per_edge: int = 3) -> list[int]:
    """Indices of the first and last few non-empty lines: where headers and footers sit."""
    filled = [i for i, line in enumerate(lines) if line]
    return sorted(set(filled[:per_edge] + filled[-per_edge:]))


def _running_candidate(line: str) -> bool:
    """A line short enough to be a running header or footer: a title, a party, "Page 3 of 20"."""
    return 0 < len(line) <= HEADER_MAX_CHARS and len(line.split()) <= HEADER_MAX_WORDS


def _key(line: str) -> str:
    return _DIGITS.sub("#", line.lower())


def drop_headers_footers(
    pages: list[list[str]], repeat_min_share: float
) -> tuple[list[list[str]], list[str]]:
    """Remove bare page numbers and lines that repeat at a page edge (digits ignored, so
    "Page 3 of 20" and "Confidential - 7" count as one line) on enough pages.

    Never a page's body: only short lines among a page's first and last few count; a document
    of fewer than `RUNNING_MIN_PAGES` different pages has no running lines; pages that are the
    same text (digits ignored: a copy for each party, a form filled in per item) count as one
    page, so their lines are content, not headers; and a page that would be left empty keeps
    its lines.

    Returns the pages and the removed lines, in order."""
    signatures = [tuple(_key(line) for line in lines if line) for lines in pages]
    votes: dict[str, set[tuple[str, ...]]] = {}
    for lines, signature in zip(pages, signatures):
        for i in _edge_positions(lines):
            if _running_candidate(lines[i]):
                votes.setdefault(_key(lines[i]), set()).add(signature)
    distinct = len(set(signatures))
    needed = max(2, math.ceil(repeat_min_share * distinct))
    running = (
        {key for key, voters in votes.items() if len(voters) >= needed}
        if distinct >= RUNNING_MIN_PAGES else set()
    )
    cleaned, dropped = [], []
    for lines in pages:
        edges = set(_edge_positions(lines))
        drop = {
            i for i in edges
            if _BARE_PAGE_NUMBER.match(lines[i])
            or (_running_candidate(lines[i]) and _key(lines[i]) in running)
        }
        if drop and all(not line for i, line in enumerate(lines) if i not in drop):
            drop = set()  # all that is on the page: content, whatever it looks like
        dropped.extend(lines[i] for i in sorted(drop))
        cleaned.append(["" if i in drop else line for i, line in enumerate(lines)])
    return cleaned, dropped


def rejoin_hyphenated(text: str, known_words: set[str]) -> str:
    """Undo a word split across a line break: "termi-\nnation" -> "termination" when the
    document spells "termination" elsewhere. Otherwise the hyphen is real and stays
    ("decision-\nmaking" -> "decision-making"): contracts are rarely hyphenated by layout."""

    def join(m: re.Match) -> str:
        whole = m.group(1) + m.group(2)
        return whole if whole.lower() in known_words else f"{m.group(1)}-{m.group(2)}"

    return _HYPHEN_BREAK.sub(join, text)


def _shouted_lines(lines: list[str]) -> list[bool]:
    """Lines of a paragraph set in capitals (disclaimers, liability caps): three or more capital
    lines in a row, or one that ends mid-phrase ("...OR", "...,"). They are text, not headings."""
    caps = [is_heading_line(line) and not _ARTICLE_LINE.match(line) and not line.startswith("#")
            for line in lines]
    shouted = [bool(c and _CONTINUES.search(line)) for c, line in zip(caps, lines)]
    start = 0
    for i in range(len(lines) + 1):
        if i == len(lines) or not caps[i]:
            if i - start >= 3:
                shouted[start:i] = [True] * (i - start)
            start = i + 1
    return shouted


def unwrap_paragraphs(lines: list[str], full_line_chars: int) -> str:
    """Join wrapped lines into paragraphs separated by a blank line.

    A paragraph ends at a blank line, a heading, a line that opens a new block (list item,
    numbered section), or a line well short of a full one that ends a sentence.
    """
    paragraphs: list[str] = []
    current: list[str] = []
    shouted = _shouted_lines(lines)

    def flush() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    for i, line in enumerate(lines):
        if not line:
            flush()
            continue
        # After a line that ends mid-sentence, "Article V." is a wrapped cross-reference and a
        # line in capitals is the end of a shouted sentence: both continue the paragraph.
        mid_sentence = bool(current) and not _SENTENCE_END.search(current[-1]) and (
            bool(_TITLE_CASE_REFERENCE.match(line))
            or (is_heading_line(line) and not _ARTICLE_LINE.match(current[-1])))
        if mid_sentence:
            current.append(line)
            continue
        heading = is_heading_line(line) and len(line) < 0.8 * full_line_chars and not shouted[i]
        if current and len(current) == 1 and _BARE_ARTICLE.match(current[0]) and heading:
            current.append(line)  # "ARTICLE V" + "TERM AND RENEWAL" -> one heading
            flush()
            continue
        if current and (heading or _BLOCK_START.match(line)):
            flush()
        current.append(line)
        short = len(line) < 0.7 * full_line_chars
        if _BARE_ARTICLE.match(line):
            continue  # wait: the article's title may follow on the next line
        if heading or (short and _SENTENCE_END.search(line)) or len(line) < 0.35 * full_line_chars:
            flush()
    flush()
    return "\n\n".join(paragraphs)


@dataclass
class CleanedText:
    pages: list[str]  # one cleaned text per input page
    dropped_lines: list[str]  # running headers/footers and page numbers that were removed


def clean_pages(raw_pages: list[str], repeat_min_share: float = 0.5) -> CleanedText:
    """Raw page texts in, cleaned page texts out (same count, same order)."""
    pages, dropped = drop_headers_footers([_page_lines(p) for p in raw_pages], repeat_min_share)
    texts = ["\n".join(lines) for lines in pages]
    known_words = {w.lower() for t in texts for w in _WORD.findall(t)}
    texts = [rejoin_hyphenated(t, known_words) for t in texts]
    lengths = sorted(len(line) for t in texts for line in t.split("\n") if line)
    # The 90th-percentile line length stands for "a full line" of this document's layout.
    full_line_chars = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 80
    return CleanedText(
        [unwrap_paragraphs([line.strip() for line in t.split("\n")], full_line_chars) for t in texts],
        dropped,
    )
