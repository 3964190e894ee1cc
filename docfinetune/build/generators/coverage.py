"""The offline ``coverage`` Q&A generator: short-answer questions about every clause.

Where the ``rules`` generator looks for ~15 named contract fields, this one walks every
sentence of a document and asks about each short span it can type: money, percentages,
durations, dates, counts, section references, places, and, from the opening paragraph, the
parties (name, role, entity type, state of organization, address) and defined terms.

For each (sentence, span) it writes several phrasings that all share one fact id:

* a fronted question ("Within how many days shall Customer pay each undisputed invoice after
  its receipt of the invoice?"), by moving the span's prepositional phrase or object in front
  of the clause's subject and auxiliary, or by naming the noun phrase the span measures
  ("What is the Acceptance Period under ...?");
* the clause with the span replaced by a wh-phrase ("..., Customer shall pay each undisputed
  invoice within how many days after its receipt of the invoice?");
* a cloze ("Complete from Section 4.3 of ...: '... within ___ after ...'");
* reverse-direction pairs where the relation allows, with their own answer: "Which section of
  ... sets ...?" -> "Section 4.3" (``field="section_of"``, ``meta["derived"]`` because the word
  "Section" is added to the label), "What is X's role under ...?" -> "Provider".

Every question names the document and, where known, the section. Answers are spans copied
from the text (at most ``max_answer_words`` words). ``meta`` holds the sentence text and its
offsets, and the answer's offsets, all in the document text rebuilt from the chunks (which,
for chunks written by ``ingest``, is the document text itself).

No model, no network, deterministic: same chunks in, same pairs and fact ids out.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Iterable

from docfinetune.core.config import CoverageQAConfig
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.score import find_dates, normalize_answer

# --------------------------------------------------------------------------- vocabulary

_NUMBER_WORD = (
    r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    r"ninety|hundred|thousand|million|billion|half|halves|quarters?|thirds?|fourths?|fifths?|"
    r"tenths?|hundredths?)"
)
_WORDS_NUM = rf"\b{_NUMBER_WORD}(?:(?:[\s-]+|[\s-]+and[\s-]+|[\s-]+a[\s-]+){_NUMBER_WORD})*\b"
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_PAREN_DIGITS = rf"\(\s*(?:{_DIGITS})\s*\)"
_NUMBER = rf"(?:{_WORDS_NUM}\s*{_PAREN_DIGITS}|{_WORDS_NUM}|(?<![\d.,$])(?:{_DIGITS}))"

_UNIT = (
    r"(?:(?:calendar|business|working|consecutive|full|banking|trading)\s+){0,2}"
    r"(?:years?|months?|weeks?|days?|hours?|minutes?|quarters?|seconds?)"
)
DURATION = re.compile(rf"(?i){_NUMBER}(?:\s*-\s*|\s+)(?P<unit>{_UNIT})\b")

_CURRENCY = r"(?:US\s?\$|U\.S\.\s?\$|USD\s?\$?|CAD\s?\$?|C\$|A\$|EUR\s?|GBP\s?|\$|€|£)"
_MONEY_NUM = rf"{_CURRENCY}\s?(?:{_DIGITS})(?:\s?(?:million|billion|thousand)\b)?"
MONEY = re.compile(
    rf"(?i)(?:{_WORDS_NUM}\s+(?:U\.?S\.?\s+)?(?:dollars|euros|pounds)(?:\s+and\s+{_WORDS_NUM}\s+cents)?"
    rf"\s*\(\s*{_MONEY_NUM}\s*\)"
    rf"|{_MONEY_NUM}(?:\s*\(\s*(?:[A-Za-z][A-Za-z\s-]{{2,80}}?(?:dollars|euros|pounds)[^)]{{0,30}})\s*\))?"
    rf"|(?<![\w$])(?:{_DIGITS})\s+(?:U\.S\.\s+)?(?:dollars|euros)\b"
    rf"|{_WORDS_NUM}\s+(?:U\.?S\.?\s+)?dollars\b)"
)
PERCENT = re.compile(
    rf"(?i)(?:{_WORDS_NUM}\s+(?:percent|per\s+cent)\s*\(\s*\d+(?:\.\d+|\s+\d/\d)?\s*%\s*\)"
    rf"|\b\d+(?:\.\d+)?\s*(?:%|percent\b|per\s+cent\b)(?:\s*\(\s*{_WORDS_NUM}\s+(?:percent|per\s+cent)\s*\))?"
    rf"|{_WORDS_NUM}\s+(?:percent|per\s+cent)\b)"
)
COUNT = re.compile(rf"(?i){_WORDS_NUM}\s*{_PAREN_DIGITS}")
SECTION_REF = re.compile(
    r"\b(?P<kw>Sections?|SECTIONS?|Articles?|ARTICLES?|Exhibits?|EXHIBITS?|Schedules?|SCHEDULES?|Annex(?:es)?|"
    r"ANNEX|Appendix|APPENDIX|Clauses?|Paragraphs?|Attachments?|ATTACHMENT)\s+"
    r"(?P<label>(?:\d+(?:\.\d+)*(?:\s?\([a-z0-9]{1,4}\))*|[IVXL]{1,6}\b|[A-Z](?:[.-]?\d+(?:\.\d+)*)?\b)"
    r"(?:(?:\s*,\s*|\s*,?\s+(?:and|or|through|to)\s+)(?:\d+(?:\.\d+)*(?:\s?\([a-z0-9]{1,4}\))*|[IVXL]{1,6}\b|[A-Z]\b))*)"
)

US_STATES = (
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware",
    "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky",
    "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi",
    "Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey", "New Mexico",
    "New York", "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon", "Pennsylvania",
    "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah", "Vermont",
    "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming", "District of Columbia",
    "Puerto Rico",
)
COUNTRIES = (
    "United States of America", "United States", "Canada", "Mexico", "Brazil", "Argentina", "Chile",
    "United Kingdom", "England and Wales", "England", "Scotland", "Ireland", "France", "Germany",
    "Italy", "Spain", "Portugal", "Netherlands", "Belgium", "Luxembourg", "Switzerland", "Austria",
    "Sweden", "Norway", "Denmark", "Finland", "Poland", "Czech Republic", "Hungary", "Greece",
    "Turkey", "Israel", "United Arab Emirates", "Saudi Arabia", "India", "China", "Hong Kong",
    "Taiwan", "Japan", "South Korea", "Korea", "Singapore", "Malaysia", "Thailand", "Vietnam",
    "Indonesia", "Philippines", "Australia", "New Zealand", "South Africa", "Nigeria", "Egypt",
    "Russia", "Ukraine", "Cayman Islands", "British Virgin Islands", "Bermuda", "Ontario",
    "British Columbia", "Quebec", "Alberta",
)
_STATE_RE = "|".join(sorted((re.escape(s) for s in US_STATES), key=len, reverse=True))
_COUNTRY_RE = "|".join(sorted((re.escape(s) for s in COUNTRIES), key=len, reverse=True))
_CITY = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}"
PLACE = re.compile(
    rf"(?P<lead>\b(?:the\s+)?(?:State|Commonwealth|Province|Republic|Kingdom)\s+of\s+)?"
    rf"(?:(?P<city>{_CITY}),\s+(?P<cstate>{_STATE_RE})\b|(?P<state>{_STATE_RE})\b|(?P<country>{_COUNTRY_RE})\b)"
)
_ENTITY_TYPE = (
    r"(?:limited\s+liability\s+company|limited\s+liability\s+partnership|limited\s+partnership|"
    r"general\s+partnership|public\s+limited\s+company|private\s+limited\s+company|limited\s+company|"
    r"(?:non-?profit\s+|nonprofit\s+|professional\s+|business\s+|banking\s+|stock\s+)?corporation|"
    r"national\s+banking\s+association|statutory\s+trust|business\s+trust|company|partnership|trust|"
    r"association|cooperative|bank|societ[eé]\s+anonyme|GmbH)"
)

_ROLE_WORDS = {
    "provider", "customer", "client", "company", "licensor", "licensee", "supplier", "vendor",
    "distributor", "manufacturer", "purchaser", "buyer", "seller", "contractor", "consultant",
    "franchisor", "franchisee", "lessor", "lessee", "landlord", "tenant", "borrower", "lender",
    "agent", "principal", "reseller", "partner", "developer", "publisher", "sponsor", "owner",
    "operator", "shipper", "carrier", "transporter", "employer", "employee", "executive",
    "investor", "issuer", "marketer", "endorser", "service provider", "recipient", "discloser",
}
_FUNCTION = {
    "the", "a", "an", "of", "to", "in", "on", "for", "by", "and", "or", "with", "at", "from", "as",
    "such", "any", "all", "each", "its", "their", "this", "that", "these", "those", "which", "who",
    "be", "is", "are", "was", "shall", "will", "may", "must", "not", "no", "than", "up", "least",
    "more", "less", "fewer", "within", "after", "before", "prior", "until", "upon", "per", "if",
    "then", "other", "his", "her", "our", "your", "has", "have", "been", "being", "equal", "under",
}
# sentence-initial words that are not names, so a quoted clause may start in lower case
_LOWER_START = {
    "the", "a", "an", "if", "any", "each", "all", "no", "upon", "in", "such", "this", "either",
    "neither", "unless", "except", "notwithstanding", "subject", "during", "for", "within", "after",
    "before", "on", "at", "as", "where", "when", "following", "prior", "nothing", "both", "its",
    "their", "that", "these", "those", "from", "by", "to", "with", "without", "only", "every",
    "none", "there", "it", "he", "she", "they", "payment", "payments", "all", "until", "once",
    "provided", "except", "so", "although", "whereas",
}
_AUX = r"(?:shall\s+not|shall|will\s+not|will|must\s+not|must|may\s+not|may|can|cannot|should|is|are|has|have|does)"
_FRONT_PREP = re.compile(
    r"(?i)(?:^|\s)(?P<prep>within|for|by|on|before|after|until|during|in\s+accordance\s+with|pursuant\s+to|"
    r"under|in|at|as\s+of|no\s+later\s+than|not\s+later\s+than|from)"
    r"(?P<mod>\s+(?:a\s+(?:period|term|minimum|maximum)\s+of|an?\s+(?:additional|initial|aggregate)\s+(?:period\s+|term\s+)?of|"
    r"the\s+rate\s+of|at\s+least|no\s+(?:less|fewer|more)\s+than|not\s+(?:less|fewer|more)\s+than|up\s+to|"
    r"a\s+total\s+of|an\s+amount\s+(?:of|equal\s+to)|the\s+amount\s+of))?\s+$"
)
_OBJECT_MOD = re.compile(
    r"(?i)(?:^|\s)(?P<mod>(?:at\s+least|no\s+(?:less|fewer|more)\s+than|not\s+(?:less|fewer|more)\s+than|"
    r"up\s+to|a\s+total\s+of|an\s+amount\s+(?:of|equal\s+to)|a\s+fee\s+of|the\s+sum\s+of|a\s+minimum\s+of|"
    r"a\s+maximum\s+of))?\s*$"
)
_HEAD_NOUN = (
    r"(?:notice(?:\s+period)?|period|term|fees?|price|cap|limit|limitation|credits?|interest|rate|"
    r"royalt(?:y|ies)|commissions?|deposit|payments?|amount|deductible|coverage|insurance|premium|"
    r"penalty|discount|bonus|salary|compensation|rent|charges?|costs?|expenses|threshold|minimum|maximum|"
    r"holdback|retainage|escrow|warranty|deadline|response\s+time|time|interval|window|advance|reserve|"
    r"liability|damages|revenues?|sales|margin|markup|share|percentage|portion|ownership|stake|"
    r"availability|uptime|budget|purchase\s+price|consideration|retainer|allowance|reimbursement|"
    r"installment|milestone|guarantee|bond|letter\s+of\s+credit|target|commitment|quota|forecast|"
    r"duration|extension|renewal|grace\s+period|cure\s+period|notice)"
)
HEAD_NP = re.compile(
    rf"\b(?P<np>(?:(?:[A-Z][\w’'-]*\s+){{1,3}}(?i:{_HEAD_NOUN})|(?:[a-z][\w-]*\s+){{0,2}}?{_HEAD_NOUN})"
    rf"(?:\s+(?:of|for)\s+(?:[\w’'-]+\s+){{0,3}}?[\w’'-]+)?)\s+"
    r"(?:(?:is|are|shall\s+be|will\s+be|of|equal\s+to|at|within|not\s+to\s+exceed|(?:shall|will)\s+not\s+exceed|"
    r"(?:in\s+)?(?:the\s+)?(?:amount|sum)\s+of|at\s+least|no\s+(?:less|fewer|more)\s+than|not\s+(?:less|fewer|more)\s+than|"
    r"up\s+to|a\s+maximum\s+of|a\s+minimum\s+of|totaling|totalling|amounting\s+to)\s*)+$"
)
_DEF_PAREN = re.compile(
    r"\(\s*(?:the\s+|this\s+|each,?\s+(?:a|an|the)\s+|collectively,?\s+(?:the\s+)?|together,?\s+(?:the\s+)?|"
    r"hereinafter\s+(?:referred\s+to\s+as\s+|called\s+)?(?:the\s+)?|referred\s+to\s+as\s+(?:the\s+)?|an?\s+)?"
    r"[\"“](?P<term>[A-Z][^\"”()]{1,50}?)[,.]?[\"”]\s*\)"
)
_MEANS = re.compile(
    r"[\"“](?P<term>[A-Z][^\"”]{1,50}?)[\"”](?:\s+or\s+[\"“][^\"”]{1,30}[\"”])?\s*(?:,\s*)?"
    r"(?:shall\s+mean|means|shall\s+have\s+the\s+meaning|has\s+the\s+meaning|refers\s+to|shall\s+refer\s+to)\b\s*:?\s*"
)


# Restatements (coverage.restatements_per_fact): a user asks in plain words, not in the clause's
# ("Within what period must the Customer pay ...?" for "shall pay ... within forty-five (45) days"),
# so one wording per fact trains a key that a paraphrase misses. Each entry: a pattern and its
# plain alternatives; word choice c takes alternative (c + entry index) mod their count.
_PLAIN_WH = tuple((re.compile(pattern), alternatives) for pattern, alternatives in (
    (r"(?i)\bwithin how many (?:(?:calendar|business|working|consecutive|full)\s+)*"
     r"(?:days|weeks|months|years|hours|minutes)\b", ("within what period", "within what time")),
    (r"\bwhat amount\b", ("how much", "what sum")),
    (r"\bwhat percentage\b", ("what percent", "what share")),
))
_PLAIN_WORDS = tuple((re.compile(pattern), alternatives) for pattern, alternatives in (
    (r"\bshall not\b", ("must not", "may not")),
    (r"\bshall\b", ("must", "will")),
    (r"\bprior written notice\b", ("advance written notice", "written notice in advance")),
    (r"\bprior to\b", ("before",)),
    (r"\bin the event(?: that)?\b", ("if",)),
    (r"\bpursuant to\b", ("under",)),
    (r"\bin accordance with\b", ("under", "as set out in")),
    (r"\bupon\b", ("on",)),
    (r"\bcommencement\b", ("start",)),
    (r"\bcommences\b", ("begins",)),
    (r"\bcommence\b", ("begin", "start")),
    (r"\bthis Agreement\b", ("the agreement", "the contract")),
    (r"\bhereunder\b", ("under the agreement",)),
    (r"\bherein\b", ("in the agreement",)),
    (r"\bthereof\b", ("of it",)),
    (r"\bobtain\b", ("get",)),
    (r"\bmaintain\b", ("keep", "carry")),
    (r"\bprovide\b", ("give", "supply")),
    (r"\bnotify\b", ("tell", "inform")),
    (r"\b(?:its|their|the) receipt of\b", ("receiving",)),
    (r"(?i)\b(no|any|each|all) such\b", (r"\1",)),
    (r"\bsuch\b", ("that", "the")),
    (r"\bfollowing\b", ("after",)),
    (r"\bpayable\b", ("due",)),
    (r"\bfails to\b", ("does not",)),
    (r"\bfail to\b", ("do not",)),
    (r"\bexceed\b", ("be more than", "go beyond")),
    (r"\bensure\b", ("make sure",)),
    (r"\bpurchase\b", ("buy",)),
    (r"\bterminate\b", ("end", "cancel")),
    (r"\btermination\b", ("ending",)),
    (r"\bexpiration\b", ("expiry", "end")),
    (r"\bParty\b", ("party",)),
    (r"\bParties\b", ("parties",)),
    (r"\brequired to\b", ("obliged to", "bound to")),
    (r"\bpromptly\b", ("quickly",)),
    (r"\bsubmit\b", ("send",)),
    (r"\bremit\b", ("pay",)),
))


def plain_words(question: str, choice: int) -> str:
    """The question in plainer words: word choice `choice` of the tables above."""
    for i, (pattern, alternatives) in enumerate(_PLAIN_WH + _PLAIN_WORDS):
        question = pattern.sub(alternatives[(choice + i) % len(alternatives)], question)
    return question


def _spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _words(text: str) -> list[str]:
    return text.split()


def _spoken_title(title: str) -> str:
    """A section title as a question names it: capitals title-cased ("PAYMENT TERMS" -> "Payment Terms")."""
    return _title_case(title) if title.isupper() else title


def _title_case(text: str) -> str:
    """ "MASTER SERVICES AGREEMENT" -> "Master Services Agreement" (mixed case is kept)."""
    text = _spaces(text)
    if not (text.isupper() or text.islower()):
        return text
    keep = {"LLC", "LP", "LLP", "PLC", "USA", "US", "NA", "AG", "SA", "NV", "BV", "II", "III", "IV", "SOW"}
    small = {"and", "of", "the", "for", "to", "in", "on", "a", "an", "or"}
    out = []
    for i, word in enumerate(text.split()):
        core = word.strip(",.;:()")
        if core.upper() in keep:
            out.append(word.upper())
        elif i and word.lower() in small:
            out.append(word.lower())
        else:
            out.append("-".join(p[:1].upper() + p[1:].lower() for p in word.split("-")))
    return " ".join(out)


# --------------------------------------------------------------------------- document text


class _DocText:
    """A document's text rebuilt from its chunks (overlaps removed), with a map back to them."""

    def __init__(self, chunks: list[Chunk]):
        chunks = sorted(chunks, key=lambda c: c.index)
        self.chunks = chunks
        parts: list[str] = []
        self.spans: list[tuple[int, int]] = []
        length = 0
        prev_end = None  # the previous chunk's char_end, when offsets can be trusted
        for chunk in chunks:
            offsets_ok = len(chunk.text) == chunk.char_end - chunk.char_start
            overlap = 0
            if parts:
                declared = (prev_end - chunk.char_start) if prev_end is not None and offsets_ok else None
                tail = "".join(parts[-3:])
                if declared is not None and declared > 0 and tail.endswith(chunk.text[:declared]):
                    overlap = declared
                elif declared is not None and declared <= 0:
                    gap = "\n" * max(-declared, 1)
                    parts.append(gap)
                    length += len(gap)
                else:
                    for k in range(min(len(chunk.text), len(tail), 400), 15, -1):
                        if tail.endswith(chunk.text[:k]):
                            overlap = k
                            break
                    if not overlap:
                        parts.append("\n\n")
                        length += 2
            start = length - overlap
            parts.append(chunk.text[overlap:])
            length += len(chunk.text) - overlap
            self.spans.append((start, length))
            prev_end = chunk.char_end if offsets_ok else None
        self.text = "".join(parts)
        self._starts = [s for s, _ in self.spans]

    def chunk_ids(self, start: int, end: int) -> list[str]:
        """Ids of the fewest chunks that together hold text[start:end] (in order)."""
        i = bisect.bisect_right(self._starts, start) - 1
        for j in range(max(0, i - 3), min(len(self.spans), i + 2)):
            s, e = self.spans[j]
            if s <= start and end <= e:
                return [self.chunks[j].chunk_id]
        ids, pos = [], start
        while pos < end:
            best = None
            for j, (s, e) in enumerate(self.spans):
                if s <= pos < e and (best is None or e > self.spans[best][1]):
                    best = j
            if best is None:
                pos += 1
                continue
            ids.append(self.chunks[best].chunk_id)
            pos = self.spans[best][1]
        return ids

    def heading_at(self, position: int) -> str:
        i = max(0, bisect.bisect_right(self._starts, position) - 1)
        return self.chunks[i].heading if self.chunks else ""


