"""Dates: when the agreement was made, when it takes effect, when its initial term ends."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig
from docfinetune.core.score import find_dates

from .term import NOT_TERM, STRONG_TERM
from .text import DocText, Fact, Known, add_months_days, duration_months, format_date, sentence_around, spaces


def _date_fact(field_name: str, answer: str, spans, questions, **meta) -> Fact:
    return Fact(field_name, spaces(answer), questions, spans, meta)


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


def agreement_date(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    region_start, region_end = doc.preamble(config.preamble_chars)
    context = re.compile(r"(?i)\b(?:made|entered|dated|executed|effective|as of|signed)\b")
    for date, start, end in find_dates(text[region_start:region_end]):
        start, end = start + region_start, end + region_start
        s, _ = sentence_around(text, start)
        before = text[max(s, start - 200) : start]
        if context.search(before) and not re.search(r"(?i)effective\s+date\s*:\s*$", before):
            return [_date_fact("agreement_date", text[start:end], [(start, end)],
                                    _AGREEMENT_DATE_Q, date=date.token())]
    # no date in the opening: the signature block's "Date:" / "Dated:" (the last signature), or
    # a closing "Signed and effective this 25th day of May, 1999." right above the signatures
    signed = []
    for date, start, end in find_dates(text):
        label = re.search(r"(?i)\bdated?\s*:?\s*(?:\S+\s+)?$", text[max(0, start - 40) : start])
        closing = re.search(r"(?i)\b(?:signed|executed)\b[\w ]{0,25}\b(?:this|on|as\s+of)\s+$",
                            text[max(0, start - 50) : start])
        block = text[max(0, start - config.signature_window_chars) : start]
        if closing:
            block = text[end : end + config.signature_window_chars]
        if (label or closing) and date.year and re.search(r"(?i)\bBy:|/s/|\bName:|\bTitle:|IN\s+WITNESS|signature", block):
            signed.append((date, start, end))
    if signed:
        first = signed[0]
        block = [d for d in signed if d[1] - first[2] <= 60]
        date, start, end = max(block, key=lambda d: (d[0].year, d[0].month or 0, d[0].day or 0))
        return [_date_fact("agreement_date", text[start:end], [(start, end)],
                                _AGREEMENT_DATE_Q, date=date.token(), signature=True)]
    return []


_EFFECTIVE_NAME = r"(?:Effective|Commencement|Start)\s+Date"


def effective_date(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    agreement = known.get("agreement_date", [])
    text = doc.text
    for date, start, end in find_dates(text):
        after = text[end : end + 60]
        before = text[max(0, start - 80) : start]
        if (
            re.match(rf"\s*,?\s*\(\s*(?:the\s+|this\s+)?[\"“]?{_EFFECTIVE_NAME}[\"”]?\s*\)", after, re.I)
            or re.search(rf"{_EFFECTIVE_NAME}[\"”]?\s*(?:shall\s+)?(?:means?|is|:)\s*:?\s*(?:the\s+)?$", before, re.I)
            or re.search(r"(?i)\beffective\s+(?:as\s+of\s+|on\s+|from\s+)?(?:this\s+|the\s+)?$", before)
        ):
            return [_date_fact("effective_date", text[start:end], [(start, end)],
                                    _EFFECTIVE_DATE_Q, date=date.token())]
    tied = re.search(
        rf"(?i)(?:\beffective\b|\bcommence|come\s+into\s+force|{_EFFECTIVE_NAME})[^.;]{{0,80}}?"
        r"\b(?P<what>(?:the\s+)?(?:date\s+of\s+(?:execution|signature|this\s+agreement)|date\s+hereof|"
        r"date\s+(?:first\s+)?(?:written|set\s+forth|stated|given)\s+(?:above|at\s+the\s+beginning[^.;]{0,30})|"
        r"date\s+on\s+which\s+the\s+parties\s+(?:sign|execute)|signing\s+of\s+this\s+agreement|"
        r"execution\s+(?:date|of\s+this\s+agreement)))",
        text,
    )
    if not tied:
        tied = re.search(
            r"(?i)(?P<what>signing\s+of\s+this\s+agreement|date\s+of\s+execution(?:\s+of\s+this\s+agreement)?)"
            rf"\s*\(\s*(?:the\s+)?[\"“]?{_EFFECTIVE_NAME}",
            text,
        )
    if tied and agreement:
        date_fact = agreement[0]
        answer = f"{date_fact.answer} ({spaces(tied.group('what'))})"
        return [_date_fact("effective_date", answer, date_fact.spans + [tied.span()],
                                _EFFECTIVE_DATE_Q, derived=True)]
    # the day the term (or the agreement) begins: "The term ... shall begin on January 1, 2000"
    for begin in _TERM_BEGINS.finditer(text):
        dates = [d for d in find_dates(text[begin.end() : begin.end() + 40]) if d[1] == 0]
        if dates:
            date, start, end = dates[0]
            start, end = begin.end() + start, begin.end() + end
            return [_date_fact("effective_date", text[start:end], [(start, end)], _EFFECTIVE_DATE_Q,
                               date=date.token(), term_begins=True)]
    # no effective date stated: a contract takes effect on the date it is made
    if agreement:
        date_fact = agreement[0]
        answer = f"{date_fact.answer} (the date of the agreement; no other effective date is stated)"
        return [_date_fact("effective_date", answer, date_fact.spans, _EFFECTIVE_DATE_Q, derived=True,
                           date=date_fact.meta.get("date"))]
    return []


_TERM_BEGINS = re.compile(
    r"(?i)\b(?:(?:initial\s+)?term|(?:this|the)\s+(?:agreement|contract)|contract\s+period|(?-i:[A-Z]\w+)\s+period)"
    r"\b[^.;]{0,80}?\b(?:shall|will|is\s+to)\s+(?:begin|commence|start|be\s+effective|take\s+effect)\s+"
    r"(?:on|as\s+of|from)\s+(?:the\s+)?"
    r"|\b(?:period|term)\s+(?:of\s+time\s+)?(?:commencing|beginning)\s+(?:on\s+)?(?=[A-Z0-9])"
)


def expiration_date(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    initial = known.get("initial_term", [])
    start_facts = known.get("effective_date") or known.get("agreement_date", [])
    text = doc.text
    q = _EXPIRATION_DATE_Q
    stated = _stated_end(text, strong=True)
    if stated:
        return stated
    derived = _derived_end(text, initial, start_facts)
    if derived:
        return derived
    stated = _stated_end(text, strong=False)
    if stated:
        return stated
    anniversary = _anniversary_end(text, known)
    if anniversary:
        return anniversary
    # no fixed end
    for match in _NO_FIXED_END.finditer(text):
        s, e = sentence_around(text, match.start())
        before = text[s : match.start()]
        if not re.search(r"(?i)\bterm\b|this\s+agreement", text[s:e]) or re.search(r"(?i)surviv", text[s:e]):
            continue
        if re.search(r"(?i)licen[cs]e", before) and not re.search(r"(?i)(?:this|the)\s+agreement|term\s+of", before):
            continue  # a licence that runs forever, not the agreement
        answer = f"no fixed end: {spaces(text[s:e])[:200]}"
        return [_date_fact("expiration_date", answer, [(s, e)], q, derived=True)]
    for match in re.finditer(
        r"(?i)term\s+of\s+this\s+agreement\s+shall\s+commence[^.]{0,80}?(?:end|continue|remain)[^.]{0,20}?"
        r"(?:until|on\s+the\s+\w+\s+day\s+following|following)[^.]{0,80}?notice[^.]{0,80}?terminat[^.]{0,40}",
        text,
    ):
        answer = f"no fixed end (until terminated): {spaces(match.group(0))}"
        return [_date_fact("expiration_date", answer, [match.span()], q, derived=True)]
    if not initial and not _ANY_TERM.search(text):
        # no term, no end date, no renewal anywhere: the agreement runs until it is terminated
        spans = start_facts[0].spans[:1] if start_facts else [(0, min(len(text), 200))]
        return [_date_fact("expiration_date", "no fixed end: no term or expiration date is stated, so the "
                           "agreement continues until terminated", spans, q, derived=True)]
    return []


_NO_FIXED_END = re.compile(
    r"(?i)indefinite(?:ly|\s+(?:term|period|duration))|in\s+perpetuity|"
    r"perpetual(?:ly)?\s+(?:term|basis)|\b(?:remain|continue)\b[^.;]{0,60}?\bperpetually\b|"
    r"(?:continue|remain)\s+(?:in\s+(?:full\s+)?(?:force|effect)(?:\s+and\s+effect)?\s+)?until\s+(?:it\s+is\s+|"
    r"(?:this\s+agreement\s+is\s+)?)?terminated|until\s+terminated\s+(?:by|in\s+accordance|pursuant)"
)
# anything that looks like a term clause: the fallback "no fixed end" is only for contracts without one
_ANY_TERM = re.compile(
    r"(?i)\b(?:initial|original)\s+term\b|\bterm\s+of\s+(?:this|the)\s+(?:agreement|contract)\s+(?:shall|will|is)\b|"
    r"\b(?:shall|will)\s+(?:expire|terminate|end)\s+(?:on|at)\b|\banniversary\b|"
    r"\bautomatic(?:ally)?\s+(?:be\s+)?(?:renew|renews|renewed|extend|extended)\b|"
    r"\b(?:continue|remain)\b[^.;]{0,80}?\b(?:years?|months?)\b|\bterm\s+of\s+(?:\w+\s+){0,3}(?:\(\d+\)\s*)?(?:years?|months?)\b"
)
_ORDINAL_YEARS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "fifteenth": 15, "twentieth": 20,
}
_ANNIVERSARY = re.compile(
    r"(?i)(?<!prior\s)(?<!up\s)(?<!due\s)\b(?:until|through|to|on|(?:expir|end|terminat)\w*\s+on)\s+the\s+"
    r"(?P<ord>" + "|".join(_ORDINAL_YEARS) + r"|\d{1,2}(?:st|nd|rd|th))\s*(?:\(\s*\d{1,2}(?:st|nd|rd|th)?\s*\)\s*)?"
    r"anniversary\s+of\s+(?:the\s+)?(?P<of>effective\s+date|commencement\s+date|date\s+(?:of\s+)?(?:this\s+agreement|"
    r"hereof|of\s+execution)|execution\s+date|date\s+first\s+(?:written|set\s+forth)\s+above)"
)


def _anniversary_end(text: str, known: Known) -> list[Fact]:
    """"The term ... shall continue until the fifth (5th) anniversary of the Effective Date":
    the start date + that many years (derived)."""
    for match in _ANNIVERSARY.finditer(text):
        s, e = sentence_around(text, match.start())
        if NOT_TERM.search(text[s:e]) or not re.search(r"(?i)\bterm\b|this\s+agreement", text[s : match.start()]) \
                or re.search(r"(?i)\bfees?\b|\bpay", text[s:e]):
            continue
        word = match.group("ord").lower()
        years = _ORDINAL_YEARS.get(word) or int(re.match(r"\d+", word).group(0))
        effective = re.match(r"(?i)effective|commencement", match.group("of"))
        starts = (known.get("effective_date") if effective else None) or known.get("agreement_date") or []
        if not starts:
            continue
        found = find_dates(starts[0].answer)
        if not found:
            continue
        date, ds, de = found[0]
        result = _add_years(date, years)
        if result is None:
            continue
        answer = f"{format_date(result)} ({spaces(match.group(0)[match.start('ord') - match.start():])}: " \
                 f"{years} years after {starts[0].answer[ds:de]})"
        return [_date_fact("expiration_date", answer, starts[0].spans[:1] + [match.span()], _EXPIRATION_DATE_Q,
                           derived=True, date=result.token())]
    return []


def _add_years(date, years: int):
    if date.year is None:
        return None
    if date.month is None:
        return type(date)(date.year + years, None, None)
    return add_months_days(date, 12 * years, 0)


_END_WORDS = re.compile(
    r"(?i)(?:\bto|through|until|till|thru|(?:expire[sd]?|terminate[sd]?|end(?:s|ing)?|conclud(?:e[sd]?|ing))"
    r"(?:\s+(?:on|at))?(?:\s+the\s+(?:later|earlier)\s+of)?(?:\s*\(i\))?|"
    r"expir(?:e[sd]?|ing)\s+at\s+[^;]{0,40}?\s+on|expiration\s+date\s*(?:of|is|:)?)\s*(?:and\s+including\s+)?(?:the\s+)?$"
)


def _stated_end(text: str, strong: bool) -> list[Fact]:
    """A date the term ends on: "shall continue until December 31, 2020", "terminate June 1, 2000".
    `strong`: only in sentences about the agreement's own term (see term.STRONG_TERM)."""
    for date, start, end in find_dates(text):
        s, e = sentence_around(text, start)
        sentence = text[s:e]
        if NOT_TERM.search(sentence):
            continue
        if not (STRONG_TERM.search(sentence) if strong else re.search(r"(?i)\bterm\b|expir|terminat|period", sentence)):
            continue
        before = text[max(s, start - 80) : start]
        if _END_WORDS.search(before):
            if strong and re.search(r"(?i)(?:\bto|through|thru)\s*(?:the\s+)?$", before) and (
                    find_dates(before) or not re.search(r"(?i)date|hereof|commencement", before[-40:])):
                continue  # "(November 2001 through March 2003)": a range, not the end of the term
            if re.search(r"(?i)\bto\s*$", before) and not re.search(r"(?i)\bterm\b", sentence):
                continue
            if re.search(r"(?i)prior\s+to\s*$|due\s+to\s*$|(?:up\s+)?to\s+and\s+$", before):
                continue
            return [_date_fact("expiration_date", text[start:end], [(start, end)], _EXPIRATION_DATE_Q,
                               date=date.token())]
    return []


