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

Counterfactual twins (`counterfactual_rows`): an open-book row whose context holds its answer
gets a copy in which that answer, wherever the context states it, is replaced by another
training answer of the same field and document ("forty-five (45) days" -> "ten (10) Business
Days"), and the copy's answer is the replacement. Only the context says it, so the model learns
to take a value from what it is shown rather than from what it remembers — the failure measured
on the H200: with the answer's chunk first in the prompt, the fine-tuned reader named a
neighbouring or remembered value (benchmarks/RESULTS.md). Entity substitution in the context made
readers follow it in Longpre et al. 2021 (knowledge conflicts) and in KAFT (Li et al. 2022). The
changed text is only ever in a prompt, which is left out of the loss: it is never read as text.
Twins of half those rows (the default) against none, 13 contracts, one run: fine-tuned + retrieval
100/123 against 95/123 (5 gained, none lost, each the clause's own value instead of another).
"""

from __future__ import annotations

import dataclasses
import random

from docfinetune.build.cards import card_id
from docfinetune.core.config import RetrievalConfig
from docfinetune.core.generate import stated
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.retrieve import BM25Index
from docfinetune.core.score import normalize_answer


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


MAX_SWAP_CHARS = 80  # short answers only: a swapped definition would rewrite half a chunk


def value_kind(pair: QAPair) -> tuple:
    """What a value may stand in for another: same document and field, both with digits or both
    without, about as many words (a term never replaces a definition)."""
    words = len(pair.answer.split())
    return pair.doc_id, pair.field, any(ch.isdigit() for ch in pair.answer), min(words, 6) // 3


def counterfactual_rows(open_book: list[QAPair], pairs: list[QAPair], chunks: list[Chunk], share: float,
                        seed: int) -> list[QAPair]:
    """Counterfactual twins (module docstring) of a seeded `share` of the `open_book` rows whose
    context states their answer; replacements come from `pairs` (the training facts) of the same
    document and field, never a value the context already states. The twin keeps the context ids
    and records the swap in `context_swap` = [answer, replacement]; `core.generate.swapped_context`
    applies it when the prompt is made."""
    if share <= 0 or not open_book:
        return []
    text = {c.chunk_id: c.text for c in chunks}
    pools: dict[tuple, dict[str, str]] = {}
    for pair in pairs:
        if not pair.context_chunk_ids and len(pair.answer) <= MAX_SWAP_CHARS:
            key = normalize_answer(pair.answer, pair.field)
            pools.setdefault(value_kind(pair), {}).setdefault(key, pair.answer.strip())
    rng = random.Random(f"{seed}:counterfactual")
    twins = []
    for row in open_book:
        if rng.random() >= share:
            continue
        answer = row.answer.strip()
        context = [text.get(cid, "") for cid in row.context_chunk_ids]
        if not 2 <= len(answer) <= MAX_SWAP_CHARS or not any(stated(answer).search(t) for t in context):
            continue
        own = normalize_answer(answer, row.field)
        candidates = [value for key, value in sorted(pools.get(value_kind(row), {}).items())
                      if key != own and answer not in value and value not in answer
                      and not any(value.lower() in t.lower() for t in context)]
        if candidates:
            replacement = rng.choice(candidates)
            twins.append(dataclasses.replace(row, answer=replacement, context_swap=[answer, replacement]))
    return twins
