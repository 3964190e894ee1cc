"""Fees, prices and other amounts of money, by what they pay for."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig

from .text import MONEY, DocText, Fact, Known, sentence_around, spaces

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


def fees(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    by_subject: dict[str, list[tuple[str, int, int]]] = {}
    order: list[str] = []
    for money in MONEY.finditer(text):
        s, _ = sentence_around(text, money.start())
        before = text[max(s, money.start() - 160) : money.start()]
        nouns = list(_FEE_NOUN.finditer(before))
        if not nouns:
            continue
        words = [w for w in nouns[-1].group(1).split() if w.lower() not in _FEE_STOP]
        while words and words[0].lower() in _FEE_STOP:
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
        amount = spaces(text[money.start() : end])
        if amount not in [a for a, _, _ in by_subject[key]]:
            by_subject[key].append((amount, money.start(), end))
    facts = []
    for key in order:
        amounts = by_subject[key]
        if len(amounts) > config.max_amounts_per_fee:
            continue
        subject = spaces(text[amounts[0][1] - 160 : amounts[0][1]])  # for the original casing
        m = re.search(re.escape(key), subject, re.I)
        subject = m.group(0) if m else key
        answer = "; ".join(a for a, _, _ in amounts)
        facts.append(
            Fact(
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
        if len(facts) >= config.max_fee_facts:
            break
    return facts