# --------------------------------------------------------------------------- paragraphs and sentences

_ABBREVIATIONS = {
    "inc", "corp", "ltd", "co", "no", "nos", "mr", "mrs", "ms", "dr", "st", "e.g", "i.e", "vs", "sec",
    "art", "approx", "l.p", "n.a", "u.s", "u.s.a", "p.o", "s.a", "b.v", "n.v", "llc", "plc", "para",
    "cl", "ft", "jr", "sr", "p.m", "a.m", "cf", "et al", "al", "fig", "dept", "est", "ave", "blvd",
    "rd", "ste", "l.l.c", "p.c", "s.p.a", "s.r.l", "pty", "pte", "sq", "mt", "ft", "oz", "lb", "lbs",
    "hr", "hrs", "min", "max", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "v", "viz", "incl", "excl", "tel", "fax", "attn",
}
_SENT_END = re.compile(r"[.!?][\"”’)\]]*\s+(?=[\"“(\[]?[A-Z0-9])")
_SECTION_NUM = r"(?:\d{1,3}(?:\.\d{1,3})+|\d{1,3}|[A-Z]\.\d{1,3}(?:\.\d{1,3})*)"
_LABEL_WORD = r"(?:[A-Z][\w'’&/-]*|and|of|the|for|to|in|on|or|with|a|an|by|upon|against)"
_RUN_IN = re.compile(
    rf"^(?:(?:Section|SECTION|Clause|CLAUSE)\s+)?(?P<num>{_SECTION_NUM})\.?\s+"
    rf"(?P<title>{_LABEL_WORD}(?:[ ,;]+{_LABEL_WORD}){{0,9}})[.:]\s+(?=\S)"
)
_NUM_ONLY = re.compile(r"^(?:(?:Section|SECTION)\s+)?(?P<num>\d{1,3}(?:\.\d{1,3})+|[A-Z]\.\d{1,3}(?:\.\d{1,3})*)[.)]?\s+(?=[A-Z(])")
_HEADING_LABEL = re.compile(
    rf"^(?:(?P<kw>ARTICLE|Article|SECTION|Section|SCHEDULE|Schedule|EXHIBIT|Exhibit|ANNEX|Annex|APPENDIX|"
    rf"Appendix|ATTACHMENT|Attachment|PART|Part)\s+(?P<kwnum>[0-9]+(?:\.\d+)*|[IVXL]+|[A-Z](?:-\d+)?)\b"
    rf"|(?P<num>{_SECTION_NUM})\b|(?P<roman>[IVXL]{{1,6}})\.(?=\s+[A-Z]))"
)
_SIGNATURE = re.compile(
    r"(?i)\bBy\s*:|\bName\s*:|\bTitle\s*:|/s/|\bIN\s+WITNESS\s+WHEREOF|\[\s*signature|signature\s+page|"
    r"\bSignature\s*:|_{6,}"
)
_ENUM = re.compile(
    r"(?:^|(?<=[\s;:,]))\((?:[a-zA-Z]|[ivx]{1,5}|[IVX]{1,5}|\d{1,2})\)\s+(?!(?:of|and|or|to|in|through|above|below|hereof)\b)"
)
_NUMBER_WORD_END = re.compile(rf"(?i)\b{_NUMBER_WORD}\s*$")


