"""Notice periods: to stop a renewal, to terminate, to change terms."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig

from .text import DURATION, DocText, Fact, Known, sentence_around, spaces

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


def notices(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    facts = _notice_periods(doc.text, config)
    if not any(f.field == "renewal_notice" for f in facts):
        facts += _renewal_deadline(doc.text)
    return facts


_RENEWAL_WORD = re.compile(r"(?i)\b(?:renew\w*|extend\w*|extension)\b")
# "at least sixty (60) days prior to the expiration of the Initial Term or any renewal term"
_BEFORE_END = re.compile(
    rf"(?i)(?:(?:at\s+least|no\s+(?:fewer|less|later)\s+than|not\s+(?:less|later)\s+than|a\s+minimum\s+of|within)\s+)?"
    rf"{DURATION.pattern}(?:\s+(?:prior|advance|written|prior\s+written|advance\s+written))*(?:\s+notice)?"
    r"\s+(?:prior(?:\s+to)?|before|in\s+advance\s+of|preceding)\s+(?:the\s+)?(?:(?:applicable\s+|then[\s-]+current\s+)?"
    r"(?:end|expir\w*|conclusion)\b[^,.;]{0,60})"
)
# a count with its unit left out: "no less than 120 prior to the applicable expiry date" (days)
_BARE_BEFORE_END = re.compile(
    r"(?i)(?:at\s+least|no\s+(?:fewer|less)\s+than|not\s+less\s+than|a\s+minimum\s+of)\s+(?P<n>\d{1,3})"
    r"(?:\s+(?:prior|advance|written|prior\s+written))*\s+(?:prior\s+to|before|in\s+advance\s+of|preceding)\s+"
    r"(?:the\s+)?(?:(?:applicable\s+|then[\s-]+current\s+)?(?:end|expir\w*|conclusion)\b[^,.;]{0,60})"
)


def _renewal_deadline(text: str) -> list[Fact]:
    """The notice period of a renewal clause that does not use the word "notice" near it, or
    that gives notice to renew rather than not to: "shall automatically renew ... unless
    terminated by either party at least six months prior to the expiration of the then-current
    term"; "renewal notice to be provided no later than twelve (12) months prior to the expiry"."""
    for word in _RENEWAL_WORD.finditer(text):
        s, e = sentence_around(text, word.start())
        sentence = text[s:e]
        if not re.search(r"(?i)\bterm\b|agreement", sentence) or re.search(r"(?i)confidential", sentence):
            continue
        if not re.search(r"(?i)unless|notice|notify|terminat|elect|wish|desire|request", sentence):
            continue
        match = _BEFORE_END.search(sentence)
        answer, meta = (spaces(match.group(0)), {}) if match else ("", {})
        if not match:
            match = _BARE_BEFORE_END.search(sentence)
            if not match or not re.search(r"(?i)notice", sentence):
                continue
            # a notice period with no unit is counted in days (the unit of notice periods)
            answer = f"{spaces(match.group(0))} ({match.group('n')} days; the text gives no unit)"
            meta = {"derived": True}
        if match:
            return [Fact(
                "renewal_notice",
                answer,
                [
                    "How much notice must a party give to stop {doc} from renewing?",
                    "What notice period applies to non-renewal of {doc}?",
                    "How far in advance must notice of non-renewal be given under {doc}?",
                    "How much notice prevents the automatic renewal of {doc}?",
                ],
                [(s + match.start(), s + match.end())],
                meta,
            )]
    return []


def _notice_periods(text: str, config: RulesQAConfig) -> list[Fact]:
    facts: list[Fact] = []
    seen: set[tuple[str, str]] = set()
    for match in re.finditer(r"(?i)\bnoti(?:ce|fy|fies|fication)\b", text):
        s, e = sentence_around(text, match.start())
        sentence = text[s:e]
        for dur in _NOTICE_DURATION.finditer(sentence):
            if abs((s + dur.start()) - match.start()) > 200:
                continue
            answer = spaces(dur.group(0))
            renewal = (
                re.search(r"(?i)renew", sentence)
                and _NONRENEWAL.search(sentence)
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
                    what = "to " + re.sub(r"(?i)\bthis\s+agreement\b", "{doc}", spaces(purpose.group(1)))
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
            facts.append(Fact(key[0], answer, questions, [(s + dur.start(), s + dur.end())]))
            if len(facts) >= config.max_notice_facts:
                return facts
    return facts
