"""Rule-made restatements of the reading (continued-pretraining) text.

A fact read once, in one wording, is memorised but rarely extractable (Physics of LMs 3.1; see
/work/shared/KNOWLEDGE.md section 1). This module writes, beside each chunk's original text,
`variants` restatements of it in which

1. aliases the contract introduces (`QUILLMERE DATA SYSTEMS, INC., a Delaware corporation ...
   ("Provider")`, `(the "Effective Date")`, `"Platform" means the ColdLedger Platform`) are
   expanded to the full name, at least at the first mention in every sentence;
2. every sentence names its document and its section ("Under Section 14.2 (Termination for
   Cause) of the Master Services Agreement, ...");
3. sentences are shuffled within each paragraph (a new order per variant);
4. framing templates differ between variants.

The wording of the contract itself is kept: numbers, dates, amounts and quoted terms are never
touched; only framing is added, aliases are expanded, a leading "WHEREAS," and a trailing
"; and" of a recital are dropped, and a sentence's first letter may be lower-cased after an
introductory phrase when its first word is a common function word ("The", "Each", "If").

Chunks that are a table of contents (dot leaders, "TABLE OF CONTENTS") yield no record, so
`augmented_records` may return fewer than `len(chunks) * variants` records. Heading-only
chunks are restated minimally ("Section 7.1 of the Master Services Agreement is headed
"Obligations"."). Everything is regular expressions and seeded `random.Random`; no model.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from docfinetune.build.cpt import reading_record
from docfinetune.core.records import Chunk, Document

# --------------------------------------------------------------------------------------------
# Names and case

_SMALL_WORDS = {
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "per",
    "the", "to", "upon", "with", "under", "between", "among", "than", "via",
}
# Corporate suffixes, upper-cased (no dots) -> how to write them in a title-cased name.
_SUFFIXES = {
    "INC": "Inc.", "INCORPORATED": "Incorporated", "LLC": "LLC", "LLP": "LLP", "LP": "LP",
    "LTD": "Ltd.", "LIMITED": "Limited", "CORP": "Corp.", "CORPORATION": "Corporation",
    "CO": "Co.", "COMPANY": "Company", "PLC": "PLC", "GMBH": "GmbH", "AG": "AG", "SA": "S.A.",
    "NV": "N.V.", "BV": "B.V.", "LLLP": "LLLP", "PC": "P.C.", "PTY": "Pty", "SARL": "S.à r.l.",
    "SPA": "S.p.A.", "AB": "AB", "AS": "AS", "KK": "K.K.",
}
_SUFFIX_RE = (
    r"(?:Inc|INC|Incorporated|INCORPORATED|L\.?L\.?C|LLP|L\.?P|Ltd|LTD|Limited|LIMITED|Corp|CORP"
    r"|Corporation|CORPORATION|Co|CO|Company|COMPANY|plc|PLC|GmbH|GMBH|AG|S\.A|N\.V|B\.V"
    r"|Partnership|PARTNERSHIP|Pty|PTY)\.?"
)
_WORD = r"[A-Z0-9][\w&'’\-]*(?:\.[A-Za-z]+)*"  # "QUILLMERE", "BW-3", "E.PIPHANY", "Women.com"
_NAME_WORD = rf"(?:{_WORD}|\([A-Z][A-Za-z ]+\)|&|of|and|the|de|du|von|van)"
# A company name: capitalised words ending in a corporate suffix ("BW-3 Franchise Systems, Inc.").
_COMPANY = re.compile(
    rf"(?<![\w\-.])((?!(?:The|THE|This|THIS|That|Such|Each|Any|Our|Its)\s){_WORD}(?:,?\s+{_NAME_WORD}){{0,9}}?,?\s+{_SUFFIX_RE}(?:,?\s+{_SUFFIX_RE})?)(?![\w])"
)
_ACRONYM_KEEP = {"UK", "US", "USA", "EU", "II", "III", "IV", "NA", "UAE", "PRC"}
_SHORT_WORDS = {"NEW", "BAY", "SUN", "OAK", "ONE", "TWO", "RED", "BIG", "TOP", "SEA", "AIR", "GAS",
                "OIL", "CAR", "BIO", "NET", "WEB", "ART", "LAW", "CITY", "BLUE", "STAR"}


def _title_word(word: str, first: bool, keep: dict[str, str], name: bool = True) -> str:
    core = word.strip(",;()")
    lead, trail = word[:len(word) - len(word.lstrip(",;("))], word[len(word.rstrip(",;)")):]
    upper = core.upper()
    bare = upper.replace(".", "")
    if upper in keep:
        return lead + keep[upper] + trail  # the alias's own casing: "E.PIPHANY" -> "E.piphany"
    if bare in _SUFFIXES and not first:
        return lead + _SUFFIXES[bare] + trail
    if bare in _ACRONYM_KEEP or any(c.isdigit() for c in core):
        return word
    letters = [c for c in core if c.isalpha()]
    if len(letters) >= 2 and (not any(c in "AEIOUY" for c in upper)
                              or (len(letters) <= 3 and upper not in _SHORT_WORDS
                                  and core.lower() not in _SMALL_WORDS)):
        if name or not any(c in "AEIOUY" for c in upper):
            return word  # "SHBV", "ANR", "UK" (in a heading only vowel-less words: "FEE" -> "Fee")
    if not first and core.lower() in _SMALL_WORDS:
        return lead + core.lower() + trail
    # "COLD-CHAIN" -> "Cold-Chain", "WOMEN.COM" -> "Women.com", "O'NEIL" -> "O'neil"
    parts = re.split(r"([\-/])", core.lower())
    return lead + "".join(p[:1].upper() + p[1:] for p in parts) + trail


def title_case(text: str, keep: set[str] | None = None, name: bool = True) -> str:
    """ALL-CAPS text to title case; text that already has lower case is returned unchanged.
    Corporate suffixes stay conventional ("INC." -> "Inc.", "LLC" -> "LLC"); a word equal to
    an alias in `keep` takes the alias's casing ("E.PIPHANY" -> "E.piphany"); vowel-less and
    short words ("SHBV", "ANR") stay upper case."""
    if any(c.islower() for c in text):
        return text
    keep_map = {k.upper(): k for k in (keep or set())}
    words = text.split()
    return " ".join(_title_word(w, i == 0, keep_map, name) for i, w in enumerate(words))


def _clean_title(title: str) -> str:
    title = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", title)
    title = re.sub(r"\s+", " ", title).strip(" .,:;-—")
    return title_case(title, name=False)


# --------------------------------------------------------------------------------------------
# Aliases: parties and key terms, parsed from the whole document

_Q_OPEN = "\"“‘'"
_Q_CLOSE = "\"”’'"
# ("Provider"), (the "Customer"), (hereinafter referred to as 'IMPCO', which ...), (Transporter)
_ALIAS_DEF = re.compile(
    r"\(\s*(?:(?P<the>the|The)\s+|hereinafter(?:\s+(?:referred\s+to\s+as|called|"
    r"the))?\s*(?P<the2>the\s+)?|collectively(?:,)?\s+(?:the\s+)?|together\s+(?:the\s+)?"
    r"|(?P<each>each(?:,)?\s+(?:a|an)\s+|each\s+being\s+(?:a|an)\s+))?"
    rf"[{_Q_OPEN}]\s*(?P<alias>[A-Za-z0-9][\w.&’'\- ]{{0,40}}?)\s*[{_Q_CLOSE}]"
    r"[^()]{0,200}?\)"
    r"|\((?P<bare>[A-Z][a-z]+(?: [A-Z][a-z]+)?)\)"
)
# "Effective Date" means November 1, 2024, ...; "Platform" means the ColdLedger Platform, ...
_MEANS_DEF = re.compile(
    rf"[{_Q_OPEN}](?P<alias>[A-Z][\w.&’'\- ]{{1,40}}?)[{_Q_CLOSE}]\s+(?:means|shall\s+mean)\s+"
    r"(?P<value>[^,.;:()]{2,80}?)(?=[,.;:(]|\s+(?:and|or|being|which|as|in|for)\s)"
)
_MONTHS = (r"(?:January|February|March|April|May|June|July|August|September|October|November"
           r"|December|Jan\.|Feb\.|Mar\.|Apr\.|Jun\.|Jul\.|Aug\.|Sep\.|Sept\.|Oct\.|Nov\.|Dec\.)")
_DATE = re.compile(
    rf"(?:(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?{_MONTHS},?\s+\d{{4}}"
    rf"|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})$",
    re.I,
)
_GENERIC_ALIASES = {
    "agreement", "this agreement", "party", "parties", "each party", "contract", "the agreement",
    "effective", "exhibit", "schedule", "section", "herein", "hereof", "hereto", "annex", "term",
}
# Parties are introduced in the opening of a contract; only there does a company name before
# an alias define a party (later, "Target Company" is just a phrase).
_PARTY_ZONE = 5000
_REGION_BREAK = re.compile(r"WHEREAS|\bBETWEEN\b:?|\bbetween\b|\bamong\b|\bAMONG\b|\bAND:")
_NUMBER_WORD = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen"
                r"|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty"
                r"|sixty|seventy|eighty|ninety|hundred|thousand|million)")
_PARTY_BREAK = re.compile(_REGION_BREAK.pattern + r"|\n\s*\n|\(\d{1,2}\)\s|\bAND\b|\band\b")
_QUANTITY = re.compile(
    rf"(\b{_NUMBER_WORD}(?:[\- ]{_NUMBER_WORD})*\s+\(\d[\d,.]*%?\)\s+(?:[A-Z][a-z]+\s+)?[A-Za-z]+"
    r"|(?:[A-Z][a-z]+[\- ])+(?:Dollars|Euros|Pounds)\s+\([$€£]?[\d,.]+\)"
    r"|[$€£]\s?[\d,.]*\d(?:\s+(?:million|billion))?)$"
)
_DATE_END = re.compile(rf"(?:\b(?P<prep>until|through|to|ending on|ending|expiring on)\s+)?(?:on\s+|as\s+of\s+)?(?P<date>{_DATE.pattern[:-1]})$", re.I)
_NAME_TOKEN = r"(?:[A-Z][\w&'’.\-]*[A-Za-z0-9]|[A-Z]|of|and|&|the|for|de)"
_NAME_RUN = re.compile(rf"(?<![\w/\-])({_NAME_TOKEN}(?:\s+{_NAME_TOKEN}){{0,7}})\s*,?\s*$")


@dataclass(frozen=True)
class Alias:
    alias: str  # as written in the contract, "Customer"
    full: str  # readable full name, "Veltrane Cold Chain Logistics, LLC"
    article: bool  # write "the Customer" rather than "Customer"
    party: bool  # a party: write its name in every sentence
    value: bool = False  # a key term with a value: "the Acceptance Period (fifteen (15) Business Days)"


def _is_acronym(alias: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z&.]*[A-Z]s?", alias))


def _initials_match(alias: str, name: str) -> bool:
    """"SEC" ~ "Securities and Exchange Commission", "FINRA" ~ "Financial Industry Regulatory
    Authority": the alias's capitals, in order, within the name, starting at its first letter."""
    caps = [c for c in alias if c.isupper()]
    if len(caps) < 2 or not name or name[0].upper() != caps[0]:
        return False
    rest = name.upper()
    pos = 0
    for c in caps:
        pos = rest.find(c, pos)
        if pos < 0:
            return False
        pos += 1
    return True


