"""How much of what the fine-tuned model says is copied verbatim from its training text.

Two measures, both on text with every whitespace run written as one space (the training text
keeps the PDF's line breaks, answers are one line):

- copied share of an answer: the share of its characters inside some run of at least
  `min_chars` characters that also occurs in the training text (CPT records and Q&A-train
  answers). A run of L >= N matching characters is exactly the union of its N-character
  windows, so marking every window of the answer that occurs in the training text marks the
  copied characters; the windows of the training text are kept as a sorted array of 64-bit
  hashes (8 bytes a character: ~8 MB for a 1 MB corpus, indexed in well under a second).
- extraction test: give the model the first part of a training record, let it continue
  greedily, and measure how much of the true continuation comes back (its copied share
  against the generated text, and the longest exact prefix).
- read-back of held-out facts: give the model its reading-text record up to a held-out fact's
  answer, and check whether its continuation states the answer (the questions' scorer). Set beside the fact's questions, this
  tells a fact not remembered from one remembered but not reached by a question.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Iterable

from docfinetune.core.generate import RECITAL_PREFIX_MIN_WORDS
from docfinetune.core.score import answer_pattern, normalize_spaces, sentence_start

_BASE = 0x100000001B3  # FNV-64 prime: odd, so multiplication by it is invertible mod 2**64
_MASK = (1 << 64) - 1


def _codes(text: str):
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _mix(h):
    """splitmix64's finalizer: spreads the polynomial hash's structure over all 64 bits."""
    import numpy as np

    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def window_hashes(text: str, n: int):
    """A 64-bit hash of every `n`-character window of `text`, by start position."""
    import numpy as np

    codes = _codes(text)
    count = len(codes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(count, dtype=np.uint64)
    base = np.uint64(_BASE)
    with np.errstate(over="ignore"):
        for j in range(n):  # Horner's rule over the window, all windows at once (wraps mod 2**64)
            h = h * base + codes[j:j + count]
        return _mix(h)


class VerbatimIndex:
    """The `min_chars`-character windows of some texts, for finding copied runs."""

    def __init__(self, texts: Iterable[str], min_chars: int) -> None:
        import numpy as np

        self.min_chars = min_chars
        self.chars = 0
        parts = []
        for text in texts:
            text = normalize_spaces(text)
            self.chars += len(text)
            parts.append(window_hashes(text, min_chars))  # texts are hashed apart: no run spans two
        self._hashes = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._hashes)

    def covered(self, text: str) -> list[bool]:
        """For each character of `normalize_spaces(text)`, whether it lies in a run of at least
        `min_chars` characters that occurs in the indexed texts."""
        import numpy as np

        text = normalize_spaces(text)
        mask = np.zeros(len(text), dtype=bool)
        hashes = window_hashes(text, self.min_chars)
        if len(hashes) and len(self._hashes):
            where = np.searchsorted(self._hashes, hashes)
            found = self._hashes[np.minimum(where, len(self._hashes) - 1)] == hashes
            # window i covers characters i .. i+n-1: spread each hit over its n characters
            delta = np.zeros(len(text) + 1, dtype=np.int64)
            starts = np.flatnonzero(found)
            np.add.at(delta, starts, 1)
            np.add.at(delta, starts + self.min_chars, -1)
            mask = np.cumsum(delta[:-1]) > 0
        return mask.tolist()


@dataclass(frozen=True)
class Copied:
    chars: int  # characters of the text, whitespace runs as one space
    copied_chars: int
    longest_run_chars: int  # the longest run of copied characters

    @property
    def share(self) -> float:
        return self.copied_chars / self.chars if self.chars else 0.0


def copied(text: str, index: VerbatimIndex) -> Copied:
    """How much of `text` is covered by runs of at least `index.min_chars` characters found in
    the indexed texts. (A covered run may join two overlapping copies from different places.)"""
    mask = index.covered(text)
    longest = run = 0
    for hit in mask:
        run = run + 1 if hit else 0
        longest = max(longest, run)
    return Copied(len(mask), sum(mask), longest)


def _spread(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "median": None, "max": None}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "median": statistics.median(values),
        "max": max(values),
    }


def audit_answers(questions: list[str], answers: list[str], index: VerbatimIndex, worst: int) -> dict:
    """Copied share of every non-empty answer: mean, standard deviation, median, the share of
    answers mostly (>= half) copied, and the `worst` most copied answers (those with any copy)."""
    rows = []
    for question, answer in zip(questions, answers):
        found = copied(answer, index)
        if found.chars:
            rows.append((question, normalize_spaces(answer), found))
    shares = [c.share for _, _, c in rows]
    ranked = sorted((r for r in rows if r[2].copied_chars), key=lambda r: (-r[2].share, -r[2].longest_run_chars))[:worst]
    return {
        "answers": len(rows),
        "empty_answers": len(answers) - len(rows),
        "copied_share": _spread(shares),
        "mostly_copied": (sum(s >= 0.5 for s in shares) / len(shares)) if shares else None,
        "longest_run_chars": max((c.longest_run_chars for _, _, c in rows), default=0),
        "worst": [{"question": q, "answer": a, "copied_share": c.share, "longest_run_chars": c.longest_run_chars}
                  for q, a, c in ranked],
    }


def common_prefix_chars(generated: str, reference: str) -> int:
    """Characters `generated` reproduces exactly from the start of `reference` (spaces normalized)."""
    a, b = normalize_spaces(generated), normalize_spaces(reference)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def split_record(text: str, prefix_share: float) -> tuple[str, str]:
    """(prompt, true continuation): cut at the last space at or before `prefix_share` of the
    text, so the continuation starts with a whole word."""
    cut = int(len(text) * prefix_share)
    space = text.rfind(" ", 0, cut + 1)
    cut = space if space > 0 else cut
    return text[:cut], text[cut:]


def continue_greedily(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy continuations of `prompts` (the answers' settings, without the stop at the end
    of the first line: a memorized paragraph runs on)."""
    from docfinetune.core.generate import generate

    return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    stop_at_line_end=False)


