"""Generation: the one path every caller takes — training-time evaluation, `ask` (streamed),
`eval` (closed-book and RAG prompts), the memorization audit and the local llm generator.

Prompts are batched by length and left-padded with an attention mask, so a batch gives the same
text as one prompt at a time. Greedy unless a temperature is given. Answers stop at the end of
their first non-empty line; continuations (memorization, llm replies) run to `max_new_tokens`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import re
import threading
from typing import Callable, Sequence

from docfinetune.core.config import GenerationConfig
from docfinetune.core.records import Chunk
from docfinetune.core.retrieve import LEGAL_STOPWORDS, tokenize
from docfinetune.core.score import RECITAL_MARK

TextFn = Callable[[str], None]


def format_prompt(template: str, question: str) -> str:
    return template.format(question=question.strip())


def chunk_pages(chunk: Chunk) -> str:
    """'3', or '3-4' for a chunk that crosses a page break."""
    if chunk.page_end != chunk.page_start:
        return f"{chunk.page_start}-{chunk.page_end}"
    return str(chunk.page_start)


def rag_prompt(question: str, chunks: list[Chunk], titles: dict[str, str], generation: GenerationConfig) -> str:
    """The open-book prompt: `rag_template` with the chunks (given best first, shown in
    `rag_order`) as {context} and the closed-book prompt as {prompt} — what eval's RAG systems ask
    and what open-book training rows teach. With no chunk it is the closed-book prompt."""
    prompt = format_prompt(generation.prompt_template, question)
    if not chunks:
        return prompt
    if generation.rag_order == "best_last":
        chunks = list(reversed(chunks))
    context = "\n\n".join(
        generation.rag_chunk_template.format(title=titles.get(c.doc_id, c.doc_id), pages=chunk_pages(c),
                                             heading=c.heading, text=c.text.strip())
        for c in chunks)
    return generation.rag_template.format(context=context, prompt=prompt)


def stated(answer: str) -> re.Pattern:
    """`answer` as whole words (so "30" is not found in "$3,000" or "300")."""
    return re.compile(rf"(?<![\w$]){re.escape(answer)}(?!\w)")


def swapped_context(chunks: list[Chunk], swap: Sequence[str] | None) -> list[Chunk]:
    """The context a counterfactual training row (build.raft) is shown: swap = [answer, value],
    the answer replaced by the value wherever the chunks state it."""
    if not swap:
        return chunks
    pattern, value = stated(swap[0]), swap[1]
    return [dataclasses.replace(c, text=pattern.sub(lambda _: value, c.text)) for c in chunks]


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class _StopAtLineEnd:
    """Stop a row once its new text holds a line break after some non-space text."""

    def __init__(self, tokenizer, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        return torch.tensor([("\n" in t.lstrip()) for t in texts], device=input_ids.device)


class _Cancelled:
    """Ends generation once `event` is set (Ctrl-C while streaming)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _TextSoFar:
    """generate()'s streamer: after each new token, the whole text so far. transformers'
    TextIteratorStreamer holds text back to the end of each word, which shows the first word one
    token (~0.1 s on CPU) late; here only an incomplete character (a byte-fallback token awaiting
    the rest of its bytes) is held back."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prompt_seen = False
        self.texts: queue.Queue[str | None] = queue.Queue()

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() passes the prompt first
            self.prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            self.texts.put(text)

    def end(self) -> None:
        self.texts.put(None)

    def __iter__(self):
        while (text := self.texts.get()) is not None:
            yield text


def _left_padded(rows: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, width - len(row):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


def generate(model, tokenizer, prompts: Sequence[str | list[int]], *, max_new_tokens: int, batch_size: int = 8,
             stop_at_line_end: bool = True, temperature: float = 0.0,
             on_progress: Callable[[int], None] | None = None, on_text: TextFn | None = None,
             synced_gpus: bool = False) -> list[str]:
    """The new text for each prompt (a string, or token ids already encoded, e.g. through a chat
    template), in order. With `stop_at_line_end` each is the first non-empty line, stripped.
    `on_progress(done)` after each batch; `on_text(piece)` streams a single prompt's answer as
    it is generated (the pieces join to the returned answer). `synced_gpus`: a model sharded
    across processes (FSDP) that each generate for as many prompts: every process keeps taking
    forward passes until all are done, as each pass gathers weights from all."""
    import torch
    from transformers import StoppingCriteriaList

    if on_text is not None and len(prompts) != 1:
        raise ValueError("streaming generates one prompt at a time")
    # split_special_tokens: "<eos>" typed in a question stays text, as in training (train.tokenize).
    rows = [list(p) if not isinstance(p, str) else tokenizer(p, split_special_tokens=True)["input_ids"] for p in prompts]
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))  # similar lengths share a batch
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    texts: dict[int, str] = {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with _contiguous_output_layer_input(model), _decoding_attention(device):
        try:
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                encoded = _left_padded([rows[i] for i in batch], pad_id, device)
                length = encoded["input_ids"].shape[1]
                settings = {"max_new_tokens": max_new_tokens, "pad_token_id": pad_id, **sampling}
                if synced_gpus:
                    settings["synced_gpus"] = True
                settings["stopping_criteria"] = StoppingCriteriaList(
                    [_StopAtLineEnd(tokenizer, length)] if stop_at_line_end else [])
                if on_text is not None:
                    output = _streamed(model, tokenizer, encoded, settings, on_text, stop_at_line_end)
                else:
                    with torch.no_grad():
                        output = model.generate(**encoded, **settings)
                decoded = tokenizer.batch_decode(output[:, length:], skip_special_tokens=True)
                texts.update({i: first_line(t) if stop_at_line_end else t for i, t in zip(batch, decoded)})
                if on_progress is not None:
                    on_progress(len(texts))
        finally:
            model.train(was_training)
    return [texts[i] for i in range(len(rows))]


def answer_confidence(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], *,
                      batch_size: int = 8) -> list[float]:
    """How sure the model is of each answer after its prompt: the geometric mean of its answer
    tokens' probabilities, read as training reads a Q&A row (prompt + " " + answer, tokenized
    together, the answer's tokens told apart by character offset); 0.0 for an empty answer. One
    forward pass a batch; only the answer positions' logits are kept (`logits_to_keep`), as a
    Gemma 3 logit row is 262,144 wide."""
    import torch

    rows, firsts = [], []  # token ids; index of the first answer token
    for prompt, answer in zip(prompts, answers):
        encoded = tokenizer(f"{prompt} {answer.strip()}", return_offsets_mapping=True, split_special_tokens=True)
        ids = list(encoded["input_ids"])
        starts = [start for start, _ in encoded["offset_mapping"]]
        first = next((i for i, start in enumerate(starts) if start >= len(prompt) and i > 0), len(ids))
        rows.append(ids)
        firsts.append(first if answer.strip() else len(ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores: list[float] = []
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(rows), batch_size):
            batch, batch_firsts = rows[start:start + batch_size], firsts[start:start + batch_size]
            encoded = _left_padded(batch, pad_id, device)
            positions = (encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding: count from 0
            keep = max(len(r) - f for r, f in zip(batch, batch_firsts)) + 1
            with torch.no_grad():
                logits = model(**encoded, position_ids=positions, logits_to_keep=keep).logits
            for b, (ids, first) in enumerate(zip(batch, batch_firsts)):
                if first >= len(ids):
                    scores.append(0.0)
                    continue
                targets = torch.tensor(ids[first:], device=logits.device)
                # column c of the `keep` last positions predicts the token after it: an answer of n tokens
                # ending the row is predicted by columns keep-1-n ... keep-2
                cols = torch.arange(len(ids) - first, device=logits.device) + (keep - 1 - (len(ids) - first))
                predicted = logits[b, cols].float().log_softmax(-1).gather(-1, targets[:, None])
                scores.append(float(predicted.mean().exp()))
    finally:
        model.train(was_training)
    return scores


@contextlib.contextmanager
def _decoding_attention(device):
    """Generate without cuDNN's attention on CUDA (flash, memory-efficient, or plain): every new token
    is a new key length, and cuDNN plans its attention anew for each (3.9 ms of CPU a call in the H200
    profile of a training step, benchmarks/train_profile.py). With cuDNN off in the whole process and
    8 contracts sharing the H200, the evaluations took 0.74x as long (median of 10, twenty-eighth run,
    benchmarks/RESULTS.md); training keeps it (model.cudnn_attention), where it was faster."""
    if device.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        yield


@contextlib.contextmanager
def _contiguous_output_layer_input(model):
    """Hand the output layer a contiguous input while generating.

    At the prompt's forward pass transformers slices the last position, `hidden[:, -1:, :]`,
    a view with gaps between rows. For such an input `torch.matmul` only folds the batch into
    one matrix product when the weight requires grad; a frozen output layer (every peft model,
    LoRA or QLoRA) instead gets a batched product against the weight expanded per row: a copy
    of batch x 262,144 x 640 values for Gemma 3 (5.4 GB in bf16 for 16 prompts), measured 7 s
    a batch on the 2-core CPU. A contiguous (batch, 1, hidden) copy costs nothing."""
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if layer is None:
        yield
        return
    handle = layer.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def _streamed(model, tokenizer, encoded: dict, settings: dict, on_text: TextFn, first_line_only: bool):
    """model.generate in a thread, passing each new piece of text to `on_text`; Ctrl-C in the
    caller's thread stops the generation."""
    import torch

    cancel = threading.Event()
    settings["stopping_criteria"].append(_Cancelled(cancel))
    streamer = _TextSoFar(tokenizer)
    outcome: dict = {}

    def run() -> None:
        try:
            with torch.no_grad():
                outcome["ids"] = model.generate(**encoded, **settings, streamer=streamer)
        except BaseException as err:  # re-raised below, in the caller's thread
            outcome["error"] = err
            streamer.end()

    thread = threading.Thread(target=run, name="docfinetune-generate", daemon=True)
    thread.start()
    shown = ""

    def show(text: str) -> None:
        # The answer is the first non-empty line, stripped: hold back leading blank lines,
        # trailing spaces (they may end the line) and everything after the line break.
        nonlocal shown
        if len(text) > len(shown) and text.startswith(shown):
            on_text(text[len(shown):])
            shown = text

    try:
        for text in streamer:
            show(first_line(text) if first_line_only else text)
    except BaseException:
        cancel.set()
        thread.join()
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    final = tokenizer.decode(outcome["ids"][0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    show(first_line(final) if first_line_only else final)  # whatever the streamer still held back
    return outcome["ids"]


def answer_questions(model, tokenizer, questions: list[str], generation: GenerationConfig,
                     on_progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy answers to `questions` in the pipeline's prompt, in order."""
    prompts = [format_prompt(generation.prompt_template, q) for q in questions]
    return generate(model, tokenizer, prompts, max_new_tokens=generation.max_new_tokens,
                    batch_size=generation.batch_size, on_progress=on_progress)


RECITED_VALUE_WORDS = 12  # a short answer is at most ~12 words (coverage Q&A's own limit)
RECITAL_PREFIX_MIN_WORDS = 4  # fewer words before the value are too little text to find the memory by
_CLAUSE_END = re.compile(r"(?<=[a-z0-9)\]])\.(?:\s|$)|[;:](?:\s|$)|\n")
# The reading text's own citation of where a sentence stands (build.augment: "(Master Services Agreement,
# Section 4.2)", "(Joint Venture Agreement between IMPCO ... and ..."): a continuation that runs into it has
# left the contract's words (10 of 226 read-on answers of two H200 runs, 2026-12-03; none scored otherwise without it)
_CITATION = re.compile(r"\s*\([^()]{0,120}?(?:,\s+(?:Section|Article|Schedule|Exhibit|Annex|Appendix|Clause|"
                       r"the recitals|the preamble|the part)\b|\s+between\s+[A-Z])")


def recital_prefix(answer: str, min_words: int = RECITAL_PREFIX_MIN_WORDS) -> str | None:
    """The text a recited answer ("clause ⇒ value", build.recite) was recalled from, up to where
    its value starts: the clause with the value cut off its end. None without a recital, when the
    clause does not end with its value, or when fewer than `min_words` words are left (too little
    text to find the memory by)."""
    if RECITAL_MARK not in answer:
        return None
    clause, value = (" ".join(part.split()) for part in answer.rsplit(RECITAL_MARK, 1))
    if not value or not clause.lower().endswith(value.lower()):
        return None
    prefix = clause[:-len(value)].rstrip()
    return prefix if len(prefix.split()) >= min_words else None


def recited_value(continuation: str) -> str:
    """The value at the start of a recital's continuation: up to the first sentence or clause end
    (". ", "; ", ": ", a line break) or the reading text's citation of its section (`_CITATION`), at
    most RECITED_VALUE_WORDS words, without closing quotes or punctuation."""
    text = _CLAUSE_END.split(_before_mark(continuation), maxsplit=1)[0]
    text = text[:cited.start()] if (cited := _CITATION.search(text)) else text
    return " ".join(text.split()[:RECITED_VALUE_WORDS]).rstrip(" ,.;:'\"”’")


def _before_mark(continuation: str) -> str:
    """A continuation up to any recital mark: a model trained on recitals may go on to write one
    ("thirty (30) days ⇒ thirty (30) days"), which is its Q&A habit, not the contract's text."""
    return continuation.split(RECITAL_MARK.strip(), 1)[0].strip()


def continue_recitals(model, tokenizer, answers: list[str], generation: GenerationConfig) -> list[str]:
    """`answers` (closed-book), each recited one answered again from the model's memory of the text
    (`read_on`), the continuations generated greedily here."""
    return read_on(answers, lambda prompts: generate(model, tokenizer, prompts,
                                                     max_new_tokens=generation.continuation_tokens,
                                                     batch_size=generation.batch_size))


def read_on(answers: list[str], continue_texts: Callable[[list[str]], list[str]]) -> list[str]:
    """Each recited answer of `answers` answered again: its clause, cut before the value, is
    continued as plain text by `continue_texts` (prompts -> continuations) — the way a held-out
    fact is read back, not in the question's frame — and the value is taken from that
    continuation. The new answer is "<clause prefix> <continuation> ⇒ <value>"; others are
    returned as they were."""
    prefixes = {i: p for i, a in enumerate(answers) if (p := recital_prefix(a)) is not None}
    if not prefixes:
        return list(answers)
    continued = continue_texts(list(prefixes.values()))
    out = list(answers)
    for (i, prefix), text in zip(prefixes.items(), continued):
        if value := recited_value(text):
            out[i] = f"{prefix} {_before_mark(text)}{RECITAL_MARK}{value}"
    return out


def recital_quotes(question: str, answer: str, min_share: float, min_words: int, enough_words: int = 0) -> bool:
    """Whether the answer's recital quotes the question: it holds at least `min_words` of the
    question's words and at least `min_share` of them — or, `enough_words` > 0, at least that many
    whatever their share (stopwords and contract boilerplate left out; a question with no other
    words quotes nothing)."""
    quoted = _quoted_words(question, answer)
    if quoted is None or quoted[1] == 0 or quoted[0] < min_words:
        return False
    return quoted[0] >= min_share * quoted[1] or 0 < enough_words <= quoted[0]


def _quoted_words(question: str, answer: str) -> tuple[int, int] | None:
    """(the question's words the answer's recital holds, the question's words); None when the answer
    recites nothing."""
    if RECITAL_MARK not in answer:
        return None
    return _words_held(question, answer.rsplit(RECITAL_MARK, 1)[0])


def _words_held(question: str, text: str) -> tuple[int, int]:
    """(the question's words `text` holds, the question's words), stopwords and contract boilerplate
    left out."""
    asked = {w for w in tokenize(question) if w not in LEGAL_STOPWORDS}
    return len(asked & set(tokenize(text))), len(asked)


def closed_book_answers(ask: Callable[..., list[str]], questions: list[str], generation: GenerationConfig,
                        recite_both: bool = False, titles: Sequence[str] = ()) -> dict[str, list[str]]:
    """Closed-book answers to `questions`, `ask(prompts, max_new_tokens)` generating greedily, as
    checkpoint selection, eval and ask answer: {"answer": what the pipeline answers, "recited": the
    answers before reading on (continue_recitals)}, and with recite_both "plain" and "read_on". With
    recite_both each question is asked plainly (prompt_template) and for a recital
    (recite_prompt_template), and the recited answer, read on, is kept when its recital holds
    `recital_min_overlap` of the question's words: a question quoting its clause is answered from
    the memory of the text, a topic question plainly.

    With generation.recall_sections and the workspace's document `titles`, a question naming a
    section is also answered from the model's recall of that section (`recall_sections`; `ask` is
    then also called with stop_at_line_end=False): "recall" (the recalled text, "" for a question
    naming none), "recalled" (the answer read from it) and "unrecalled" (the answer without it)
    are returned too. With generation.read_quotes a question quoting its clause is answered by
    reading on from the quote (`read_quotes`): "quote" (the words read on from, "" for a question
    quoting none), "quoted" (the answer read, "" where none) and "unquoted" (the answer without it)."""
    plain = ask([format_prompt(generation.prompt_template, q) for q in questions], generation.max_new_tokens)
    recited = (ask([format_prompt(generation.recite_prompt_template, q) for q in questions],
                   generation.max_new_tokens) if recite_both else plain)
    read = (read_on(recited, lambda prompts: ask(prompts, generation.continuation_tokens))
            if generation.continue_recitals else recited)
    got = {"answer": read, "recited": recited}
    if recite_both:
        got = {"answer": [plain_or_recited(q, p, r, generation) for q, p, r in zip(questions, plain, read)],
               "recited": recited, "plain": plain, "read_on": read}
    if generation.recall_sections and titles:
        recall, recalled = recall_sections(ask, questions, titles, generation)
        got["unrecalled"] = got["answer"]
        got["answer"] = [answer if not text or not recall_quotes(q, text, generation.recall_min_overlap) else new
                         for q, answer, text, new in zip(questions, got["answer"], recall, recalled)]
        got["recall"], got["recalled"] = recall, recalled
    if generation.read_quotes:
        quote, quoted = read_quotes(ask, questions, generation)
        got["unquoted"], got["quote"], got["quoted"] = got["answer"], quote, quoted
        got["answer"] = [new or answer for answer, new in zip(got["answer"], quoted)]
    return got


# "Section 4.9", "Article IV", "clause 8": a numbered part of the contract a question names
SECTION_NAMED = re.compile(r"\b(?:Section|SECTION|Article|ARTICLE|Clause|clause)\s+"
                           r"(?P<label>\d{1,3}(?:\.\d{1,3})*|[IVXL]{1,6}|[A-Z]\.\d{1,3}(?:\.\d{1,3})*)(?!\w|\.\d)")


def recall_prompt(question: str, titles: Sequence[str]) -> str | None:
    """The start of the reading-text record of the section `question` names (build.cpt's header:
    the document title, then the heading, which starts with the section's number in most contracts:
    "4.9 Suspension for Non-Payment", "IV. TRAINING"), for the model to continue from memory; None
    when the question names no section. Of several documents, the one whose title shares most words
    with the question."""
    named = SECTION_NAMED.search(question)
    if named is None or not titles:
        return None
    asked = set(tokenize(question))
    title = max(titles, key=lambda t: len(asked & set(tokenize(t))))  # the first of equals
    return f"{title}\n{named.group('label')}"


def recall_sections(ask: Callable[..., list[str]], questions: list[str], titles: Sequence[str],
                    generation: GenerationConfig) -> tuple[list[str], list[str]]:
    """Each question that names a section answered from the model's own recall of it (recitation-
    augmented answering, Sun et al. 2023): the section's record header (`recall_prompt`) continued
    greedily for generation.recall_tokens as plain text, then the question asked open-book
    (rag_template) with that text as the context. Returns (the recalled texts, header included, and
    the answers read from them), "" for a question naming no section. Why: the fine-tuned model
    continues a held-out fact's own record to its answer ~90% of the time and answers it from
    retrieved text ~85%, but answers its question closed-book 12-28% (benchmarks/RESULTS.md,
    "Knowledge")."""
    prompts = {i: p for i, q in enumerate(questions) if (p := recall_prompt(q, titles)) is not None}
    recall, recalled = [""] * len(questions), [""] * len(questions)
    if not prompts:
        return recall, recalled
    continued = ask(list(prompts.values()), generation.recall_tokens, stop_at_line_end=False)
    contexts = {}
    for (i, prompt), text in zip(prompts.items(), continued):
        recall[i] = prompt + text
        title, section = recall[i].split("\n", 1)
        context = generation.rag_chunk_template.format(title=title, pages="?", heading="", text=section.strip())
        contexts[i] = generation.rag_template.format(
            context=context, prompt=format_prompt(generation.prompt_template, questions[i]))
    for i, answer in zip(contexts, ask(list(contexts.values()), generation.max_new_tokens)):
        recalled[i] = answer
    return recall, recalled


def recall_quotes(question: str, recall: str, min_share: float) -> bool:
    """Whether a section's recalled text holds at least `min_share` of the question's words
    (stopwords and contract boilerplate left out): the model recalled the clause asked about, not
    another part of the section or another section."""
    held, asked = _words_held(question, recall)
    return asked > 0 and held >= min_share * asked


def plain_or_recited(question: str, plain: str, recited: str, generation: GenerationConfig) -> str:
    """build.recite_both's choice: the recited answer when its recital quotes the question (at least
    `recital_min_words` of the question's words and `recital_min_overlap` of them, or at least
    `recital_enough_words` of them), else the plain one."""
    quotes = recital_quotes(question, recited, generation.recital_min_overlap, generation.recital_min_words,
                            generation.recital_enough_words)
    return recited if quotes else plain


# A question that quotes its clause: the clause with a blank ('what fills the blank: "... within ___ after
# ..."'), the clause around a wh-phrase after a lead naming where it is ("Under Section 4.9 of this
# agreement, ... for more than how many days after ...?"), or a quoted clause whose defined term is asked
_CLOZE = re.compile(r'[:,]\s*["“](?P<clause>[^_]*?_{3,}.*)["”]\s*\??\s*$')
_AFTER_LEAD = re.compile(r'\(after ["“](?P<lead>[^"”]+)["”]\)')
_WHERE_LEAD = re.compile(r"^(?:Under|According to|In|Pursuant to)\s+(?:Section|Article|Clause|Schedule|Exhibit|Annex|"
                         r"Appendix)\s+[\w.]+(?:\s+\([^)]*\))?(?:\s+of\s+(?:this|the)\s+[^,(]*?)?(?:\s+\([^)]*\))?,\s+")
_WH = re.compile(r"\b(?:how\s+(?:many|much|long|often|soon)|what|which|whom|who|when|where)\b")
_TERM_ASKED = re.compile(r"\b(?:term|name)\b")
_QUOTE = re.compile(r'["“](?P<quote>[^"”]{12,})["”]')
_UNIT = re.compile(r"(?i)^(?:(?:business|calendar|working|consecutive|banking)\s+)?(?:days?|weeks?|months?|years?|hours?|"
                   r"minutes?|quarters?)\b")
_QUOTED_TERM = re.compile(r'["“](?P<term>[^"”]{2,60})["”]')
# "How does the Agreement define "Territory"?", "What is meant by "Act"?": a defined term's meaning asked
_DEFINITION_ASKED = re.compile(r'\b(?:define|defines|definition of|meant by)\s+["“](?P<term>[^"”]{1,60})["”]'
                               r'|["“](?P<term2>[^"”]{1,60})["”]\s+(?:mean|refer to)\b')
_DEFINES = re.compile(r'^[\s"”:,]*(?:shall\s+)?(?:means?|refers?\s+to|has\s+the\s+meaning)\b[\s:,]*')
_DEFINITION_END = re.compile(r"(?<=[a-z0-9)\]])\.(?:\s|$)|;(?:\s|$)")
DEFINITION_WORDS = 40  # a rules-generator definition is cut at ~250 characters: ~40 words
# A value that starts with a duration ("thirty (30) days", "(30) days] thereof"): the duration, not the clause's
# words after it, which the continuation may write differently ("fifteen (15) business days to confirm whether ...")
# (13 of 151 read-on values of two H200 runs, 2026-12-03; none scored otherwise)
_DURATION_VALUE = re.compile(r"^(?:[A-Za-z-]+\s+){0,4}?\(?\d[\d,.]*\)?\s*(?:business\s+|calendar\s+|working\s+|"
                             r"consecutive\s+)?(?:day|week|month|year|hour|minute)s?\b", re.IGNORECASE)
# the noun of "what amount", "which city": part of the wh-phrase, not of the clause after it
_WH_NOUN = re.compile(r"^\s*(?:percentage|amount|date|period|number|city|state|country|place|sum|price|fee|rate)\s+")


def quoted_clause(question: str, definitions: bool = False) -> tuple[str, str, str] | None:
    """(the question's quoted clause up to what it asks, the clause's words after it, the kind of
    value: "value", "term" or, with `definitions`, "definition" — the quoted term whose meaning is
    asked, read on from its opening quote as contracts define it: '"Territory" means ...'); None
    for a question that quotes no clause or too little of one (fewer than RECITAL_PREFIX_MIN_WORDS
    words)."""
    # one quoted term, its meaning asked ('"X" is defined as' or a quoted clause around it asks the reverse)
    asked = _DEFINITION_ASKED.search(question) if definitions and len(re.findall('["“”]', question)) == 2 else None
    if asked and len((term := asked.group("term") or asked.group("term2")).split()) <= 8:
        return f'"{term.strip()}"', "", "definition"
    found = _CLOZE.search(question)
    if found:
        before, _, after = re.split(r"(_{3,})", found.group("clause"), maxsplit=1)
        lead = _AFTER_LEAD.search(question[:found.start()])
        prefix = f"{lead.group('lead')} {before}" if lead else before
        kind = "value"
    elif (quote := _QUOTE.search(question)) and _TERM_ASKED.search(question):
        prefix, after, kind = quote.group("quote"), "", "term"
    elif (lead := _WHERE_LEAD.match(question)) and (wh := _asked_wh(question, lead.end())):
        prefix, after, kind = question[lead.end():wh.start()], _WH_NOUN.sub("", question[wh.end():]), "value"
    else:
        return None
    prefix = " ".join(prefix.replace("...", " ").replace("…", " ").split()).rstrip(" ,;:")
    if len(prefix.split()) < RECITAL_PREFIX_MIN_WORDS:
        return None
    return prefix, " ".join(after.rstrip(" ?").split()), kind


def _asked_wh(question: str, start: int) -> re.Match | None:
    """The wh-phrase that asks (a "how ..." first, then "what"), not a relative pronoun of the clause
    ("for which the expected expenses exceed", ", who shall")."""
    found = list(_WH.finditer(question, start))
    for match in found:
        if match.group(0).startswith("how"):
            return match
    for match in found:
        before = question[start:match.start()].rstrip()
        if match.group(0) == "what" or not (before.endswith(",") or re.search(
                r"\b(?:for|in|of|to|by|on|at|with|under|from|upon|through|during|after|before)$", before)):
            return match
    return None


def read_quotes(ask: Callable[..., list[str]], questions: list[str],
                generation: GenerationConfig) -> tuple[list[str], list[str]]:
    """Each question quoting its clause (`quoted_clause`) answered by reading on from the quote as plain
    text — the memory of the document, reached by its own words, not by a question. Returns (the
    words read on from, "" for a question quoting none; the answers, "<quote> <continuation> ⇒
    <value>", "" for the others and where no value was read). The value is
    the continuation up to where the quoted clause goes on (its words after the blank or wh-phrase),
    a clause end or RECITED_VALUE_WORDS words; for a defined term asked, the first quoted term in the
    continuation ('(the "Customer Contract Manager")'). Why: the fine-tuned model continues a
    held-out fact's sentence to its answer 87% of the time but answers its question 13%
    (benchmarks/RESULTS.md, "Knowledge")."""
    quoted = {i: found for i, q in enumerate(questions)
              if (found := quoted_clause(q, generation.read_definitions)) is not None}
    quotes = [quoted[i][0] if i in quoted else "" for i in range(len(questions))]
    answers = [""] * len(questions)
    for kinds, tokens in ((("value", "term"), generation.continuation_tokens),
                          (("definition",), generation.definition_tokens)):
        asked = {i: found for i, found in quoted.items() if found[2] in kinds}
        if not asked:
            continue
        continued = ask([prefix for prefix, _, _ in asked.values()], tokens, stop_at_line_end=False)
        for (i, (prefix, after, kind)), text in zip(asked.items(), continued):
            text = _before_mark(" ".join(text.split()))
            if value := _value_read(text, after, kind):
                answers[i] = f"{prefix} {text}{RECITAL_MARK}{value}"
    return quotes, answers


def _value_read(text: str, after: str, kind: str) -> str:
    """The value a quote's continuation `text` gives: for a term, the first quoted term in its first
    20 words; for a definition, what follows "means" to the sentence's end (at most DEFINITION_WORDS
    words; "" when the continuation does not define); else `recited_value` up to where the clause
    goes on (`after`), a leading duration alone (`_DURATION_VALUE`)."""
    if kind == "term":
        term = _QUOTED_TERM.search(" ".join(text.split()[:20]))
        return term.group("term").strip() if term else ""
    if kind == "definition":
        defines = _DEFINES.match(text)
        if defines is None:
            return ""
        meaning = _DEFINITION_END.split(text[defines.end():], maxsplit=1)[0]
        return " ".join(meaning.split()[:DEFINITION_WORDS]).rstrip(" ,;:")
    value = recited_value(_cut_before(text, after))
    duration = _DURATION_VALUE.match(value)
    return duration.group(0) if duration else value


def _cut_before(text: str, after: str) -> str:
    """`text` up to where the clause's next words `after` start in it (any two of its first four words
    in a row, a leading unit such as "days" kept with the value), else all of it."""
    words = [w.strip(",.;:()\"'").lower() for w in _UNIT.sub("", after).split()][:4]
    pairs = {tuple(words[j:j + 2]) for j in range(len(words) - 1)}
    said = text.split()
    for k in range(1, len(said) - 1):
        if (said[k].strip(",.;:()\"'").lower(), said[k + 1].strip(",.;:()\"'").lower()) in pairs:
            return " ".join(said[:k])
    return text