def _clean_run(run: str) -> str:
    words = run.split()
    while words and (words[0].upper() in {"THE", "THIS", "WHEREAS", "AND", "BY", "BETWEEN", "OF", "FOR"}
                     or words[0].lower() in _SMALL_WORDS):
        words = words[1:]
    while words and words[-1].lower() in _SMALL_WORDS:
        words = words[:-1]
    return " ".join(words)


def _name_before(text: str, pos: int, region_start: int, alias: str,
                 after_def: bool = False) -> tuple[str, bool, bool] | None:
    """What a parenthetical alias at `pos` stands for: (full, is_party, is_value) or None.
    `region_start`: where the text that can name it starts (the end of the previous alias
    definition when `after_def`)."""
    region = text[region_start:pos]
    breaks = [m.end() for m in _REGION_BREAK.finditer(region)]
    if breaks:
        region = region[max(breaks):]
    tail = region.rstrip(" ,\n\t")
    date = _DATE_END.search(tail[-70:])
    if date:
        if "date" in alias.lower() and not date.group("prep"):
            return date.group("date"), False, True
        if date.group("prep") and re.search(r"term|period", alias, re.I):
            return f"{date.group('prep')} {date.group('date')}", False, True
    qty = _QUANTITY.search(tail[-90:])
    if qty and re.search(r"period|fee|cap|limit|amount|price|deposit|days|term|minimum|maximum", alias, re.I):
        return qty.group(1).strip(), False, True
    if pos < _PARTY_ZONE:
        # "between ACME, INC., a Delaware ...", "AND:\n\nACME LTD, ...", "(1) ACME LTD, ...":
        # a company right after a break, trying the latest break first
        full_region = text[region_start:pos]
        starts = sorted({0} | {m.end() for m in _PARTY_BREAK.finditer(full_region)}, reverse=True)
        for start in starts:
            company = _COMPANY.search(full_region, start)
            if company and full_region[start:company.start()].strip(" ,:;\n\t") in ("", "the", "The", "THE"):
                return company.group(1).strip(" ,"), True, False
        companies = list(_COMPANY.finditer(region))
        if companies and not region[companies[-1].end():].strip(" ,\n"):  # "... and ACME, INC. ("
            return _trailing_name(companies[-1].group(1).strip(" ,")), True, False
    run = _NAME_RUN.search(tail)
    name = _clean_run(run.group(1)) if run else ""
    if name and name.lower() != alias.lower():
        if pos < _PARTY_ZONE and _COMPANY.fullmatch(name):
            return name, True, False
        if _is_acronym(alias) and _initials_match(alias, name) and len(name.split()) >= 2:
            return name, False, False
        if len(name.split()) >= 2 and re.search(rf"\b{re.escape(alias)}$", name):
            return name, False, False  # the ColdLedger Platform ("Platform")
        before = tail[:tail.rfind(name)]
        if re.search(r"\b(?:known|referred to|called|named)\s+as\s+(?:the\s+)?$", before):
            return name, False, False
        if pos < _PARTY_ZONE and re.search(r"\b(?:agent|acting)\s+for\s+$", before):
            return name, True, False  # "... agent for Robbie Fowler ("Talent")"
    if pos < _PARTY_ZONE and (breaks or after_def):
        lead = re.match(r"\s*(?:and\s+|AND\s+|,\s*)?((?:[A-Z][a-z]+|[A-Z]{2,})(?:\s+(?:[A-Z][a-z]+|[A-Z]{2,})){1,4})\b", region)
        if lead and lead.group(1).split()[0].upper() not in {"THE", "THIS", "WHEREAS"} \
                and lead.group(1).lower() != alias.lower():
            return lead.group(1), True, False
    return None