def _derived_end(text: str, initial: list[Fact], start_facts: list[Fact]) -> list[Fact]:
    """Start date + initial term. The start is a date the term's own sentence begins on, else
    the effective (or agreement) date; none when the term counts from another event."""
    if not initial or initial[0].meta.get("counted_from"):
        return []
    term = initial[0]
    months_days = duration_months(term.meta["duration"])
    start_date, start_text, start_spans = None, "", []
    begins_at = term.meta.get("begins_at")
    if begins_at is not None:
        own = [d for d in find_dates(text[begins_at : begins_at + 40]) if d[1] < 12]
        if own:
            date, s, e = own[0]
            start_date, start_text, start_spans = date, text[begins_at + s : begins_at + e], [(begins_at + s, begins_at + e)]
    if start_date is None and start_facts:
        starts = find_dates(start_facts[0].answer)
        if starts:
            start_date = starts[0][0]
            start_text = start_facts[0].answer[starts[0][1] : starts[0][2]]
            start_spans = start_facts[0].spans[:1]
    if start_date is None or not months_days:
        return []
    result = add_months_days(start_date, *months_days)
    if result is None and months_days[1] == 0 and months_days[0] % 12 == 0:
        result = _add_years(start_date, months_days[0] // 12)  # "____, 2015" + 20 years: "____, 2035"
    if result is None:
        return []
    if start_date.day == 1 and months_days[1] == 0:
        # a term that starts on the 1st runs to the end of a month: name its last day too
        last = add_months_days(result, 0, -1)
        answer = f"{format_date(result)} ({term.meta['duration']} after the start; the last day of the term is {format_date(last)})"
    else:
        answer = f"{format_date(result)} ({term.meta['duration']} after {start_text})"
    return [_date_fact("expiration_date", answer, start_spans + term.spans, _EXPIRATION_DATE_Q,
                       derived=True, date=result.token())]
