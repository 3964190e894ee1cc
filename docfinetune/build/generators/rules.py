"""The offline ``rules`` Q&A generator: contract facts found by patterns, several phrasings each.

No model and no network: regular expressions over the chunks of each document find facts that
contracts state in recognisable forms (parties and roles, dates, term and renewal, notice
periods, governing law, venue, fees, definitions, what each numbered section provides). Each
fact becomes ``min_phrasings`` or more questions with the same short answer, taken from the
text of the chunks listed as its sources. Two answers are derived rather than copied, and are
marked ``meta["derived"] = True``: an expiration date computed as start date + initial term
("April 15, 2012 (three (3) years after 15 April, 2009)"), and an effective date that the text
ties to the agreement date ("the date of execution").

How a document's text is searched: its chunks are joined in index order with their overlaps
removed, so a fact that straddles two chunks is found and cites both chunk ids.
Output is deterministic: same chunks in, same Q&A pairs (and fact ids) out.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from typing import Iterable

from docfinetune.core.config import RulesQAConfig
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.score import ParsedDate, find_dates

# --------------------------------------------------------------------------- shared patterns

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    "ninety|hundred"
)
_NUM = rf"(?:\d+|(?:{_NUMBER_WORDS})(?:[\s-]+(?:{_NUMBER_WORDS}))*)(?:\s*\(\s*\d+\s*\))?"
_UNIT = r"(?:calendar\s+|business\s+|working\s+)?(?:years?|months?|weeks?|days?)"
DURATION = re.compile(rf"\b{_NUM}[\s-]*{_UNIT}\b(?:['’]s?)?", re.IGNORECASE)
_LONG_DURATION = re.compile(rf"\b{_NUM}[\s-]*(?:years?|months?)\b", re.IGNORECASE)
MONEY = re.compile(
    r"(?:US\s?\$|U\.S\.\s?\$|\$|USD\s?|EUR\s?|€|£|GBP\s?)\s?\d[\d,]*(?:\.\d+)?"
    r"(?:\s*(?:million|thousand|billion))?(?:\s*\(\s*[^)]{0,60}\))?",
    re.IGNORECASE,
)
_ABBREVIATIONS = {
    "inc", "corp", "ltd", "co", "no", "nos", "mr", "mrs", "ms", "dr", "st", "e.g", "i.e", "etc",
    "vs", "sec", "art", "approx", "l.p", "n.a", "u.s", "u.s.a", "p.o", "s.a", "b.v", "n.v",
    "llc", "plc", "para", "cl", "ft", "jr", "sr", "p.m", "a.m", "no", "cf",
}
_CORP_SUFFIX = (
    r"(?i:Inc|Incorporated|Corp|Corporation|LLC|L\.L\.C|Ltd|Limited|Co|Company|PLC|plc|"
    r"L\.?P|LLP|GmbH|S\.A|AG|B\.V|N\.V|Pty|Pte|S\.r\.l|S\.p\.A|Partnership)\b\.?"
)
_ORG_FORMS = (
    r"corporation|company|limited|partnership|entity|organization|organisation|individual|"
    r"bank|trust|association|society|firm|business|national|resident|citizen"
)


def _spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _format_date(date: ParsedDate) -> str:
    month = calendar.month_name[date.month] if date.month else "____"
    day = str(date.day) if date.day else "__"
    year = str(date.year) if date.year else "____"
    return f"{month} {day}, {year}"


def _duration_months(text: str) -> tuple[int, int] | None:
    """(months, days) of a duration such as "three (3) years" or "ninety (90) days"."""
    from docfinetune.core.score import find_durations, words_to_numbers

    found = find_durations(re.sub(r"\(\s*(\d+)\s*\)", "", words_to_numbers(text)))
    if not found:
        return None
    (unit, amount), _, _ = found[0]
    if unit == "months":
        return int(amount), 0
    return 0, int(amount)


def _add(date: ParsedDate, months: int, days: int) -> ParsedDate | None:
    import datetime as dt

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


class _DocText:
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
        ids = [cid for s, e, cid in self.spans if s < end and start < e]
        return ids

    def sentence(self, position: int) -> tuple[int, int]:
        return _sentence_around(self.text, position)


_BOUNDARY = re.compile(r"(?<=[.!?])[\"”’)]*\s+(?=[\"“(]?[A-Z0-9])|\n\s*\n|\s{4,}(?=\d+(?:\.\d+)*\.?\s+[A-Z])")


def _is_boundary(text: str, match: re.Match) -> bool:
    if match.group(0).startswith("\n") or not text[match.start() - 1 : match.start()] in ".!?":
        return True
    before = text[max(0, match.start() - 12) : match.start() - 1]
    word = re.split(r"[\s(]", before)[-1].lower()
    if word in _ABBREVIATIONS or re.fullmatch(r"[a-z]|\d+(?:\.\d+)*|[ivx]+", word):
        return False
    return True


def _sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
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


def _sentence_around(text: str, position: int, reach: int = 1500) -> tuple[int, int]:
    lo = max(0, position - reach)
    for s, e in _sentences(text, lo, min(len(text), position + reach)):
        if s <= position < e:
            return s, e
    return position, min(len(text), position + 200)


# --------------------------------------------------------------------------- facts


@dataclass
class _Fact:
    field: str
    answer: str
    questions: list[str]  # templates with {doc} (mid-sentence) and {Doc} (sentence start)
    spans: list[tuple[int, int]]  # where the answer comes from, in the document text
    meta: dict = field(default_factory=dict)


def _title_words(title: str) -> str:
    title = _spaces(title)
    if title.isupper() or title.islower():
        words = [w if re.search(r"\d", w) else w.capitalize() for w in title.lower().split()]
        small = {"and", "of", "the", "for", "to", "in", "on", "a", "an", "or"}
        words = [w.lower() if i and w.lower() in small else w for i, w in enumerate(words)]
        title = " ".join(words)
    return title


class RulesQAGenerator:
    """Offline, deterministic Q&A about contracts from patterns (see the module docstring)."""

    name = "rules"

    def __init__(self, config: RulesQAConfig | None = None):
        self.config = config or RulesQAConfig()

    # ------------------------------------------------------------------ entry point

    def generate(self, documents: list[Document], chunks: list[Chunk]) -> Iterable[QAPair]:
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        docs = [d for d in documents if d.doc_id in by_doc]
        texts = {d.doc_id: _DocText(sorted(by_doc[d.doc_id], key=lambda c: c.index)) for d in docs}
        facts = {d.doc_id: self.extract_facts(texts[d.doc_id]) for d in docs}
        names = self._document_names(docs, facts)
        pairs: list[QAPair] = []
        for doc in docs:
            pairs.extend(self._pairs(doc, texts[doc.doc_id], facts[doc.doc_id], names[doc.doc_id]))
        return pairs

    def extract_facts(self, doc: _DocText) -> list[_Fact]:
        """Every fact of one document, in a fixed order (which fixes the fact ids)."""
        facts: list[_Fact] = []
        parties = self._parties(doc)
        facts += parties
        agreement = self._agreement_date(doc)
        facts += agreement
        effective = self._effective_date(doc, agreement)
        facts += effective
        initial = self._initial_term(doc)
        facts += initial
        facts += self._expiration_date(doc, initial, effective or agreement)
        facts += self._renewal_term(doc)
        facts += self._notices(doc)
        facts += self._governing_law(doc)
        facts += self._venue(doc)
        facts += self._fees(doc)
        facts += self._defined_terms(doc)
        facts += self._sections(doc)
        return facts

    # ------------------------------------------------------------------ naming documents

    def _document_names(self, docs: list[Document], facts: dict[str, list[_Fact]]) -> dict[str, list[str]]:
        """How questions name each document: ["this agreement", "the X Agreement"] for one."""
        titles = {}
        for d in docs:
            title = _title_words(d.title) or re.sub(r"\.[A-Za-z0-9]+$", "", d.file_name)
            if not re.match(r"(?i)the\b", title):
                title = "the " + title
            titles[d.doc_id] = title
        if len(docs) == 1:
            return {docs[0].doc_id: ["this agreement", titles[docs[0].doc_id]]}
        names = {}
        for d in docs:
            name = titles[d.doc_id]
            if sum(t.lower() == name.lower() for t in titles.values()) > 1:
                party_names = [f.meta["party"] for f in facts[d.doc_id] if f.meta.get("party")]
                if len(party_names) >= 2:
                    name = f"{name} between {party_names[0]} and {party_names[1]}"
                else:
                    name = f"{name} ({d.file_name})"
            names[d.doc_id] = [name]
        return names

    def _pairs(self, doc: Document, text: _DocText, facts: list[_Fact], names: list[str]) -> list[QAPair]:
        counters: dict[str, int] = {}
        seen_questions: set[str] = set()
        pairs: list[QAPair] = []
        for fact in facts:
            index = counters.get(fact.field, 0)
            counters[fact.field] = index + 1
            fact_id = f"{doc.doc_id}:{fact.field}:{index}"
            questions = []
            for k, template in enumerate(fact.questions):
                name = names[k % len(names)]
                q = template.replace("{Doc}", name[0].upper() + name[1:]).replace("{doc}", name)
                q = _spaces(q)
                if q.lower() not in seen_questions and q not in questions:
                    questions.append(q)
            if len(questions) < self.config.min_phrasings:
                continue
            seen_questions.update(q.lower() for q in questions)
            sources: list[str] = []
            for start, end in fact.spans:
                for cid in text.chunk_ids(start, end):
                    if cid not in sources:
                        sources.append(cid)
            for k, question in enumerate(questions):
                pairs.append(
                    QAPair(
                        question=question,
                        answer=fact.answer,
                        fact_id=fact_id,
                        doc_id=doc.doc_id,
                        source_chunk_ids=list(sources),
                        generator=self.name,
                        field=fact.field,
                        meta={**fact.meta, "phrasing": k},
                    )
                )
        return pairs

    # ------------------------------------------------------------------ parties

    _ROLE = re.compile(
        r"\(\s*(?:the\s+|hereinafter\s+(?:(?:referred\s+to\s+as|called)\s+)?(?:the\s+)?|"
        r"individually\s+|together\s+)?[\"“'‘]\s*(?P<role>[A-Za-z][\w .&\-]{0,40}?)\s*[\"”'’]"
        r"[^()]{0,200}?\)"
        r"|\(\s*(?:the\s+)?(?P<bare>[A-Z][a-z]{2,20})\s*\)"
    )
    _CONNECTOR = re.compile(
        r"(?:\b(?i:between|among|by|and|for|whereas)\b|\(\d\)|\b[A-Z]\)|;|:)\s*[:,]?\s*"
        r"(?:the\s+)?(?=[A-Z0-9_]|[a-z]+-?\d)"
    )
    _NOT_PARTY_ROLE = re.compile(
        r"(?i)^(?:agreement|this agreement|effective date|commencement date|parties|party|"
        r"each|affiliates?|products?|territory|services?|term|exhibit.*|schedule.*|[a-z]+ act)$"
    )

    def _preamble(self, text: str) -> tuple[int, int]:
        """Where the opening paragraph (parties, date) is: after any cover page or contents."""
        opening = re.search(
            r"(?i)\b(?:by\s+and\s+(?:between|among)|between\b|among\b|entered\s+into|"
            r"made\s+(?:and\s+entered|this|as\s+of|on|effective))",
            text[: 5 * self.config.preamble_chars],
        )
        start = max(0, opening.start() - 600) if opening else 0
        if opening and opening.start() < self.config.preamble_chars:
            start = 0
        end = min(len(text), start + self.config.preamble_chars)
        stop = re.search(
            r"NOW,?\s+THEREFORE|agrees?\s+as\s+follows|IT\s+IS\s+(?:HEREBY\s+)?AGREED|"
            r"RECITALS|BACKGROUND|WITNESSETH",
            text[start:end],
        )
        if stop and stop.start() > 150:
            end = start + stop.start()
        return start, end

    def _parties(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        region_start, region_end = self._preamble(text)
        found: list[tuple[str, str, int, int]] = []  # name, role, start, end
        boundary = region_start
        for match in self._ROLE.finditer(text, region_start, region_end):
            role = _spaces(match.group("role") or match.group("bare") or "")
            quoted = re.findall(r"[\"“'‘]\s*([A-Za-z][\w .&\-]{0,40}?)\s*[\"”'’]", match.group(0))
            named = [r for r in quoted if r.lower() not in {"we", "us", "you", "our"}]
            if named and role.lower() in {"we", "us", "you", "our"}:
                role = _spaces(named[0])
            role = re.sub(r"(?i)^the\s+", "", role)
            clause_start, boundary = boundary, match.end()
            if len(found) >= 2 and re.search(r"WHEREAS|Whereas", text[clause_start : match.start()]):
                break
            if (
                not role
                or self._NOT_PARTY_ROLE.match(role)
                or re.search(r"(?i)\b(?:each|collectively|together)\b", match.group(0)[:30])
            ):
                continue
            clause = text[clause_start : match.start()]
            name_span = self._party_name(clause)
            if name_span is None:
                continue
            name = _spaces(clause[name_span[0] : name_span[1]]).rstrip(" ,")
            if name.startswith("___"):
                name = "____"
            if any(n.lower() == name.lower() and n != "____" for n, _, _, _ in found):
                continue
            found.append((name, role, clause_start + name_span[0], match.end()))
        if len(found) < 2:
            return []
        found = found[:6]
        answer = "; ".join(
            f"{n} ({r})" if r.lower() in {"we", "us", "you"} else f"{n} (the {r})" for n, r, _, _ in found
        )
        spans = [(s, e) for _, _, s, e in found]
        facts = [
            _Fact(
                "parties",
                answer,
                [
                    "Who are the parties to {doc}?",
                    "Which parties entered into {doc}?",
                    "{Doc} is between which parties, and in what roles?",
                    "Name the parties to {doc} and their roles.",
                ],
                spans,
            )
        ]
        for name, role, start, end in found:
            if role.lower() in {"we", "us", "you"} or name == "____":
                continue
            facts.append(
                _Fact(
                    "parties",
                    name,
                    [
                        f"Who is the {role} under {{doc}}?",
                        f"Which party is referred to as the {role} in {{doc}}?",
                        f"In {{doc}}, which company or person is defined as \"{role}\"?",
                        f"Under {{doc}}, who acts as the {role}?",
                    ],
                    [(start, end)],
                    {"party": name, "role": role},
                )
            )
        return facts

    _STRONG_CUT = re.compile(
        rf",?\s+(?:an?\s+(?:[\w-]+\s+){{0,6}}(?:{_ORG_FORMS})\b|an?\s+[A-Z]|is\s+an?\b|"
        r"whose\b|having\b|with\b|which\b|located\b|organi[sz]ed\b|incorporated\b|"
        r"existing\b|of\s+\d|at\s+\d|residing\b|through\b|s/o\b|d/o\b|r/o\b)"
    )
    _NOT_NAME = re.compile(r"(?i)^(?:whereas|now|recitals?|between|and|parties|witnesseth|background|this|agreement)\b")

    def _party_name(self, clause: str) -> tuple[int, int] | None:
        """The party name a clause ends with: "... by and between Acme Inc., a Delaware ..."."""
        candidates = []
        for connector in self._CONNECTOR.finditer(clause):
            start = connector.end()
            rest = clause[start:]
            if re.match(r"_{3,}", rest):  # a blank left for the party's name
                blank = re.match(r"[_\s]+", rest)
                candidates.append((start, start + blank.end(), False, True))
                continue
            if self._NOT_NAME.match(rest):
                continue
            strong = self._STRONG_CUT.search(rest)
            limit = strong.start() if strong else min(len(rest), 160)
            suffix = re.search(rf"^.{{0,120}}?\b{_CORP_SUFFIX}(?:,?\s*{_CORP_SUFFIX})*", rest[:limit])
            if suffix:
                end = suffix.end()
            else:
                weak = re.search(r",\s|\(|\s+of\s", rest[:limit])
                end = weak.start() if weak else limit
            name = rest[:end].strip(" ,;")
            words = name.split()
            if not (1 <= len(words) <= 10) or re.search(r"\d{3,}|[{}*\[\]]", name) or name.count("(") != name.count(")"):
                continue
            small = {"of", "and", "de", "the", "for", "&", "du", "la", "von"}
            lowercase = [
                w for w in words
                if w[0].islower() and w not in small and not re.fullmatch(_CORP_SUFFIX, w)
                and not re.match(r"[a-z]+-?\d", w)
            ]
            if not lowercase:
                candidates.append((start, start + len(rest[:end].rstrip(" ,;")), bool(suffix), False))
        if not candidates:
            return None
        with_suffix = [c for c in candidates if c[2]]
        best = with_suffix[-1] if with_suffix else next((c for c in candidates if not c[3]), None)
        best = best or candidates[0]
        return best[0], best[1]

    # ------------------------------------------------------------------ dates

    def _date_fact(self, field_name: str, answer: str, spans, questions, **meta) -> _Fact:
        return _Fact(field_name, _spaces(answer), questions, spans, meta)

    _AGREEMENT_DATE_Q = [
        "On what date was {doc} made?",
        "What is the date of {doc}?",
        "When was {doc} entered into?",
        "As of what date is {doc} dated?",
    ]
    _EFFECTIVE_DATE_Q = [
        "What is the effective date of {doc}?",
        "When does {doc} take effect?",
        "From what date is {doc} effective?",
        "On what date does {doc} become effective?",
    ]
    _EXPIRATION_DATE_Q = [
        "When does the initial term of {doc} expire?",
        "On what date does {doc} expire?",
        "When does the term of {doc} end?",
        "What is the expiration date of {doc}?",
    ]

    def _agreement_date(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        region_start, region_end = self._preamble(text)
        context = re.compile(r"(?i)\b(?:made|entered|dated|executed|effective|as of|signed)\b")
        for date, start, end in find_dates(text[region_start:region_end]):
            start, end = start + region_start, end + region_start
            s, _ = _sentence_around(text, start)
            before = text[max(s, start - 200) : start]
            if context.search(before) and not re.search(r"(?i)effective\s+date\s*:\s*$", before):
                return [self._date_fact("agreement_date", text[start:end], [(start, end)],
                                        self._AGREEMENT_DATE_Q, date=date.token())]
        # no date in the opening: the signature block's "Date:" / "Dated:" (the last signature)
        signed = []
        for date, start, end in find_dates(text):
            label = re.search(r"(?i)\bdated?\s*:?\s*(?:\S+\s+)?$", text[max(0, start - 40) : start])
            block = text[max(0, start - self.config.signature_window_chars) : start]
            if label and date.year and re.search(r"(?i)\bBy:|/s/|\bName:|\bTitle:|IN\s+WITNESS|signature", block):
                signed.append((date, start, end))
        if signed:
            first = signed[0]
            block = [d for d in signed if d[1] - first[2] <= 60]
            date, start, end = max(block, key=lambda d: (d[0].year, d[0].month or 0, d[0].day or 0))
            return [self._date_fact("agreement_date", text[start:end], [(start, end)],
                                    self._AGREEMENT_DATE_Q, date=date.token(), signature=True)]
        return []

    _EFFECTIVE_NAME = r"(?:Effective|Commencement|Start)\s+Date"

    def _effective_date(self, doc: _DocText, agreement: list[_Fact]) -> list[_Fact]:
        text = doc.text
        for date, start, end in find_dates(text):
            after = text[end : end + 60]
            before = text[max(0, start - 80) : start]
            if (
                re.match(rf"\s*,?\s*\(\s*(?:the\s+|this\s+)?[\"“]?{self._EFFECTIVE_NAME}[\"”]?\s*\)", after, re.I)
                or re.search(rf"{self._EFFECTIVE_NAME}[\"”]?\s*(?:shall\s+)?(?:means?|is|:)\s*:?\s*(?:the\s+)?$", before, re.I)
                or re.search(r"(?i)\beffective\s+(?:as\s+of\s+|on\s+|from\s+)?(?:this\s+|the\s+)?$", before)
            ):
                return [self._date_fact("effective_date", text[start:end], [(start, end)],
                                        self._EFFECTIVE_DATE_Q, date=date.token())]
        tied = re.search(
            rf"(?i)(?:\beffective\b|\bcommence|come\s+into\s+force|{self._EFFECTIVE_NAME})[^.;]{{0,80}}?"
            r"\b(?P<what>(?:the\s+)?(?:date\s+of\s+(?:execution|signature|this\s+agreement)|date\s+hereof|"
            r"date\s+(?:first\s+)?(?:written|set\s+forth|stated|given)\s+(?:above|at\s+the\s+beginning[^.;]{0,30})|"
            r"date\s+on\s+which\s+the\s+parties\s+(?:sign|execute)|signing\s+of\s+this\s+agreement|"
            r"execution\s+(?:date|of\s+this\s+agreement)))",
            text,
        )
        if not tied:
            tied = re.search(
                r"(?i)(?P<what>signing\s+of\s+this\s+agreement|date\s+of\s+execution(?:\s+of\s+this\s+agreement)?)"
                rf"\s*\(\s*(?:the\s+)?[\"“]?{self._EFFECTIVE_NAME}",
                text,
            )
        if tied and agreement:
            date_fact = agreement[0]
            answer = f"{date_fact.answer} ({_spaces(tied.group('what'))})"
            return [self._date_fact("effective_date", answer, date_fact.spans + [tied.span()],
                                    self._EFFECTIVE_DATE_Q, derived=True)]
        return []

    _TERM_TRIGGER = re.compile(
        r"(?i)\b(?:initial\s+term|term\s+of\s+(?:this|the)\s+agreement|the\s+term\b|"
        r"this\s+agreement\s+(?:shall|will)|shall\s+have\s+an?\s+(?:initial\s+)?term|term\s*:)"
    )
    _TERM_LEAD = re.compile(
        r"(?i)(?:continue|remain\s+(?:in\s+(?:full\s+)?(?:force|effect)(?:\s+and\s+effect)?|effective)|"
        r"term\s+of|period\s+of|\bbe|is\s+for|\bfor|\bof)\s+(?:a\s+(?:term|period)\s+of\s+|"
        r"an?\s+(?:initial\s+)?(?:term|period)\s+of\s+)?$"
    )
    _NOT_TERM = re.compile(r"(?i)confidential|non-?compet|solicit|surviv|warrant|thereafter\s+for|following\s+(?:the\s+)?(?:termination|expiration)")

    def _initial_term(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        for trigger in self._TERM_TRIGGER.finditer(text):
            s, e = _sentence_around(text, trigger.start())
            sentence = text[s:e]
            if self._NOT_TERM.search(sentence) or len(sentence) > 1200:
                continue
            renew = re.search(r"(?i)renew|extend|extension", sentence)
            limit = renew.start() if renew else len(sentence)
            for m in _LONG_DURATION.finditer(sentence, trigger.start() - s, limit):
                if self._TERM_LEAD.search(sentence[max(0, m.start() - 50) : m.start()]):
                    tail = re.match(
                        r"[^.;]{0,60}?(?:from|after|commencing|beginning|following|thereafter)"
                        r"[^.;(]{0,60}?(?=[,.;(]|\s+(?:unless|and|or)\b)",
                        sentence[m.end() :],
                    )
                    ans_end = m.end() + (tail.end() if tail else 0)
                    answer = sentence[m.start() : ans_end]
                    return [
                        _Fact(
                            "initial_term",
                            _spaces(answer),
                            [
                                "What is the initial term of {doc}?",
                                "How long does the initial term of {doc} last?",
                                "For how long does {doc} run before any renewal?",
                                "What is the duration of {doc}?",
                            ],
                            [(s + m.start(), s + ans_end)],
                            {"duration": _spaces(m.group(0)), "anchor": (s + m.start(), s + ans_end)},
                        )
                    ]
        return []

    def _expiration_date(self, doc: _DocText, initial: list[_Fact], start_facts: list[_Fact]) -> list[_Fact]:
        text = doc.text
        q = self._EXPIRATION_DATE_Q
        end_words = re.compile(
            r"(?i)(?:\bto|through|until|till|thru|expire[sd]?\s+on|terminate[sd]?\s+on|end(?:s|ing)?\s+on|"
            r"expir(?:e[sd]?|ing)\s+at\s+[^;]{0,40}?\s+on|expiration\s+date\s*(?:of|is|:)?)\s*(?:and\s+including\s+)?(?:the\s+)?$"
        )
        for date, start, end in find_dates(text):
            s, e = _sentence_around(text, start)
            sentence = text[s:e]
            if not re.search(r"(?i)\bterm\b|expir|terminat", sentence) or self._NOT_TERM.search(sentence):
                continue
            before = text[max(s, start - 80) : start]
            if end_words.search(before):
                if re.search(r"(?i)\bto\s*$", before) and not re.search(r"(?i)\bterm\b", sentence):
                    continue
                if re.search(r"(?i)prior\s+to\s*$|due\s+to\s*$", before):
                    continue
                return [self._date_fact("expiration_date", text[start:end], [(start, end)], q, date=date.token())]
        # derived: start date + initial term
        if initial and start_facts:
            start_fact = start_facts[0]
            starts = find_dates(start_fact.answer)
            months_days = _duration_months(initial[0].meta["duration"])
            if starts and months_days:
                result = _add(starts[0][0], *months_days)
                if result is not None:
                    start_text = start_fact.answer[starts[0][1] : starts[0][2]]
                    answer = f"{_format_date(result)} ({initial[0].meta['duration']} after {start_text})"
                    return [self._date_fact("expiration_date", answer, start_fact.spans[:1] + initial[0].spans,
                                            q, derived=True, date=result.token())]
        # no fixed end
        for match in re.finditer(
            r"(?i)indefinite(?:ly|\s+(?:term|period|duration))|in\s+perpetuity|"
            r"perpetual(?:ly)?\s+(?:term|basis)|until\s+terminated\s+(?:by|in\s+accordance|pursuant)",
            text,
        ):
            s, e = _sentence_around(text, match.start())
            if re.search(r"(?i)\bterm\b|this\s+agreement", text[s:e]) and not re.search(r"(?i)licen[cs]e", text[s:match.start()]):
                answer = f"no fixed end: {_spaces(text[s:e])[:200]}"
                return [self._date_fact("expiration_date", answer, [(s, e)], q, derived=True)]
        for match in re.finditer(
            r"(?i)term\s+of\s+this\s+agreement\s+shall\s+commence[^.]{0,80}?(?:end|continue|remain)[^.]{0,20}?"
            r"(?:until|on\s+the\s+\w+\s+day\s+following|following)[^.]{0,80}?notice[^.]{0,80}?terminat[^.]{0,40}",
            text,
        ):
            answer = f"no fixed end (until terminated): {_spaces(match.group(0))}"
            return [self._date_fact("expiration_date", answer, [match.span()], q, derived=True)]
        return []

    def _renewal_term(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        facts: list[_Fact] = []
        seen: set[str] = set()
        keyword = re.compile(r"(?i)\b(?:renew(?:ed|als?|s)?|extend(?:ed|s)?|extensions?)\b")
        for kw in keyword.finditer(text):
            s, e = _sentence_around(text, kw.start())
            sentence = text[s:e]
            if not re.search(r"(?i)\bterm\b|agreement|franchise|licen[cs]e", sentence) or re.search(
                r"(?i)confidential", sentence
            ):
                continue
            rest = text[kw.end() : min(e, kw.end() + 160)]
            forward = re.match(
                rf"[^.;]{{0,50}}?\bfor\s+(?P<ans>(?:[\w()-]+\s+){{0,7}}?{DURATION.pattern}"
                r"(?:\s+(?:renewal\s+)?(?:terms?|periods?))?(?:\s+each)?)",
                rest,
                re.IGNORECASE,
            )
            if forward:
                a_start, a_end = kw.end() + forward.start("ans"), kw.end() + forward.end("ans")
            else:
                back = re.search(
                    rf"(?:automatic\s+|additional\s+|successive\s+)*{DURATION.pattern}\s*(?:term\s+)?$",
                    text[max(s, kw.start() - 60) : kw.start()],
                    re.IGNORECASE,
                )
                if not back or not re.match(r"(?i)extensions?|renewals?", kw.group(0)):
                    continue
                a_start, a_end = max(s, kw.start() - 60) + back.start(), kw.end()
            answer = _spaces(text[a_start:a_end])
            if not _LONG_DURATION.search(answer) or answer.lower() in seen:
                continue
            seen.add(answer.lower())
            facts.append(
                _Fact(
                    "renewal_term",
                    answer,
                    [
                        "For how long does {doc} renew after its initial term ends?",
                        "What is the renewal term of {doc}?",
                        "By how long can {doc} be renewed or extended?",
                        "How long is each renewal period under {doc}?",
                    ][: None],
                    [(a_start, a_end)],
                )
            )
        # several renewal facts would share these questions: keep the first
        return facts[:1]

    # ------------------------------------------------------------------ notices

    _NOTICE_DURATION = re.compile(
        rf"(?i)(?:(?:at\s+least|no\s+(?:fewer|less)\s+than|not\s+less\s+than|a\s+minimum\s+of|within|upon)\s+)?"
        rf"{DURATION.pattern}(?:\s+(?:prior|advance|written|prior\s+written|advance\s+written))*"
        r"(?:\s+(?:notice|notification)|\s+(?:prior\s+to|before|in\s+advance\s+of)\s+[^,.;]{3,60})"
    )
    _NONRENEWAL = re.compile(
        r"(?i)not\s+to\s+renew|non-?\s?renewal|intention\s+to\s+terminate|unless\s+(?:either|one|a)\s+party|"
        r"unless\b[^.]{0,60}?(?:notice|notif)|(?:prevent|avoid)\w*\s+(?:the\s+)?(?:automatic\s+)?renewal|"
        r"elect(?:s|ion)?\s+not\s+to"
    )

    def _notices(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        facts: list[_Fact] = []
        seen: set[tuple[str, str]] = set()
        for match in re.finditer(r"(?i)\bnoti(?:ce|fy|fies|fication)\b", text):
            s, e = _sentence_around(text, match.start())
            sentence = text[s:e]
            for dur in self._NOTICE_DURATION.finditer(sentence):
                if abs((s + dur.start()) - match.start()) > 200:
                    continue
                answer = _spaces(dur.group(0))
                renewal = (
                    re.search(r"(?i)renew", sentence)
                    and self._NONRENEWAL.search(sentence)
                    and not re.search(r"(?i)(?:desire|intent(?:ion)?|request|wish|elect(?:ion)?|option)\s+to\s+renew|notice\s+of\s+renewal", sentence)
                )
                if renewal:
                    key = ("renewal_notice", "")
                    questions = [
                        "How much notice must a party give to stop {doc} from renewing?",
                        "What notice period applies to non-renewal of {doc}?",
                        "How far in advance must notice of non-renewal be given under {doc}?",
                        "How much notice prevents the automatic renewal of {doc}?",
                    ]
                else:
                    purpose = re.search(
                        r"(?i)\bto\s+((?:terminate|cancel|increase|change|modify|amend|assign|renew|"
                        r"withdraw|audit|inspect|suspend|discontinue|extend|adjust|raise|revise)\b[^,.;()]{0,60})",
                        sentence,
                    )
                    if not purpose:
                        if re.search(r"(?i)terminat", sentence):
                            what = "to terminate {doc}"
                        else:
                            continue
                    else:
                        what = "to " + re.sub(r"(?i)\bthis\s+agreement\b", "{doc}", _spaces(purpose.group(1)))
                    key = ("notice_period", what.lower())
                    questions = [
                        f"How much notice is required {what}?",
                        f"What notice period applies {what}?",
                        f"How far in advance must notice be given {what}?",
                    ]
                    if "{doc}" not in what:
                        questions = [qq[:-1] + " under {doc}?" for qq in questions]
                if key in seen:
                    continue
                seen.add(key)
                facts.append(_Fact(key[0], answer, questions, [(s + dur.start(), s + dur.end())]))
                if len(facts) >= self.config.max_notice_facts:
                    return facts
        return facts

    # ------------------------------------------------------------------ law and venue

    _LAW = re.compile(
        r"(?i)\b(?:governed|construed|interpreted|enforced|determined|governing)\b[^.]{0,120}?"
        r"(?:(?P<laws>\blaws?\s+(?:of|in\s+force\s+in)\s+(?:the\s+)?)(?P<j>[^,;.(]{2,120}?)"
        r"(?=\s*[,;.(]|\s+(?:without|excluding|except|notwithstanding|applicable|as\s+(?:applied|such)|"
        r"and\s+(?:the|any|all|each|venue|jurisdiction|disputes?|shall|its)|including|in\s+effect|"
        r"regardless|other\s+than|exclusive\s+of|irrespective|shall|will)\b)"
        r"|\bby\s+(?P<adj>[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)\s+law\b)"
    )

    def _governing_law(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        for match in self._LAW.finditer(text):
            before = text[max(0, match.start() - 60) : match.start()]
            if re.search(r"(?i)organi[sz]ed|incorporated|existing|standing|registered", before + match.group(0)[:40]):
                continue
            if match.group("adj"):
                start, end = match.start("adj"), match.end()
            else:
                start, end = match.start("laws"), match.end("j")
                carve = re.match(
                    r",?\s*except\s+(?:to\s+the\s+extent\s+)?governed\s+by\s+[^,;.(]{3,100}", text[end:], re.I
                )
                if carve:
                    end += carve.end()
            answer = _spaces(text[start:end])
            if match.group("j") and re.match(r"(?i)(?:this|such|any|all|applicable)\b", match.group("j")):
                continue
            return [
                _Fact(
                    "governing_law",
                    answer,
                    [
                        "Which state's or country's law governs {doc}?",
                        "What law governs {doc}?",
                        "Under which jurisdiction's laws is {doc} construed?",
                        "What is the governing law of {doc}?",
                    ],
                    [(start, end)],
                )
            ]
        return []

    def _venue(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        place = r"[A-Z][\w.'’-]*(?:(?:\s+|,\s+)(?:[A-Z][\w.'’-]*|of|and|or|County))*"
        pattern = re.compile(
            r"(?P<court>\b(?:(?:[Aa]ny|[Tt]he|[Aa])\s+)?(?:(?:[Ss]tate|[Ff]ederal|[Cc]ompetent|[Aa]ppropriate|"
            r"[Cc]ounty|[Dd]istrict|[Ss]uperior|[Cc]ircuit)\s+(?:(?:and|or)\s+)?)*[Cc]ourts?\s+(?:of|in|located\s+in|"
            r"sitting\s+in|for)\s+(?:the\s+)?" + place + r")"
            r"|(?P<arb>(?:[Pp]lace|[Ss]eat)\s+of\s+(?:the\s+)?arbitration\s+shall\s+be\s+(?:in\s+)?" + place
            + r"|arbitration\s+in\s+" + place + r")"
        )
        for match in pattern.finditer(text):
            s, e = _sentence_around(text, match.start())
            sentence = text[s:e]
            if not re.search(r"(?i)jurisdiction|venue|submit|brought|instituted|filed|arbitrat|forum|litigat|proceeding", sentence):
                continue
            answer = _spaces(match.group(0))
            if len(answer.split()) > 25:
                continue
            return [
                _Fact(
                    "venue",
                    answer,
                    [
                        "Where must disputes under {doc} be resolved?",
                        "Which courts or forum have jurisdiction over disputes under {doc}?",
                        "What is the venue for legal proceedings under {doc}?",
                        "In what forum are disputes arising from {doc} heard?",
                    ],
                    [match.span()],
                )
            ]
        return []

    # ------------------------------------------------------------------ fees

    _FEE_NOUN = re.compile(
        r"(?i)((?:[A-Za-z][\w-]*\s+){0,4}?(?:fees?|price|royalt(?:y|ies)|commitment|payments?|deposit|"
        r"compensation|rent|charges?|commissions?|retainer|penalty|bonus|salary|purchase\s+price|"
        r"consideration|minimum|cap))\b"
    )
    _FEE_STOP = {
        "the", "a", "an", "of", "to", "pay", "shall", "will", "and", "or", "in", "such", "any", "all",
        "this", "that", "for", "each", "its", "their", "which", "with", "by", "as", "be", "is", "are",
        "on", "at", "upon", "paid", "payable", "agrees", "agree", "must", "may", "following", "following:",
    }

    def _fees(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        by_subject: dict[str, list[tuple[str, int, int]]] = {}
        order: list[str] = []
        for money in MONEY.finditer(text):
            s, _ = _sentence_around(text, money.start())
            before = text[max(s, money.start() - 160) : money.start()]
            nouns = list(self._FEE_NOUN.finditer(before))
            if not nouns:
                continue
            words = [w for w in nouns[-1].group(1).split() if w.lower() not in self._FEE_STOP]
            while words and words[0].lower() in self._FEE_STOP:
                words.pop(0)
            if not words:
                continue
            subject = " ".join(words)
            freq = re.match(
                r"\s*(?:per\s+(?:month|year|annum|quarter|unit|hour|day|week)|each\s+(?:month|year|quarter)|"
                r"annually|monthly|quarterly|a\s+(?:month|year))",
                text[money.end() : money.end() + 30],
                re.I,
            )
            end = money.end() + (freq.end() if freq else 0)
            key = subject.lower()
            if key not in by_subject:
                by_subject[key] = []
                order.append(key)
            amount = _spaces(text[money.start() : end])
            if amount not in [a for a, _, _ in by_subject[key]]:
                by_subject[key].append((amount, money.start(), end))
        facts = []
        for key in order:
            amounts = by_subject[key]
            if len(amounts) > self.config.max_amounts_per_fee:
                continue
            subject = _spaces(text[amounts[0][1] - 160 : amounts[0][1]])  # for the original casing
            m = re.search(re.escape(key), subject, re.I)
            subject = m.group(0) if m else key
            answer = "; ".join(a for a, _, _ in amounts)
            facts.append(
                _Fact(
                    "fees",
                    answer,
                    [
                        f"How much is the {subject} under {{doc}}?",
                        f"What amount does {{doc}} set for the {subject}?",
                        f"Under {{doc}}, what is the {subject}?",
                        f"What {subject} is payable under {{doc}}?",
                    ],
                    [(s, e) for _, s, e in amounts],
                )
            )
            if len(facts) >= self.config.max_fee_facts:
                break
        return facts

    # ------------------------------------------------------------------ definitions

    _DEFINITION = re.compile(
        r"(?:[\"“](?P<q>[A-Z][^\"”\n]{0,60}?)[\"”]|(?:(?<=[;:.]\s)|(?<=\d\s)|(?<=^)|(?<=\n)|(?<=\s{3}))"
        r"(?P<u>[A-Z][\w-]*(?:\s+(?:[A-Z][\w-]*|of|and|or)){0,5}))"
        r"\s*(?:\([^)]{0,40}\)\s*)?,?\s*(?:shall\s+(?:mean|have\s+the\s+meaning)|means|has\s+the\s+meaning|"
        r"refers\s+to|is\s+defined\s+as)\b\s*:?\s*",
    )

    def _defined_terms(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        facts: list[_Fact] = []
        seen: set[str] = set()
        for match in self._DEFINITION.finditer(text):
            term = _spaces(match.group("q") or match.group("u") or "")
            if not term or term.lower() in seen or term.lower() in {"this agreement", "it", "that", "this"}:
                continue
            _, e = _sentence_around(text, match.end())
            body_end = e
            semi = re.search(r";|\s{3,}|\n", text[match.end() : e])
            if semi:
                body_end = match.end() + semi.start()
            body = text[match.end() : body_end].rstrip(" .,:")
            if len(body) > self.config.definition_answer_max_chars:
                cut = max(body.rfind(", ", 0, self.config.definition_answer_max_chars),
                          body.rfind(" ", 0, self.config.definition_answer_max_chars))
                body = body[:cut]
            if len(body.split()) < 2 or re.match(
                r"(?i)(?:,\s*)?(?:set\s+forth|given|ascribed|assigned|defined|specified|as\s+defined)\b", body
            ) or re.search(r"(?i)have\s+the\s+meaning|has\s+the\s+meaning", match.group(0)):
                continue
            seen.add(term.lower())
            facts.append(
                _Fact(
                    "defined_term",
                    _spaces(body),
                    [
                        f'What does "{term}" mean in {{doc}}?',
                        f'How does {{doc}} define "{term}"?',
                        f'What is the definition of "{term}" under {{doc}}?',
                        f'In {{doc}}, what is meant by "{term}"?',
                    ],
                    [(match.start(), match.end() + len(body))],
                    {"term": term},
                )
            )
            if len(facts) >= self.config.max_defined_terms:
                break
        return facts

    # ------------------------------------------------------------------ sections

    _SECTION = re.compile(
        r"(?:^|(?<=\n)|(?<=\s\s)|(?<=[.:;]\s))(?:(?P<kw>Section|Clause|Article|ARTICLE|SECTION|CLAUSE)\s*-?\s*)?"
        r"(?P<num>\d{1,2}(?:\.\d{1,2}){0,2}|[IVXL]{1,6}(?=[.\s]))\.?\s+"
        r"(?:(?P<title>[A-Z][A-Za-z'’&/\-]*(?:[ ,]+(?:[A-Z][A-Za-z'’&/\-]*|and|of|the|for|to|in|on|or)){0,7})[.:]\s+"
        r"|(?P<caps>[A-Z][A-Z'’&/\-]+(?:[ ,]+(?:[A-Z][A-Z'’&/\-]*|AND|OF|THE|FOR|TO|IN|ON|OR)){0,7})[.:]?\s+"
        r"(?=\d+\.\d|[A-Z][a-z]|\([a-z0-9]\)))"
    )

    def _sections(self, doc: _DocText) -> list[_Fact]:
        text = doc.text
        facts: list[_Fact] = []
        seen: set[str] = set()
        for match in self._SECTION.finditer(text):
            num = match.group("num")
            title = _spaces(match.group("title") or match.group("caps")).rstrip(" ,-")
            if num in seen or not re.match(r"[IVXL]+$|\d", num):
                continue
            words = title.split()
            if not words or len(words) > 8:
                continue
            content_words = [w for w in words if w.lower() not in {"and", "of", "the", "for", "to", "in", "on", "or", "&"}]
            if not all(w[0].isupper() for w in content_words):
                continue
            # body: first sentence after the heading, without a leading subsection number
            body_start = match.end()
            lead = re.match(r"\s*(?:\d+(?:\.\d+)+\.?|\([a-z0-9]+\)|[A-Z]\.)\s+", text[body_start:])
            if lead:
                body_start += lead.end()
            spans = _sentences(text, body_start, min(len(text), body_start + 2000))
            if not spans:
                continue
            b_start, b_end = spans[0]
            body = text[b_start:b_end]
            if ". ." in body or "...." in body or re.match(r"\s*\d+\s*$", body):
                continue  # table of contents
            if len(body) > self.config.section_answer_max_chars:
                cut = body.rfind(", ", 0, self.config.section_answer_max_chars)
                cut = cut if cut > self.config.section_answer_max_chars // 2 else body.rfind(" ", 0, self.config.section_answer_max_chars)
                body = body[:cut]
            answer = _spaces(body).rstrip(",;:")
            if len(answer.split()) < self.config.min_section_answer_words:
                continue
            seen.add(num)
            kind = (match.group("kw") or ("Article" if re.match(r"[IVXL]+$", num) else "Section")).capitalize()
            title_text = _title_words(title)
            label = f"{kind} {num} ({title_text})"
            facts.append(
                _Fact(
                    "section",
                    answer,
                    [
                        f"What does {label} of {{doc}} provide?",
                        f"According to {{doc}}, what is set out in {label}?",
                        f"What does {{doc}} say in its {kind.lower()} on {title_text} ({kind} {num})?",
                        f"Summarize the opening of {label} of {{doc}}.",
                    ],
                    [(b_start, b_start + len(body))],
                    {"section": num, "title": title_text},
                )
            )
            if len(facts) >= self.config.max_section_facts:
                break
        return facts