def sample_records(records: list[dict], count: int, seed: int) -> list[dict]:
    """A seeded sample of `count` records, in their file order."""
    if count >= len(records):
        return list(records)
    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), count))]


def extraction_cases(records: list[dict], tokenizer, prefix_share: float, max_new_tokens: int) -> list[dict]:
    """One case per record: its prompt and the true continuation cut to `max_new_tokens` tokens."""
    cases = []
    for record in records:
        prompt, rest = split_record(record["text"], prefix_share)
        ids = tokenizer(rest, add_special_tokens=False)["input_ids"][:max_new_tokens]
        reference = tokenizer.decode(ids, skip_special_tokens=True)
        if prompt.strip() and reference.strip():
            cases.append({"chunk_id": record.get("chunk_id", ""), "prompt": prompt, "reference": reference})
    return cases


def score_extraction(cases: list[dict], generated: list[str], min_chars: int, shown: int = 3) -> dict:
    """How much of each true continuation the generations reproduce: the share of its characters
    in runs of >= `min_chars` shared with the generation, and the longest exact prefix."""
    rows = []
    for case, text in zip(cases, generated):
        found = copied(case["reference"], VerbatimIndex([text], min_chars))
        prefix = common_prefix_chars(text.lstrip(), case["reference"].lstrip())
        rows.append({**case, "generated": text, "reproduced_share": found.share,
                     "exact_prefix_chars": prefix, "reference_chars": found.chars,
                     "whole": prefix >= len(normalize_spaces(case["reference"]))})
    shares = [r["reproduced_share"] for r in rows]
    prefixes = [r["exact_prefix_chars"] for r in rows]
    ranked = sorted(rows, key=lambda r: (-r["reproduced_share"], -r["exact_prefix_chars"]))[:shown]
    return {
        "records": len(rows),
        "reproduced_share": _spread(shares),
        "exact_prefix_chars": _spread([float(p) for p in prefixes]),
        "reproduced_whole": sum(r["whole"] for r in rows),
        "worst": [{k: r[k] for k in ("chunk_id", "prompt", "reference", "generated", "reproduced_share",
                                      "exact_prefix_chars")} | {"prompt": r["prompt"][-120:]} for r in ranked],
    }


