"""Recitals: the text a closed-book training answer is recalled from (build.recite).

A fine-tuned Gemma 3 270M continues a held-out fact's own text to its answer 92% of the time
but answers the same facts' questions 16% of the time (benchmarks/RESULTS.md, "Knowledge",
eighth run): the document is stored as text, reached by its preceding words, not by a question.
With recitals each closed-book training answer is written as the clause it comes from, from the
start of its sentence to the end of the answer, then the answer after `RECITAL_MARK`
(recitation before answering: Sun et al., ICLR 2023). A question is then answered by writing the
text the model memorised, and the answer is read off its end.

Measured on the H200 (ninth run): recitals from the sentence start lose — closed-book 53/107 against
59/107, held-out facts 36/275 against 44/275 — because the recital copies the words the question
already quotes and fills the value from other taught answers. What the read-back continues is the
record from its start: the document title and section heading, then the chunk's text. So recitals
may also start there (`build.recital_from: record`), one line, the record's line breaks as spaces.
On the one contract the tenth run reached with them (duos): closed-book 3/7 against 5/7, held-out
facts 2/23 against 5/23 — no sign that either form helps; both stay off.

Read on (generation.continue_recitals: the recited clause, cut before its value, continued as plain
text), sentence recitals answer twice the held-out facts (eleventh run: 80/291 against the
default's 36-44 of ~275) but lose the users' topic questions (the sample's clause questions 9/42
against 14-15): from a topic the model recites a wrong clause. `build.recite_generators` limits
recitals to some generators' rows; `build.recite_both` keeps every recited row plain as well, so
a question can be answered both ways and the recital kept only when it quotes the question.

Quotes (`add_quotes`, build.open_book_quotes) are the open-book rows' recitals: the sentence of the
retrieved context that states the answer, so the clause written before an answer with retrieval is
the prompt's own.

A recital never holds a held-out (val or test) fact's answer where that fact is stated (its source
chunk): those facts are still learned by reading alone (build.split's rule), so a sentence recital
starts after any such answer and a record recital that would hold one is not written. Elsewhere the
same words are mentions, not the fact ("Provider", a held-out party role, is in most of a
contract's sentences).
"""

from __future__ import annotations

import dataclasses
import re

from docfinetune.core.generate import swapped_context
from docfinetune.core.records import Chunk, QAPair
from docfinetune.core.score import answer_pattern, normalize_spaces, sentence_start

_LIST_MARKER = re.compile(r"\s*(?:\(?(?:[a-z]|[ivx]{1,4}|\d{1,2})\)|\d{1,2}\.)\s+")  # "(a) ", "iv) ", "3. "


def recital_for(pair: QAPair, chunk_texts: dict[str, str], held_out: dict[str, list[str]], max_chars: int,
                start_at: str = "sentence") -> str:
    """The recital of `pair`: the sentence of a source chunk holding the answer, from its start (or
    later, to keep within `max_chars` and after any answer `held_out[chunk_id]` lists) to the
    answer's end, on one line; "" when no source chunk states the answer verbatim or a held-out
    answer overlaps it. With `start_at` "record", `chunk_texts` are the reading-text records and
    the recital runs from the record's start, or is "" when that is longer than `max_chars` or
    holds a held-out answer."""
    answer = pair.answer.strip()
    if not answer:
        return ""
    for chunk_id in pair.source_chunk_ids:
        text = chunk_texts.get(chunk_id, "")
        found = answer_pattern(answer, ignore_case=True).search(text)
        if found is None:
            continue
        start, end = found.span()
        if start_at == "record":
            stated = (answer_pattern(value, ignore_case=True).search(text, 0, end) for value in held_out.get(chunk_id, []))
            recital = normalize_spaces(text[:end]) if end <= max_chars and not any(stated) else ""
            return recital if len(recital.split()) >= len(normalize_spaces(answer).split()) + 2 else ""
        window_start = sentence_start(text, start)
        window_start = _after_held_out(text, window_start, start, end, held_out.get(chunk_id, []))
        if window_start is None:
            return ""
        if end - window_start > max_chars:  # keep the words nearest the answer
            cut = end - max_chars
            space = text.find(" ", cut)
            window_start = space + 1 if 0 <= space < start else start
        recital = normalize_spaces(text[window_start:end])
        # two words or more before the answer, or nothing to recall it by: the answer alone
        return recital if len(recital.split()) >= len(normalize_spaces(answer).split()) + 2 else ""
    return ""