def _trailing_name(name: str) -> str:
    """The name at the end of a company match that ran on from an address: "310, San Mateo,
    California 94403 and HIGH SPEED NET SOLUTIONS, INC." -> "HIGH SPEED NET SOLUTIONS, INC."."""
    words = name.split()
    upper = not any(c.islower() for c in words[-1] if c.isalpha()) and words[-1].rstrip(".") not in ("plc",)
    keep: list[str] = []
    for w in reversed(words):
        letters = [c for c in w if c.isalpha()]
        ok = bool(letters) and not w[:1].isdigit() and (
            not any(c.islower() for c in letters) if upper else (w[:1].isupper() or w in ("of", "&", "and")))
        if not ok:
            break
        keep.append(w)
    keep.reverse()
    while keep and keep[0] in ("of", "&", "and"):
        keep = keep[1:]
    return " ".join(keep) if len(keep) >= 2 else name


def _alias_has_article(alias: str, full: str, said_the: bool) -> bool:
    if said_the:
        return True
    if alias.isupper() or not alias[:1].isupper() or any(c.isdigit() for c in alias):
        return False  # "ISA", "eDiets", "S2K"
    # "Rubicon" in "Rubicon Software Group plc" is a proper name, "Customer" a role.
    return alias.lower() not in full.lower()


