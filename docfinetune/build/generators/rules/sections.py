"""What each numbered section (or article) provides: its opening sentence."""

from __future__ import annotations

import re

from docfinetune.core.config import RulesQAConfig

from .text import DocText, Fact, Known, sentences, spaces, title_words

_SECTION = re.compile(
    r"(?:^|(?<=\n)|(?<=\s\s)|(?<=[.:;]\s))(?:(?P<kw>Section|Clause|Article|ARTICLE|SECTION|CLAUSE)\s*-?\s*)?"
    r"(?P<num>\d{1,2}(?:\.\d{1,2}){0,2}|[IVXL]{1,6}(?=[.\s]))\.?\s+"
    r"(?:(?P<title>[A-Z][A-Za-z'’&/\-]*(?:[ ,]+(?:[A-Z][A-Za-z'’&/\-]*|and|of|the|for|to|in|on|or)){0,7})[.:]\s+"
    r"|(?P<caps>[A-Z][A-Z'’&/\-]+(?:[ ,]+(?:[A-Z][A-Z'’&/\-]*|AND|OF|THE|FOR|TO|IN|ON|OR)){0,7})[.:]?\s+"
    r"(?=\d+\.\d|[A-Z][a-z]|\([a-z0-9]\)))"
)


def sections(doc: DocText, config: RulesQAConfig, known: Known) -> list[Fact]:
    text = doc.text
    facts: list[Fact] = []
    seen: set[str] = set()
    if config.max_section_facts == 0:  # recitations switched off (the default)
        return facts
    for match in _SECTION.finditer(text):
        num = match.group("num")
        title = spaces(match.group("title") or match.group("caps")).rstrip(" ,-")
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
        spans = sentences(text, body_start, min(len(text), body_start + 2000))
        if not spans:
            continue
        b_start, b_end = spans[0]
        body = text[b_start:b_end]
        if ". ." in body or "...." in body or re.match(r"\s*\d+\s*$", body):
            continue  # table of contents
        if len(body) > config.section_answer_max_chars:
            cut = body.rfind(", ", 0, config.section_answer_max_chars)
            cut = cut if cut > config.section_answer_max_chars // 2 else body.rfind(" ", 0, config.section_answer_max_chars)
            body = body[:cut]
        answer = spaces(body).rstrip(",;:")
        if len(answer.split()) < config.min_section_answer_words:
            continue
        seen.add(num)
        kind = (match.group("kw") or ("Article" if re.match(r"[IVXL]+$", num) else "Section")).capitalize()
        title_text = title_words(title)
        label = f"{kind} {num} ({title_text})"
        facts.append(
            Fact(
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
        if len(facts) >= config.max_section_facts:
            break
    return facts
