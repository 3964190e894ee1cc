"""The offline ``rules`` Q&A generator: contract facts found by patterns, several phrasings each.

No model and no network: regular expressions over the chunks of each document find facts that
contracts state in recognisable forms (parties and roles, dates, term and renewal, notice
periods, governing law, venue, fees, definitions, what each numbered section provides). Each
fact becomes ``min_phrasings`` or more questions with the same short answer, taken from the
text of the chunks listed as its sources. Some answers are derived rather than copied, and are
marked ``meta["derived"] = True``: an expiration date computed as start date + initial term
("April 15, 2012 (three (3) years after 15 April, 2009)"), and an effective date that the text
ties to the agreement date ("the date of execution").

One module per fact family (``parties``, ``dates``, ``term``, ``notices``, ``law``, ``fees``,
``definitions``, ``sections``; shared text handling in ``text``). ``EXTRACTORS`` runs them in
a fixed order; a later one may build on the facts of an earlier one (the expiration date on
the initial term and the effective date). A fact's id is ``{doc_id}:{field}:{n}``, n counting
within its field, so adding an extractor for a new field leaves every other id as it was.

How a document's text is searched: its chunks are joined in index order with their overlaps
removed, so a fact that straddles two chunks is found and cites both chunk ids.
Output is deterministic: same chunks in, same Q&A pairs (and fact ids) out.
"""

from __future__ import annotations

import re
from typing import Iterable

from docfinetune.core.config import RulesQAConfig
from docfinetune.core.records import Chunk, Document, QAPair

from . import dates, definitions, fees, law, notices, parties, sections, term
from .text import DocText, Extractor, Fact, Known, spaces, title_words

__all__ = ["EXTRACTORS", "RulesQAGenerator"]

# (name, extractor) in the order they run; the name keys the extractor's facts for later ones.
EXTRACTORS: list[tuple[str, Extractor]] = [
    ("parties", parties.parties),
    ("agreement_date", dates.agreement_date),
    ("effective_date", dates.effective_date),
    ("initial_term", term.initial_term),
    ("expiration_date", dates.expiration_date),
    ("renewal_term", term.renewal_term),
    ("notices", notices.notices),
    ("governing_law", law.governing_law),
    ("venue", law.venue),
    ("fees", fees.fees),
    ("defined_terms", definitions.defined_terms),
    ("sections", sections.sections),
]


class RulesQAGenerator:
    """Offline, deterministic Q&A about contracts from patterns (see the module docstring)."""

    name = "rules"

    def __init__(self, config: RulesQAConfig | None = None):
        self.config = config or RulesQAConfig()

    def generate(self, documents: list[Document], chunks: list[Chunk]) -> Iterable[QAPair]:
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        docs = [d for d in documents if d.doc_id in by_doc]
        texts = {d.doc_id: DocText(sorted(by_doc[d.doc_id], key=lambda c: c.index)) for d in docs}
        facts = {d.doc_id: self.extract_facts(texts[d.doc_id]) for d in docs}
        names = self._document_names(docs, facts)
        pairs: list[QAPair] = []
        for doc in docs:
            pairs.extend(self._pairs(doc, texts[doc.doc_id], facts[doc.doc_id], names[doc.doc_id]))
        return pairs

    def extract_facts(self, doc: DocText) -> list[Fact]:
        """Every fact of one document, in a fixed order (which fixes the fact ids)."""
        known: Known = {}
        for name, extract in EXTRACTORS:
            known[name] = extract(doc, self.config, known)
        return [fact for name, _ in EXTRACTORS for fact in known[name]]

    # ------------------------------------------------------------------ naming documents

    def _document_names(self, docs: list[Document], facts: dict[str, list[Fact]]) -> dict[str, list[str]]:
        """How questions name each document: ["this agreement", "the X Agreement"] for one."""
        titles = {}
        for d in docs:
            title = title_words(d.title) or re.sub(r"\.[A-Za-z0-9]+$", "", d.file_name)
            if not re.match(r"(?i)the\b", title):
                title = "the " + title
            titles[d.doc_id] = title
        if len(docs) == 1:
            return {docs[0].doc_id: ["this agreement", titles[docs[0].doc_id]]}
        names = {}
        for d in docs:
            name = titles[d.doc_id]
            if sum(t.lower() == name.lower() for t in titles.values()) > 1:
                party_names = [f.meta["party"] for f in facts[d.doc_id] if f.meta.get("party")]
                if len(party_names) >= 2:
                    name = f"{name} between {party_names[0]} and {party_names[1]}"
                else:
                    name = f"{name} ({d.file_name})"
            names[d.doc_id] = [name]
        return names

    def _pairs(self, doc: Document, text: DocText, facts: list[Fact], names: list[str]) -> list[QAPair]:
        counters: dict[str, int] = {}
        seen_questions: set[str] = set()
        pairs: list[QAPair] = []
        for fact in facts:
            index = counters.get(fact.field, 0)
            counters[fact.field] = index + 1
            fact_id = f"{doc.doc_id}:{fact.field}:{index}"
            questions = []
            for k, template in enumerate(fact.questions):
                name = names[k % len(names)]
                q = template.replace("{Doc}", name[0].upper() + name[1:]).replace("{doc}", name)
                q = spaces(q)
                if q.lower() not in seen_questions and q not in questions:
                    questions.append(q)
            if len(questions) < self.config.min_phrasings:
                continue
            seen_questions.update(q.lower() for q in questions)
            sources: list[str] = []
            for start, end in fact.spans:
                for cid in text.chunk_ids(start, end):
                    if cid not in sources:
                        sources.append(cid)
            for k, question in enumerate(questions):
                pairs.append(
                    QAPair(
                        question=question,
                        answer=fact.answer,
                        fact_id=fact_id,
                        doc_id=doc.doc_id,
                        source_chunk_ids=list(sources),
                        generator=self.name,
                        field=fact.field,
                        meta={**fact.meta, "phrasing": k},
                    )
                )
        return pairs
