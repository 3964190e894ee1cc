"""The ``llm`` Q&A generator: an instruct model reads each chunk and writes facts as JSON.

For every chunk the model is asked for up to ``pairs_per_chunk`` facts the chunk states, each
with a short answer copied from the text and several phrasings of a question that names the
document (see PROMPT_TEMPLATE). Each phrasing becomes a QAPair; all phrasings of one fact share
a fact id, ``<doc_id>:llm:<chunk index, 4 digits>:<fact number>``, so the split keeps them
together.

Two backends, picked by the config:
- ``url``: an OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, a hosted API), POST
  ``{url}/chat/completions`` with the standard library only; ``batch_size`` requests in flight;
  connection errors, timeouts, HTTP 429 and 5xx are retried with doubling backoff, any other
  4xx fails at once.
- ``model``: a transformers model (hub id or local folder, safetensors only, never remote code),
  batched greedy generation with left padding; torch and transformers are imported only here.

Every raw reply is cached under ``cache_dir`` by a hash of everything that shapes it, so an
interrupted run resumes where it stopped and an unchanged rerun sends no request at all.

Replies are parsed leniently: the JSON is taken out of code fences and surrounding prose
(not counted as a repair); trailing commas, single-quoted strings, a reply cut off mid-list, a
single fact or a wrapper object instead of a list, and ``question``/``answer`` singular keys are
repaired (counted in ``stats["repaired"]``); a reply with no usable JSON is skipped
(``stats["skipped"]``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from docfinetune.build.generators.llm.json_repair import json_values
from docfinetune.core.config import LLMQAConfig
from docfinetune.core.errors import DocfinetuneError
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.workspace import write_json

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


# --------------------------------------------------------------------------- local generation


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of one user turn plus the assistant's opening, through the chat template when
    the tokenizer has one (control tokens inside the document text are encoded as plain text)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        try:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=False, sanitize_control_tokens=True)
        except (TypeError, NotImplementedError):  # a tokenizer class without sanitizing
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=False)
        return list(ids)
    return list(tokenizer(prompt + "\n\nJSON:\n", add_special_tokens=True)["input_ids"])


# --------------------------------------------------------------------------- the generator


class LLMQAGenerator:
    """Q&A by an instruct model, per chunk, through an endpoint or transformers (module docstring).

    After `generate`, `stats` holds: chunks; requests (HTTP requests sent, retries included, or
    chunks run through the local model); cache_hits; retries; repaired and skipped (replies);
    facts and pairs (kept); seconds.
    """

    name = "llm"
    needs_workspace = True  # a reply cache under cache/qa_llm/ and progress per chunk

    def __init__(self, config: LLMQAConfig, cache_dir: Path,
                 on_progress: Callable[[int, int], None] | None = None, allow_download: bool = False):
        if not (config.model or config.url):
            raise DocfinetuneError("build.llm: the llm generator needs llm.model (--generator-model) "
                                   "or llm.url (--generator-url)")
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.on_progress = on_progress
        self.allow_download = allow_download
        self.stats: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._local: tuple[Any, Any] | None = None  # (model, tokenizer), loaded on first need

    @property
    def backend(self) -> str:
        return "http" if self.config.url else "transformers"

    # ------------------------------------------------------------------ entry point

    def generate(self, documents: list[Document], chunks: list[Chunk]) -> list[QAPair]:
        started = time.perf_counter()
        self.stats = {"chunks": len(chunks), "requests": 0, "cache_hits": 0, "retries": 0,
                      "repaired": 0, "skipped": 0, "facts": 0, "pairs": 0, "seconds": 0.0}
        titles = {d.doc_id: d.title.strip() or Path(d.file_name).stem or d.doc_id for d in documents}
        prompts = [render_prompt(titles.get(c.doc_id, c.doc_id), c.heading, c.text,
                                 self.config.pairs_per_chunk) for c in chunks]
        keys = [self._cache_key(p) for p in prompts]

        replies: dict[int, str] = {}
        pending: list[int] = []
        for i, key in enumerate(keys):
            cached = self._read_cache(key)
            if cached is None:
                pending.append(i)
            else:
                replies[i] = cached
        self.stats["cache_hits"] = len(replies)
        self._progress(len(replies), len(chunks))

        if pending:
            run = self._run_http if self.config.url else self._run_local
            run([prompts[i] for i in pending], [keys[i] for i in pending],
                lambda j, reply: self._finished(replies, pending[j], keys[pending[j]], reply, len(chunks)))

        pairs: list[QAPair] = []
        for i, chunk in enumerate(chunks):
            pairs.extend(self._pairs(chunk, replies[i]))
        self.stats["pairs"] = len(pairs)
        self.stats["seconds"] = round(time.perf_counter() - started, 3)
        return pairs

    def _finished(self, replies: dict[int, str], index: int, key: str, reply: str, total: int) -> None:
        self._write_cache(key, reply)
        with self._lock:
            replies[index] = reply
            done = len(replies)
        self._progress(done, total)

    def _progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

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

    # ------------------------------------------------------------------ cache

    def _cache_key(self, prompt: str) -> str:
        c = self.config
        identity = {
            "backend": self.backend,
            "model": c.model if not c.url else f"{c.url.rstrip('/')}#{c.api_model}",
            "prompt_version": PROMPT_VERSION,
            "pairs_per_chunk": c.pairs_per_chunk,
            "max_new_tokens": c.max_new_tokens,
            "temperature": c.temperature,
            "prompt": prompt,  # holds the chunk text, its heading and the document title
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()

    def _read_cache(self, key: str) -> str | None:
        path = self.cache_dir / f"{key}.json"
        try:
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: ask again
        return reply if isinstance(reply, str) else None

    def _write_cache(self, key: str, reply: str) -> None:
        write_json(self.cache_dir / f"{key}.json", {"reply": reply, "prompt_version": PROMPT_VERSION})

    # ------------------------------------------------------------------ HTTP backend

    def _run_http(self, prompts: list[str], keys: list[str], done: Callable[[int, str], None]) -> None:
        with ThreadPoolExecutor(max_workers=self.config.batch_size, thread_name_prefix="qa-llm") as pool:
            futures = {pool.submit(self._request, p): j for j, p in enumerate(prompts)}
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                for future in finished:
                    if future.exception() is not None:
                        for other in remaining:
                            other.cancel()
                        raise future.exception()
                    done(futures[future], future.result())

    def _request(self, prompt: str) -> str:
        c = self.config
        url = c.url.rstrip("/") + "/chat/completions"
        body = json.dumps({
            "model": c.api_model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": c.temperature,
            "max_tokens": c.max_new_tokens,
        }).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(c.api_key_env) if c.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        problem = ""
        for attempt in range(c.retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(c.backoff_s * 2 ** (attempt - 1))
            with self._lock:
                self.stats["requests"] += 1
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=c.timeout_s) as response:
                    payload = response.read()
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode("utf-8", "replace").strip()
                err.close()
                if err.code == 429 or err.code >= 500:
                    problem = f"HTTP {err.code} {err.reason}"
                    continue
                raise DocfinetuneError(
                    f"{url}: HTTP {err.code} {err.reason} ({detail or 'no detail'}); check llm.url, "
                    f"llm.api_model ({c.api_model!r}) and the key in ${c.api_key_env or '(none)'}"
                ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
                    OSError) as err:
                problem = str(getattr(err, "reason", None) or err) or type(err).__name__
                continue
            return self._content(url, payload)
        raise DocfinetuneError(
            f"{url}: no reply after {c.retries + 1} attempts (last: {problem}); is the server running? "
            "(llm.url, llm.retries, llm.timeout_s)"
        )

    @staticmethod
    def _content(url: str, payload: bytes) -> str:
        try:
            content = json.loads(payload)["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise DocfinetuneError(
                f"{url}: the reply is not an OpenAI chat completion ({payload[:200]!r}); llm.url must "
                "be the API base, e.g. http://localhost:8000/v1"
            ) from None
        return content if isinstance(content, str) else ""

    # ------------------------------------------------------------------ transformers backend

    def _run_local(self, prompts: list[str], keys: list[str], done: Callable[[int, str], None]) -> None:
        from docfinetune.core.generate import generate

        model, tokenizer = self._load_local()
        encoded = [encode_prompt(tokenizer, p) for p in prompts]
        # Blocks of a few batches, so each reply is cached soon after it is written.
        block = self.config.batch_size * 4
        for start in range(0, len(prompts), block):
            part = list(range(start, min(len(prompts), start + block)))
            self.stats["requests"] += len(part)
            replies = generate(model, tokenizer, [encoded[j] for j in part],
                               max_new_tokens=self.config.max_new_tokens, batch_size=self.config.batch_size,
                               stop_at_line_end=False, temperature=self.config.temperature)
            for j, reply in zip(part, replies):
                done(j, reply)

    def _load_local(self) -> tuple[Any, Any]:
        """The instruct model through the project's one loader (hub id offline unless allowed,
        local folder, .gguf), on CUDA in bf16 when present, else fp32 on CPU."""
        if self._local is not None:
            return self._local
        from docfinetune.core.config import ModelConfig
        from docfinetune.core.models import load_model, load_tokenizer

        setting = f"llm.model {self.config.model!r}"
        source = ModelConfig(base_model=self.config.model, allow_download=self.allow_download)
        try:
            tokenizer = load_tokenizer(source)
            model = load_model(source).eval()
        except DocfinetuneError as err:
            raise DocfinetuneError(f"{setting}: {err}") from None
        if tokenizer.pad_token_id is None:
            raise DocfinetuneError(f"{setting}: its tokenizer has neither a pad nor an eos token")
        tokenizer.padding_side = "left"
        self._local = (model, tokenizer)
        return self._local
