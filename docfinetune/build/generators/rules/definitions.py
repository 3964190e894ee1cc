"""Defined terms: what "X" means in the agreement."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig

from .text import DocText, Fact, Known, sentence_around, spaces

_DEFINITION = re.compile(
    r"(?:[\"“](?P<q>[A-Z][^\"”\n]{0,60}?)[\"”]|(?:(?<=[;:.]\s)|(?<=\d\s)|(?<=^)|(?<=\n)|(?<=\s{3}))"
    r"(?P<u>[A-Z][\w-]*(?:\s+(?:[A-Z][\w-]*|of|and|or)){0,5}))"
    r"\s*(?:\([^)]{0,40}\)\s*)?,?\s*(?:shall\s+(?:mean|have\s+the\s+meaning)|means|has\s+the\s+meaning|"
    r"refers\s+to|is\s+defined\s+as)\b\s*:?\s*",
)


def defined_terms(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    facts: list[Fact] = []
    seen: set[str] = set()
    for match in _DEFINITION.finditer(text):
        term = spaces(match.group("q") or match.group("u") or "")
        if not term or term.lower() in seen or term.lower() in {"this agreement", "it", "that", "this"}:
            continue
        _, e = sentence_around(text, match.end())
        body_end = e
        semi = re.search(r";|\s{3,}|\n", text[match.end() : e])
        if semi:
            body_end = match.end() + semi.start()
        body = text[match.end() : body_end].rstrip(" .,:")
        if len(body) > config.definition_answer_max_chars:
            cut = max(body.rfind(", ", 0, config.definition_answer_max_chars),
                      body.rfind(" ", 0, config.definition_answer_max_chars))
            body = body[:cut]
        if len(body.split()) < 2 or re.match(
            r"(?i)(?:,\s*)?(?:set\s+forth|given|ascribed|assigned|defined|specified|as\s+defined)\b", body
        ) or re.search(r"(?i)have\s+the\s+meaning|has\s+the\s+meaning", match.group(0)):
            continue
        seen.add(term.lower())
        facts.append(
            Fact(
                "defined_term",
                spaces(body),
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
        if len(facts) >= config.max_defined_terms:
            break
    return facts
