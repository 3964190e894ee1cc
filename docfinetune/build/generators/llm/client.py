"""Replies of an instruct model to a list of prompts: the backend, batching, retries and the cache
that every LLM stream shares (the Q&A generator, question paraphrases, entity-centred rewrites).

Two backends, picked by the config:
- ``url``: an OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, a hosted API), POST
  ``{url}/chat/completions`` with the standard library only; ``batch_size`` requests in flight;
  connection errors, timeouts, HTTP 429 and 5xx are retried with doubling backoff, any other
  4xx fails at once.
- ``model``: a transformers model (hub id or local folder, safetensors only, never remote code),
  batched greedy generation with left padding; torch and transformers are imported only here.

Every raw reply is cached under ``cache_dir`` by a hash of everything that shapes it — the
backend, the model, the stream's prompt version, the generation settings and the prompt itself —
so an interrupted run resumes where it stopped, an unchanged rerun sends no request at all, and
bumping one stream's prompt version re-asks only that stream's prompts.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from docfinetune.core.config import LLMQAConfig
from docfinetune.core.errors import DocfinetuneError
from docfinetune.core.records import Document
from docfinetune.core.workspace import write_json

# Counters kept by the client, per `replies` call (into the `stats` dict it is given) and in total.
COUNTERS = ("requests", "cache_hits", "retries")


def document_titles(documents: list[Document]) -> dict[str, str]:
    """doc_id -> the name prompts give the document: its title, else its file's stem, else its id."""
    return {d.doc_id: d.title.strip() or Path(d.file_name).stem or d.doc_id for d in documents}


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


class ReplyClient:
    """The model's reply to each prompt, from the cache or the backend (module docstring).

    `stats` holds the totals over the client's life of: requests (HTTP requests sent, retries
    included, or prompts run through the local model), cache_hits and retries. The local model is
    loaded on first need and kept for later calls. One `replies` call at a time per client (the
    calls themselves run `batch_size` requests in parallel).
    """

    def __init__(self, config: LLMQAConfig, cache_dir: Path, allow_download: bool = False,
                 on_progress: Callable[[int, int], None] | None = None, thread_name: str = "llm"):
        if not (config.model or config.url):
            raise DocfinetuneError("build.llm: the llm generator needs llm.model (--generator-model) "
                                   "or llm.url (--generator-url)")
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.allow_download = allow_download
        self.on_progress = on_progress
        self.thread_name = thread_name
        self.stats: dict[str, int] = {name: 0 for name in COUNTERS}
        self._lock = threading.Lock()
        self._call_stats: dict[str, Any] = {}
        self._local: tuple[Any, Any] | None = None  # (model, tokenizer), loaded on first need

    @property
    def backend(self) -> str:
        return "http" if self.config.url else "transformers"

    # ------------------------------------------------------------------ entry point

    def replies(self, prompts: list[str], version: str, identity: dict | None = None,
                stats: dict | None = None) -> list[str]:
        """The reply to each prompt, in order.

        `version` names the stream's prompt (bump it when the prompt changes); `identity` adds
        whatever else shapes the reply to the cache key. Cached replies are read first, the rest
        asked for and each cached as soon as it arrives. `stats`, when given, has requests,
        cache_hits and retries of this call added to it (also when the call fails).
        `on_progress(done, total)` after the cache is read and after each reply.
        """
        call = stats if stats is not None else {}
        for name in COUNTERS:
            call.setdefault(name, 0)
        self._call_stats = call
        keys = [self.cache_key(p, version, identity) for p in prompts]
        found: dict[int, str] = {}
        pending: list[int] = []
        for i, key in enumerate(keys):
            cached = self._read_cache(key)
            if cached is None:
                pending.append(i)
            else:
                found[i] = cached
        self._count("cache_hits", len(found))
        self._progress(len(found), len(prompts))

        def done(j: int, reply: str) -> None:
            index = pending[j]
            self._write_cache(keys[index], reply, version)
            with self._lock:
                found[index] = reply
                count = len(found)
            self._progress(count, len(prompts))

        if pending:
            run = self._run_http if self.config.url else self._run_local
            run([prompts[i] for i in pending], done)
        return [found[i] for i in range(len(prompts))]

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n
            self._call_stats[name] = self._call_stats.get(name, 0) + n

    def _progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

    # ------------------------------------------------------------------ cache

    def cache_key(self, prompt: str, version: str, identity: dict | None = None) -> str:
        c = self.config
        fields = {
            "backend": self.backend,
            "model": c.model if not c.url else f"{c.url.rstrip('/')}#{c.api_model}",
            "prompt_version": version,
            "max_new_tokens": c.max_new_tokens,
            "temperature": c.temperature,
            "prompt": prompt,
            **(identity or {}),
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()

    def _read_cache(self, key: str) -> str | None:
        path = self.cache_dir / f"{key}.json"
        try:
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: ask again
        return reply if isinstance(reply, str) else None

    def _write_cache(self, key: str, reply: str, version: str) -> None:
        write_json(self.cache_dir / f"{key}.json", {"reply": reply, "prompt_version": version})

    # ------------------------------------------------------------------ HTTP backend

    def _run_http(self, prompts: list[str], done: Callable[[int, str], None]) -> None:
        """`batch_size` requests in flight; each reply is handed to `done` as soon as it arrives
        (so it is cached even if a later request fails or the run is stopped). On the first
        failure the replies already in are still handed over, queued requests are cancelled and
        the error is raised."""
        pool = ThreadPoolExecutor(max_workers=self.config.batch_size, thread_name_prefix=self.thread_name)
        try:
            futures = {pool.submit(self._request, p): j for j, p in enumerate(prompts)}
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                failed = None
                for future in sorted(finished, key=futures.__getitem__):
                    if future.exception() is not None:
                        failed = failed or future
                    else:
                        done(futures[future], future.result())
                if failed is not None:
                    raise failed.exception()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # requests in flight end within timeout_s

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
                self._count("retries")
                time.sleep(c.backoff_s * 2 ** (attempt - 1))
            self._count("requests")
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

    def _run_local(self, prompts: list[str], done: Callable[[int, str], None]) -> None:
        from docfinetune.core.generate import generate

        model, tokenizer = self._load_local()
        encoded = [encode_prompt(tokenizer, p) for p in prompts]
        # Blocks of a few batches, so each reply is cached soon after it is written.
        block = self.config.batch_size * 4
        for start in range(0, len(prompts), block):
            part = list(range(start, min(len(prompts), start + block)))
            self._count("requests", len(part))
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
