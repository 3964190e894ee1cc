"""Who the parties are, and the role each plays ("Supplier", "Licensee", ...).

Contracts introduce their parties in a handful of styles; each is tried in turn and the first
that names two or more parties wins:

1. the opening sentence, where a short name or role follows each party, in parentheses or
   not: ``ACME, INC., a Delaware corporation ("Acme")``, ``(hereinafter "Buyer")``,
   ``referred to in this Agreement as "Sponsor"``, ``(the "Company" or "Phreesia")``, and
   parties named with a company suffix but given no role (``between X Corp. and Y, Inc.``);
2. a labelled list: ``Party A: ...``, ``Party B: ...``;
3. a title block: ``AGREEMENT BETWEEN X AND Y``, one name a line or on one line.
"""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig
from docfinetune.core.score import find_dates

from .text import CORP_SUFFIX, DocText, Fact, Known, spaces

MAX_PARTIES = 6  # most parties listed in one answer
NAME_LOOKBACK_CHARS = 500  # how far before a role its party's name may start

# ------------------------------------------------------------------ what a name looks like

# A word of a name: capitalised, all capitals, or a number ("2205925 Ontario Limited"), with
# inner punctuation ("E.piphany", "ABG-Shaq", "Papa John's"), or a (parenthesised) word.
_WORD = r"(?:[A-Z0-9][\w'’.&/@+-]*|[a-z][A-Z][\w'’.&/@+-]*|\([A-Z][\w.&-]*\)|[&/-]|™)"
_JOIN = r"(?:of|and|for|de|du|la|von|van|der|the|d/b/a|dba|y|e)"
_SUFFIXES = rf"(?:{CORP_SUFFIX}|(?i:N\.A|S\.A\.S|Sdn\.?\s*Bhd|Pvt)\b\.?)"
# a comma inside a firm's name: "Stratton, Cheeseman & Walsh, Inc." (capitalised words up to an "&")
_FIRM_COMMA = r",\s+(?=(?:[A-Z][\w'’.-]*,\s+)*[A-Z][\w'’.-]*\s+&\s)"
NAME = re.compile(
    rf"{_WORD}(?:(?:,\s*(?=[A-Z]|plc\b){_SUFFIXES}|{_FIRM_COMMA}|\s+(?:{_JOIN}\s+)?)(?!{_JOIN}\b){_WORD})*"
    rf"(?:,?\s*(?=[A-Z]|plc\b){_SUFFIXES})*"
)
_ENDS_WITH_SUFFIX = re.compile(rf"(?:^|[\s,]){_SUFFIXES}$")
# what may follow a party's name before its role: ", a Delaware corporation", "having ..."
_DESCRIPTOR = re.compile(
    r"\s*(?:,\s*)?(?:$|\(|[\"“]|;|an?\s|with\b|having\b|whose\b|located\b|organi[sz]ed\b|"
    r"incorporated\b|existing\b|represented\b|acting\b|d/b/a\b|doing\s+business|formerly\b|its\b|"
    r"of\s+\d|at\s+\d|herein|hereafter|referred|operating|on\s+behalf|on\s+the\s+(?:one|other)\s+hand|"
    r"a\s+subsidiary|\n)"
)
_NOT_NAME = re.compile(
    r"(?i)^(?:whereas|now|recitals?|between|among|and|by|parties|party|witnesseth|background|this|"
    r"these|that|the\s+parties|agreement|exhibit|schedule|section|article|table|page|in|as|"
    r"if|each|all|any|such|said|effective|dated|contract|note|attn|address|tel|fax|e-?mail)\b"
)
_NOT_NAME_END = re.compile(
    r"(?i)\b(?:agreement|date|act|products?|services|terms?|conditions|contents|exhibit|schedule|"
    r"addendum|amendment|number|no\.?)$"
)

# ------------------------------------------------------------------ roles

