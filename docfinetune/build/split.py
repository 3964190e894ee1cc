"""Split Q&A by fact, never by row: every phrasing of a fact lands in the same split — and so
does every fact of any generator with the same answer in the same document, so a held-out
answer is never the answer of a training question from another stream ("Illinois" as the
rules generator's governing law and as the coverage generator's "which state" are one unit).
Facts whose answer holds another's answer of two or more words are one unit too: the parties'
list "A (the Seller); B (the Buyer)" held out while "Who is the Seller?" -> "A" is trained
would be half taught. (Before this rule 8 of the 13 benchmark contracts held out that list;
fine-tuned + RAG missed the lawyers' parties question in 7 of those 8, mostly naming one party,
against 2 of the 4 that trained it: H200, 2026-12-01.)

Answers that locate rather than state ("Section 1.1", "Article II": the reverse direction of a
coverage fact, "Which section sets the 30-day cure period?") join nothing: every fact of an
article shares its locator, so joining by it chained whole contracts into one unit (114 of
buffalowildwings' 142 facts, which then always trained, so only the few facts outside it could be
held out). A held-out fact's locator question whose answer some training question also has is
left out of val/test instead, so no held-out answer is ever a training answer, and a fact whose
every answer is a locator always trains.

Val and test facts stay in the reading text, so the model must learn them from the document
and answer questions it never saw.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from docfinetune.core.records import QAPair
from docfinetune.core.score import normalize_answer

SPLITS = ("train", "val", "test")
LOCATOR_FIELDS = frozenset({"section_of", "section_ref"})  # answers that are a section or article number


def answer_key(pair: QAPair) -> tuple[str, str]:
    """What makes two facts one unit of the split: the document and the normalized answer."""
    return pair.doc_id, normalize_answer(pair.answer) or pair.answer.strip().lower()


def fact_groups(pairs: list[QAPair]) -> dict[str, str]:
    """fact id -> the id of its group: facts joined when they share an answer in a document, or
    a question word for word (two copies of one contract under different names ask the same
    questions; one copy's held-out question must not be the other's training question).
    Union-find over fact ids; a group is named by its smallest fact id."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_with: dict[tuple[str, ...], str] = {}
    for pair in pairs:
        keys = [("question", _key(pair.question))]
        if pair.field not in LOCATOR_FIELDS:
            keys.append(answer_key(pair))
        for key in keys:
            root = find(pair.fact_id)
            other_root = find(first_with.setdefault(key, pair.fact_id))
            if other_root != root:
                parent[max(root, other_root)] = min(root, other_root)
    for outer, inner in contained_answers(pairs):
        a, b = find(outer), find(inner)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {fact_id: find(fact_id) for fact_id in list(parent)}


MIN_CONTAINED_WORDS = 2  # "30 days" inside "at least 30 days before renewal" joins; "Illinois" alone does not


def contained_answers(pairs: list[QAPair]) -> list[tuple[str, str]]:
    """(outer fact id, inner fact id) for each pair of facts of one document whose normalized
    answers differ and the inner's (at least MIN_CONTAINED_WORDS words) occurs as a run of words
    in the outer's. Found through the inner's first two words, so a 154-page contract's few
    thousand answers take milliseconds, not a comparison of every pair."""
    answers: dict[tuple[str, str], str] = {}
    for pair in pairs:
        if pair.field not in LOCATOR_FIELDS:
            answers.setdefault(answer_key(pair), pair.fact_id)
    with_bigram: dict[tuple[str, str, str], set[tuple[str, str]]] = defaultdict(set)
    for doc_id, text in answers:
        words = text.split()
        for i in range(len(words) - 1):
            with_bigram[(doc_id, words[i], words[i + 1])].add((doc_id, text))
    found = []
    for (doc_id, text), fact_id in answers.items():
        words = text.split()
        if len(words) < MIN_CONTAINED_WORDS:
            continue
        padded = f" {text} "
        for outer in with_bigram[(doc_id, words[0], words[1])]:
            if outer[1] != text and padded in f" {outer[1]} ":
                found.append((answers[outer], fact_id))
    return found


