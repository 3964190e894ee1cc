"""`docfinetune ask`: answer a question with the checkpoint that `train` selected, streaming.

Reads the run `train` wrote (the layout is runs.py's): its resolved config (base model, prompt,
lengths), selection.json and the selected peft adapter.

The answer is generated exactly as training-time evaluation and `eval` generate theirs (greedy,
the run's prompt template and `max_new_tokens`, stopping at the end of the first non-empty line:
the settings come from `generate.greedy_settings`), so `ask` shows what was measured. It is
closed-book: `sources=k` lists the k chunks BM25 ranks best for the question beside the answer,
it does not put them in the prompt.

Everything that can be wrong (no run, an unknown checkpoint, no documents for `sources`) is
checked before the model is loaded. torch, transformers and peft are imported only then, so a
mistake is reported in a fraction of a second.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from docfinetune.core.config import PipelineConfig, TrainConfig
from docfinetune.core.records import Chunk
from docfinetune.core.errors import DocfinetuneError, WorkspaceError
from docfinetune.core.generate import first_line, format_prompt, greedy_settings
from docfinetune.core.runs import find_run, load_answerer, resolve_checkpoint, runs_dir
from docfinetune.core.workspace import Workspace

BASE_MODEL = "base model"

TokenFn = Callable[[str], None]


@dataclass(frozen=True)
class AskResult:
    question: str
    answer: str
    run_id: str | None  # None when the base model answered without any run
    checkpoint: str  # the adapter folder that answered, or "base model"
    step: int | None  # that checkpoint's training step
    sources: list[tuple[Chunk, float]]  # BM25's best chunks for the question, best first
    seconds_to_first_token: float | None  # from the call to the first text of the answer
    seconds: float  # the whole call


class _Cancelled:
    """A stopping criterion that ends generation once `event` is set (Ctrl-C while streaming)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _AnswerSoFar:
    """generate()'s streamer: after each new token, the whole answer so far as text.
    transformers' TextIteratorStreamer holds text back to the end of each word, which shows the
    first word one token (~0.1 s on CPU) late; here only an incomplete character (a byte-fallback
    token awaiting the rest of its bytes) is held back."""

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


def stream_answer(model, tokenizer, question: str, train: TrainConfig,
                  on_token: TokenFn | None = None) -> tuple[str, float | None]:
    """Generate the answer in a thread, passing each new piece of it to `on_token` as it
    arrives. Returns the answer (what `answer_questions` gives for this question: the pieces
    join to it) and the perf_counter time of the first piece (None for an empty answer)."""
    import torch

    encoded = tokenizer([format_prompt(train.prompt_template, question)], return_tensors="pt")
    encoded = encoded.to(next(model.parameters()).device)
    length = encoded["input_ids"].shape[1]
    settings = greedy_settings(tokenizer, length, train.max_new_tokens)
    cancel = threading.Event()
    settings["stopping_criteria"].append(_Cancelled(cancel))
    streamer = _AnswerSoFar(tokenizer)
    outcome: dict = {}

    def generate() -> None:
        try:
            with torch.no_grad():
                outcome["ids"] = model.generate(**encoded, **settings, streamer=streamer)
        except BaseException as err:  # re-raised below, in the caller's thread
            outcome["error"] = err
            streamer.end()

    thread = threading.Thread(target=generate, name="docfinetune-ask", daemon=True)
    thread.start()
    shown, first_at = "", None

    def show(text: str) -> None:
        nonlocal shown, first_at
        # The answer is the first non-empty line, stripped: hold back leading blank lines,
        # trailing spaces (they may end the line) and everything after the line break.
        if len(text) > len(shown) and text.startswith(shown):
            if first_at is None:
                first_at = time.perf_counter()
            if on_token is not None:
                on_token(text[len(shown):])
            shown = text

    try:
        for text in streamer:
            show(first_line(text))
    except BaseException:
        cancel.set()
        thread.join()
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    answer = first_line(tokenizer.decode(outcome["ids"][0, length:], skip_special_tokens=True))
    show(answer)  # whatever the streamer still held back
    return answer, first_at


def ask(workspace: Workspace, question: str, *, checkpoint: int | str | Path | None = None,
        base: bool = False, sources: int = 0, on_token: TokenFn | None = None,
        config: PipelineConfig | None = None, run_id: str | None = None) -> AskResult:
    """Answer `question` with the selected checkpoint of the newest run (or of `run_id`), or
    with the checkpoint at step / folder `checkpoint`, or with the bare base model (`base`).
    `config` is the pipeline used when there is no run (only possible with `base`); a run
    answers with its own resolved config. `sources=k` also returns BM25's k best chunks."""
    started = time.perf_counter()
    if not question.strip():
        raise DocfinetuneError("the question is empty")
    if sources < 0:
        raise DocfinetuneError(f"sources: {sources} is negative")
    run = find_run(workspace, run_id)
    if run is None:
        if not base:
            raise WorkspaceError(f"no trained model in {runs_dir(workspace)}; run `docfinetune train` "
                                 "first, or use --base")
        if config is None:
            raise DocfinetuneError(f"no run in {runs_dir(workspace)} to take the pipeline config from; "
                                   "give the pipeline (--pipeline) to ask the base model")
    else:
        config = run.config
    if base:
        if checkpoint is not None:
            raise DocfinetuneError("give --checkpoint or --base, not both")
        chosen = None
    else:
        chosen = resolve_checkpoint(run, checkpoint)
    found: list[tuple[Chunk, float]] = []
    if sources:
        from docfinetune.core.retrieve import BM25Index

        found = BM25Index.from_workspace(workspace).search(question, sources)

    model, tokenizer = load_answerer(config, chosen.path if chosen else None)
    answer, first_at = stream_answer(model, tokenizer, question, config.train, on_token)
    return AskResult(
        question=question,
        answer=answer,
        run_id=run.id if run else None,
        checkpoint=str(chosen.path) if chosen else BASE_MODEL,
        step=chosen.step if chosen else None,
        sources=found,
        seconds_to_first_token=None if first_at is None else first_at - started,
        seconds=time.perf_counter() - started,
    )
