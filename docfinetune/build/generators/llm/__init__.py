"""The ``llm`` Q&A generator: an instruct model reads each chunk and writes facts as JSON.

For every chunk the model is asked for up to ``pairs_per_chunk`` facts the chunk states, each
with a short answer copied from the text and several phrasings of a question that names the
document (see PROMPT_TEMPLATE). Each phrasing becomes a QAPair; all phrasings of one fact share
a fact id, ``<doc_id>:llm:<chunk index, 4 digits>:<fact number>``, so the split keeps them
together.

The model is reached through ``client.ReplyClient``, shared with the other LLM streams
(``streams.py``: question paraphrases, entity-centred rewrites): an OpenAI-compatible endpoint
(``url``) or a local transformers model (``model``), batched, with retries and backoff, and every
raw reply cached under ``cache_dir`` by a hash of everything that shapes it (the prompt version
below included), so an interrupted run resumes where it stopped and an unchanged rerun sends no
request at all.

Replies are parsed leniently: the JSON is taken out of code fences and surrounding prose
(not counted as a repair); trailing commas, single-quoted strings, a reply cut off mid-list, a
single fact or a wrapper object instead of a list, and ``question``/``answer`` singular keys are
repaired (counted in ``stats["repaired"]``); a reply with no usable JSON is skipped
(``stats["skipped"]``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

from docfinetune.build.generators.llm.client import ReplyClient, document_titles, encode_prompt
from docfinetune.build.generators.llm.json_repair import json_values
from docfinetune.core.config import LLMQAConfig
from docfinetune.core.records import Chunk, Document, QAPair

__all__ = ["PROMPT_TEMPLATE", "PROMPT_VERSION", "LLMQAGenerator", "ReplyClient", "encode_prompt", "parse_reply",
           "render_prompt"]

# Bump when PROMPT_TEMPLATE or the way replies are requested changes: it is part of the cache key.
PROMPT_VERSION = "llm-qa-1"

PROMPT_TEMPLATE = """\
You write training questions about an organisation's documents.

Document: {title}
Section: {heading}
Text:
\"\"\"
{text}
\"\"\"