def parse_aliases(text: str) -> list[Alias]:
    """Every alias the document defines with a full name or value; first definition wins.

    Parties: a company (or person) named right after "between"/"and" in the opening and
    labelled with a parenthetical (`... ("Provider")`, `(the "Customer")`, `(hereinafter
    referred to as 'IMPCO', ...)`, `(Transporter)`). Key terms: an acronym after its spelled-out
    name (`Securities and Exchange Commission (the "SEC")`), a name ending in the alias
    (`the ColdLedger Platform ("Platform")`, `"Platform" means the ColdLedger Platform`), a date
    (`as of October 9, 2024 (the "Agreement Date")`, `"Effective Date" means November 1, 2024`)
    or a quantity (`fifteen (15) Business Days (the "Acceptance Period")`). Generic labels
    (Party, Parties, Agreement, "each a ...") are skipped."""
    found: dict[str, Alias] = {}
    last_end = 0
    for m in _ALIAS_DEF.finditer(text):
        region_start = max(last_end, m.start() - 500)
        after_def = region_start == last_end and last_end > 0
        last_end = m.end()
        if m.group("bare"):
            alias, said_the, each = m.group("bare"), False, None
            if m.start() >= _PARTY_ZONE:
                continue
        else:
            alias = m.group("alias").strip().rstrip(".")
            said_the = bool(m.group("the") or m.group("the2"))
            each = m.group("each")
        if (each or alias.lower() in _GENERIC_ALIASES or alias in found or len(alias) < 2
                or not any(c.isupper() for c in alias)):
            continue
        named = _name_before(text, m.start(), region_start, alias, after_def)
        if not named:
            continue
        name, party, value = named
        if name.lower() == alias.lower() or len(name) > 120 or len(name) < 3:
            continue
        if not party and not value and re.match(r"(?:Section|Clause|Article|Schedule|Exhibit|Paragraph)\b", name):
            continue
        full = name if value else title_case(name, keep={alias})
        found[alias] = Alias(alias, full, _alias_has_article(alias, name, said_the), party, value)
    for m in _MEANS_DEF.finditer(text):
        alias, value = m.group("alias").strip(), m.group("value").strip()
        if alias in found or alias.lower() in _GENERIC_ALIASES:
            continue
        date = re.match(_DATE.pattern[:-1] + r"(?![\w,]*\d)", text[m.start("value"):m.start("value") + 60], re.I)
        name = re.sub(r"^[Tt]he\s+", "", value)
        if date and "date" in alias.lower():  # "Effective Date" means November 1, 2024
            found[alias] = Alias(alias, date.group(0), True, False, True)
        elif (len(name.split()) >= 2 and all(w[:1].isupper() or w in _SMALL_WORDS for w in name.split())
              and (re.search(rf"\b{re.escape(alias)}$", name)
                   or (_is_acronym(alias) and _initials_match(alias, name)))):
            found[alias] = Alias(alias, name, True, False, False)
    return list(found.values())


# --------------------------------------------------------------------------------------------
# Sections

_ROMAN = r"[IVXLC]+"
_ARTICLE = re.compile(
    rf"^(?P<kind>ARTICLE|Article|SECTION|Section|SCHEDULE|Schedule|EXHIBIT|Exhibit|APPENDIX|Appendix|ANNEX|Annex|PART|Part)"
    rf"\s+(?P<num>{_ROMAN}|\d+(?:\.\d+)*|[A-Z](?:-\d+)?)\.?(?:\s*[—–\-:.]\s*|\s+)?(?P<title>[^\n]{{0,80}})$"
)
_CLAUSE = re.compile(
    r"^(?:(?:Section|SECTION|Sec\.|Clause|CLAUSE|Paragraph)\s+)?"
    r"(?P<num>(?:\d{1,2}(?:\.\d{1,3}){0,3}|[A-Z]\.\d{1,2}(?:\.\d{1,2})?)\.?)(?=\s)\s+"
)
_TITLE_AFTER_NUM = re.compile(r"^(?P<title>[A-Z][^.:;\n]{0,70}?)(?P<sep>[.:])(?:\s+|$)")
_SUBCLAUSE = re.compile(r"^\((?P<sub>[a-z]{1,3}|[ivx]{1,5}|\d{1,2}|[A-Z])\)\s+")
_RECITALS = {"RECITALS", "WITNESSETH", "BACKGROUND", "PREAMBLE", "RECITAL", "WHEREAS"}
_PREAMBLE = {"PARTIES", "THE PARTIES"}
_TOC = re.compile(r"TABLE OF CONTENTS|(?:\.\s?){6,}|\.{6,}", re.I)


def _is_title_phrase(phrase: str) -> bool:
    words = phrase.split()
    if not words or len(words) > 10:
        return False
    return all(w[:1].isupper() or w[:1] in "(&-—/" or w.lower() in _SMALL_WORDS or w[:1].isdigit()
               for w in words)


@dataclass
class Section:
    """Where a sentence sits: "Section 14.2 (Termination for Cause)", "Article XII
    (Insurance)", "Schedule A (Fee Schedule)", "the recitals", "the preamble"."""

    kind: str = "preamble"  # section | article | schedule | recitals | preamble | headed
    num: str = ""
    title: str = ""
    sub: str = ""  # "a" in Section 1.1(a)
    label: str = ""  # "Article", "Schedule", "Exhibit", ... ("Section" when empty)

    def short(self) -> str:
        if self.kind in ("section", "article", "schedule"):
            base = f"{self.label or 'Section'} {self.num}"
            return f"{base}({self.sub})" if self.sub else base
        if self.kind == "recitals":
            return f"Recital {self.num}" if self.num else "the recitals"
        if self.kind == "headed":
            return f"the part headed “{self.title}”"
        return "the preamble"

    def long(self) -> str:
        if self.kind in ("section", "article", "schedule"):
            head = f"{self.label or 'Section'} {self.num}" + (f" ({self.title})" if self.title else "")
            return f"clause ({self.sub}) of {head}" if self.sub else head
        return self.short()

    @property
    def plural(self) -> bool:
        return self.kind == "recitals" and not self.num

    def child(self, **changes) -> "Section":
        data = dict(self.__dict__)
        data.update(changes)
        return Section(**data)


