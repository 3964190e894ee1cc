"""Split Q&A by fact, never by row: every phrasing of a fact lands in the same split.

Val and test facts stay in the continued-pretraining text, so the model must learn them from
the document and answer questions it never saw.
"""

from __future__ import annotations

import random
from collections import defaultdict

from docfinetune.core.records import QAPair

SPLITS = ("train", "val", "test")


def split_by_fact(pairs: list[QAPair], val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, list[QAPair]]:
    """Seeded split of facts into train/val/test, by document so that each document with
    enough facts has some held out. Pair order within a split follows the input order."""
    facts_by_doc: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        if pair.fact_id not in facts_by_doc[pair.doc_id]:
            facts_by_doc[pair.doc_id].append(pair.fact_id)
    assignment: dict[str, str] = {}
    for doc_id in sorted(facts_by_doc):
        facts = sorted(facts_by_doc[doc_id])
        random.Random(f"{seed}:{doc_id}").shuffle(facts)
        n_test = _held_out(len(facts), test_fraction)
        n_val = _held_out(len(facts) - n_test, val_fraction / (1 - test_fraction))
        for i, fact_id in enumerate(facts):
            assignment[fact_id] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    splits: dict[str, list[QAPair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[assignment[pair.fact_id]].append(pair)
    check_no_leak(splits)
    return splits


def _held_out(n_facts: int, fraction: float) -> int:
    """round(n * fraction), but at least one when asked for and at least 3 facts exist."""
    if fraction <= 0 or n_facts < 3:
        return 0
    return max(1, round(n_facts * fraction))


def check_no_leak(splits: dict[str, list[QAPair]]) -> None:
    """No fact may have phrasings in two splits, and no held-out question may be asked
    word for word in train."""
    owner: dict[str, str] = {}
    for name, pairs in splits.items():
        for pair in pairs:
            if owner.setdefault(pair.fact_id, name) != name:
                raise AssertionError(f"fact {pair.fact_id} is in both {owner[pair.fact_id]} and {name}")
    train_questions = {_key(p.question) for p in splits["train"]}
    for name in ("val", "test"):
        for pair in splits[name]:
            if _key(pair.question) in train_questions:
                raise AssertionError(f"{name} question also in train: {pair.question!r}")


def _key(question: str) -> str:
    return " ".join(question.lower().split())
