"""Curation of generated Q&A: keep what the source supports, drop near-duplicates and outliers.

Every drop is counted by reason, for stats.json.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from docfinetune.core.records import Chunk, QAPair
from docfinetune.core.score import is_supported


def curate(pairs: list[QAPair], chunks: list[Chunk], max_question_chars: int,
           max_answer_chars: int, duplicate_similarity: float) -> tuple[list[QAPair], Counter]:
    """Filter `pairs`; returns the kept pairs (input order) and a Counter of dropped-by-reason.

    Answers marked `meta["derived"]` (computed from the text, e.g. an end date from a start
    date and a term) and pairs from the user's own files are kept without the support check.
    """
    from rapidfuzz import fuzz, process

    text_of = {c.chunk_id: c.text for c in chunks}
    dropped: Counter = Counter()
    kept: list[QAPair] = []
    # (doc id, answer) -> kept questions with that answer, normalized: a question is a
    # near-duplicate only of one that has the same answer ("fee for tier 1/2/3" are three facts).
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pair in pairs:
        question, answer = pair.question.strip(), pair.answer.strip()
        if not question or not answer:
            dropped["empty"] += 1
            continue
        if len(question) > max_question_chars or len(answer) > max_answer_chars:
            dropped["too_long"] += 1
            continue
        trusted = pair.generator == "user" or pair.meta.get("derived")
        source = " ".join(text_of.get(cid, "") for cid in pair.source_chunk_ids)
        if not trusted and not is_supported(answer, source):
            dropped["unsupported"] += 1
            continue
        key = _normalized(question)
        same_answer = seen[(pair.doc_id, _normalized(answer))]
        if process.extractOne(key, same_answer, scorer=fuzz.ratio,
                              score_cutoff=100 * duplicate_similarity) is not None:
            dropped["near_duplicate"] += 1
            continue
        same_answer.append(key)
        kept.append(pair)
    return kept, dropped


def _normalized(text: str) -> str:
    """Lowercase, whitespace collapsed, no closing punctuation: "Net 30." matches "net  30"."""
    return " ".join(text.lower().split()).rstrip(".;:!?")
