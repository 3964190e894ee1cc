"""Multiple-choice study rows (build.choice_share): a training fact asked again, in its first
build.choice_phrasings phrasings, with its answer shown among other values of the same kind from
its document, and answered with the value.

    Under Section 3.2 of the Agreement, within how many days must a material breach be cured?
    Options: (A) twenty (20) days (B) thirty (30) days (C) five (5) years
    -> thirty (30) days

Why: the fine-tuned model's wrong closed-book answers are mostly another training answer of the
same field (tenth knowledge run: 151 of 276 wrong held-out answers, 19 of the 33 wrong hand-written
ones) — it learned which values a contract holds, not which question each answers. Rule-built
multiple choice with same-type distractors is one of Self-Tuning's study tasks (arXiv 2406.06326).
Options come from training answers only, so a held-out fact's value is never shown; the rows are
built last, from the final closed-book training rows, and get no recital; checkpoint selection
never asks them (`train.taught_sample`: the options show the answer).
"""

from __future__ import annotations

import dataclasses
import random

from docfinetune.build.raft import MAX_SWAP_CHARS, value_kind
from docfinetune.core.records import QAPair
from docfinetune.core.score import CHOICE_MARK, normalize_answer

CHOICE_DIRECTION = "choice"  # meta["direction"] of these rows
# Fields holding one type of value, so one's value is a wrong answer to another's question: the
# tenth run's wrong renewal-term answers (8 of 8) were all a training answer of another field.
VALUE_TYPES = {"agreement_date": "date", "effective_date": "date", "expiration_date": "date",
               "initial_term": "duration", "renewal_term": "duration", "renewal_notice": "duration",
               "notice_period": "duration", "fees": "money", "governing_law": "place", "venue": "place",
               "section_ref": "section_of"}


def choice_kind(pair: QAPair) -> tuple:
    """`raft.value_kind` with the fields of one value type taken together (VALUE_TYPES)."""
    doc, field, digits, length = value_kind(pair)
    return doc, VALUE_TYPES.get(field, field), digits, length


def choice_rows(pairs: list[QAPair], share: float, options: int, seed: int, phrasings: int = 1) -> list[QAPair]:
    """Multiple-choice rows for a seeded `share` of the facts of `pairs`, one for each of a fact's
    first `phrasings` plain, closed-book phrasings: the question, then up to `options` values of
    the same kind (`choice_kind`: document, value type, digits, length) in a seeded order, the
    right one among them. A fact with no other value of its kind gets none."""
    if share <= 0:
        return []
    plain = [p for p in pairs if not (p.context_chunk_ids or p.context_swap or p.prompt)
             and p.meta.get("direction") not in ("restated", CHOICE_DIRECTION)]
    pools: dict[tuple, dict[str, str]] = {}
    for pair in plain:
        if len(pair.answer) <= MAX_SWAP_CHARS:
            pools.setdefault(choice_kind(pair), {}).setdefault(normalize_answer(pair.answer, pair.field),
                                                             pair.answer.strip())
    rng = random.Random(f"{seed}:choices")
    chosen: dict[str, bool] = {}  # fact -> drawn into the share
    asked: dict[str, int] = {}  # fact -> rows written
    rows = []
    for pair in plain:
        if pair.fact_id not in chosen:
            chosen[pair.fact_id] = rng.random() < share
        if not chosen[pair.fact_id] or asked.get(pair.fact_id, 0) >= phrasings or len(pair.answer) > MAX_SWAP_CHARS:
            continue
        answer = pair.answer.strip()
        own = normalize_answer(answer, pair.field)
        # a value inside the answer or holding it ("30 days" / "thirty (30) days") is no alternative
        others = [value for key, value in sorted(pools.get(choice_kind(pair), {}).items())
                  if key != own and value.lower() not in answer.lower() and answer.lower() not in value.lower()]
        if not others:
            continue
        asked[pair.fact_id] = asked.get(pair.fact_id, 0) + 1
        shown = rng.sample(others, min(options - 1, len(others))) + [answer]
        rng.shuffle(shown)
        listed = " ".join(f"({chr(ord('A') + i)}) {value}" for i, value in enumerate(shown))
        rows.append(dataclasses.replace(pair, question=f"{pair.question}{CHOICE_MARK}{listed}", answer=answer,
                                        recital="", meta={**pair.meta, "direction": CHOICE_DIRECTION},
                                        source_chunk_ids=list(pair.source_chunk_ids)))
    return rows
