"""How long the agreement runs: its initial term and its renewals."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig

from .text import DURATION, LONG_DURATION, DocText, Fact, Known, sentence_around, spaces

_TERM_TRIGGER = re.compile(
    r"(?i)\b(?:initial\s+term|term\s+of\s+(?:this|the)\s+agreement|the\s+term\b|"
    r"this\s+agreement\s+(?:shall|will)|shall\s+have\s+an?\s+(?:initial\s+)?term|term\s*:|"
    r"this\s+(?:contract|agreement)\s+(?:shall|will)\s+remain)"
)
# the sentence is about how long the agreement itself runs
STRONG_TERM = re.compile(
    r"(?i)\b(?:initial\s+(?:term|period)|term\s+of\s+(?:this|the)\s+(?:agreement|contract|(?-i:[A-Z]{2,6})\b)|"
    r"(?:this|the)\s+(?:agreement|contract)\s+(?:shall|will)\s+(?:(?:automatically\s+)?(?:remain|continue|expire|"
    r"terminate|commence|begin|be\s+(?:effective|in\s+(?:full\s+)?(?:force|effect)|for)|have|run)|"
    r"be\s+effective)|(?:this|the)\s+(?:agreement|contract)\s+(?:commences|begins|takes\s+effect)\b|"
    r"the\s+term\s+(?:shall|will|is|hereof)|"
    r"(?:this|the)\s+(?:agreement|contract)\s+is\s+for)"
)

_TERM_LEAD = re.compile(
    r"(?i)(?:continue|remain\s+(?:in\s+(?:full\s+)?(?:force|effect)(?:\s+and\s+effect)?|effective)(?:\s+initially)?|"
    r"term\s+of|period\s+of|\bbe|\bis|\bfor|\bof|until|expire\s+(?:on\s+)?|terminate\s+on|end\s+on|ending|"
    r"(?:later|earlier)\s+of|initially\s+for|in\s+effect\s+for)\s+(?:\(i\)\s+)?(?:the\s+(?:date\s+)?)?"
    r"(?:a\s+(?:term|period)\s+of\s+|an?\s+(?:initial\s+)?(?:term|period)\s+of\s+)?$"
)

NOT_TERM = re.compile(r"(?i)confidential|non-?compet|solicit|surviv|warrant|(?<!continue\s)(?<!remain\s)thereafter\s+for|following\s+(?:the\s+)?(?:termination|expiration)")
# a period that runs after the agreement ends ("for nine (9) months after termination")
_AFTER_END = re.compile(
    r"(?i)\s*(?:\w+\s+){0,2}(?:after|following|from)\s+(?:the\s+)?(?:any\s+)?(?:termination|expiration|expiry|end)"
)
# "during the Term, and for one year thereafter": a period after the term ends
_AFTER_TERM = re.compile(r"(?i)\b(?:during|throughout|for)\s+the\s+(?:initial\s+)?term\b")
_TAIL = re.compile(
    r"[^.;]{0,60}?(?:from|after|commencing|beginning|following|thereafter|anniversary\s+of)"
    r"[^.;(]{0,60}?(?=[,.;(]|\s+(?:unless|and|or|which|with)\b)"
)


def _term_in(text: str, s: int, e: int, lo: int) -> tuple[int, int, re.Match] | None:
    sentence = text[s:e]
    if NOT_TERM.search(sentence) or len(sentence) > 1200:
        return None
    renew = re.compile(r"(?i)renew|extend|extension").search(sentence, lo - s)
    limit = renew.start() if renew else len(sentence)
    for m in LONG_DURATION.finditer(sentence, lo - s, limit):
        if _AFTER_END.match(sentence, m.end()):
            continue
        if re.match(r"\s*thereafter\b", sentence[m.end():]) and _AFTER_TERM.search(sentence, 0, m.start()):
            continue
        if _TERM_LEAD.search(sentence[max(0, m.start() - 60) : m.start()]):
            tail = _TAIL.match(sentence[m.end() :])
            return s + m.start(), s + m.end() + (tail.end() if tail else 0), m
    return None


def initial_term(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    found = None
    for pattern in (STRONG_TERM, _TERM_TRIGGER):  # sentences about the agreement's own term first
        for trigger in pattern.finditer(text):
            s, e = sentence_around(text, trigger.start())
            # a duration named as the term: "shall continue for three years (the "Initial Term")"
            named = re.search(r"[\"“]\s*$", text[max(s, trigger.start() - 3) : trigger.start()])
            found = _term_in(text, s, e, s if named else trigger.start())
            if found:
                break
        if found:
            break
    if not found:
        return []
    start, end, m = found
    s, e = sentence_around(text, start)
    meta = {"duration": spaces(m.group(0)), "anchor": (start, end)}
    # where the term starts: a date in the same sentence ("shall begin on January 1, 2000"), or
    # the event the duration is counted from ("five (5) years from the Launch Date")
    begin = re.search(
        r"(?i)\b(?:commenc\w*|begin\w*|start\w*|effective)\s+(?:on|as\s+of|from)?\s*(?:the\s+)?(?=\S)", text[s:start]
    )
    if begin:
        meta["begins_at"] = s + begin.end()
    counted_from = re.search(r"\b(?i:from|after|of)\s+(?:the\s+)?([A-Z][\w-]*(?:\s+[A-Z][\w-]*){0,2}\s+Date)\b",
                             text[start:end])
    if counted_from and not re.match(r"(?i)(?:effective|commencement|execution|signature|start)\s+date",
                                     counted_from.group(1)):
        meta["counted_from"] = counted_from.group(1)
    return [
        Fact(
            "initial_term",
            spaces(text[start:end]),
            [
                "What is the initial term of {doc}?",
                "How long does the initial term of {doc} last?",
                "For how long does {doc} run before any renewal?",
                "What is the duration of {doc}?",
            ],
            [(start, end)],
            meta,
        )
    ]


def renewal_term(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    facts: list[Fact] = []
    seen: set[str] = set()
    keyword = re.compile(r"(?i)\b(?:renew(?:ed|als?|s)?|extend(?:ed|s)?|extensions?)\b")
    for kw in keyword.finditer(text):
        s, e = sentence_around(text, kw.start())
        sentence = text[s:e]
        if not re.search(r"(?i)\bterm\b|agreement|franchise|licen[cs]e", sentence) or re.search(
            r"(?i)confidential", sentence
        ):
            continue
        rest = text[kw.end() : min(e, kw.end() + 160)]
        forward = re.match(
            rf"[^.;]{{0,50}}?\b(?:for|(?:terms?|periods?)\s+of|by)\s+(?P<ans>(?:[\w()-]+,?\s+){{0,7}}?{DURATION.pattern}"
            r"(?:\s+(?:renewal\s+)?(?:terms?|periods?))?(?:\s+each)?)",
            rest,
            re.IGNORECASE,
        )
        yearly = _FROM_YEAR_TO_YEAR.match(rest)
        group = ("ans" if yearly.group("ans") else "ans2") if yearly else "ans"
        if forward and yearly and yearly.start(group) < forward.start("ans"):
            forward = None  # "renew from year to year unless terminated by a Party upon 60 days' notice"
        if forward:
            a_start, a_end = kw.end() + forward.start("ans"), kw.end() + forward.end("ans")
        elif yearly:  # "renew from year to year", "for monthly periods": successive one-year (-month) terms
            a_start, a_end = kw.end() + yearly.start(group), kw.end() + yearly.end(group)
            unit = (yearly.group("unit") or _ADJECTIVE_UNIT[yearly.group("adj").lower()]).lower()
            answer = f"{spaces(text[a_start:a_end])} (successive one-{unit} terms)"
            if answer.lower() not in seen:
                seen.add(answer.lower())
                facts.append(_renewal_fact(answer, a_start, a_end, _renewal_score(kw.group(0), sentence, answer),
                                           derived=True))  # the gloss in parentheses is not the text's words
            continue
        else:
            back = re.search(
                rf"(?:automatic\s+|additional\s+|successive\s+)*{DURATION.pattern}\s*(?:term\s+)?$",
                text[max(s, kw.start() - 60) : kw.start()],
                re.IGNORECASE,
            )
            if not back or not re.match(r"(?i)extensions?|renewals?", kw.group(0)):
                continue
            a_start, a_end = max(s, kw.start() - 60) + back.start(), kw.end()
        answer = spaces(text[a_start:a_end])
        if not LONG_DURATION.search(answer) or answer.lower() in seen:
            continue
        seen.add(answer.lower())
        facts.append(_renewal_fact(answer, a_start, a_end, _renewal_score(kw.group(0), sentence, answer)))
    # several renewal facts would share these questions: keep the one most like a renewal
    # clause (the first of those that are equally so)
    if not facts:
        return []
    best = max(facts, key=lambda f: f.meta["score"])
    return [best]


def _renewal_score(keyword: str, sentence: str, answer: str) -> int:
    """How much a sentence reads as the agreement's renewal clause."""
    score = 2 * bool(re.match(r"(?i)renew", keyword))
    score += 2 * bool(re.search(r"(?i)successive|automatic(?:ally)?|additional|year[\s-]+to[\s-]+year", sentence))
    score += bool(re.search(r"(?i)(?:initial|then[\s-]+current)\s+term|expir|\bterm\s+of\s+this", sentence))
    score -= 3 * bool(re.search(r"(?i)force\s+majeure|suspen|insurance|polic(?:y|ies)|patent|warrant", sentence))
    return score


_FROM_YEAR_TO_YEAR = re.compile(
    r"[^.;]{0,50}?\b(?P<ans>(?:on\s+a\s+|from\s+)?(?P<unit>year|month)[\s-]+to[\s-]+(?P=unit)(?:\s+basis)?)\b"
    # "extend automatically for monthly periods", "renew for successive annual terms"
    r"|[^.;]{0,50}?\b(?P<ans2>(?:successive\s+|additional\s+|consecutive\s+)?(?P<adj>monthly|annual|yearly)\s+"
    r"(?:renewal\s+)?(?:periods?|terms?|basis))\b", re.I
)
_ADJECTIVE_UNIT = {"monthly": "month", "annual": "year", "yearly": "year"}


def _renewal_fact(answer: str, start: int, end: int, score: int = 0, derived: bool = False) -> Fact:
    return Fact(
        "renewal_term",
        answer,
        [
            "For how long does {doc} renew after its initial term ends?",
            "What is the renewal term of {doc}?",
            "By how long can {doc} be renewed or extended?",
            "How long is each renewal period under {doc}?",
        ],
        [(start, end)],
        {"score": score, **({"derived": True} if derived else {})},
    )