_Q_OPEN, _Q_CLOSE = r"[\"“'‘]", r"[\"”'’]"
_ROLE_TEXT = r"[A-Za-z0-9][\w .&'’\-]{0,40}?"
_ROLE = re.compile(
    # ("Acme") / (the "Buyer") / (hereinafter referred to as "Agent") / (collectively the "Company")
    rf"\(\s*(?:(?:the|this)\s+|(?:hereinafter|herein|hereafter)\s*,?\s*(?:(?:referred\s+to\s+as|called|"
    rf"known\s+as)\s+)?(?:the\s+)?|individually\s+|together\s+|collectively\s+(?:the\s+)?)?"
    rf"{_Q_OPEN}\s*(?P<role>{_ROLE_TEXT})\s*{_Q_CLOSE}[^()]{{0,200}}?\)"
    # (Acme) / (hereinafter Acme) / (MICOA): a bare capitalised name
    r"|\(\s*(?:the\s+|hereinafter\s+)?(?P<bare>[A-Z][\w&-]{1,20}(?:\s+[A-Z][\w&-]{1,20}){0,2})\s*\)"
    # , hereinafter referred to as "TKCI" / referred to in this Agreement as "Sponsor"
    rf"|(?:hereinafter|herein|hereafter)\s*,?\s*(?:(?:referred\s+to|called|known)\s+(?:as\s+)?)?(?:the\s+)?"
    rf"{_Q_OPEN}\s*(?P<role2>{_ROLE_TEXT})\s*{_Q_CLOSE}"
    rf"|referred\s+to\s+(?:(?:in\s+this\s+(?i:agreement)|herein|hereafter)\s+)?as\s+(?:the\s+)?"
    rf"{_Q_OPEN}\s*(?P<role3>{_ROLE_TEXT})\s*{_Q_CLOSE}"
)
_NOT_PARTY_ROLE = re.compile(
    r"(?i)^(?:(?:this\s+)?agreement|.*\bdate|parties|party|each|affiliates?|products?|territory|"
    r"services?|term|initial\s+term|exhibit.*|schedule.*|[a-z]+\s+act|show|operation|program|"
    r"contract|amendment|addendum|premises|property|effective)$"
)
_PRONOUNS = {"we", "us", "you", "our"}

# where a party's name may start: after these words or marks
_CONNECTOR = re.compile(
    r"(?:\b(?i:between|among|by|and|whereas)\b|\b(?:for|with)\b|\(\d\)|\b[A-Z]\)|;|:|\n|^|(?P<comma>,))"
    r"\s*[:,]?\s*(?:-\s*)?(?:(?i:on\s+the\s+(?:one|other)\s+hand),?\s*)?(?:the\s+)?"
    r"(?=[A-Z0-9_])"
)