def read_back_cases(held_out: list[dict], records: list[dict], tokenizer, extra_tokens: int = 4) -> list[dict]:
    """One case per held-out fact (Q&A-test rows, by fact_id) whose answer stands in the original
    reading-text record of one of its source chunks (restatements, which carry a `variant`, are
    left out: one wording per fact): the record up to the answer's first occurrence is the prompt,
    and the model may generate the answer's tokens plus `extra_tokens`."""
    originals = {r["chunk_id"]: r["text"] for r in records if "chunk_id" in r and r.get("variant") is None}
    cases, seen = [], set()
    for row in held_out:
        fact = row.get("fact_id") or (row.get("doc_id"), row["answer"])
        if fact in seen:
            continue
        for chunk_id in row.get("source_chunk_ids", []):
            text = originals.get(chunk_id, "")
            pattern = answer_pattern(row["answer"])
            found = pattern.search(text) if pattern else None
            start = found.start() if found else -1
            if start > 0:
                seen.add(fact)
                tokens = len(tokenizer(" " + row["answer"], add_special_tokens=False)["input_ids"])
                cases.append({"fact_id": row.get("fact_id", ""), "field": row.get("field", ""),
                              "prompt": text[:start].rstrip(" "), "answer": row["answer"],
                              "max_new_tokens": tokens + extra_tokens})
                break
    return cases


def sentence_cases(cases: list[dict], max_chars: int, min_words: int = RECITAL_PREFIX_MIN_WORDS) -> list[dict]:
    """The read-back cases cut to the answer's own sentence, one line, at most `max_chars` (the
    words nearest the answer kept): the prompt a sentence recital leaves when it is cut before its
    value (generation.continue_recitals; `max_chars` is build.recital_max_chars), so the two
    read-backs tell how much of the memory a sentence alone reaches. Cases with fewer than
    `min_words` words left are dropped, as there."""
    out = []
    for case in cases:
        prompt = case["prompt"]
        tail = normalize_spaces(prompt[sentence_start(prompt, len(prompt)):])
        cut = len(tail) - max_chars
        if cut > 0:  # whole words only
            tail = tail[cut:] if tail[cut - 1] == " " else tail[cut:].split(" ", 1)[-1]
        if len(tail.split()) >= min_words:
            out.append({**case, "prompt": tail})
    return out


def continue_cases(model, tokenizer, cases: list[dict], batch_size: int) -> list[str]:
    """Greedy continuations of read-back cases, the prompts grouped by their token allowance."""
    out = [""] * len(cases)
    by_allowance: dict[int, list[int]] = {}
    for i, case in enumerate(cases):
        by_allowance.setdefault(case["max_new_tokens"], []).append(i)
    for allowance, members in sorted(by_allowance.items()):
        texts = continue_greedily(model, tokenizer, [cases[i]["prompt"] for i in members], allowance, batch_size)
        for i, text in zip(members, texts):
            out[i] = text
    return out


def score_read_back(cases: list[dict], generated: list[str]) -> dict:
    """How many continuations state their fact's answer, by the scorer the questions get (so the
    two figures compare; the continuation is only a few tokens longer than the answer), overall
    and per field, with every case's verdict."""
    from docfinetune.core.score import answer_matches

    rows = [{"fact_id": case["fact_id"], "field": case["field"], "answer": case["answer"], "generated": text,
             "read_back": answer_matches(normalize_spaces(text), case["answer"], case["field"] or None)}
            for case, text in zip(cases, generated)]
    fields: dict[str, list[int]] = {}
    for row in rows:
        fields.setdefault(row["field"], [0, 0])
        fields[row["field"]][0] += row["read_back"]
        fields[row["field"]][1] += 1
    return {"facts": len(rows), "read_back": sum(r["read_back"] for r in rows),
            "by_field": {f: {"read_back": k, "facts": n} for f, (k, n) in sorted(fields.items())},
            "records": rows}