List up to {pairs} facts that this text states (names, dates, amounts, periods, places, \
obligations). For each fact give:
- "answer": a short answer copied word for word from the text;
- "questions": 3 different phrasings of a question whose answer is that answer. Every \
question must name the document ("{title}") so that it can be understood without the text.
Use only what the text says. If it states no fact, reply []. Reply with JSON only, in this form:
[{{"answer": "<short answer copied from the text>", "questions": ["<phrasing 1>", "<phrasing 2>", "<phrasing 3>"]}}]"""

# Keys under which a JSON object may carry the list of facts (a wrapper object instead of a list).
_LIST_KEYS = ("facts", "pairs", "qa", "qas", "items", "questions_and_answers", "data", "results")


def render_prompt(title: str, heading: str, text: str, pairs: int) -> str:
    return PROMPT_TEMPLATE.format(title=title, heading=heading or "(none)", text=text.strip(), pairs=pairs)


# --------------------------------------------------------------------------- parsing replies


def _as_text(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return re.sub(r"\s+", " ", str(value)).strip()
    return ""


def parse_reply(reply: str) -> tuple[list[dict] | None, bool]:
    """A reply as facts [{"answer": str, "questions": [str, ...]}, ...] and whether it was repaired.

    None when no list of facts can be read from it.
    """
    for value, repaired in json_values(reply or ""):
        facts, repaired = _as_facts(value, repaired)
        if facts is not None:
            return facts, repaired
    return None, False


def _as_facts(value: Any, repaired: bool) -> tuple[list[dict] | None, bool]:
    """Decoded JSON as a list of facts; None when it is not shaped like one.

    Facts with the same answer are merged (their phrasings belong to one fact); facts with an
    empty answer or no question are dropped.
    """
    if isinstance(value, dict):
        inner = next((value[k] for k in _LIST_KEYS if isinstance(value.get(k), list)), None)
        if inner is None and len(value) == 1 and isinstance(next(iter(value.values())), list):
            inner = next(iter(value.values()))
        if inner is not None:
            value = inner
        elif any(k in value for k in ("answer", "question", "questions")):
            value = [value]
        else:
            return None, False
        repaired = True
    if not isinstance(value, list) or (value and not any(isinstance(item, dict) for item in value)):
        return None, False
    facts: list[dict] = []
    by_answer: dict[str, dict] = {}
    for item in value:
        if not isinstance(item, dict):
            continue
        answer = _as_text(item.get("answer", item.get("a")))
        questions = item.get("questions")
        if questions is None:
            questions = item.get("question", item.get("q"))
            repaired = True
        if "answer" not in item:
            repaired = True
        if isinstance(questions, (str, int, float)):
            questions = [questions]
        if not isinstance(questions, list):
            questions = []
        questions = [q for q in (_as_text(q) for q in questions) if q]
        if not answer or not questions:
            continue
        fact = by_answer.get(answer.lower())
        if fact is None:
            fact = by_answer[answer.lower()] = {"answer": answer, "questions": []}
            facts.append(fact)
        seen = {q.lower() for q in fact["questions"]}
        for q in questions:
            if q.lower() not in seen:
                seen.add(q.lower())
                fact["questions"].append(q)
    return facts, repaired


# --------------------------------------------------------------------------- the generator


class LLMQAGenerator:
    """Q&A by an instruct model, per chunk, through an endpoint or transformers (module docstring).

    After `generate`, `stats` holds: chunks; requests (HTTP requests sent, retries included, or
    chunks run through the local model); cache_hits; retries; repaired and skipped (replies);
    facts and pairs (kept); seconds. The backend, batching, retries and reply cache are the
    shared `ReplyClient`'s (`self.client`).
    """

    name = "llm"
    needs_workspace = True  # a reply cache under cache/qa_llm/ and progress per chunk

    def __init__(self, config: LLMQAConfig, cache_dir: Path,
                 on_progress: Callable[[int, int], None] | None = None, allow_download: bool = False):
        self.client = ReplyClient(config, cache_dir, allow_download=allow_download, on_progress=on_progress,
                                  thread_name="qa-llm")
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.on_progress = on_progress
        self.allow_download = allow_download
        self.stats: dict[str, Any] = {}

    @property
    def backend(self) -> str:
        return self.client.backend

    @property
    def _local(self) -> tuple[Any, Any] | None:
        """The local (model, tokenizer) once loaded, else None."""
        return self.client._local

    # ------------------------------------------------------------------ entry point

    def generate(self, documents: list[Document], chunks: list[Chunk]) -> list[QAPair]:
        started = time.perf_counter()
        self.stats = {"chunks": len(chunks), "requests": 0, "cache_hits": 0, "retries": 0,
                      "repaired": 0, "skipped": 0, "facts": 0, "pairs": 0, "seconds": 0.0}
        titles = document_titles(documents)
        prompts = [render_prompt(titles.get(c.doc_id, c.doc_id), c.heading, c.text,
                                 self.config.pairs_per_chunk) for c in chunks]
        replies = self.client.replies(prompts, PROMPT_VERSION, {"pairs_per_chunk": self.config.pairs_per_chunk},
                                      stats=self.stats)
        pairs: list[QAPair] = []
        for chunk, reply in zip(chunks, replies):
            pairs.extend(self._pairs(chunk, reply))
        self.stats["pairs"] = len(pairs)
        self.stats["seconds"] = round(time.perf_counter() - started, 3)
        return pairs

    def _pairs(self, chunk: Chunk, reply: str) -> list[QAPair]:
        facts, repaired = parse_reply(reply)
        if facts is None:
            self.stats["skipped"] += 1
            return []
        self.stats["repaired"] += int(repaired)
        facts = facts[: self.config.pairs_per_chunk]
        self.stats["facts"] += len(facts)
        text = re.sub(r"\s+", " ", chunk.text).lower()
        pairs = []
        for k, fact in enumerate(facts):
            fact_id = f"{chunk.doc_id}:llm:{chunk.index:04d}:{k}"
            in_text = fact["answer"].lower() in text
            for phrasing, question in enumerate(fact["questions"]):
                pairs.append(QAPair(
                    question=question, answer=fact["answer"], fact_id=fact_id, doc_id=chunk.doc_id,
                    source_chunk_ids=[chunk.chunk_id], generator=self.name, field="llm",
                    meta={"phrasing": phrasing, "answer_in_text": in_text},
                ))
        return pairs
