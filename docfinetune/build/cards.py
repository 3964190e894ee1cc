"""Fact cards: the rules generator's document-level facts as short chunks retrieval can find.

Why: the facts users and lawyers ask about first — parties, dates, term, renewal, governing
law — are stated across the preamble and the term clauses, or written nowhere as such (an
expiration date is the start date plus the initial term). Retrieving 512-character chunks
hands the 270M reader text it must combine: before cards, fine-tuned + RAG answered 31 of
the 67 lawyers' questions on the 12 cuad-dev contracts (parties 5 of 18 questions with the
sample's, expiration dates 2 of 12); with them 45 of 67 (H200, RESULTS "Knowledge"). A card
is one fact in a line, the generator's own question beside its answer: "Who are the parties to the Distributor Agreement? Snotarator LLC (the Company);
SMSA Ballinger Acquisition Corp. (the Distributor)." It carries the page and heading of the
chunk it came from, so `ask --sources` still shows where the contract says it.

Held-out facts get cards of their own (datasets/cards_held_out.jsonl) that only answering
searches (`ask`, `eval`): training never sees them, neither as a Q&A row nor in an open-book
row's context, so the held-out (closed-book) figures keep measuring what the model learned from
reading, while a user's question about such a fact still finds its card. Before, they had none:
11 of the 36 lawyers' + hand-written questions fine-tuned + RAG missed on the 13 benchmark
contracts asked a held-out rules fact. With them the lawyers' questions on 10 of those contracts
went 45/57 -> 50/57 (same run, H200, 2026-12-01, RESULTS "Knowledge").
"""

from __future__ import annotations

from docfinetune.core.records import CARD_SUFFIX, Chunk, QAPair

# Facts about the document as a whole, which a reader would look up on a term sheet.
CARD_FIELDS = frozenset({"parties", "agreement_date", "effective_date", "initial_term", "expiration_date",
                         "renewal_term", "renewal_notice", "governing_law", "venue"})
CARD_GENERATOR = "rules"
# Card chunk indexes start here: far from any real chunk's, so retrieval never takes a card
# for a chunk's neighbour.
CARD_INDEX_BASE = 1_000_000


def card_id(fact_id: str) -> str:
    """The chunk id of a fact's card."""
    return f"{fact_id}{CARD_SUFFIX}"


def card_fact(card: Chunk) -> str:
    """The fact id a card states."""
    return card.chunk_id[: -len(CARD_SUFFIX)]


def fact_cards(pairs: list[QAPair], chunks: list[Chunk], held_out: list[QAPair]) -> tuple[list[Chunk], list[Chunk]]:
    """One card per document-level fact of the rules generator, in fact order: the fact's first
    question and its answer, with the page and heading of its first source chunk. Facts without
    a source chunk get none. Returns (cards of the other facts, cards of the `held_out` pairs' facts)."""
    by_id = {c.chunk_id: c for c in chunks}
    first: dict[str, QAPair] = {}
    for pair in pairs:
        if (pair.generator == CARD_GENERATOR and pair.field in CARD_FIELDS
                and not pair.context_chunk_ids and pair.fact_id not in first):
            first[pair.fact_id] = pair
    cards = []
    for n, (fact_id, pair) in enumerate(first.items()):
        source = next((by_id[cid] for cid in pair.source_chunk_ids if cid in by_id), None)
        if source is None:
            continue
        answer = pair.answer.strip().rstrip(".")
        cards.append(Chunk(chunk_id=card_id(fact_id), doc_id=pair.doc_id, index=CARD_INDEX_BASE + n,
                           page_start=source.page_start, page_end=source.page_end,
                           char_start=source.char_start, char_end=source.char_end,
                           heading=source.heading, text=f"{pair.question.strip()} {answer}."))
    held_out_ids = {p.fact_id for p in held_out}
    return ([c for c in cards if card_fact(c) not in held_out_ids],
            [c for c in cards if card_fact(c) in held_out_ids])