def _section_from_line(line: str, current: Section, skip: set[str]) -> tuple[Section, str, bool] | None:
    """If `line` opens a section: (the section, the rest of the line, whether the line was only a
    heading). None when it does not."""
    s = line.strip().lstrip("# ").strip()
    m = _ARTICLE.match(s)
    if m and len(s) <= 100:
        kind = m.group("kind").lower()
        title = _clean_title(m.group("title") or "")
        if kind in ("article", "part"):
            return Section("article", m.group("num"), title, label=kind.capitalize()), "", True
        if kind == "section":
            return Section("section", m.group("num"), title), "", True
        return Section("schedule", m.group("num"), title, label=kind.capitalize()), "", True
    m = _CLAUSE.match(s)
    if m:
        num = m.group("num").rstrip(".")
        rest = s[m.end():]
        if not rest or not (rest[:1].isupper() or rest[:1] in "(“\"'"):
            return None
        if current.kind == "recitals" and "." not in num:
            return Section("recitals", num), rest, False
        t = _TITLE_AFTER_NUM.match(rest)
        if t and _is_title_phrase(t.group("title")):
            title = _clean_title(t.group("title"))
            body = rest[t.end():].strip()
            if t.group("sep") == ":" and body:
                body = "\0" + body  # a "TITLE: value" field
            return Section("section", num, title), body, not body
        if len(rest) <= 60 and _is_title_phrase(rest.rstrip(".:")) and not rest.rstrip().endswith((";", ",")):
            return Section("section", num, _clean_title(rest.rstrip(".:"))), "", True
        return Section("section", num, ""), rest, False
    bare = s.rstrip(":. ").upper()
    if bare in _RECITALS:
        return Section("recitals"), "", True
    if bare in _PREAMBLE:
        return Section("preamble"), "", True
    if s in skip or s.upper() in skip:
        return Section("preamble"), "", True
    if len(s) <= 70 and s.upper() == s and sum(c.isalpha() for c in s) >= 4 and not s.endswith((",", ";")):
        # an unnumbered capital heading ("INDEMNIFICATION")
        return Section("headed", "", _clean_title(s.rstrip(":."))), "", True
    return None


def _section_of_heading(heading: str, skip: set[str]) -> Section:
    if not heading:
        return Section()
    found = _section_from_line(heading, Section(), skip)
    if found:
        sec = found[0]
        if sec.kind == "section" and not sec.title:
            t = _TITLE_AFTER_NUM.match(found[1] + ".")
            if t and _is_title_phrase(t.group("title")):
                sec.title = _clean_title(t.group("title"))
        return sec
    if _is_title_phrase(heading) and len(heading) <= 60:
        return Section("headed", "", _clean_title(heading.rstrip(":.")))
    return Section()


# --------------------------------------------------------------------------------------------
# Sentences

