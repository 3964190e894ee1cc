"""One answer scorer for the whole project: coverage benchmarks, checkpoint selection, eval.

``answer_matches(prediction, reference, field)`` decides whether a model's (or a generator's)
answer states the reference answer. A prediction that recites its clause first (build.recite:
"<clause> ⇒ <answer>") is scored on what follows the last ``RECITAL_MARK``. The rule, in order:

1. A reference may list several parts separated by ";" ("A; B"). For ``parties`` and
   ``governing_law`` every part must match (each party, each governing law); for any other
   field one part is enough (annotators list alternative spellings of the same date).
2. Dates: when the reference part holds a date, the prediction must hold an equal date
   ("5/8/14" == "May 8, 2014" == "the 8th day of May 2014" == "2014-05-08"; a blank in the
   reference, "02/[]/2017" or "February __, 2017", matches any value there) and no more than
   ``max_extra_values`` other distinct dates, so a list of dates cannot match everything.
3. Durations: when the reference part holds durations ("thirty (30) days", "2 successive
   5 years"), the prediction must hold each of them (1 year == 12 months, 1 week == 7 days),
   every bare count of the reference ("2"), and at most ``max_extra_values`` other durations.
4. "perpetual" == "indefinite" == "in perpetuity" == "until terminated" (no fixed end).
5. Otherwise text: the normalized reference (lower case, no punctuation, articles or
   boilerplate such as "the laws of the State of") must occur as a run of words in the
   normalized prediction, and the prediction may be at most ``max_extra_words`` words
   longer than the reference (a paragraph that happens to contain the answer does not count).

Parties: each reference party's name (without its role in parentheses, quotes, and
"including its successors ..." qualifiers, with company suffixes such as Inc./Corp./LLC/Ltd
dropped) matches when all of its words occur in the prediction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "RECITAL_MARK",
    "ParsedDate",
    "answer_matches",
    "find_dates",
    "find_durations",
    "answer_pattern",
    "normalize_answer",
    "normalize_spaces",
    "recalled_answer",
    "sentence_start",
    "words_to_numbers",
]

RECITAL_MARK = " ⇒ "  # between a recited clause and the answer (build.recite); not a character contracts use
CHOICE_MARK = "\nOptions: "  # between a multiple-choice row's question and its options (build.choice_share)

MAX_EXTRA_VALUES = 1  # other dates / durations a prediction may state besides the reference's
MAX_EXTRA_WORDS = 30  # how much longer than the reference a text prediction may be

# --------------------------------------------------------------------------- numbers in words

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17,
    "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES], key=len, reverse=True))
_NUMBER_RUN = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}))*\b", re.IGNORECASE
)
_ORDINAL_RUN = re.compile(
    rf"\b(?:(?:{'|'.join(_TENS)})[\s-]+)?(?:{'|'.join(_ORDINALS)})\b", re.IGNORECASE
)


def _words_value(words: list[str]) -> int:
    total, current = 0, 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:  # thousand, million
            total += max(current, 1) * _SCALES[word]
            current = 0
    return total + current


_FRACTION = re.compile(r"\b(?:(?:one|a)[\s-]+(?P<part>half|quarter)|three[\s-]+quarters)\b", re.IGNORECASE)
_FRACTION_VALUE = {"half": "0.5", "quarter": "0.25", None: "0.75"}


def words_to_numbers(text: str) -> str:
    """Write numbers given in words as digits: "twenty-four (24) months" -> "24 (24) months",
    "one and one-quarter percent" -> "1.25 percent". "and" joins words into one number only after
    hundred, thousand or million ("one hundred and five" -> 105, "one and one" stays two)."""

    def number(match: re.Match) -> str:
        out, words = [], []
        for word in re.split(r"[\s-]+", match.group(0).lower()):
            if word == "and" and words and words[-1] not in _SCALES:
                out.append(str(_words_value(words)))
                words = []
            elif word != "and":
                words.append(word)
        return " and ".join(out + [str(_words_value(words))])

    def fraction(match: re.Match) -> str:
        part = match.group("part")
        return _FRACTION_VALUE[part.lower() if part else None]

    text = _NUMBER_RUN.sub(number, _FRACTION.sub(fraction, text))
    # "1 and 0.25" -> "1.25"
    return re.sub(r"\b(\d+)\s+and\s+0(\.\d+)\b", lambda m: f"{int(m.group(1)) + float(m.group(2)):g}", text)


def _ordinal_value(text: str) -> int:
    words = re.split(r"[\s-]+", text.lower())
    return sum(_TENS.get(w, 0) + _ORDINALS.get(w, 0) for w in words)


# --------------------------------------------------------------------------- dates

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = (
    r"(?P<{g}>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_BLANK = r"(?:_+|\[\s*\])"
# a day: 8, 08, 8th, OCR'd "24t h", an ordinal word, or a blank
_DAY = (
    r"(?P<{g}>\d{{1,2}})(?:\s?(?:st|nd|rd|th|t\s?h))?|(?P<{g}w>(?:(?:twenty|thirty)[\s-]+)?"
    r"(?:" + "|".join(_ORDINALS) + r"))|(?P<{g}b>" + _BLANK + r")"
)
_YEAR = r"(?P<{g}>\d{{4}})|(?P<{g}c>\d{{2}})(?:_+|\[\s*\])|(?P<{g}b>" + _BLANK + r")"
_YEAR_SHORT = r"(?P<{g}>\d{{4}}|\d{{2}}(?![_\[]))|(?P<{g}c>\d{{2}})(?:_+|\[\s*\])|(?P<{g}b>" + _BLANK + r")"


def _fmt(pattern: str, **groups: str) -> str:
    return pattern.format(**groups)


_DATE_PATTERNS = [
    # May 8, 2014 / February ____, 2017 / August 2018 / November 01, 2016
    re.compile(
        r"\b" + _MONTH.format(g="m1")
        + r"\s*(?:(?:" + _fmt(_DAY, g="d1") + r")\s*,?\s*)?,?\s*(?:" + _fmt(_YEAR, g="y1")
        + r")(?![\d/])",
        re.IGNORECASE,
    ),
    # 8th day of May, 2014 / 15 April, 2009 / _____ day of ______ 2013 / 1st January 2013
    re.compile(
        r"(?<![\d/])(?:" + _fmt(_DAY, g="d2") + r")\s*(?:day\s+of\s+(?:(?:the\s+)?month\s+of\s+)?)?"
        r"(?:" + _MONTH.format(g="m2") + r"|(?P<m2b>" + _BLANK + r"(?=\s*,?\s*(?:\d{4}|\d{2}_)))"
        r")\s*,?\s*(?:in\s+the\s+year\s+)?(?:" + _fmt(_YEAR, g="y2") + r")(?![\d/])",
        re.IGNORECASE,
    ),
    # 5/8/14, 05-08-2014, 02/[]/2017, []/[]/19[]
    re.compile(
        r"(?<![\d/.])(?:(?P<m3>\d{1,2})|(?P<m3b>" + _BLANK + r"))\s*([/-])\s*"
        r"(?:(?P<d3>\d{1,2})|(?P<d3b>" + _BLANK + r"))\s*\3\s*(?:" + _fmt(_YEAR_SHORT, g="y3")
        + r")(?![\d/])",
        re.IGNORECASE,
    ),
    # 2014-05-08
    re.compile(r"\b(?P<y4>\d{4})-(?P<m4>\d{1,2})-(?P<d4>\d{1,2})\b"),
]


@dataclass(frozen=True)
class ParsedDate:
    """A calendar date; None in a part means it is blank in the text ("February __, 2017")."""

    year: int | None
    month: int | None
    day: int | None

    def matches(self, prediction: "ParsedDate") -> bool:
        """A blank reference part matches anything; a blank prediction part only a blank."""
        return all(
            ref is None or ref == pred
            for ref, pred in zip(
                (self.year, self.month, self.day),
                (prediction.year, prediction.month, prediction.day),
            )
        )

    def token(self) -> str:
        parts = (self.year, self.month, self.day)
        return "date" + "-".join("x" if p is None else str(p) for p in parts)


def _year(four: str | None, two: str | None) -> int | None:
    if four:
        return int(four)
    if two:
        value = int(two)
        return 2000 + value if value < 50 else 1900 + value
    return None


def _parse(match: re.Match, i: int) -> ParsedDate | None:
    g = match.groupdict()
    year_text = g.get(f"y{i}")
    year = _year(year_text, None) if year_text and len(year_text) == 4 else _year(None, year_text)
    month_text = g.get(f"m{i}")
    if month_text and not month_text.isdigit():
        month = _MONTHS[month_text.lower()[:3]]
    else:
        month = int(month_text) if month_text else None
    day = int(g[f"d{i}"]) if g.get(f"d{i}") else None
    if g.get(f"d{i}w"):
        day = _ordinal_value(g[f"d{i}w"])
    if month is not None and not 1 <= month <= 12:
        return None
    if day is not None and not 1 <= day <= 31:
        return None
    if year is not None and not 1900 <= year <= 2100:
        return None
    if year is None and month is None and day is None and not g.get(f"y{i}b") and not g.get(f"y{i}c"):
        return None
    return ParsedDate(year, month, day)


def find_dates(text: str) -> list[tuple[ParsedDate, int, int]]:
    """Every date in ``text`` as (date, start, end), earliest first, without overlaps."""
    candidates = []
    for i, pattern in enumerate(_DATE_PATTERNS, start=1):
        for match in pattern.finditer(text):
            date = _parse(match, i)
            if date is not None:
                candidates.append((date, match.start(), match.end()))
    # the longest reading wins ("8th day of May 2014" over "May 2014")
    candidates.sort(key=lambda c: (-(c[2] - c[1]), c[1]))
    found: list[tuple[ParsedDate, int, int]] = []
    for date, start, end in candidates:
        if not any(start < e and s < end for _, s, e in found):
            found.append((date, start, end))
    return sorted(found, key=lambda item: item[1])


# --------------------------------------------------------------------------- durations

_UNIT_MONTHS = {"year": 12, "month": 1}
_UNIT_DAYS = {"week": 7, "day": 1}
_DURATION = re.compile(
    r"(?P<n>\d+(?:\.\d+)?)\s*(?:\(\s*\d+(?:\.\d+)?\s*\)\s*)?-?\s*"
    r"(?P<kind>business\s+|calendar\s+|working\s+)?(?P<unit>year|yr|month|week|day)s?\b",
    re.IGNORECASE,
)


def find_durations(text: str) -> list[tuple[tuple[str, float], int, int]]:
    """Durations as ((unit, amount), start, end): 1 year -> ("months", 12), 2 weeks -> ("days", 14).

    ``text`` should already have numbers in words written as digits (see words_to_numbers).
    """
    out = []
    for match in _DURATION.finditer(text):
        unit = match.group("unit").lower().replace("yr", "year")
        amount = float(match.group("n"))
        kind = (match.group("kind") or "").strip().lower()
        if unit in _UNIT_MONTHS:
            value = ("months", amount * _UNIT_MONTHS[unit])
        elif kind in ("business", "working"):
            value = ("business days", amount * _UNIT_DAYS[unit])
        else:
            value = ("days", amount * _UNIT_DAYS[unit])
        out.append((value, match.start(), match.end()))
    return out


# --------------------------------------------------------------------------- text

_ARTICLES = {"a", "an", "the"}
_COMPANY_SUFFIXES = {
    "inc", "incorporated", "corp", "corporation", "llc", "ltd", "limited", "co", "company",
    "plc", "lp", "llp", "gmbh", "sa", "ag", "bv", "nv", "pty", "pte", "srl", "spa",
}
_PERPETUAL = re.compile(
    r"\b(?:perpetual(?:ly)?|in perpetuity|indefinite(?:ly)?|until terminated|no fixed (?:term|end))\b"
)
_DEMONYMS = {
    "english": "england", "scottish": "scotland", "welsh": "wales", "irish": "ireland",
    "french": "france", "german": "germany", "swiss": "switzerland", "dutch": "netherlands",
    "indian": "india", "chinese": "china", "japanese": "japan", "canadian": "canada",
    "singaporean": "singapore", "israeli": "israel", "swedish": "sweden", "italian": "italy",
    "spanish": "spain", "korean": "korea", "australian": "australia",
}
# words that carry no content in a field's answers
_FIELD_FILLER = {
    "governing_law": r"\b(?:laws?|of|state|commonwealth|province|republic|kingdom|usa|u s a|us)\b",
    "renewal_term": r"\b(?:successive|additional|further|consecutive|renewal|terms?|periods?|each)\b",
}


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("“", '"'), ("”", '"'), ("‘", "'"), ("’", "'"), ("–", "-"), ("—", "-")):
        text = text.replace(a, b)
    return text


def _numbers(text: str) -> str:
    """Digits for words, "30 (30)" -> "30", "$1,000.00" -> "1000"."""
    text = words_to_numbers(text)
    text = re.sub(r"(\d),(?=\d{3}\b)", r"\1", text)
    text = re.sub(r"(?:\bus\s?|\busd\s?)?\$\s?(\d[\d.]*)", r"\1 dollars", text)
    text = re.sub(r"\busd\s?(\d[\d.]*)", r"\1 dollars", text)
    text = re.sub(r"(\d+)\.00\b", r"\1", text)
    text = re.sub(r"\b(\d+(?:\.\d+)?) dollars\s*\(\s*\1 dollars\s*\)", r"\1 dollars", text)
    # a number restated in digits: "30 (30)", "4 percent (4%)", "1.25 percent (1.25%)" -> once
    text = re.sub(r"\b(\d+(?:\.\d+)?)\s*(%|\s*percent\b)?\s*\(\s*\1\s*(?:%|percent)?\s*\)",
                  lambda m: m.group(1) + (" percent" if m.group(2) else ""), text)
    text = re.sub(r"(\d)\s*%", r"\1 percent", text)
    return text


def normalize_answer(text: str, field: str | None = None) -> str:
    """Lower case, dates as tokens, numbers as digits, no punctuation/articles/extra spaces."""
    text = _ascii(text)
    # dates first (they contain numbers), as a single token each
    pieces, last = [], 0
    for date, start, end in find_dates(text):
        pieces += [text[last:start], f" {date.token()} "]
        last = end
    text = "".join(pieces + [text[last:]]).lower()
    text = _numbers(text)
    text = re.sub(r"[^a-z0-9.\s-]", " ", text)
    text = re.sub(r"(?<!\d)[.-]|[.-](?!\d)", " ", text)
    if field == "governing_law":
        words = [_DEMONYMS.get(w, w) for w in text.split()]
        text = " ".join(words)
    if field in _FIELD_FILLER:
        text = re.sub(_FIELD_FILLER[field], " ", text)
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _party_name(part: str) -> list[str]:
    name = re.split(r"\(|\bincluding\b|\"|,\s*an?\s", _ascii(part), maxsplit=1)[0]
    words = normalize_answer(name).split()
    return [w for w in words if w not in _COMPANY_SUFFIXES and w not in {"and", "&"}]


def _part_matches(prediction: str, reference: str, field: str | None, extra: int) -> bool:
    if field == "parties":
        name = _party_name(reference)
        if name:
            pred_words = set(w for w in normalize_answer(prediction).split())
            return all(w in pred_words for w in name)
    if field == "governing_law" and "," in reference:
        reference = reference.split(",", 1)[0]  # "England, United Kingdom" -> "England"

    ref_dates = [d for d, _, _ in find_dates(_ascii(reference))]
    if ref_dates:
        pred_dates = {d for d, _, _ in find_dates(_ascii(prediction))}
        found = all(any(r.matches(p) for p in pred_dates) for r in ref_dates)
        return found and len(pred_dates) <= len(set(ref_dates)) + extra

    ref_norm = normalize_answer(reference, field)
    pred_norm = normalize_answer(prediction, field)
    if _PERPETUAL.search(normalize_answer(reference)):
        return bool(_PERPETUAL.search(normalize_answer(prediction)))

    ref_durations = find_durations(ref_norm)
    if ref_durations:
        pred_durations = find_durations(pred_norm)
        pred_values = {v for v, _, _ in pred_durations}
        ref_values = {v for v, _, _ in ref_durations}
        # bare counts in the reference ("2 successive 5 years"): outside any duration
        spans = [(s, e) for _, s, e in ref_durations]
        counts = {
            m.group(0)
            for m in re.finditer(r"\d+(?:\.\d+)?", ref_norm)
            if not any(s <= m.start() < e for s, e in spans)
        }
        pred_numbers = set(re.findall(r"\d+(?:\.\d+)?", pred_norm))
        return (
            ref_values <= pred_values
            and counts <= pred_numbers
            and len(pred_values) <= len(ref_values) + extra
        )

    ref_words, pred_words = ref_norm.split(), pred_norm.split()
    if not ref_words:
        return not pred_words
    return _contains_run(pred_words, ref_words) and len(pred_words) <= len(ref_words) + MAX_EXTRA_WORDS


def answer_matches(
    prediction: str,
    reference: str,
    field: str | None = None,
    max_extra_values: int = MAX_EXTRA_VALUES,
) -> bool:
    """Whether ``prediction`` states ``reference`` (see the module docstring for the rule)."""
    prediction = recalled_answer(prediction)
    parts = [p.strip() for p in reference.split(";") if p.strip(" ;,.")]
    if not parts:
        return False
    results = (_part_matches(prediction, p, field, max_extra_values) for p in parts)
    return all(results) if field in ("parties", "governing_law") else any(results)


def normalize_spaces(text: str) -> str:
    """Every whitespace run as one space, no leading or trailing space."""
    return " ".join(text.split())


# Where a sentence (or a line: a heading, a list item) ends; a clause after ";" or ":" counts as one.
_SENTENCE_END = re.compile(r"(?:[.;:?!][\"')\]]*\s+|\n\s*)")


def sentence_start(text: str, position: int) -> int:
    """Where the sentence holding `position` starts: after the last sentence end before it (a
    recital's start, build.recite)."""
    start = 0
    for end in _SENTENCE_END.finditer(text, 0, position):
        start = end.end()
    return start


def answer_pattern(answer: str, ignore_case: bool = False) -> re.Pattern | None:
    """`answer` as it may stand in a document: its words with any whitespace run between them
    (a PDF's line breaks); None for an empty answer."""
    words = answer.split()
    if not words:
        return None
    return re.compile(r"\s+".join(map(re.escape, words)), re.IGNORECASE if ignore_case else 0)


def recalled_answer(prediction: str) -> str:
    """The answer of a prediction that recites its clause first (what follows the last
    ``RECITAL_MARK``); any other prediction whole."""
    _, mark, answer = prediction.rpartition(RECITAL_MARK.strip())
    return answer.strip() if mark else prediction


_SUPPORT_WORD = re.compile(r"[a-z0-9]+")


def is_supported(answer: str, source_text: str) -> bool:
    """The answer's words all occur in the source text (after the scorer's normalization:
    case, punctuation, numbers in words), or its normalized form occurs there whole."""
    normalized_answer = normalize_answer(answer)
    normalized_source = normalize_answer(source_text)
    if normalized_answer and normalized_answer in normalized_source:
        return True
    words = set(_SUPPORT_WORD.findall(normalized_answer))
    return bool(words) and words <= set(_SUPPORT_WORD.findall(normalized_source))