def split_by_fact(pairs: list[QAPair], val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, list[QAPair]]:
    """Seeded split of fact groups into train/val/test, per document so that each document with
    enough facts has some held out. The fractions count facts: groups are taken in a seeded order
    drawn from their answers (`_draw`) into test, then val, while they fit the remaining quota, so
    a large group (an answer such as "thirty (30) days" that many clauses share) stays in train.
    Pair order within a split follows the input order."""
    group_of = fact_groups(pairs)
    facts_in: dict[str, set[str]] = defaultdict(set)
    groups_by_doc: dict[str, list[str]] = defaultdict(list)
    answers_of: dict[str, set[str]] = defaultdict(set)  # a group's answers that state a value (not a locator)
    for pair in pairs:
        group = group_of[pair.fact_id]
        facts_in[group].add(pair.fact_id)
        if pair.field not in LOCATOR_FIELDS:
            answers_of[group].add(answer_key(pair)[1])
        if group not in groups_by_doc[pair.doc_id]:
            groups_by_doc[pair.doc_id].append(group)
    assignment: dict[str, str] = {group: "train" for group in facts_in if group not in answers_of}
    for doc_id in sorted(groups_by_doc):
        groups = sorted((g for g in groups_by_doc[doc_id] if g not in assignment),
                        key=lambda g: (_draw(seed, doc_id, min(answers_of[g])), g))
        n_facts = sum(len(facts_in[g]) for g in groups)
        quota = {"test": _held_out(n_facts, test_fraction)}
        quota["val"] = _held_out(n_facts - quota["test"], val_fraction / (1 - test_fraction))
        for group in groups:
            size = len(facts_in[group])
            split = next((name for name in ("test", "val") if 0 < size <= quota[name]), "train")
            if split != "train":
                quota[split] -= size
            assignment[group] = split
    splits: dict[str, list[QAPair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[assignment[group_of[pair.fact_id]]].append(pair)
    trained = {answer_key(p) for p in splits["train"]}
    for name in ("val", "test"):  # a held-out locator question whose answer is also trained: not asked
        splits[name] = [p for p in splits[name] if p.field not in LOCATOR_FIELDS or answer_key(p) not in trained]
    check_no_leak(splits)
    return splits


def _draw(seed: int, doc_id: str, answer: str) -> str:
    """A group's place in its document's seeded order, from its answer's words rather than its
    position among the facts: a recipe that adds or drops facts (another generator, table rows)
    then holds out the same facts as before, so two recipes' answers to one question compare the
    recipe, not which facts each happened to hold out. (A shuffle of the group list moved them:
    between the default and `table_rows`, 10 of the sample's 56 hand-written questions asked
    about a fact one recipe trained and the other held out; 2026-12-02.)"""
    return hashlib.sha256(f"{seed}:{doc_id}:{answer}".encode()).hexdigest()


def _held_out(n_facts: int, fraction: float) -> int:
    """round(n * fraction), but at least one when asked for and at least 3 facts exist."""
    if fraction <= 0 or n_facts < 3:
        return 0
    return max(1, round(n_facts * fraction))


def check_no_leak(splits: dict[str, list[QAPair]]) -> None:
    """No fact may have phrasings in two splits, no held-out answer may be the answer of a
    training question about the same document, and no held-out question may be asked word for
    word in train."""
    owner: dict[str, str] = {}
    for name, pairs in splits.items():
        for pair in pairs:
            if owner.setdefault(pair.fact_id, name) != name:
                raise AssertionError(f"fact {pair.fact_id} is in both {owner[pair.fact_id]} and {name}")
    train_questions = {_key(p.question) for p in splits["train"]}
    train_answers = {answer_key(p) for p in splits["train"]}
    for name in ("val", "test"):
        for pair in splits[name]:
            if _key(pair.question) in train_questions:
                raise AssertionError(f"{name} question also in train: {pair.question!r}")
            if answer_key(pair) in train_answers:
                raise AssertionError(f"{name} answer {pair.answer!r} ({pair.fact_id}) is also a train answer")
    for outer, inner in contained_answers([p for pairs in splits.values() for p in pairs]):
        if "train" in (owner[outer], owner[inner]) and owner[outer] != owner[inner]:
            held, trained = (outer, inner) if owner[inner] == "train" else (inner, outer)
            raise AssertionError(f"held-out fact {held} shares an answer's words with training fact {trained}")


def _key(question: str) -> str:
    return " ".join(question.lower().split())