def _name_at(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The party name that starts at text[start], ending before `end`, or None."""
    if re.match(r"_{3,}", text[start:end]):  # a blank left for the name
        blank = re.match(r"_+", text[start:end])
        return start, start + blank.end()
    match = NAME.match(text, start, end)
    if not match:
        return None
    name = match.group(0).rstrip(" ,")
    words = name.split()
    if not 1 <= len(words) <= 12 or _NOT_NAME.match(name) or _NOT_NAME_END.search(name):
        return None
    if re.match(r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d", name):
        return None  # a date
    if re.fullmatch(rf"(?:[\s,]*{_SUFFIXES})+", name):  # "Inc." alone
        return None
    if re.match(r"\d{1,2}(?:\.\d+)*\.\s|\d{1,2}\.\d", name):  # a section number, not a name
        return None
    if not re.search(r"[A-Za-z]{2}", name) or name.count("(") != name.count(")"):
        return None
    return start, start + len(name)


def _split_and(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """"X Corp. and Y, Inc." -> two names where the words before "and" end with a suffix."""
    name = text[start:end]
    for m in re.finditer(r"\s+(?:and|AND|&)\s+", name):
        left = name[: m.start()].rstrip(" ,")
        if _ENDS_WITH_SUFFIX.search(left) and _name_at(text, start + m.end(), end):
            return [(start, start + len(left)), *_split_and(text, start + m.end(), end)]
    return [(start, end)]


def _name_before(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The name of the party whose role starts at text[hi]: the best name in text[lo:hi] that
    starts after a connector, preferring names with a company suffix, then names followed by
    a descriptor (", a Delaware corporation", "having its office at ...")."""
    best, best_key = None, None
    for connector in _CONNECTOR.finditer(text, lo, hi):
        span = _name_at(text, connector.end(), hi)
        if span is None:
            continue
        span = _split_and(text, *span)[-1]
        name = text[span[0] : span[1]]
        if connector.group("comma") and not _ENDS_WITH_SUFFIX.search(name):
            continue  # after a bare comma only a company name counts (not "Toronto, Ontario")
        key = (
            bool(_ENDS_WITH_SUFFIX.search(name)) or name.startswith("___"),
            bool(_DESCRIPTOR.match(text, span[1], hi)),
            span[1],  # the name nearest the role; of two ending there, the whole one ("Stratton, Cheeseman & Walsh, Inc.")
            -span[0] if "," in name and "&" in name else span[0],
        )
        if best_key is None or key > best_key:
            best, best_key = span, key
    return best


def _role_of(match: re.Match) -> str:
    role = spaces(next(g for g in (match.group("role"), match.group("bare"), match.group("role2"),
                                   match.group("role3"), "") if g is not None))
    quoted = re.findall(rf"{_Q_OPEN}\s*({_ROLE_TEXT})\s*{_Q_CLOSE}", match.group(0))
    named = [r for r in quoted if r.lower() not in _PRONOUNS]
    if named and role.lower() in _PRONOUNS:
        role = spaces(named[0])
    return re.sub(r"(?i)^the\s+", "", role).strip(" ,.")


# a trade name given after the legal one: "ACME, INC., a Delaware corporation, d/b/a WIDGETCO"
_TRADE_NAME = re.compile(r"\b(d/b/a|doing\s+business\s+as|trading\s+as|t/a)\s+")

Party = tuple[str, str, int, int]  # name, role ("" when none), start, end


def _add(found: list[Party], name: str, role: str, start: int, end: int) -> None:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for i, (other, other_role, s, e) in enumerate(found):
        if re.sub(r"[^a-z0-9]", "", other.lower()) == key and name != "____":
            if not other_role and role:
                found[i] = (other, role, s, end)
            return
    found.append((name, role, start, end))


def _opening_parties(text: str, region_start: int, region_end: int) -> list[Party]:
    """Parties named in the opening sentence, each before its role (or with a company suffix)."""
    found: list[Party] = []
    boundary = region_start
    for match in _ROLE.finditer(text, region_start, region_end):
        role = _role_of(match)
        clause_start, boundary = boundary, match.end()
        if found and re.search(r"WHEREAS|Whereas|RECITALS|\n\s*(?:1\.|ARTICLE|Article)", text[clause_start : match.start()]):
            break
        if not role or _NOT_PARTY_ROLE.match(role) or re.match(r"(?i)(?:these|the)\s+parties$", role):
            continue
        if match.group("bare") and re.fullmatch(r"[IVXLC]+|[A-Za-z]", role):
            continue  # "(ii)": a list item, not a party
        lo = max(clause_start, match.start() - NAME_LOOKBACK_CHARS)
        # names with a suffix and no role of their own, earlier in the clause ("X Corp. and Y Inc. (Y)")
        span = _name_before(text, lo, match.start())
        if span is None:
            continue
        for s, e in _role_less(text, lo, span[0]):
            _add(found, spaces(text[s:e]), "", s, e)
        name = spaces(text[span[0] : span[1]]).rstrip(" ,")
        if name.startswith("___"):
            name = "____"
        if find_dates(name) or any(name.lower() == r.lower() for _, r, _, _ in found):
            continue  # a date, or a party already named ("PPI (the Original Agreement)")
        trade = _TRADE_NAME.search(text, span[1], match.start())
        if trade and _name_at(text, trade.end(), match.start()):
            t_start, t_end = _name_at(text, trade.end(), match.start())
            name = f"{name} {spaces(trade.group(1))} {spaces(text[t_start:t_end])}"
        _add(found, name, role, span[0], match.end())
    # a last party with a suffix but no role: "... and PageMaster Corporation located at ..."
    if found:
        tail_end = min(region_end, boundary + NAME_LOOKBACK_CHARS)
        stop = re.search(r"WHEREAS|Whereas|RECITALS|\n\s*1\.|\.\s", text[boundary:tail_end])
        for s, e in _role_less(text, boundary, boundary + stop.start() if stop else tail_end):
            _add(found, spaces(text[s:e]), "", s, e)
    return found


def _role_less(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Names with a company suffix right after "between", "and", "among" in text[lo:hi]."""
    out = []
    for connector in re.finditer(
        r"\b(?i:between|among|and)\b\s*[:,]?\s*(?:(?i:on\s+the\s+(?:one|other)\s+hand),?\s*)?(?=[A-Z0-9])",
        text[lo:hi],
    ):
        span = _name_at(text, lo + connector.end(), hi)
        if span and _ENDS_WITH_SUFFIX.search(text[span[0] : span[1]]):
            out += [p for p in _split_and(text, *span) if _ENDS_WITH_SUFFIX.search(text[p[0] : p[1]])]
    return out


_LABEL = re.compile(
    r"(?m)(?:^|(?<=\s))(?P<label>Party\s+[A-Z1-9]|(?:First|Second|Third)\s+Party)\s*[:：]\s*(?=(?P<rest>[^\n]{2,200}))"
)


def _labelled_parties(text: str, start: int, end: int) -> list[Party]:
    """"Party A: Beijing Example Co., Ltd." lines."""
    found: list[Party] = []
    for match in _LABEL.finditer(text, start, end):
        span = _name_at(text, match.start("rest"), match.end("rest"))
        if span:
            label = spaces(match.group("label"))
            if any(r == label for _, r, _, _ in found):
                continue
            _add(found, spaces(text[span[0] : span[1]]).rstrip(" ,"), label, span[0], span[1])
    return found


_TITLE = re.compile(
    r"(?i:\bbetween)\s*:?\s+(?P<a>[^\n]{2,160}?)\s*\n?\s*(?:-\s*)?(?i:and)\s*:?(?:\s*-)?\s+(?P<b>[^\n]{2,160})"
)


def _title_parties(text: str, start: int, end: int) -> list[Party]:
    """"AGREEMENT BETWEEN X AND Y" (a title, or one name a line)."""
    for match in _TITLE.finditer(text, start, end):
        a = _name_at(text, match.start("a"), match.end("a"))
        b = _name_at(text, match.start("b"), match.end("b"))
        if not a or not b:
            continue
        a = _split_and(text, *a)[0]
        if not all(_ENDS_WITH_SUFFIX.search(text[s:e]) or re.match(r"[ \t,]*(?:\n|$)", text[e : e + 5])
                   for s, e in (a, b)):
            continue
        names = [spaces(text[s:e]).rstrip(" ,") for s, e in (a, b)]
        if names[0].lower() == names[1].lower() or any(len(n) < 3 for n in names):
            continue
        return [(names[0], "", a[0], a[1]), (names[1], "", b[0], b[1])]
    return []


# a clause naming the parties together: '... are sometimes referred to herein as a "Party" and
# collectively as the "Parties"', '(each a "Party" and collectively, the "Parties")'
_TOGETHER = re.compile(
    r"(?i)\b(?:referred\s+to|collectively|individually|together|each)\b[^.;\n]{0,150}?"
    r"(?:[\"“'‘]\s*parties\s*[.,]?\s*[\"”'’]|\bthe\s+parties\b(?=\s*\)))"
)
INTRO_MAX_CHARS = 900  # the longest party introduction given whole as an answer


def _parties_clause(text: str, end: int, limit: int) -> tuple[int, int] | None:
    """Where the clause that names the parties together lies, from just before `end` (inside
    the last role's parenthesis) up to the sentence after it; None when there is none."""
    lo = max(0, end - 120)
    stop = re.search(r"WHEREAS|Whereas|RECITALS|BACKGROUND|\n\s*\n|\n\s*(?:\d+\.|ARTICLE|Article)\s",
                     text[end:min(limit, end + 400)])
    hi = end + stop.start() if stop else min(limit, end + 400)
    match = _TOGETHER.search(text, lo, hi)
    if not match:
        return None
    # the clause starts at its parenthesis, or at the start of its sentence
    before = text[lo : match.start()]
    opens = [m.end() for m in re.finditer(r"\(", before)]
    closes = [m.end() for m in re.finditer(r"\)", before)]
    if opens and (not closes or opens[-1] > closes[-1]):
        start = lo + opens[-1] - 1
    else:
        sentence = [m.end() for m in re.finditer(r"[.;]\s+|\n|\)\s*,?\s*", before)]
        start = lo + sentence[-1] if sentence else match.start()
        if start < end - 1:
            return None
    close = re.match(r"\s*\)", text[match.end() : match.end() + 5])
    finish = match.end() + (close.end() if close and text[start] == "(" else 0)
    return start, finish


def parties(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    region_start, region_end = doc.preamble(config.preamble_chars)
    found = _opening_parties(text, region_start, region_end)
    if len(found) < 2:
        found = _labelled_parties(text, 0, min(len(text), region_end + config.preamble_chars))
    if len(found) < 2:
        found = _title_parties(text, 0, min(len(text), config.preamble_chars))
    if len(found) < 2:
        return []
    found = found[:MAX_PARTIES]

    def shown(name: str, role: str) -> str:
        if not role:
            return name
        return f"{name} ({role})" if role.lower() in _PRONOUNS or role.startswith("Party ") else f"{name} (the {role})"

    answer = "; ".join(shown(n, r) for n, r, _, _ in found)
    facts = [
        Fact(
            "parties",
            answer,
            [
                "Who are the parties to {doc}?",
                "Which parties entered into {doc}?",
                "{Doc} is between which parties, and in what roles?",
                "Name the parties to {doc} and their roles.",
            ],
            [(s, e) for _, _, s, e in found],
        )
    ]
    for name, role, start, end in found:
        if not role or role.lower() in _PRONOUNS or name == "____":
            continue
        facts.append(
            Fact(
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
    facts += _introduction(text, found, answer, region_end)
    return facts


def _introduction(text: str, found: list[Party], answer: str, limit: int) -> list[Fact]:
    """The party introduction as written (names with their descriptors and roles, and the
    clause naming them together), and the parties' list with that clause added."""
    questions = [
        "How does {doc} introduce its parties?",
        "Quote the part of {doc} that identifies the parties.",
        "Which parties does {doc} name at its start, as written?",
        "Who is party to {doc}, in its own words?",
    ]
    start, end = min(s for _, _, s, _ in found), max(e for _, _, _, e in found)
    clause = _parties_clause(text, end, max(limit, end))
    facts = []
    if clause:
        end = max(end, clause[1])
        facts.append(Fact("parties", f"{answer}; {spaces(text[clause[0]:clause[1]]).strip(' (')}",
                          questions[2:] + questions[:1], [(s, e) for _, _, s, e in found] + [clause]))
    if end - start <= INTRO_MAX_CHARS:
        intro = spaces(text[start:end])
        if intro != answer:
            facts.insert(0, Fact("parties", intro, questions, [(start, end)]))
    return facts
