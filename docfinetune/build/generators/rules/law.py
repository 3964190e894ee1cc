"""Which law governs the agreement, and where disputes are heard."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig

from .text import DocText, Fact, Known, sentence_around, spaces

_LAW = re.compile(
    r"(?i)\b(?:governed|construed|interpreted|enforced|determined|governing|controlled)\b[^.]{0,120}?"
    r"(?:(?P<laws>\blaws?\s*,?\s+(?:of|in\s+force\s+in)\s+(?:the\s+)?)(?P<j>[^,;.(]{2,120}?)"
    r"(?=\s*[,;.(]|\s+(?:without|excluding|except|notwithstanding|applicable|as\s+(?:applied|such)|"
    r"and\s+(?:the|any|all|each|venue|jurisdiction|disputes?|shall|its)|including|in\s+effect|"
    r"regardless|other\s+than|exclusive\s+of|irrespective|shall|will)\b)"
    # "by California law", "by PRC Laws": a capitalised name (not "by the law", "by any law")
    r"|\bby\s+(?P<adj>(?-i:[A-Z][A-Za-z.]+(?:\s+[A-Z][a-z]+)?))\s+laws?\b)"
)
# short forms whose full name a reader (and a lawyer's answer) may use instead
_FULL_NAMES = {
    "prc": "the People's Republic of China", "p.r.c": "the People's Republic of China",
    "china": "the People's Republic of China", "u.k": "the United Kingdom", "uk": "the United Kingdom",
    "u.s": "the United States", "us": "the United States", "usa": "the United States",
    "u.s.a": "the United States",
}


def governing_law(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    for match in _LAW.finditer(text):
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
        answer = spaces(text[start:end])
        short = re.sub(r"(?i)^the\s+|\s+laws?$", "", spaces(match.group("j") or match.group("adj"))).strip(". ").lower()
        meta = {}
        if short in _FULL_NAMES:
            answer, meta = f"{answer} ({_FULL_NAMES[short]})", {"derived": True}
        if match.group("j") and re.match(r"(?i)(?:this|such|any|all|applicable)\b", match.group("j")):
            continue
        return [
            Fact(
                "governing_law",
                answer,
                [
                    "Which state's or country's law governs {doc}?",
                    "What law governs {doc}?",
                    "Under which jurisdiction's laws is {doc} construed?",
                    "What is the governing law of {doc}?",
                ],
                [(start, end)],
                meta,
            )
        ]
    return []


def venue(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
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
        s, e = sentence_around(text, match.start())
        sentence = text[s:e]
        if not re.search(r"(?i)jurisdiction|venue|submit|brought|instituted|filed|arbitrat|forum|litigat|proceeding", sentence):
            continue
        answer = spaces(match.group(0))
        if len(answer.split()) > 25:
            continue
        return [
            Fact(
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