_ABBREVIATIONS = {
    "inc", "ltd", "co", "corp", "no", "nos", "sec", "secs", "mr", "mrs", "ms", "dr", "st", "e.g",
    "i.e", "etc", "vs", "v", "approx", "jr", "sr", "art", "arts", "para", "paras", "ex", "exh",
    "u.s", "u.s.a", "n.a", "l.p", "l.l.c", "s.a", "n.v", "b.v", "bros", "mfg", "intl", "dept",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "ave",
    "blvd", "rd", "ste", "fl", "cf", "al", "pp", "p", "vol", "fig", "ch", "cl", "sch", "govt",
    "assn", "est", "min", "max", "hon", "messrs", "prof", "gen", "ref", "tel", "viz",
}
_SPLIT = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“(]?[A-Z0-9])")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph; does not split after abbreviations ("Inc.", "No.", "U.S.",
    "e.g."), single initials ("K.") or inside clause numbers ("14.2", "(a)")."""
    text = re.sub(r"\s*\n\s*", " ", paragraph.strip())
    out, start = [], 0
    for m in _SPLIT.finditer(text):
        end = m.start()
        before = text[start:end]
        last = re.search(r"(\S+)$", before)
        token = last.group(1) if last else ""
        word = token.rstrip(".!?\"”’)").lstrip("(\"“").lower()
        if token.endswith("."):
            if word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", word) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
                continue
            # a clause number at the start of the sentence ("14.2." / "1.") is not its end
            if re.fullmatch(r"\(?\d+(?:\.\d+)*\)?|\(?[a-z]{1,3}\)|[ivx]+", word) and len(before.split()) <= 1:
                continue
        piece = text[start:m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    # glue a sentence of 1-2 words ("Sec." remnants, "Execution Version") onto its neighbour
    merged: list[str] = []
    for s in out:
        if merged and len(s.split()) <= 1 and not s[:1].isdigit():
            merged[-1] += " " + s
        else:
            merged.append(s)
    return merged


_FUNCTION_WORDS = {
    "The", "Each", "Either", "If", "Any", "All", "Such", "No", "In", "This", "Upon", "Unless",
    "Notwithstanding", "Subject", "Except", "Neither", "Nothing", "Where", "When", "Within",
    "During", "For", "On", "At", "To", "A", "An", "Both", "Following", "Prior", "After", "Before",
    "Without", "With", "Until", "These", "Those", "That", "Its", "It", "Throughout", "Promptly",
    "Once", "Should", "Whether", "However", "Provided", "Other", "Every", "As", "By", "From",
}


def _lower_first(sentence: str, proper: set[str]) -> str:
    """The sentence with its first letter lower-cased, to follow an introductory phrase, when
    its first word is a function word ("The", "If") or a word the document never capitalises
    in mid-sentence (so "Late amounts ..." but not "Customer shall ...")."""
    m = re.match(r"[A-Z][a-z]*\b", sentence)
    if m and (m.group(0) in _FUNCTION_WORDS or m.group(0) not in proper) and sentence[m.end():m.end() + 1] not in ".'’":
        return sentence[0].lower() + sentence[1:]
    return sentence


def _split_end(sentence: str) -> tuple[str, str]:
    m = re.search(r"([.!?;:]+[\"”’)]?|[\"”’)]?[.!?;:]+)$", sentence)
    if not m:
        return sentence, "."
    body, end = sentence[:m.start()], m.group(1)
    if end in (";", ":"):
        return body, end
    # keep a closing quote or bracket with the body: ... “Parties.” -> body ... “Parties”, end .
    closers = "".join(c for c in end if c in "\"”’)")
    return body + closers, "".join(c for c in end if c not in "\"”’)")


# --------------------------------------------------------------------------------------------
# Alias expansion


_DETERMINERS = {
    "a", "an", "new", "such", "any", "each", "every", "that", "this", "no", "said", "same", "other",
    "its", "their", "his", "her", "our", "your", "applicable", "relevant", "another", "initial",
    "subsequent", "first", "second", "current", "then-current", "the", "these", "those", "all",
}


class _Expander:
    """Writes aliases out with their full names."""

    def __init__(self, aliases: list[Alias]):
        self.aliases = {a.alias: a for a in aliases}
        names = sorted(self.aliases, key=len, reverse=True)
        self.pattern = re.compile(
            r"(?<![\w\-\"“‘'/.])(?P<the>(?:the|The|THE)\s+)?(?P<alias>"
            + "|".join(re.escape(n) for n in names)
            + r")(?P<poss>['’]s\b)?(?![\w\-\"”’'])"
        ) if names else None

    def expand(self, sentence: str, style: int) -> str:
        """Aliases in one sentence written out. Parties, at their first mention in the sentence:
        style 0 "Full Name (the Alias)", 1 "the Alias (Full Name)", 2 "Full Name" (style 2 at
        every mention); a possessive is "Full Name's". Key terms, at their first mention:
        "the Acceptance Period (fifteen (15) Business Days)". Compound terms ("Customer Data",
        "Outsourcing Customer") and quoted labels are left alone."""
        if not self.pattern:
            return sentence
        seen: set[str] = set()
        out, last = [], 0
        for m in self.pattern.finditer(sentence):
            alias = self.aliases[m.group("alias")]
            before = sentence[:m.start()]
            prev = re.search(r"([\w\-]+)\s+$", before)
            prev_word = prev.group(1) if prev and re.search(r"\w\s+$", before) else ""
            if prev_word and not m.group("the") and re.fullmatch(r"[A-Z][a-z][\w\-]*", prev_word) \
                    and prev_word not in _FUNCTION_WORDS | {"And", "Or", "Between", "WHEREAS"}:
                continue  # "Outsourcing Customer": a compound defined term
            nxt = re.match(r"\s+([A-Z][a-z]\w*)", sentence[m.end():])
            if nxt and not m.group("poss") and nxt.group(1) not in {"Shall", "Will", "May", "Must"}:
                continue  # "Customer Data"
            if alias.alias in seen and not (alias.party and style == 2):
                continue
            seen.add(alias.alias)
            start_of_sentence = m.start() == 0 or bool(re.search(r"[.:]\s*[\"“]?$", before))
            the = m.group("the") or ""
            if alias.party:
                article = bool(the) or (alias.article and prev_word.lower() not in _DETERMINERS)
                role = ("the " if article else "") + alias.alias
                poss = m.group("poss") or ""
                if poss:
                    text = alias.full + poss
                elif style == 0:
                    text = f"{alias.full} ({role})"
                elif style == 1:
                    text = f"{role} ({alias.full})"
                else:
                    text = alias.full
                if (start_of_sentence or the.startswith("The")) and text.startswith("the "):
                    text = "T" + text[1:]
            else:
                text = f"{the}{alias.alias}{m.group('poss') or ''} ({alias.full})"
            out.append(sentence[last:m.start()])
            out.append(text)
            last = m.end()
        out.append(sentence[last:])
        return "".join(out)


# --------------------------------------------------------------------------------------------
# Units of a chunk, and their rendering


@dataclass
class _Unit:
    kind: str  # "sentence" | "heading" | "field" | "cover"
    text: str
    section: Section
    fragment: bool = False  # a piece of a sentence cut by the chunker


def _is_toc(text: str) -> bool:
    return bool(re.search(r"TABLE OF CONTENTS", text, re.I)) or len(_TOC.findall(text)) >= 2


def _is_short_line(p: str) -> bool:
    p = p.strip()
    return len(p) < 80 and not re.search(r"[.;:!?][\"”’)]?$", p) and not _CLAUSE.match(p) \
        and not _ARTICLE.match(p) and not (p.isupper() and len(p.split()) <= 6)


def _join_short_lines(raw: list[str]) -> list[str]:
    """Paragraphs, with each run of 2+ short lines without sentence endings (a table, an
    address block) joined into one, marked with a leading "\\1"."""
    out: list[str] = []
    run: list[str] = []
    for p in raw + [""]:
        if p and _is_short_line(p):
            run.append(re.sub(r"\s+", " ", p).strip())
            continue
        if len(run) >= 2:
            out.append("\1" + " ".join(run))
        else:
            out.extend(run)
        run = []
        if p:
            out.append(p)
    return out


def _chunk_units(chunk: Chunk, skip: set[str]) -> list[list[_Unit]] | None:
    """The chunk as paragraphs of units, each knowing its section; None for a table of contents."""
    text = chunk.text.strip()
    if not text or _is_toc(text):
        return None
    current = _section_of_heading(chunk.heading, skip)
    paragraphs: list[list[_Unit]] = []
    raw = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    # Only short lines (a cover page, a table): restated as one block of text.
    if len(raw) >= 3 and all(len(p) < 80 and len(p.split()) <= 8 for p in raw):
        joined = " ".join(re.sub(r"\s+", " ", p).strip() for p in raw)
        return [[_Unit("cover" if chunk.index < 3 else "lines", joined, current)]]
    for para in _join_short_lines(raw):
        if para.startswith("\1"):  # a run of short lines (a table): one block
            paragraphs.append([_Unit("lines", para[1:], current)])
            continue
        para = re.sub(r"\s*\n\s*", " ", para.strip())
        units: list[_Unit] = []
        field = False
        lone_number = re.fullmatch(r"(?:Section\s+)?(\d{1,2}(?:\.\d{1,3}){1,3})\.?", para)
        if lone_number:  # "2.2.3" on its own line: the text follows in the next paragraph
            current = Section("section", lone_number.group(1))
            continue
        if re.fullmatch(r"[-–—\s]*\d{1,3}[-–—\s]*|[ivxlc]{1,5}", para):
            continue  # a page number left by the extractor
        opened = _section_from_line(para, current, skip) if len(para) < 400 or _CLAUSE.match(para) else None
        if opened:
            current, para, heading_only = opened
            if heading_only:
                if current.kind in ("section", "article", "schedule", "headed") and (current.title or current.num):
                    paragraphs.append([_Unit("heading", current.title, current)])
                continue
            field = para.startswith("\0")  # "4. SHIPPER TYPE: Interstate Pl"
            para = para.lstrip("\0")
        else:
            sub = _SUBCLAUSE.match(para)
            if sub and current.kind == "section":
                current = current.child(sub=sub.group("sub"))
                para = para[sub.end():]
            elif sub and current.kind == "recitals":
                current = Section("recitals", f"({sub.group('sub')})")
                para = para[sub.end():]
        if current.kind == "recitals" or para.startswith("WHEREAS"):
            para = re.sub(r"^WHEREAS,?\s+", "", para)
            para = re.sub(r"[;,]\s*(?:and|or)?\s*$", ".", para)
            if current.kind == "preamble":
                current = Section("recitals")
        if not para:
            continue
        if field and len(para) < 120 and not re.search(r"[.;:]\s", para):
            paragraphs.append([_Unit("field", para.rstrip("."), current)])
            continue
        sentences = split_sentences(para)
        for i, sentence in enumerate(sentences):
            fragment = (i == 0 and sentence[:1].islower()) or not re.search(r"[.!?;:][\"”’)]?$", sentence)
            units.append(_Unit("sentence", sentence, current, fragment))
        if units:
            paragraphs.append(units)
    return paragraphs


@dataclass
class _DocInfo:
    name: str  # "Master Services Agreement"
    long_name: str  # "Master Services Agreement between A and B"
    expander: _Expander
    skip_headings: set[str]
    proper: set[str]  # words the document capitalises in mid-sentence ("Customer", "Platform")


def _doc_name(document: Document) -> str:
    name = _clean_title(document.title or "")
    if not name or len(name) > 90:
        stem = re.sub(r"\.[A-Za-z]{2,4}$", "", document.file_name or document.doc_id)
        name = re.sub(r"[_\-]+", " ", stem).strip() or "Agreement"
    return name


def _the(name: str) -> str:
    return name if name.lower().startswith("the ") else "the " + name


def _doc_info(document: Document, doc_chunks: list[Chunk]) -> _DocInfo:
    text = _document_text(doc_chunks)
    aliases = parse_aliases(text)
    name = _doc_name(document)
    parties = [a.full for a in aliases if a.party][:2]
    long_name = f"{name} between {parties[0]} and {parties[1]}" if len(parties) == 2 else name
    skip = {document.title.strip(), document.title.strip().upper()}
    for a in aliases:
        skip.add(a.full.upper())
    for m in _COMPANY.finditer(text[:3000]):
        skip.add(m.group(1).strip().upper())
    proper = set(re.findall(r"(?<=[a-z0-9,;] )[A-Z][a-z]+\b", text)) - _FUNCTION_WORDS
    proper |= {a.alias for a in aliases} | {w for a in aliases for w in a.full.split()}
    return _DocInfo(name, long_name, _Expander(aliases), {s for s in skip if s}, proper)


def _document_text(doc_chunks: list[Chunk]) -> str:
    """The document's text rebuilt from its chunks (overlaps removed by character spans)."""
    out, end = [], 0
    for c in sorted(doc_chunks, key=lambda c: c.index):
        if c.char_end <= end:
            continue
        skip = max(0, end - c.char_start)
        if out:
            out.append("\n\n" if c.char_start - end >= 2 else " ")
        out.append(c.text[skip:] if skip < len(c.text) else "")
        end = c.char_end
    return "".join(out)


