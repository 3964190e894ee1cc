"""Open-book training rows (RAFT, ../shared/KNOWLEDGE.md §3): Q&A-train questions asked with the
retriever's own top chunks before them, so one adapter answers closed-book and with retrieval.

For a share of the training rows, a copy is made whose `context_chunk_ids` are the retriever's
best `k` chunks for the question. With probability `gold_probability` the chunk that holds the
answer is among them (put in place of the last hit when retrieval missed it); otherwise it is
taken out and the next hit fills its place, so the model also learns to answer from memory when
the context does not help (RAFT: 1-3 distractors beat gold-only training). `chunks` may hold
fact cards: a distractor-only context has neither the answer's chunk nor the fact's card. The
answer is the same short answer; the prompt is `generation.rag_template`, as `eval`'s RAG
systems ask. Held-out facts stay held out: only training rows get copies, and their contexts are
reading text the model sees anyway.
"""

from __future__ import annotations

import dataclasses
import random

from docfinetune.build.cards import card_id
from docfinetune.core.config import RetrievalConfig
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.retrieve import BM25Index


def open_book_rows(pairs: list[QAPair], documents: list[Document], chunks: list[Chunk], share: float, k: int,
                   gold_probability: float, seed: int, settings: RetrievalConfig | None = None) -> list[QAPair]:
    """Open-book copies of a seeded `share` of `pairs` (see the module docstring), in input order;
    `settings`: the retriever's (the pipeline's `retrieval`, as eval and ask search)."""
    if share <= 0 or not pairs or not chunks:
        return []
    rng = random.Random(f"{seed}:raft")
    chosen = [p for p in pairs if rng.random() < share]
    if not chosen:
        return []
    index = BM25Index(chunks, {d.doc_id: d.title for d in documents}, settings)
    rows = []
    for pair in chosen:
        hits = [c.chunk_id for c, _ in index.search(pair.question, k + 1)]
        gold = [cid for cid in pair.source_chunk_ids if cid]
        if rng.random() < gold_probability:
            context = hits[:k]
            if gold and gold[0] not in context:
                context = context[:k - 1] + [gold[0]]
        else:  # neither the chunk nor the fact's card (build.cards) may give the answer away
            context = [cid for cid in hits if cid not in gold and cid != card_id(pair.fact_id)][:k]
        if context:
            rows.append(dataclasses.replace(pair, context_chunk_ids=context,
                                            meta={**pair.meta, "open_book": True}))
    return rows