def add_recitals(pairs: list[QAPair], chunks: list[Chunk], held_out: list[QAPair], max_chars: int,
                 start_at: str = "sentence", records: list[dict] = (), generators: tuple[str, ...] | None = None,
                 keep_plain: bool = False, copy_all: bool = False) -> int:
    """Set `recital` on each closed-book pair (no context chunks) of `generators` (None: all) whose
    answer its source states, recited from its sentence or (`start_at` "record") from its chunk's
    reading-text record in `records`; with `keep_plain` the pair stays as it was and a recited copy,
    asked for a recital (`prompt` "recite"), is appended to `pairs` (build.recite_both) — with `copy_all`
    a copy of every such pair, recited or not (build.recite_both_rows "all"). Returns how many got
    a recital."""
    chunk_texts = ({r["chunk_id"]: r["text"] for r in records} if start_at == "record"
                   else {c.chunk_id: c.text for c in chunks})
    held_out_answers = _held_out_answers(held_out)
    copies, recited = [], 0
    for pair in pairs:
        if pair.context_chunk_ids or (generators is not None and pair.generator not in generators):
            continue
        recital = recital_for(pair, chunk_texts, held_out_answers, max_chars, start_at)
        recited += bool(recital)
        if keep_plain and (recital or copy_all):
            copies.append(dataclasses.replace(pair, recital=recital, prompt="recite", meta=dict(pair.meta),
                                              source_chunk_ids=list(pair.source_chunk_ids)))
        elif recital:
            pair.recital = recital
    pairs += copies
    return recited


def add_quotes(rows: list[QAPair], chunks: list[Chunk], held_out: list[QAPair], max_chars: int) -> int:
    """Set `recital` on each open-book row (`context_chunk_ids`) whose context states its answer: the
    sentence that states it, as the prompt shows it (a counterfactual twin's changed text), from its
    start to the answer's end — in the row's own source chunk when shown, else the first chunk that
    states it (a common value such as "thirty (30) days" is in many clauses) (build.open_book_quotes;
    RAFT's answer quoting the gold chunk). Rows whose context does not state the answer (distractors
    only) answer plainly. The same limits as a recital: at most `max_chars`, never holding a
    held-out answer. Returns how many got one."""
    by_id = {c.chunk_id: c for c in chunks}
    held_out_answers = _held_out_answers(held_out)
    quoted = 0
    for row in rows:
        if not row.context_chunk_ids:
            continue
        shown = swapped_context([by_id[cid] for cid in row.context_chunk_ids if cid in by_id], row.context_swap)
        own = [c.chunk_id for c in shown if c.chunk_id in row.source_chunk_ids]
        view = dataclasses.replace(row, source_chunk_ids=own + [c.chunk_id for c in shown if c.chunk_id not in own])
        row.recital = recital_for(view, {c.chunk_id: c.text for c in shown}, held_out_answers, max_chars)
        quoted += bool(row.recital)
    return quoted


def _held_out_answers(held_out: list[QAPair]) -> dict[str, list[str]]:
    """chunk id -> the held-out answers it states (what no recital or quote may hold)."""
    answers: dict[str, list[str]] = {}
    for pair in held_out:
        answer = normalize_spaces(pair.answer).lower()
        for chunk_id in pair.source_chunk_ids:
            if answer and answer not in answers.setdefault(chunk_id, []):
                answers[chunk_id].append(answer)
    return answers


def _after_held_out(text: str, window_start: int, answer_start: int, answer_end: int,
                    held_out: list[str]) -> int | None:
    """`window_start` moved past every held-out answer before the answer; None when one overlaps
    the answer itself."""
    for value in held_out:
        for found in answer_pattern(value, ignore_case=True).finditer(text, window_start):
            if found.start() >= answer_end:
                break
            if found.end() > answer_start:
                return None
            window_start = max(window_start, found.end())
    while window_start < answer_start and not text[window_start].isspace() and window_start > 0 \
            and not text[window_start - 1].isspace():  # to the next word ("Customer" + "'s")
        window_start += 1
    marker = _LIST_MARKER.match(text, window_start, answer_start)
    if marker:
        window_start = marker.end()
    while window_start < answer_start and not text[window_start].isalnum() and text[window_start] not in "\"$(":
        window_start += 1
    return window_start