# Sentence templates: (name, function). D = "the Master Services Agreement", S = section.
def _t_under(s, low, d, sec, long):
    return f"Under {sec.long() if long else sec.short()} of {d}, {low}"


def _t_provides(s, low, d, sec, long):
    return f"{_cap(d)} provides in {sec.long() if long else sec.short()} that {low}"


def _t_suffix(s, low, d, sec, long):
    return f"{s} ({_bare(d)}, {sec.short()})"


def _t_states(s, low, d, sec, long):
    verb = "state" if sec.plural else "states"
    return f"{_cap(sec.long() if long else sec.short())} of {d} {verb} that {low}"


def _t_according(s, low, d, sec, long):
    return f"According to {sec.long() if long else sec.short()} of {d}, {low}"


def _t_colon(s, low, d, sec, long):
    return f"{_cap(_bare(d))}, {sec.long() if long else sec.short()}: {s}"


_TEMPLATES = [_t_under, _t_provides, _t_suffix, _t_states, _t_according, _t_colon]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _bare(d: str) -> str:
    return d[4:] if d.startswith("the ") else d


def _render_unit(unit: _Unit, info: _DocInfo, rng: random.Random, template: int, long_doc: bool,
                 style: int) -> str:
    d = _the(info.long_name if long_doc else info.name)
    sec = unit.section
    long = rng.random() < 0.5
    if unit.kind == "heading":
        title = unit.text
        if sec.kind == "headed":
            return [f"{_cap(d)} has a part headed “{title}”.",
                    f"“{title}” is a heading of {d}.",
                    f"One part of {d} is headed “{title}”."][template % 3]
        label = sec.short()
        if not title:
            return f"{_cap(d)} contains {label}."
        return [f"{_cap(label)} of {d} is headed “{title}”.",
                f"{_cap(d)} has a section, {label}, titled “{title}”.",
                f"“{title}” is the title of {label} of {d}."][template % 3]
    text = info.expander.expand(unit.text, style)
    if unit.kind == "cover":
        return [f"The cover page of {d} reads: {text}",
                f"{_cap(d)} opens with the cover page: {text}",
                f"On its cover page, {d} reads: {text}"][template % 3]
    if unit.kind == "lines":
        where = sec.long() if long else sec.short()
        return [f"{_cap(where)} of {d} contains these lines: {text}",
                f"In {where} of {d}: {text}",
                f"{text} ({_bare(d)}, {sec.short()})"][template % 3]
    if unit.kind == "field":
        return [f"The {sec.title} under {sec.short()} of {d} is: {text}.",
                f"{_cap(d)} states in {sec.short()} ({sec.title}): {text}.",
                f"{_cap(sec.short())} of {d} gives the {sec.title}: {text}."][template % 3]
    body, end = _split_end(text)
    if unit.fragment:
        if not re.search(r"[.!?;:][\"”’)]?$", text):
            return f"{text} ({_bare(d)}, {sec.short()}, continued)"
        return f"{body} ({_bare(d)}, {sec.short()}){end}"
    return _TEMPLATES[template](body, _lower_first(body, info.proper), d, sec, long) + end