def _enumerators(body: str) -> list[re.Match]:
    """List enumerators "(a) ", "(ii) ", "(3) " of a sentence, not the digits of "thirty (30) days"."""
    return [m for m in _ENUM.finditer(body) if not _NUMBER_WORD_END.search(body[max(0, m.start() - 20) : m.start()])]


@dataclass
class _Sentence:
    start: int
    end: int
    text: str  # the sentence as in the document (text[start:end])
    section: str  # "4.3", "V", "A.1", "" when none
    section_kind: str  # "Section", "Article", "Schedule", "Exhibit"...
    title: str  # the section's title, "" when none
    lead: str = ""  # lead-in of a list item paragraph ("... the following percentage: ")
    label_chunk_span: tuple[int, int] | None = None  # where the section label is written
    row: bool = False  # a table row ("Engagement Lead $285 per hour"), not a sentence


@dataclass
class _Span:
    kind: str  # money, percent, duration, date, count, section_ref, place
    start: int  # answer, absolute
    end: int
    rstart: int  # what the wh-phrase replaces, absolute
    rend: int
    wh: str  # "how many days", "what amount"...
    np: str = ""  # the noun phrase the span measures, when known
    meta: dict = field(default_factory=dict)


@dataclass
class _Fact:
    field: str
    answer: str
    start: int
    end: int
    sentence: _Sentence | None
    questions: list[str]
    reverse: list[tuple[str, str, str, int, int, bool]] = field(default_factory=list)
    restated: list[str] = field(default_factory=list)  # plain-word restatements of the forward questions
    np: str = ""  # the noun phrase the answer measures, when known
    clause_blank: str = ""  # the clause with the answer blanked ("... within ___ after ...")
    clause_text: str = ""  # the same clause as written
    # reverse: (question, answer, field, answer_start, answer_end, derived)
    extra_sources: list[tuple[int, int]] = field(default_factory=list)


# "per hour", "per block per month", "per trainer per day": the unit an amount in a table row is for
_PER_UNIT = re.compile(r"(?:\s+per\s+[A-Za-z]+(?:\s+(?!per\b)[a-z]+)?){1,3}")


def _table_row(line: str) -> tuple[str, int, int] | None:
    """(label, answer start, answer end) of a table row that pairs a label with one amount of
    money and its unit ("Engagement Lead $285 per hour" -> "Engagement Lead", "$285 per hour"),
    offsets within `line`; None for anything else (rows run together hold two amounts)."""
    amounts = list(MONEY.finditer(line))
    if len(amounts) != 1:
        return None
    amount = amounts[0]
    label = line[: amount.start()].rstrip(" :-–—")
    words = label.split()
    if not 1 <= len(words) <= 10 or not re.match(r"[A-Z(]", label) or not re.search(r"[a-z]{2}", label):
        return None
    if re.search(r"\b(?:shall|will|must|may)\b|[.;]$", label):  # a clause, not a label
        return None
    if re.search(r"[=<>+×]", label) or label.count("(") != label.count(")"):  # a formula, a cut cell
        return None
    per = _PER_UNIT.match(line, amount.end())
    return label, amount.start(), per.end() if per else amount.end()


def _is_heading_paragraph(para: str) -> bool:
    words = para.split()
    if not words or len(words) > 14:
        return False
    if re.search(r"[.;:,]$", para) and not _HEADING_LABEL.match(para):
        return False
    if re.search(r"\b(?:shall|will|must|may|means|is|are|agrees?)\b", para) and not para.isupper():
        return False
    letters = [w for w in words if re.match(r"[A-Za-z]", w)]
    if not letters:
        return True
    capital = sum(1 for w in letters if w[0].isupper() or w.lower() in {"and", "of", "the", "for", "to", "in", "on", "or", "with", "a"})
    return capital / len(letters) >= 0.8


def _is_toc(para: str) -> bool:
    if re.search(r"\.{4,}|…{2,}|(?:\.\s){4,}", para):
        return True
    lines = [ln for ln in para.splitlines() if ln.strip()]
    return len(lines) >= 3 and sum(bool(re.search(r"\s\d{1,3}\s*$", ln)) for ln in lines) >= 0.6 * len(lines)


def _is_prose(para: str) -> bool:
    """A paragraph of running text (not a table row, caption or address block)."""
    words = para.split()
    if len(words) < 4:
        return False
    ends = bool(re.search(r"(?:[.;:!?][\"”’)\]]*|[;,]\s*(?:and|or))$", para))
    letters = re.sub(r"[^A-Za-z]", "", para)
    if ends and len(words) >= 12 and sum(c.isupper() for c in letters) >= 0.95 * len(letters):
        # a clause in capitals (limitations of liability, disclaimers), its references to
        # subsections ("SECTION 10.1(b)") in lower case
        return True
    lower = sum(1 for w in words if w[:1].islower())
    if lower < 3:
        return False
    if ends:
        return True
    return bool(re.search(r"\b(?:shall|will|must|may|agrees?|is|are)\b", para)) and lower >= len(words) * 0.4