def _order(units: list[_Unit], rng: random.Random, seen: list[list[int]]) -> list[int]:
    """A new order of a paragraph's units; a piece of a sentence cut at the chunk's start or end
    keeps its place."""
    n = len(units)
    head = 1 if n and units[0].fragment else 0
    tail = 1 if n > head and units[-1].fragment else 0
    middle = list(range(head, n - tail))
    order = list(range(n))
    for _ in range(8):
        rng.shuffle(middle)
        order = list(range(head)) + middle + list(range(n - tail, n))
        if order not in seen:
            break
    return order


def _render(paragraphs: list[list[_Unit]], info: _DocInfo, rng: random.Random, k: int,
            previous_orders: list[list[list[int]]]) -> tuple[str, list[list[int]]]:
    out, orders = [], []
    # Variant k draws its templates from a window of 3 starting at 2(k-1) + a random offset,
    # so neighbouring variants lean on different patterns.
    base = (k - 1) * 2 + rng.randrange(len(_TEMPLATES))
    first = True
    for pi, units in enumerate(paragraphs):
        order = _order(units, rng, [o[pi] for o in previous_orders if pi < len(o)])
        orders.append(order)
        lines = []
        for j in order:
            template = (base + rng.randrange(3)) % len(_TEMPLATES)
            style = rng.randrange(3)
            line = _render_unit(units[j], info, rng, template, first and k % 2 == 1, style)
            lines.append(re.sub(r"(\w)\.\.(?=[\s)]|$)", r"\1.", line))  # "Ltd.." -> "Ltd."
            first = False
        out.append(" ".join(lines))
    return "\n\n".join(out), orders


def augmented_records(documents: list[Document], chunks: list[Chunk], variants: int, seed: int) -> list[dict]:
    """`variants` restatements of every chunk; records shaped like cpt_records' ({"text",
    "doc_id", "chunk_id", "page_start", "page_end"}) plus "variant": k (1..variants).

    Ordered by chunk (as given), then variant. Each variant is a function of (seed, chunk, k)
    and the chunk's document. Tables of contents yield no records."""
    if variants <= 0:
        return []
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    docs = {d.doc_id: d for d in documents}
    infos = {
        doc_id: _doc_info(docs.get(doc_id) or Document(doc_id, doc_id, doc_id), doc_chunks)
        for doc_id, doc_chunks in by_doc.items()
    }
    records = []
    for chunk in chunks:
        info = infos[chunk.doc_id]
        paragraphs = _chunk_units(chunk, info.skip_headings)
        if not paragraphs:
            continue
        texts: list[str] = []
        orders: list[list[list[int]]] = []
        for k in range(1, variants + 1):
            rng = random.Random(f"{seed}:{chunk.chunk_id}:{k}")
            text, order = _render(paragraphs, info, rng, k, orders)
            tries = 0
            while text in texts and tries < 5:
                tries += 1
                text, order = _render(paragraphs, info, rng, k + tries * 3, orders)
            texts.append(text)
            orders.append(order)
            records.append(reading_record(chunk, text, variant=k))
    return records