def _split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, begin = [], start
    for match in _SENT_END.finditer(text, start, end):
        dot = match.start()
        before = text[max(start, dot - 14) : dot]
        word = re.split(r"[\s(\[]", before)[-1].lower()
        if text[dot] == "." and (
            word in _ABBREVIATIONS
            or (re.fullmatch(r"[a-z]|(?:[a-z]\.)+[a-z]|[ivxl]+", word) and not re.search(
                r"(?i)\b(?:schedule|exhibit|annex|appendix|attachment|article|section|part)\s+\S+$", before))
            or (re.fullmatch(r"\d+(?:\.\d+)*", word) and not text[begin:dot].strip().count(" "))
        ):
            continue
        after = text[match.end() : match.end() + 12]
        if re.match(r"\d+(?:\.\d+)*\s*$", word) and re.match(r"\d", after):
            continue
        spans.append((begin, match.end()))
        begin = match.end()
    if text[begin:end].strip():
        spans.append((begin, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def _sentences(doc: _DocText, config: CoverageQAConfig) -> list[_Sentence]:
    """The prose sentences of a document, each with its section; skips headings, contents,
    tables and signature blocks."""
    text = doc.text
    # paragraphs: blank-line separated, also split before a run-in section number after 2+ spaces
    bounds: list[tuple[int, int]] = []
    for m in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", text):
        s = m.start()
        for cut in re.finditer(rf"\s{{2,}}(?={_SECTION_NUM}\.?\s+[A-Z])", m.group(0)):
            bounds.append((s, m.start() + cut.start()))
            s = m.start() + cut.end()
        bounds.append((s, m.end()))
    # join a paragraph broken by a page or chunk boundary ("... for the\n\nnext ...")
    merged: list[list[int]] = []
    for s, e in bounds:
        para = text[s:e].strip()
        if not para:
            continue
        if merged:
            prev = text[merged[-1][0] : merged[-1][1]].strip()
            open_end = not re.search(r"[.;:!?][\"”’)]*$", prev) and not _is_heading_paragraph(prev)
            if open_end and (re.match(r"[a-z]", para) or (
                    re.match(r"\(\s*\d+\s*\)", para) and _NUMBER_WORD_END.search(prev))):
                merged[-1][1] = e
                continue
        merged.append([s, e])

    sentences: list[_Sentence] = []
    section, kind, title = "", "Section", ""
    label_span: tuple[int, int] | None = None
    in_signatures = False
    lead = ""
    for s, e in merged:
        para = text[s:e]
        stripped = _spaces(para)
        offset = s + (len(para) - len(para.lstrip()))
        heading_label = _HEADING_LABEL.match(stripped)
        # "Player of the Year $40,000" reads as a heading; with table_rows it is a row
        row_like = config.table_rows and _table_row(stripped) is not None
        if _is_heading_paragraph(stripped) and len(stripped) < 120 and not row_like:
            sec_exhibit = bool(heading_label and heading_label.group("kw") and heading_label.group("kw").lower() == "exhibit"
                               and re.fullmatch(r"\d+\.\d+", heading_label.group("kwnum") or ""))  # SEC "EXHIBIT 10.1"
            page_number = bool(re.fullmatch(r"\d{1,3}\.?", stripped))
            if heading_label and not sec_exhibit and not page_number and (
                    heading_label.group("kw") or heading_label.group("roman")
                    or _plausible_section(heading_label.group("num"), section, kind)):
                section, kind, title = _parse_label(heading_label, stripped)
                label_span = (offset, offset + len(stripped))
                in_signatures = False if heading_label.group("kw") else in_signatures
            elif re.match(r"(?i)(?:schedule|exhibit|annex|appendix|attachment)\b", stripped):
                in_signatures = False
            lead = ""
            continue
        if _SIGNATURE.search(para):
            if re.search(r"(?i)IN\s+WITNESS\s+WHEREOF", para):
                in_signatures = True
            lead = ""
            continue
        if in_signatures or _is_toc(para):
            continue
        body_start = offset
        run_in = _RUN_IN.match(re.sub(r"\s", " ", text[body_start : body_start + 200]))
        if run_in and not _plausible_section(run_in.group("num"), section, kind):
            run_in = None
        if run_in:
            section, kind = run_in.group("num"), "Section"
            title = _title_case(run_in.group("title").rstrip(" ,;"))
            label_span = (body_start, body_start + run_in.end())
            body_start += run_in.end()
        else:
            num_only = _NUM_ONLY.match(text[body_start : body_start + 40])
            if (num_only and _plausible_section(num_only.group("num"), section, kind)
                    and not re.match(r"\d+\s+(?:days?|months?|years?|%)", text[body_start : body_start + 40])):
                section, kind, title = num_only.group("num"), "Section", ""
                label_span = (body_start, body_start + num_only.end())
                body_start += num_only.end()
        if not _is_prose(text[body_start:e].strip()):
            if config.table_rows:
                position = body_start
                for line in text[body_start:e].split("\n"):
                    found = _table_row(line.strip())
                    if found:
                        start = position + (len(line) - len(line.lstrip()))
                        sentences.append(_Sentence(start, start + len(line.strip()), line.strip(), section, kind,
                                                   title, "", label_span, row=True))
                    position += len(line) + 1
            lead = ""
            continue
        is_item = bool(re.match(r"\s*\((?:[a-z]|[ivx]{1,5}|\d{1,2})\)\s", text[body_start : body_start + 8]))
        item_lead = lead if is_item else ""
        for ss, se in _split_sentences(text, body_start, e):
            sent = text[ss:se]
            if len(sent.split()) < config.min_sentence_words or len(sent) > config.max_sentence_chars:
                continue
            if _SIGNATURE.search(sent):
                continue
            sentences.append(_Sentence(ss, se, sent, section, kind, title, item_lead, label_span))
        last = _spaces(text[body_start:e])
        if last.endswith(":") and len(last) < 600:
            pieces = _split_sentences(last, 0, len(last))
            lead = last[pieces[-1][0] : pieces[-1][1]] if pieces else last
            words = lead.split()
            if len(words) > 30:
                lead = "... " + " ".join(words[-30:])
        elif not is_item:
            lead = ""
    return sentences


def _plausible_section(new: str, current: str, kind: str) -> bool:
    """Whether a number read as a section label fits the numbering so far (an address's "77"
    after Section 15.3 does not)."""
    if not re.match(r"\d", new):
        return True
    top = int(new.split(".")[0])
    if top > 200:
        return False
    if not current or not re.match(r"\d", current) or kind != "Section":
        return top <= 60
    cur = int(current.split(".")[0])
    return cur - 1 <= top <= cur + (10 if "." in new else 3)


def _parse_label(match: re.Match, heading: str) -> tuple[str, str, str]:
    if match.group("kw"):
        kind = match.group("kw").capitalize()
        num = match.group("kwnum")
    elif match.group("roman"):
        kind, num = "Article", match.group("roman")
    else:
        kind, num = "Section", match.group("num")
    rest = heading[match.end() :].strip(" .:—–-")
    return num, kind, _title_case(rest)[:80]


# --------------------------------------------------------------------------- span finders

_UNIT_WORD = re.compile(r"(?i)((?:calendar\s+|business\s+|working\s+|consecutive\s+|full\s+|banking\s+|trading\s+){0,2})(year|month|week|day|hour|minute|quarter|second)s?")


def _duration_wh(unit: str, compound: bool) -> str:
    m = _UNIT_WORD.fullmatch(_spaces(unit))
    if not m:
        return "how long"
    mod = m.group(1) or ""
    base = m.group(2).lower()
    words = mod + base + "s"
    if re.search(r"Business\s+Days?|Business\s+Hours?", unit):
        words = "Business " + base.capitalize() + "s"
    return "how many-" + base if compound else "how many " + words


# A bound or a rate is part of an amount's meaning: "more than fifty percent (50%)" of the voting
# equity is control, fifty percent is not; "1.25% per month" is not 1.25% a year; "$265 per hour".
_BOUND = re.compile(
    r"(?i)\b(?:(?:not|no)\s+(?:less|more|greater|fewer)\s+than|(?:more|less|greater|fewer)\s+than|"
    r"at\s+least|at\s+most|in\s+excess\s+of|up\s+to)\s+$"
)
_RATE = re.compile(
    r"(?i)\s*(?:per|each)\s+(?:(?:calendar|business)\s+)?(?P<unit>annum|year|month|quarter|week|day|hour|minute|"
    r"occurrence|claim|unit|user|seat|license|device|location|site|store|employee|person|transaction|order|"
    r"shipment|page|copy|item|mile|ton|barrel|gallon|pound)\b"
)
_TIME_UNITS = {"annum", "year", "month", "quarter", "week", "day", "hour", "minute"}


def _with_bound_and_rate(sent: str, a: int, b: int, wh: str) -> tuple[int, int, str]:
    """An amount's span widened over a bound before it and a rate after it (the wh-phrase
    becomes "what rate" when a rate is asked)."""
    bound = _BOUND.search(sent, max(0, a - 30), a)
    if bound and bound.end() == a:
        a = bound.start()
    rate = _RATE.match(sent, b)
    if rate:
        b = rate.end()
        if rate.group("unit").lower() in _TIME_UNITS:
            wh = "what rate"
    return a, b, wh


def _find_spans(text: str, s: int, e: int, types: set[str], party_names: list[str]) -> list[_Span]:
    """Typed spans in text[s:e], without overlaps (money > percent > date > duration > count >
    section_ref > place)."""
    sent = text[s:e]
    found: list[_Span] = []

    def free(a: int, b: int) -> bool:
        return not any(a < x.end and x.start < b for x in found)

    if "money" in types:
        for m in MONEY.finditer(sent):
            a, b, wh = _with_bound_and_rate(sent, m.start(), m.end(), "what amount")
            found.append(_Span("money", s + a, s + b, s + a, s + b, wh, meta={"bare": (s + m.start(), s + m.end(), "what amount")}))
    if "percent" in types:
        for m in PERCENT.finditer(sent):
            a, b, wh = _with_bound_and_rate(sent, m.start(), m.end(), "what percentage")
            if free(s + a, s + b):
                found.append(_Span("percent", s + a, s + b, s + a, s + b, wh, meta={"bare": (s + m.start(), s + m.end(), "what percentage")}))
    if "date" in types:
        for _, a, b in find_dates(sent):
            if not re.search(r"\d{4}", sent[a:b]) or not free(s + a, s + b):
                continue
            if re.search(r"\d", sent[b : b + 2]):
                continue
            found.append(_Span("date", s + a, s + b, s + a, s + b, "what date"))
    if "duration" in types or "count" in types:
        for m in DURATION.finditer(sent):
            a, b = s + m.start(), s + m.end()
            if not free(a, b):
                continue
            number = sent[m.start() : m.start("unit")]
            unit = m.group("unit")
            singular = not re.search(r"s$", unit, re.I)
            plural_number = not re.fullmatch(r"(?i)\s*(?:one|1)(?:\s*\(\s*1\s*\))?[\s-]*", number)
            compound = singular and plural_number
            possessive = re.match(r"[’']s?", sent[m.end() : m.end() + 2])
            if "duration" in types:
                wh = _duration_wh(unit, compound)
                sp = _Span("duration", a, b, a, b + (possessive.end() if possessive else 0), wh)
                if compound:
                    sp.meta["compound"] = True
                found.append(sp)
    if "count" in types:
        for m in COUNT.finditer(sent):
            a, b = s + m.start(), s + m.end()
            if not free(a, b):
                continue
            after = sent[m.end() :]
            noun = re.match(r"\s+((?:[A-Za-z][\w’'-]*\s+){0,2}?[A-Za-z][\w’'-]*?s)\b", after)
            if re.match(r"\s*(?:%|percent|per\s+cent|dollars|U\.S\.)", after, re.I):
                continue
            if not noun or any(w.lower() in _FUNCTION for w in noun.group(1).split()):
                wh = "how many"
                np = ""
            else:
                np = noun.group(1)
                wh = "how many " + np
            sp = _Span("count", a, b, a, b + (noun.end() if noun and np else 0), wh, np)
            found.append(sp)
    if "section_ref" in types:
        for m in SECTION_REF.finditer(sent):
            a, b = s + m.start(), s + m.end()
            if not free(a, b):
                continue
            plural = bool(re.search(r"(?:[sS]|es|ES)$", m.group("kw"))) and m.group("kw").lower() not in {"annex"}
            kw = m.group("kw").lower()
            kw = re.sub(r"(?:es|s)$", "", kw) if plural else kw
            if kw in {"annexe", "appendice"}:
                kw = kw[:-1]
            if plural:
                kw = {"appendix": "appendices", "annex": "annexes"}.get(kw, kw + "s")
            ra = a
            this = re.search(r"(?i)\b(?:this|such)\s+$", sent[max(0, m.start() - 6) : m.start()])
            if this:
                ra = a - len(this.group(0))
            found.append(_Span("section_ref", a, b, ra, b, "which " + kw))
    if "place" in types:
        for m in PLACE.finditer(sent):
            a, b = s + m.start(), s + m.end()
            lead = m.group("lead")
            ans_a = a + (len(lead) if lead else 0)
            if not free(ans_a, b):
                continue
            before = sent[max(0, m.start() - 30) : m.start()]
            after = sent[m.end() : m.end() + 40]
            if re.match(r"\s*\d{5}|\s+[A-Z][a-z]", after) and not re.match(r"\s+(?:and|or|The)\b", after):
                continue  # an address (zip code) or part of a longer name ("New York Stock Exchange")
            if re.match(r"\s+(?:dollars|currency|time|GAAP|Stock|corporate)\b", after, re.I):
                continue
            if re.match(rf"\s+{_ENTITY_TYPE}\b", after, re.I) and not lead:
                continue  # "a Delaware corporation": the party facts ask about it
            if re.search(r"[A-Z][\w&.-]*\s+$", before) and not lead and not re.search(
                r"(?:\b(?:The|In|Of|And|Under|To|Within|Throughout)|[,;:(])\s+$", before):
                continue
            if any(ans_a >= s and sent[m.start():m.end()] in n for n in party_names):
                continue
            ra = a
            if not lead and m.group("country") and re.search(r"\bthe\s+$", before):
                ra = a - len(re.search(r"the\s+$", before).group(0))
            if m.group("city"):
                wh = "which city"
            elif m.group("state") or m.group("cstate"):
                wh = "which state"
            else:
                wh = "which country" if not re.match(r"Ontario|British Columbia|Quebec|Alberta", m.group("country")) else "which province"
            found.append(_Span("place", ans_a, b, ra, b, wh))
    found.sort(key=lambda x: x.start)
    return found


# --------------------------------------------------------------------------- the generator


# Words a clause cannot end on, and an opened parenthesis: what a cut by word count leaves dangling.
_AUXILIARY = r"shall|will|may|must|can|could|would|should|is|are|was|were|be|been|being|has|have|had|do|does|not"
_DANGLING_END = re.compile(
    r"(?:[\s,]+(?:of|the|to|a|an|and|or|for|with|in|on|at|by|from|as|its|their|any|such|that|which|this|"
    r"each|per|than|under|upon|into|within|including|after|before|between|during|without|against|"
    rf"{_AUXILIARY})|\s+\([^)\s]*)+$")  # lower case: "Schedule A" stays
# A cut that stops on a verb's auxiliary stopped inside a new clause ("..., either party may").
_PREDICATE_CUT = re.compile(rf"\s(?:{_AUXILIARY})[\s,.;:]*$")


class CoverageQAGenerator:
    """Offline, deterministic short-answer Q&A about every clause (see the module docstring)."""

    name = "coverage"

    def __init__(self, config: CoverageQAConfig | None = None):
        self.config = config or CoverageQAConfig()
        self.types = set(self.config.span_types)
        self._proper: set[str] = set()

    # ------------------------------------------------------------------ entry point

    def generate(self, documents: list[Document], chunks: list[Chunk]) -> list[QAPair]:
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        docs = [d for d in documents if d.doc_id in by_doc]
        names = self._document_names(docs)
        pairs: list[QAPair] = []
        for doc in docs:
            text = _DocText(by_doc[doc.doc_id])
            facts = self.facts(text, names[doc.doc_id])
            pairs.extend(self._pairs(doc, text, facts))
        return pairs

    @staticmethod
    def _document_names(docs: list[Document]) -> dict[str, list[str]]:
        titles = {}
        for d in docs:
            title = _title_case(d.title) or re.sub(r"\.[A-Za-z0-9]+$", "", d.file_name)
            if not re.match(r"(?i)the\b", title):
                title = "the " + title
            titles[d.doc_id] = title
        if len(docs) == 1:
            return {docs[0].doc_id: [titles[docs[0].doc_id], "this agreement"]}
        out = {}
        for d in docs:
            name = titles[d.doc_id]
            if sum(t.lower() == name.lower() for t in titles.values()) > 1:
                name = f"{name} ({d.file_name})"
            out[d.doc_id] = [name]
        return out

    # ------------------------------------------------------------------ facts

    def facts(self, doc: _DocText, names: list[str]) -> list[_Fact]:
        """Every fact of one document, in document order (which fixes the fact ids)."""
        text = doc.text
        parties = self._parties(text, names)
        facts: list[_Fact] = [f for f, _ in parties]
        found = list({p["name"].lower(): p for _, p in parties if p.get("name")}.values())
        if "signatory" in self.types:
            facts += self._signatories(text, names, found)
        if "notice_contact" in self.types:
            facts += self._notice_contacts(text, names, found)
        party_names = [p["name"] for _, p in parties if p.get("name")]
        roles = {}
        for _, p in parties:
            if p.get("alias") and p.get("name"):
                roles[p["alias"]] = p["display"]
        seen: set[tuple] = set()
        seen_clauses: set[tuple[str, str]] = set()
        self._proper = set(re.findall(r"(?<=[a-z,] )([A-Z][\w.&’'-]*)", text))
        for quoted in re.findall(r"[\"“]([A-Z][^\"”]{0,50})[\"”]", text):
            self._proper.update(quoted.split())
        preamble_start, preamble_end = self._preamble(text)
        for sent in _sentences(doc, self.config):
            if sent.row:
                fact = self._row_fact(sent, names, seen_clauses)
                if fact is not None and len(fact.questions) >= self.config.min_phrasings:
                    facts.append(fact)
                continue
            spans = _find_spans(text, sent.start, sent.end, self.types, party_names)
            self._attach_noun_phrases(text, sent, spans)
            sent_facts: list[_Fact] = []
            for span in spans:
                key = (sent.start, span.start, span.end)
                if key in seen:
                    continue
                seen.add(key)
                if span.kind == "place" and preamble_start <= span.start < preamble_end and parties:
                    continue
                fact = self._span_fact(text, sent, span, names, roles, seen_clauses)
                if fact is not None:
                    sent_facts.append(fact)
                if len(sent_facts) >= self.config.max_facts_per_sentence:
                    break
            if "defined_term" in self.types:
                sent_facts += self._definition_facts(text, sent, names, seen)
                if not preamble_start <= sent.start < preamble_end:  # the preamble's are the parties' roles
                    sent_facts += self._inline_definition_facts(text, sent, names, seen, set(roles))
            if self.config.reverse_questions:
                self._section_reverse(sent, sent_facts, names)
            facts.extend(f for f in sent_facts if len(f.questions) + len(f.reverse) >= self.config.min_phrasings)
            if len(facts) >= self.config.max_facts_per_document:
                break
        return facts[: self.config.max_facts_per_document]

    # ------------------------------------------------------------------ wording helpers

    def _location(self, sent: _Sentence | None, name: str, k: int) -> str:
        """"Section 4.3 of the Master Services Agreement" (varied by k). Without
        `section_in_questions` the document, and for k = 2 the section by its title ("the Payment
        Terms section of ..."): three phrasings of a long quote that differ by one word are near
        duplicates, and 9 of hemispherx's 75 facts lost their third to the filter."""
        if sent is None or not sent.section:
            return name
        if not self.config.section_in_questions:
            title = _spoken_title(sent.title)
            return f"the {title} section of {name}" if k % 3 == 2 and title else name
        label = f"{sent.section_kind} {sent.section}"
        if k % 3 == 2 and sent.title:
            return f"{label} ({sent.title}) of {name}"
        return f"{label} of {name}"

    def _lowercase_ok(self, word: str) -> bool:
        """Whether a clause's first word may be lower-cased: a common word, not a name or a
        defined term (those also appear capitalized mid-sentence)."""
        if not word[:1].isupper() or word.isupper() and len(word) > 1:
            return False
        return word.lower() in _LOWER_START or word.strip(",;:") not in self._proper

    @staticmethod
    def _cap(text: str) -> str:
        return text[:1].upper() + text[1:]

    def _clause(self, text: str, sent: _Sentence, span: _Span, limit: int) -> tuple[int, int, str]:
        """The clause around a span: (start, end, lead) in absolute offsets, trimmed to
        `limit` words at clause and comma boundaries."""
        s, e = sent.start, sent.end
        rel_a, rel_b = span.rstart - s, span.rend - s
        body = text[s:e]
        # list item: from the enumerator before the span to the next one, after the lead-in
        enums = _enumerators(body)
        lead = ""
        if enums:
            first = enums[0].start()
            before = [m for m in enums if m.end() <= rel_a]
            after = [m for m in enums if m.start() >= rel_b]
            if before:
                lead = body[:first].strip()
                cs = before[-1].end()
                ce = after[0].start() if after else len(body)
                s, e = s + cs, s + ce
                rel_a, rel_b = span.rstart - s, span.rend - s
                body = text[s:e]
                if len(lead.split()) > 20:
                    lead = "... " + " ".join(lead.split()[-16:])
        # clause boundaries: semicolons, colons
        coordination = r",\s+(?:and|but|or|while|whereas)\s+(?=(?:the|each|either|neither|such|any|no)\s|[A-Z])"
        cuts = [0] + [m.end() for m in re.finditer(
            r";\s*(?:and\s+|or\s+|provided,?\s+(?:however,?\s+)?that\s+)?|:\s+|" + coordination, body) if m.end() <= rel_a]
        cs = max(cuts)
        ends = [m.start() for m in re.finditer(r";|:\s|" + coordination, body) if m.start() >= rel_b]
        ce = min(ends) if ends else len(body)
        cs_abs, ce_abs = s + cs, s + ce
        # too long: cut at commas around the span
        if len(text[cs_abs:ce_abs].split()) > limit:
            tail_commas = [m.start() for m in re.finditer(r",\s", text[span.rend:ce_abs])]
            while len(text[cs_abs:ce_abs].split()) > limit and tail_commas:
                ce_abs = span.rend + tail_commas.pop()
            commas = [m.end() for m in re.finditer(r",\s", text[cs_abs:span.rstart])]
            for c in commas:
                if len(text[cs_abs:ce_abs].split()) <= limit:
                    break
                cs_abs_new = cs_abs + c
                if len(text[cs_abs_new:ce_abs].split()) <= limit:
                    cs_abs = cs_abs_new
                    break
            else:
                if commas and len(text[cs_abs:ce_abs].split()) > limit:
                    cs_abs += commas[-1]
            if len(text[cs_abs:ce_abs].split()) > limit:
                # hard cut by words around the span
                left = text[cs_abs : span.rstart].split()[-15:]
                right = text[span.rend : ce_abs].split()[:15]
                cs_abs = span.rstart - len(" ".join(left)) - 1 if left else span.rstart
                cs_abs = max(cs_abs, sent.start)
                ce_abs = span.rend + (text[span.rend:ce_abs].find(right[-1]) + len(right[-1]) if right else 0)
        return cs_abs, ce_abs, lead

    def _render(self, text: str, a: int, b: int, span: _Span, filler: str) -> str:
        tail = text[span.rend : b]
        if _PREDICATE_CUT.search(tail) and "," in tail:  # end where that clause began (90 of 19,406 on more/)
            tail = tail[: tail.rindex(",")]
        clause = text[a : span.rstart] + filler + tail
        clause = _spaces(clause).strip(" ,;:")
        clause = re.sub(r"^(?:(?:and|or|but)\b,?|provided,?\s+(?:however,?\s+)?that|\((?:[a-z]|[ivx]+|\d+)\))\s*", "", clause)
        clause = re.sub(r"[.;:,]+$", "", clause).strip()
        # a cut by words can end on "of the" or "(the": "... a fee equal to what percentage of the?"
        clause = _DANGLING_END.sub("", clause)
        first = clause.split(" ", 1)[0]
        if self._lowercase_ok(first):
            clause = first.lower() + clause[len(first):]
        return clause

    def _substitute_parties(self, question: str, roles: dict[str, str]) -> str:
        for alias, display in roles.items():
            if len(alias) < 3:
                continue
            question = re.sub(rf"(?<![A-Z]\w\s)(?<![A-Z]\w\w\s)\b(?:the\s+)?{re.escape(alias)}\b(?!\s+[A-Z])(?!-)",
                              display, question, count=2)
        return question

    _VAGUE = re.compile(
        r"(?i)period|term|payments?|amount|time|share|portion|minimum|maximum|advance|notice|availability|rate|"
        r"interest|charges?|costs?|credits?|target|commitment|percentage|sales|revenues?|liability|damages|"
        r"duration|extension|renewal|window|interval|limit|threshold|installment|milestone|reserve|consideration"
    )
    _TERM_FITS = {
        "date": re.compile(r"(?i)\b(?:date|day|deadline)$"),
        "duration": re.compile(r"(?i)\b(?:period|term|time|window|duration|days?|months?|years?|hours?|objective)$"),
    }
    _TERM_NOT = re.compile(r"(?i)\b(?:date|day|deadline|period|term|window|duration)$")

    def _term_fits(self, kind: str, term: str) -> bool:
        if kind in self._TERM_FITS:
            return bool(self._TERM_FITS[kind].search(term))
        return not self._TERM_NOT.search(term)

    def _attach_noun_phrases(self, text: str, sent: _Sentence, spans: list[_Span]) -> None:
        measured = {"money", "percent", "duration", "date", "count"}
        for i, sp in enumerate(spans):
            if sp.kind not in measured:
                continue
            # a definition that names the span: "fifteen (15) Business Days (the "Acceptance Period")"
            limit = spans[i + 1].start if i + 1 < len(spans) and spans[i + 1].kind == sp.kind else sent.end
            window = text[sp.end : min(limit, sp.end + 150)]
            for d in _DEF_PAREN.finditer(window):
                between = window[: d.start()]
                if ";" in between or re.search(r"\.\s", between):
                    break
                if self._term_fits(sp.kind, d.group("term")) and (d.start() < 40 or sp.kind in {"duration", "date"}):
                    sp.np = d.group("term")
                    sp.meta["defined"] = True
                break
            if sp.np:
                continue
            if sp.np:
                continue
            left = _spaces(text[max(sent.start, sp.start - 120) : sp.start])
            m = HEAD_NP.search(left)
            if m and sp.kind in {"money", "percent", "duration", "date"}:
                np = m.group("np")
                words = np.split()
                verbs = {"shall", "may", "pay", "paid", "payable", "provide", "give", "gives", "receive", "bear",
                         "accrue", "charge", "owe", "earn", "incur", "exceed", "maintain", "carry", "set", "make"}
                while words[:-1] and (words[0].lower() in _FUNCTION | verbs
                                      or (words[0].islower() and words[0].endswith("s") and not words[0].endswith("ss"))):
                    words.pop(0)
                if (words and not re.search(r"[()\";,]", " ".join(words))
                        and (len(words) > 1 or not self._VAGUE.fullmatch(words[0]))):
                    sp.np = " ".join(words)
        for x, y in zip(spans, spans[1:]):  # a range: "at least 99.0% but less than 99.9%"
            if x.kind == y.kind and len(text[x.end : y.start]) < 30 and ";" not in text[x.end : y.start]:
                x.np = y.np = ""
        counts: dict[str, int] = {}
        for sp in spans:
            if sp.np:
                counts[sp.np.lower()] = counts.get(sp.np.lower(), 0) + 1
        for sp in spans:
            if sp.np and counts[sp.np.lower()] > 1:
                sp.np = ""  # two amounts for one noun ("at least 99.0% but less than 99.9%"): ambiguous

    # ------------------------------------------------------------------ one span

    def _span_fact(self, text: str, sent: _Sentence, span: _Span, names: list[str],
                   roles: dict[str, str], seen_clauses: set) -> _Fact | None:
        cfg = self.config
        answer = _spaces(text[span.start : span.end])
        bare = span.meta.pop("bare", None)  # the amount without its bound or rate (_with_bound_and_rate)
        if bare and (span.start, span.end) != bare[:2]:
            widened = len(answer.split()) <= cfg.max_answer_words and self._span_fact(
                text, sent, span, names, roles, seen_clauses)
            if widened:
                return widened
            # too long with its bound or rate, or no question left around it ("(a) 1% per month; or (b) ..."
            # is all answer): the amount alone, as before
            span.start, span.end, span.wh = bare
            span.rstart, span.rend = span.start, span.end
            answer = _spaces(text[span.start : span.end])
        if len(answer.split()) > cfg.max_answer_words:
            m = re.search(r"\(\s*([^()]+)\s*\)\s*$", answer)  # "Forty ... Dollars ($48,500)" -> "$48,500"
            if not m:
                return None
            span.start = span.start + text[span.start : span.end].rfind(m.group(1))
            span.end = span.start + len(m.group(1))
            answer = _spaces(text[span.start : span.end])
        # The longest clause that gives min_phrasings forward phrasings; failing that, the one that
        # gives the most (at least 2: a reverse pair may make up the rest). Long clauses lose
        # phrasings to max_question_chars: taking the first with 2 dropped facts a shorter clause
        # asks 3 ways (cuad-dev/more, never developed on: durations asked 1,133 -> 1,174 of 1,242;
        # benchmarks/span_coverage.py).
        best = None
        for limit in (cfg.max_clause_words, 26, 16):
            built = self._phrasings(text, sent, span, names, roles, answer, limit)
            if built is None:
                break
            if len(built[0]) >= min(2, cfg.min_phrasings) and (best is None or len(built[0]) > len(best[0])):
                best = built
            if len(built[0]) >= cfg.min_phrasings:
                break
        if best is None:
            return None
        questions, clause_blank, clause_text, restated = best
        key = (clause_blank.lower(), answer.lower())
        if key in seen_clauses:
            return None
        seen_clauses.add(key)
        return _Fact(span.kind, answer, span.start, span.end, sent, questions, restated=restated,
                     np=span.np, clause_blank=clause_blank, clause_text=clause_text)

    def _row_fact(self, sent: _Sentence, names: list[str], seen_clauses: set) -> _Fact | None:
        """A money fact from a table row: the amount (with its unit) listed against the row's label."""
        label, a, b = _table_row(sent.text)
        answer = _spaces(sent.text[a:b])
        key = (f"{label} ___".lower(), answer.lower())
        if key in seen_clauses:
            return None
        seen_clauses.add(key)
        loc = [self._location(sent, names[k % len(names)], k) for k in range(3)]
        candidates = [f"Under {loc[0]}, what amount is listed for {label}?",
                      f"How much is {label} according to the table in {loc[1]}?",
                      f"Complete this table row from {loc[2]}: \"{label} ___\""]
        questions = self._clean_questions(candidates, answer)
        return _Fact("money", answer, sent.start + a, sent.start + b, sent, questions,
                     clause_blank=f"{label} ___", clause_text=_spaces(sent.text))

    def _phrasings(self, text: str, sent: _Sentence, span: _Span, names: list[str], roles: dict[str, str],
                   answer: str, limit: int) -> tuple[list[str], str, str, list[str]] | None:
        """The forward phrasings of one span with its clause cut to `limit` words, and their
        plain-word restatements; None when the clause is too short to ask about."""
        cfg = self.config
        a, b, lead = self._clause(text, sent, span, limit)
        if b - a <= 0:
            return None
        clause_wh = self._render(text, a, b, span, span.wh)
        clause_blank = self._render(text, a, b, span, "___")
        clause_text = self._render(text, a, b, span, text[span.rstart : span.rend])
        if len(clause_blank.split()) < (2 if (lead or sent.lead) else 4):
            return None
        lead_text = _spaces(lead or sent.lead).rstrip(" :,")
        if len(lead_text.split()) > 14:
            lead_text = "... " + " ".join(lead_text.split()[-12:])
        candidates: list[str] = []
        fronted = self._fronted(text, sent, span, a, b)
        for k in range(cfg.phrasings_per_fact + 3):
            name = names[k % len(names)]
            loc = self._location(sent, name, k)
            if k == 0:
                q = fronted
                if q:
                    candidates.append(f"Under {loc}, {q[0].lower() + q[1:] if not q.split()[0].isupper() else q}")
                np_q = self._np_question(span, loc)
                if np_q:
                    candidates.append(np_q)
            elif k == 1 and not span.meta.get("compound"):
                prefix = f"Under {loc}" + (f" (\"{lead_text}:\")" if lead_text else "") + ", "
                candidates.append(prefix + clause_wh + "?")
            elif k == 2 and cfg.cloze:
                context = f" (after \"{lead_text}\")" if lead_text and len(lead_text) < 160 else ""
                candidates.append(f"Complete this clause from {loc}{context}: \"{clause_blank}\"")
            elif k == 3 and not span.meta.get("compound"):
                q = f"According to {loc}" + (f" (\"{lead_text}:\")" if lead_text else "") + ", " + clause_wh + "?"
                if cfg.name_parties and roles and '("' not in q and "(“" not in q:
                    q = self._substitute_parties(q, roles)
                candidates.append(q)
            elif k == 4:
                candidates.append(f"In {loc}, what fills the blank: \"{clause_blank}\"?")
        questions = self._clean_questions(candidates, answer)[: cfg.phrasings_per_fact]
        bases = [q for q in (fronted, None if span.meta.get("compound") else self._cap(clause_wh) + "?") if q]
        restated = [self._restatement(bases[j % len(bases)], sent, names[0], j)
                    for j in range(cfg.restatements_per_fact if bases else 0)]
        restated = self._clean_questions(questions + restated, answer)[len(questions):]
        return questions, clause_blank, clause_text, restated

    def _restatement(self, question: str, sent: _Sentence, name: str, j: int) -> str:
        """Restatement `j` of a forward question: plain words (`plain_words`), and the section
        named by its title where it has one ("the Payment Terms section of the Master Services
        Agreement"), the way a reader recalls it, before the question or after it. Restatements
        0-3 of one fact: each base question once before and once after, the other word choice
        from the third on."""
        body = plain_words(question, j // 2).rstrip(" ?")
        title = _spoken_title(sent.title)
        where = f"the {title} section of {name}" if title else name
        if (j + j // 2) % 2:
            return f"{self._cap(body)}, according to {where}?"
        first = body.split(" ", 1)[0]
        if self._lowercase_ok(first):
            body = first.lower() + body[len(first):]
        return f"In {where}, {body}?"

    def _clean_questions(self, candidates: list[str], answer: str) -> list[str]:
        from rapidfuzz import fuzz

        norm_answer = normalize_answer(answer)
        out: list[str] = []
        cutoff = 100 * self.config.near_duplicate_similarity
        for q in candidates:
            q = _spaces(q)
            q = re.sub(r"\s+([,?])", r"\1", q).replace("??", "?")
            if len(q) > self.config.max_question_chars or any(
                    fuzz.ratio(q.lower(), x.lower()) >= cutoff for x in out):
                continue
            if norm_answer and re.search(rf"(?:^|\s){re.escape(norm_answer)}(?:\s|$)", normalize_answer(q)):
                continue
            out.append(q)
        return out

    def _np_question(self, span: _Span, loc: str) -> str | None:
        np = span.np
        if not np or span.kind not in {"money", "percent", "duration", "date", "count"}:
            return None
        the = "" if re.match(r"(?i)(?:the|a|an|each|any)\b", np) else "the "
        if span.kind == "count":
            return f"Under {loc}, how many {np} are specified?" if not span.meta.get("defined") else f"What is {the}{np} under {loc}?"
        if span.kind == "duration" and re.search(r"(?i)notice", np):
            return f"How much {np} is required under {loc}?"
        if span.kind == "date":
            return f"What is {the}{np} under {loc}?"
        if span.kind == "money":
            return f"What is {the}{np} under {loc}?"
        return f"What is {the}{np} under {loc}?"

    def _fronted(self, text: str, sent: _Sentence, span: _Span, a: int, b: int) -> str | None:
        """Move the span's phrase in front of the subject and auxiliary of its clause:
        "Customer shall pay ... within 45 days after ..." -> "Within how many days shall Customer
        pay ... after ...?"."""
        if span.meta.get("compound"):
            return None
        clause = text[a:b]
        rel = span.rstart - a
        lead = re.match(r"\s*(?:\((?:[a-z]|[ivx]+|\d+)\)\s*)?", clause)
        subj_start = lead.end() if lead else 0
        m = re.match(rf"(?P<subj>[A-Z][^,;:()]{{0,80}}?)\s+(?P<aux>{_AUX})\s+", clause[subj_start:])
        if not m or subj_start + m.end() > rel:
            return None
        subj = m.group("subj")
        if len(subj.split()) > 10 or re.search(r"\b(?:if|when|unless|where|that|which|who)\b", subj, re.I):
            return None
        if re.search(r"\b(?:warrants|represents|agrees|acknowledges|covenants|certifies|confirms|understands|"
                     r"states|provides|requires|ensures|guarantees|hereby|agree|warrant|represent|acknowledge)\b", subj):
            return None
        aux = m.group("aux")
        verb_start = subj_start + m.end()
        before = clause[verb_start:rel]
        after = clause[span.rend - a :]
        wh = span.wh
        notice = re.match(r"\s*((?:prior\s+|advance\s+|written\s+|electronic\s+)*(?:notice|notification)\b)", after)
        if span.kind == "duration" and notice:
            wh = wh + ("'" if span.rend > span.end else "") + " " + notice.group(1)
            after = after[notice.end() :]
        prep = _FRONT_PREP.search(" " + before)
        if prep:
            cut = verb_start + max(0, prep.start() - 1)
            rest_before = clause[verb_start:cut]
            if not rest_before.strip() or re.search(
                    rf"\b{_AUX}\b|[;:]|\b(?:if|unless|when|whenever|where|that|which|who|because|provided|"
                    r"except|until|after|before|once|whether)\b", rest_before):
                return None
            front = _spaces(prep.group(0)) + " " + wh
        else:
            if span.kind in {"date", "section_ref", "place"}:
                return None
            mod = _OBJECT_MOD.search(before)
            verb_words = before[: mod.start() if mod and mod.group("mod") else len(before)].split()
            if not (0 <= len(verb_words) <= 3):
                return None
            if verb_words and any(w.lower() in {"and", "or", "the", "a", "an", "any", "its", "their", "to", "this", "that",
                                                 "on", "of", "as", "in", "at", "for", "by"} for w in verb_words):
                return None
            if mod and mod.group("mod"):
                rest_before = before[: mod.start()]
                front = _spaces(mod.group("mod")) + " " + wh
            else:
                rest_before = before
                front = wh
            if span.kind == "money" and front == "what amount":
                front = "how much"
        aux_words = aux.split()
        first = subj.split(" ", 1)[0]
        if self._lowercase_ok(first):
            subj = first.lower() + subj[len(first):]
        if aux in {"is", "are", "has", "have", "does"} and not rest_before.strip():
            question = f"{front} {aux} {subj} {after}"
        elif aux in {"is", "are"}:
            question = f"{front} {aux} {subj} {rest_before} {after}"
        elif aux in {"has", "have"}:
            question = f"{front} {'does' if aux == 'has' else 'do'} {subj} have {rest_before} {after}"
        elif len(aux_words) == 2:
            question = f"{front} {aux_words[0]} {subj} not {rest_before} {after}"
        else:
            question = f"{front} {aux} {subj} {rest_before} {after}"
        question = _spaces(question).strip(" ,;:.")
        question = re.sub(r"\s+,", ",", question)
        if len(question.split()) < 5:
            return None
        return self._cap(question) + "?"

    # ------------------------------------------------------------------ reverse: which section

    def _section_reverse(self, sent: _Sentence, facts: list[_Fact], names: list[str]) -> None:
        if not sent.section or sent.section_kind not in {"Section", "Article", "Schedule", "Exhibit", "Annex", "Appendix"}:
            return
        label = f"{sent.section_kind} {sent.section}"
        written = 0
        for fact in facts:
            if written >= self.config.section_reverse_per_sentence:
                break
            if fact.field not in {"money", "percent", "duration", "date", "count", "section_ref", "place"}:
                continue
            np = fact.np
            name = names[0]
            if np and fact.field != "count":
                the = "" if re.match(r"(?i)(?:the|a|an|each|any)\b", np) else "the "
                question = f"Which section of {name} sets {the}{np} of {fact.answer}?"
            else:
                if not fact.clause_text:
                    continue
                filled = fact.clause_text
                if len(filled) > 200:
                    continue
                if fact.field == "section_ref":
                    question = f"Which section of {name} refers to {fact.answer}, saying \"{filled}\"?"
                elif written:
                    question = f"In which section of {name} does this appear: \"{filled}\"?"
                else:
                    question = f"Which section of {name} says: \"{filled}\"?"
            if normalize_answer(label) in normalize_answer(question):
                continue
            fact.reverse.append((question, label, "section_of", sent.start, sent.end, True))
            if sent.label_chunk_span:
                fact.extra_sources.append(sent.label_chunk_span)
            written += 1

    # ------------------------------------------------------------------ definitions

    def _inline_definition_facts(self, text: str, sent: _Sentence, names: list[str], seen: set,
                                 aliases: set[str]) -> list[_Fact]:
        """Terms defined in passing, in parentheses after what they name: "for ninety (90) days
        following its Acceptance (the "Warranty Period")" -> which term the text uses for the words
        before it (and, where short, what the term refers to). Contracts define most of their terms
        this way rather than with "means"."""
        facts = []
        previous = 0  # where the sentence's last definition ended: "A ("X") and B ("Y")" names B by "Y"
        for m in _DEF_PAREN.finditer(sent.text):
            term = m.group("term").strip()
            key = ("defined_term", term.lower())
            start, previous = previous, m.end()
            if key in seen or term in aliases or term.lower() in {"agreement", "this agreement"}:
                continue
            before = sent.text[: m.start()]
            # the clause or item the parenthesis closes
            cut = max(before.rfind(";"), before.rfind(":"), start - 1)
            body = _spaces(before[cut + 1 :]).strip(" ,")
            words = body.split()
            if len(words) < 3:
                continue
            seen.add(key)
            short = ("... " if len(words) > 14 else "") + " ".join(words[-14:])
            loc = [self._location(sent, name, k) for k, name in enumerate((names * 3)[:3])]
            questions = self._clean_questions([
                f"What term does {loc[0]} use for \"{short}\"?",
                f"In {loc[1]}, \"{short}\" is referred to by what defined term?",
                f"What name does {loc[2]} give to \"{short}\"?",
            ], term)
            if len(questions) < self.config.min_phrasings:
                continue
            term_start = sent.start + m.start("term")
            fact = _Fact("defined_term", term, term_start, term_start + len(term), sent, questions)
            if len(words) <= self.config.max_answer_words and self.config.reverse_questions:
                body_abs = sent.start + before.find(words[0], cut + 1)
                fact.reverse.append((f"What does \"{term}\" refer to in {names[0]}?", body, "definition",
                                     body_abs, body_abs + len(body), False))
            facts.append(fact)
        return facts

    def _definition_facts(self, text: str, sent: _Sentence, names: list[str], seen: set) -> list[_Fact]:
        facts = []
        m = _MEANS.search(sent.text)
        if not m:
            return facts
        term = m.group("term").strip()
        key = ("defined_term", term.lower())
        if key in seen or term.lower() in {"agreement", "this agreement"}:
            return facts
        seen.add(key)
        body_start = sent.start + m.end()
        body = text[body_start : sent.end]
        cut = re.search(r";|\.\s*$|\.(?=\s)|\s[\"“][A-Z][^\"”]{0,50}[\"”]\s+(?:shall\s+)?means\b", body)
        body = body[: cut.start()] if cut else body
        body = _spaces(body).rstrip(" .,;:")
        lead_comma = re.match(r"[\s,]+", body)
        if lead_comma:
            body_start += lead_comma.end()
            body = body[lead_comma.end():]
        if len(body.split()) < 3:
            return facts
        words = body.split()
        short = " ".join(words[:14]) + (" ..." if len(words) > 14 else "")
        term_start = sent.start + m.start("term")
        loc_q = []
        for k, name in enumerate((names * 3)[:3]):
            loc = self._location(sent, name, k)
            loc_q.append(loc)
        questions = [
            f"Which term does {loc_q[0]} define as \"{short}\"?",
            f"In {loc_q[1]}, what defined term means \"{short}\"?",
            f"What capitalized term does {loc_q[2]} use for \"{short}\"?",
        ]
        questions = self._clean_questions(questions, term)
        if len(questions) < self.config.min_phrasings:
            return facts
        fact = _Fact("defined_term", term, term_start, term_start + len(term), sent, questions)
        if len(words) <= self.config.max_answer_words and self.config.reverse_questions:
            body_abs = text.find(words[0], body_start)
            fact.reverse.append((f"What does \"{term}\" mean in {names[0]}?", body, "definition",
                                 body_abs, body_abs + len(body), False))
        if sent.section and self.config.reverse_questions:
            label = f"{sent.section_kind} {sent.section}"
            fact.reverse.append((f"Which section of {names[0]} defines \"{term}\"?", label, "section_of",
                                 sent.start, sent.end, True))
            if sent.label_chunk_span:
                fact.extra_sources.append(sent.label_chunk_span)
        facts.append(fact)
        return facts

    # ------------------------------------------------------------------ who signs, who is notified

    _PERSON = re.compile(r"[A-Z][A-Za-z.'’-]*(?:\s+[A-Z][A-Za-z.'’-]*){1,4}")
    _SIGNED_NAME = re.compile(r"Name:\s*(?P<v>[^\n:]+?)\s*(?=Name:|Title:|Date:|Its:|\n|$)")
    _SIGNED_TITLE = re.compile(r"(?:Title|Its):\s*(?P<v>[^\n:]+?)\s*(?=Title:|Its:|Date:|Name:|By:|\n|$)")

    def _party_mentions(self, text: str, start: int, end: int, found: list[dict]) -> list[tuple[int, dict]]:
        """Where each party is named (full name or its alias as a label, "SELLER:") in text[start:end],
        in order."""
        hits = []
        for p in found:
            names = [re.escape(_spaces(p["name"]).rstrip(",."))]
            if p.get("alias"):
                names.append(re.escape(p["alias"]) + r"\s*:")
            mentions = list(re.finditer(rf"(?i)(?:{'|'.join(names)})", text[start:end]))
            if mentions:
                hits.append((start + mentions[-1].start(), p))
        return sorted(hits, key=lambda h: h[0])

    def _signatories(self, text: str, names: list[str], found: list[dict]) -> list[_Fact]:
        """Who signed for each party, from signature blocks: the party's name, then "By:", "Name:"
        and "Title:" lines -- stacked, or side by side for two parties (PDF text runs the columns
        together: "By: /s/ A By: /s/ B Name: A Name: B Title: T1 Title: T2")."""
        facts: list[_Fact] = []
        doc = names[0]
        done: set[str] = set()
        for block in re.finditer(r"(?:By:[^\n]*?(?=By:|Name:|\n|$)\s*)+", text):
            bys = len(re.findall(r"By:", block.group(0)))
            after = text[block.end() : block.end() + 400]
            people = list(self._SIGNED_NAME.finditer(after))[:bys]
            titles = list(self._SIGNED_TITLE.finditer(after))[:bys]
            parties = self._party_mentions(text, max(0, block.start() - 300), block.start(), found)[-bys:]
            if len(people) != bys or len(parties) != bys:
                continue
            for k, ((_, p), person) in enumerate(zip(parties, people)):
                who = re.sub(r"^/s/\s*", "", _spaces(person.group("v")))
                if p["name"].lower() in done or not self._PERSON.fullmatch(who) or "_" in who:
                    continue
                done.add(p["name"].lower())
                display = p["display"]
                n_start = block.end() + person.start("v") + person.group("v").find(who)
                sentence = _Sentence(block.start(), block.end() + person.end(), text[block.start() : block.end() + person.end()],
                                     "", "", "")
                questions = self._clean_questions([
                    f"Who signed {doc} on behalf of {display}?",
                    f"Which individual executed {names[-1]} for {display}?",
                    f"Whose signature appears for {display} on {doc}?",
                ], who)
                fact = _Fact("signatory", who, n_start, n_start + len(who), sentence, questions)
                if self.config.reverse_questions:
                    fact.reverse.append((f"On behalf of which party did {who} sign {doc}?", p["name"], "party",
                                         p["offset"] + p["name_start"], p["offset"] + p["name_start"] + len(p["name"]), False))
                    if k < len(titles):
                        title = _spaces(titles[k].group("v"))
                        t_start = block.end() + titles[k].start("v")
                        if re.search(r"[A-Za-z]{2}", title) and "_" not in title and len(title.split()) <= self.config.max_answer_words:
                            fact.reverse.append((f"What is the title of {who}, who signed {doc} for {display}?",
                                                 title, "title", t_start, t_start + len(title), False))
                facts.append(fact)
        return facts

    def _notice_contacts(self, text: str, names: list[str], found: list[dict]) -> list[_Fact]:
        """To whose attention notices to each party go: an "Attention:" / "Attn:" line of the party's
        notice address ("If to Customer: ... Attention: Chief Legal Officer"); the lines of a copy
        ("with a copy to: <counsel>") are someone else's."""
        facts: list[_Fact] = []
        doc = names[0]
        done: set[str] = set()
        for m in re.finditer(r"(?:Attention|Attn)\.?:[ \t]*(?P<v>[^\n]+)", text):
            who = re.split(r"\s+(?:E-?mail|Fax|Facsimile|Tel|Telephone|Phone)\b|\s{2,}", m.group("v"))[0].strip(" ,;.")
            # a PDF line join runs the next address line on: "General Counsel VerticalNet, Inc"
            for party in found:
                short = _spaces(party["name"]).split(",")[0].strip(" .")  # "VerticalNet", "Stallings Racing"
                cut = re.search(rf"(?i)\s{re.escape(short)}\b", who) if len(short) > 3 else None
                if cut:
                    who = who[: cut.start()].strip(" ,;.")
            if not re.match(r"[A-Z]", who) or len(who.split()) > self.config.max_answer_words or "_" in who:
                continue
            start = max(0, m.start() - 400)
            copy = list(re.finditer(r"(?i)\bcopy\b|\bcc:", text[start : m.start()]))
            if copy:
                start += copy[-1].end()
            parties = self._party_mentions(text, start, m.start(), found)
            if not parties:
                continue
            p = parties[-1][1]
            if p["name"].lower() in done:
                continue
            done.add(p["name"].lower())
            display, alias = p["display"], p.get("alias") or p["display"]
            the_alias = ("the " + alias) if alias.lower() in _ROLE_WORDS else alias
            a = m.start("v") + m.group("v").find(who)
            sentence = _Sentence(start, m.end(), text[start : m.end()], "", "", "")
            questions = self._clean_questions([
                f"To whose attention must notices to {the_alias} under {doc} be addressed?",
                f"Under {names[-1]}, notices for {display} are sent to the attention of whom?",
                f"Who is named as the attention line for {the_alias}'s notices in {doc}?",
            ], who)
            facts.append(_Fact("notice_contact", who, a, a + len(who), sentence, questions))
        return facts

    # ------------------------------------------------------------------ parties

    def _preamble(self, text: str) -> tuple[int, int]:
        """Where the parties are introduced: from the first "between"/"among" that is followed
        by a party alias ("Acme") -- after any cover page or table of contents -- to the recitals."""
        for m in re.finditer(r"(?i)\b(?:by\s+and\s+between|by\s+and\s+among|between|among)\b", text[:30000]):
            if self._ALIAS.search(text, m.end(), m.end() + 600):
                limit = m.end() + self.config.preamble_chars
                stop = re.search(r"WHEREAS|RECITALS|BACKGROUND|NOW,?\s+THEREFORE|W\s?I\s?T\s?N\s?E\s?S\s?S\s?E\s?T\s?H|"
                                 r"agrees?\s+as\s+follows", text[m.end() : limit])
                if stop:
                    limit = m.end() + stop.start()
                end = m.end()
                for alias in self._ALIAS.finditer(text, m.end(), limit):  # the run of party aliases
                    if alias.start() - end > 600:
                        break
                    end = alias.end()
                paragraph = re.search(r"\n\s*\n", text[end:limit])
                return m.end(), end + paragraph.start() if paragraph else limit
        return 0, 0

    _ALIAS = re.compile(
        r"\(\s*(?:the\s+|hereinafter\s+(?:(?:referred\s+to\s+as|called)\s+)?(?:the\s+)?|referred\s+to\s+"
        r"(?:herein\s+)?as\s+(?:the\s+)?|herein\s+(?:called\s+)?(?:the\s+)?)?[\"“](?P<alias>[A-Z][^\"”()]{0,40}?)[\"”]\s*\)"
    )
    _NOT_PARTY = re.compile(
        r"(?i)^(?:agreement|this agreement|effective date|agreement date|commencement date|parties|party|"
        r"exhibits?.*|schedules?.*|territory|products?|services?|term)$"
    )

    def _parties(self, text: str, names: list[str]) -> list[tuple[_Fact, dict]]:
        if not self.types & {"party", "entity_type", "place"}:
            return []
        begin, end = self._preamble(text)
        boundary = begin
        found: list[dict] = []
        for m in self._ALIAS.finditer(text, boundary, end):
            alias = _spaces(m.group("alias"))
            segment_start = boundary
            boundary = m.end()
            if self._NOT_PARTY.match(alias):
                continue
            segment = text[segment_start : m.start()]
            conn = list(re.finditer(r"(?:\b(?:between|among|and|by)\b|^)[\s,:]*(?=[A-Z])", segment))
            if not conn:
                continue
            # the last connector that leaves a name-looking run
            info = None
            for c in reversed(conn):
                info = self._party_segment(segment, c.end())
                if info:
                    break
            if not info:
                continue
            info.update(alias=alias, offset=segment_start, alias_start=m.start("alias"))
            if any(p["name"].lower() == info["name"].lower() for p in found):
                continue
            found.append(info)
        facts: list[tuple[_Fact, dict]] = []
        doc = names[0]
        for p in found:
            base = p["offset"]
            name = p["name"]
            display = _title_case(name).rstrip(",")
            p["display"] = display
            n_start = base + p["name_start"]
            n_end = n_start + len(name)
            alias = p["alias"]
            role_like = alias.lower() in _ROLE_WORDS
            the_alias = ("the " + alias) if role_like else alias
            sentence = _Sentence(n_start, p["alias_start"] + len(alias) + 2, text[n_start : p["alias_start"] + len(alias) + 2],
                                 "", "", "")
            if "party" in self.types:
                qs = [
                    f"Which party is referred to as \"{alias}\" in {doc}?",
                    f"Who is {the_alias} under {names[-1]}?" if role_like else f"Which company does {doc} call \"{alias}\"?",
                    f"In {doc}, which company is defined as \"{alias}\"?",
                    f"Under {names[-1]}, who acts as {the_alias}?" if role_like else f"What is the full name of the party called {alias} in {doc}?",
                ]
                fact = _Fact("party", name, n_start, n_end, sentence, self._clean_questions(qs, name))
                if self.config.reverse_questions:
                    a_start = p["alias_start"]
                    for q in (f"What is {display}'s role under {doc}?" if role_like else f"How does {doc} refer to {display}?",
                              f"How is {display} referred to in {names[-1]}?"):
                        if normalize_answer(alias) not in normalize_answer(q):
                            fact.reverse.append((q, alias, "party", a_start, a_start + len(alias), False))
                facts.append((fact, p))
            if p.get("type") and "entity_type" in self.types:
                t_start = base + p["type_start"]
                etype = p["type"]
                if p.get("state"):  # "a Minnesota limited liability company": the state is part of what it is
                    s_start = base + p["state_start"]
                    if s_start < t_start and not text[s_start + len(p["state"]) : t_start].strip():
                        etype, t_start = text[s_start : t_start + len(etype)], s_start
                qs = [
                    f"What type of entity is {display}, a party to {doc}?",
                    f"{display} is organized as what kind of entity, according to {doc}?",
                    f"What form of business entity is {the_alias} under {names[-1]}?",
                ]
                fact = _Fact("entity_type", etype, t_start, t_start + len(etype), sentence, self._clean_questions(qs, etype))
                described = _spaces(f"{p.get('state') or ''} {p['type']}")
                unique = sum(1 for o in found if _spaces(f"{o.get('state') or ''} {o.get('type') or ''}").lower() == described.lower()) == 1
                if self.config.reverse_questions and unique:
                    article = "an" if described[:1].lower() in "aeiou" else "a"
                    fact.reverse.append((f"Which party to {doc} is {article} {described}?", name, "party", n_start, n_end, False))
                facts.append((fact, p))
            if p.get("state") and "place" in self.types:
                s_start = base + p["state_start"]
                state = p["state"]
                qs = [
                    f"Under the laws of which state or country is {display} organized, according to {doc}?",
                    f"What is the state of incorporation or organization of {the_alias} under {names[-1]}?",
                    f"In which jurisdiction is {display}, a party to {doc}, organized?",
                ]
                fact = _Fact("place", state, s_start, s_start + len(state), sentence, self._clean_questions(qs, state))
                unique = sum(1 for o in found if (o.get("state") or "").lower() == state.lower()) == 1
                if self.config.reverse_questions and unique:
                    fact.reverse.append((f"Which party to {doc} is organized under the laws of {state}?", name, "party",
                                         n_start, n_end, False))
                facts.append((fact, p))
            if p.get("address") and "place" in self.types:
                a_start = base + p["address_start"]
                address = p["address"]
                qs = [
                    f"Where is {display}'s principal place of business, according to {doc}?",
                    f"What address does {names[-1]} give for {the_alias}?",
                    f"At what address is {the_alias} located under {doc}?",
                ]
                fact = _Fact("place", address, a_start, a_start + len(address), sentence, self._clean_questions(qs, address))
                facts.append((fact, p))
        return [(f, p) for f, p in facts if len(f.questions) >= self.config.min_phrasings]

    def _party_segment(self, segment: str, start: int) -> dict | None:
        """Name, entity type, state and address in one party's stretch of the preamble."""
        rest = segment[start:]
        stop = re.search(r",?\s+(?:an?\s+(?=[A-Z]|(?:limited|corporation|company|partnership))|whose\b|having\b|with\s+(?:its|a)\b|"
                         r"located\b|organi[sz]ed\b|incorporated\b|existing\b|of\s+\d|at\s+\d|residing\b|\()|,\s+an?\s", rest)
        raw = rest[: stop.start()] if stop else rest
        name = raw.strip(" ,;\n")
        words = name.split()
        if not (1 <= len(words) <= 10) or not name[:1].isupper():
            return None
        lower = [w for w in words if w[:1].islower() and w not in {"of", "and", "de", "the", "for", "&", "du", "la"}]
        if lower or re.search(r"\d{3,}|[{}\[\]*]", name):
            return None
        info: dict = {"name": name, "name_start": start + (len(raw) - len(raw.lstrip(" ,;\n")))}
        tail = rest[len(raw) :]
        t0 = start + len(raw)
        et = re.search(rf"\ban?\s+(?:(?P<state>{_STATE_RE}|{_COUNTRY_RE})\s+)?(?P<type>{_ENTITY_TYPE})\b", tail)
        if et and et.start() < 80:
            info.update(type=et.group("type"), type_start=t0 + et.start("type"))
            if et.group("state"):
                info.update(state=et.group("state"), state_start=t0 + et.start("state"))
        if "state" not in info:
            law = re.search(rf"laws\s+of\s+(?:the\s+)?(?:State\s+of\s+|Commonwealth\s+of\s+)?(?P<state>{_STATE_RE}|{_COUNTRY_RE})\b", tail)
            if law and law.start() < 160:
                info.update(state=law.group("state"), state_start=t0 + law.start("state"))
        addr = re.search(
            r"(?:principal\s+(?:place\s+of\s+business|(?:executive\s+)?offices?)|(?:registered\s+)?office|address|"
            r"located|residing)\s+(?:(?:is|at|in|of)\s+)*(?:located\s+)?(?:at\s+)?(?P<addr>\d[^()]{5,120}?)"
            r"(?=\s*(?:\(|,?\s+and\s*$|;|$|\.\s))",
            tail,
        )
        if addr:
            address = addr.group("addr").rstrip(" ,")
            if len(address.split()) <= self.config.max_answer_words:
                info.update(address=address, address_start=t0 + addr.start("addr"))
        return info

    # ------------------------------------------------------------------ pairs

    def _pairs(self, doc: Document, text: _DocText, facts: list[_Fact]) -> list[QAPair]:
        counters: dict[str, int] = {}
        seen_questions: set[str] = set()
        pairs: list[QAPair] = []
        for fact in facts:
            n = counters.get(fact.field, 0)
            counters[fact.field] = n + 1
            fact_id = f"{doc.doc_id}:coverage:{fact.field}:{n}"
            sent = fact.sentence
            s_start = sent.start if sent else fact.start
            s_end = sent.end if sent else fact.end
            base_sources = text.chunk_ids(min(s_start, fact.start), max(s_end, fact.end))
            meta_base = {
                "sentence": _spaces(text.text[s_start:s_end]),
                "sentence_start": s_start,
                "sentence_end": s_end,
            }
            if sent and sent.section:
                meta_base["section"] = f"{sent.section_kind} {sent.section}"
            rows = [(q, fact.answer, fact.field, fact.start, fact.end, False, "forward") for q in fact.questions]
            rows += [(q, fact.answer, fact.field, fact.start, fact.end, False, "restated") for q in fact.restated]
            rows += [(q, a, f, st, en, d, "reverse") for q, a, f, st, en, d in fact.reverse]
            phrasing = 0
            for question, answer, field_name, a_start, a_end, derived, direction in rows:
                if question.lower() in seen_questions:
                    continue
                seen_questions.add(question.lower())
                sources = list(base_sources)
                for cid in text.chunk_ids(min(a_start, s_start), max(a_end, s_end)):
                    if cid not in sources:
                        sources.append(cid)
                if field_name == "section_of":
                    for span in fact.extra_sources:
                        for cid in text.chunk_ids(*span):
                            if cid not in sources:
                                sources.append(cid)
                meta = {**meta_base, "answer_start": a_start, "answer_end": a_end, "phrasing": phrasing,
                        "direction": direction}
                if derived:
                    meta["derived"] = True
                pairs.append(QAPair(
                    question=question,
                    answer=_spaces(answer),
                    fact_id=fact_id,
                    doc_id=doc.doc_id,
                    source_chunk_ids=sources,
                    generator=self.name,
                    field=field_name,
                    meta=meta,
                ))
                phrasing += 1
        return pairs


def generate(documents: list[Document], chunks: list[Chunk], config: CoverageQAConfig | None = None) -> Iterable[QAPair]:
    """Module-level convenience: CoverageQAGenerator(config).generate(documents, chunks)."""
    return CoverageQAGenerator(config).generate(documents, chunks)
