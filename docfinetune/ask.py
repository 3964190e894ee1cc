"""`docfinetune ask`: answer a question with the checkpoint that `train` selected, streaming.

Reads the run `train` wrote (the layout is runs.py's): its resolved config (base model, prompt,
lengths), selection.json and the selected peft adapter.

The answer is generated exactly as training-time evaluation and `eval` generate theirs (greedy,
the run's `generation` settings, stopping at the end of the first non-empty line, through
`core.generate.generate`), so `ask` shows what was measured. It answers closed-book, or open-book
with the retriever's top `eval.rag_k` chunks in `generation.rag_template` (eval's fine-tuned +
RAG) when the run's last evaluation of the checkpoint measured that better (runs/<id>/systems.json)
or when asked. `sources=k` lists the k best chunks beside the answer.

Everything that can be wrong (no run, an unknown checkpoint, no documents for `sources`) is
checked before the model is loaded. torch, transformers and peft are imported only then, so a
mistake is reported in a fraction of a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from docfinetune.core.config import GenerationConfig, PipelineConfig
from docfinetune.core.errors import DocfinetuneError, WorkspaceError
from docfinetune.core.generate import closed_book_answers, format_prompt, generate, rag_prompt
from docfinetune.core.records import Chunk, is_card
from docfinetune.core.runs import find_run, load_answerer, measured_system, resolve_checkpoint, runs_dir
from docfinetune.core.score import RECITAL_MARK
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
    open_book: bool = False  # answered with the retrieved chunks in the prompt
    context: list[Chunk] = field(default_factory=list)  # those chunks, best first
    why: str = ""  # why closed- or open-book
    cited: dict[str, Chunk] = field(default_factory=dict)  # a fact card's id -> the contract chunk it states


def stream_answer(model, tokenizer, prompt: str, generation: GenerationConfig,
                  on_token: TokenFn | None = None) -> tuple[str, float | None]:
    """The answer to `prompt` (closed-book or with retrieved chunks), each new piece passed to
    `on_token` as it is generated; returns it and the perf_counter time of the first piece (None
    for an empty answer)."""
    first_at: list[float] = []

    def on_text(piece: str) -> None:
        if not first_at:
            first_at.append(time.perf_counter())
        if on_token is not None:
            on_token(piece)

    answer = generate(model, tokenizer, [prompt], max_new_tokens=generation.max_new_tokens, batch_size=1,
                      on_text=on_text)[0]
    return answer, (first_at[0] if first_at else None)


class Asker:
    """The checkpoint `ask` answers with, loaded once, and the retriever: `answer(question)` as
    often as wanted (`docfinetune ask -` answers one question a line from stdin in one process).
    The arguments are `ask`'s; everything that can be wrong is checked before the model loads."""

    def __init__(self, workspace: Workspace, *, checkpoint: int | str | Path | None = None,
                 base: bool = False, sources: int = 0, config: PipelineConfig | None = None,
                 run_id: str | None = None, open_book: bool | None = None) -> None:
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
        why = "asked for" if open_book is not None else "no evaluation of this checkpoint yet"
        if open_book is None and chosen is not None:
            best, figures, measured_on = measured_system(run, chosen)
            if best is not None:
                open_book = best == "finetuned+rag"
                accuracy = figures["accuracy"]
                why = (f"eval measured fine-tuned + RAG {accuracy['finetuned+rag']:.0%} against closed-book "
                       f"{accuracy['finetuned']:.0%} on {figures['questions']} questions"
                       + (f" of {measured_on}" if measured_on else ""))
        self.run, self.chosen, self.config, self.sources = run, chosen, config, sources
        self.open_book, self.why = bool(open_book), why
        self.index = None
        # the document titles: retrieval's chunks show them, and generation.recall_sections starts from them
        self.titles = workspace.titles()
        self.chunk_at: dict[tuple[str, int], Chunk] = {}
        if sources or self.open_book:
            from docfinetune.core.retrieve import BM25Index

            self.index = BM25Index.from_workspace(workspace, config.retrieval)
            # a card carries the span of the chunk it came from: show the contract's own words beside it
            self.chunk_at = {(c.doc_id, c.char_start): c for c in self.index.chunks if not is_card(c)}
        self.model, self.tokenizer = load_answerer(config, chosen.path if chosen else None, merged=True)

    def answer(self, question: str, on_token: TokenFn | None = None, started: float | None = None) -> AskResult:
        """Answer `question`, streaming to `on_token`; times count from `started` (default: now)."""
        started = time.perf_counter() if started is None else started
        if not question.strip():
            raise DocfinetuneError("the question is empty")
        config, rag_k = self.config, self.config.eval.rag_k
        found: list[tuple[Chunk, float]] = []
        context: list[Chunk] = []
        if self.index is not None:
            hits = self.index.search(question, max(self.sources, rag_k if self.open_book else 0))
            found = hits[:self.sources] if self.sources else []
            context = [c for c, _ in hits[:rag_k]] if self.open_book else []
        if self.open_book:
            prompt = rag_prompt(question, context, self.titles, config.generation)
        else:
            prompt = format_prompt(config.generation.prompt_template, question)
        answer, first_at = stream_answer(self.model, self.tokenizer, prompt, config.generation, on_token)
        if not self.open_book:
            answer = self.recalled(question, answer, on_token)
        return AskResult(
            question=question,
            answer=answer,
            run_id=self.run.id if self.run else None,
            checkpoint=str(self.chosen.path) if self.chosen else BASE_MODEL,
            step=self.chosen.step if self.chosen else None,
            sources=found,
            seconds_to_first_token=None if first_at is None else first_at - started,
            seconds=time.perf_counter() - started,
            open_book=self.open_book,
            context=context,
            why=self.why,
            cited={c.chunk_id: self.chunk_at[(c.doc_id, c.char_start)] for c, _ in found
                   if is_card(c) and (c.doc_id, c.char_start) in self.chunk_at},
        )

    def recalled(self, question: str, answer: str, on_token: TokenFn | None) -> str:
        """The closed-book `answer` (already streamed) after the model's recital decodings, as eval
        and checkpoint selection answer (`closed_book_answers`): with build.recite_both the question
        asked again for a recital, read on, and kept when its recital quotes the question; otherwise
        a recited answer read on (generation.continue_recitals); with generation.recall_sections, for a
        question naming a section, the answer read from the model's recall of it; with read_quotes, for a
        question quoting its clause, the value read on from the quote."""
        generation = self.config.generation
        both = self.config.build.recite_both and self.chosen is not None
        streamed = format_prompt(generation.prompt_template, question)

        def ask_more(prompts: list[str], max_new_tokens: int, stop_at_line_end: bool = True) -> list[str]:
            if prompts == [streamed]:  # the plain answer is streamed
                return [answer]
            return generate(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=1,
                            stop_at_line_end=stop_at_line_end)

        titles = list(self.titles.values()) if self.chosen is not None else []
        got = closed_book_answers(ask_more, [question], generation, both, titles=titles)
        chosen = got["answer"][0]
        if chosen != answer and on_token is not None:
            if got.get("quoted", [""])[0] and chosen == got["quoted"][0]:
                on_token(f"\n(read on from the clause the question quotes: {chosen.rsplit(RECITAL_MARK, 1)[1]})")
            elif got.get("recall", [""])[0] and chosen == got["recalled"][0]:
                on_token(f"\n(from its recall of the section the question names: {chosen})")
            elif both:
                on_token(f"\n(recited, the clause the question quotes: {chosen})")
            else:
                on_token(f"\n(read on from the recital: {chosen.rsplit(RECITAL_MARK, 1)[1]})")
        return chosen


def ask(workspace: Workspace, question: str, *, checkpoint: int | str | Path | None = None,
        base: bool = False, sources: int = 0, on_token: TokenFn | None = None,
        config: PipelineConfig | None = None, run_id: str | None = None,
        open_book: bool | None = None) -> AskResult:
    """Answer `question` with the selected checkpoint of the newest run (or of `run_id`), or
    with the checkpoint at step / folder `checkpoint`, or with the bare base model (`base`).
    `config` is the pipeline used when there is no run (only possible with `base`); a run
    answers with its own resolved config. `sources=k` also returns the retriever's k best chunks.
    The times count from this call (loading the model included).

    `open_book`: answer with the retrieved chunks in the prompt (eval's fine-tuned + RAG). None
    (the default) decides by the run's last evaluation of this checkpoint (systems.json): open
    book when fine-tuned + RAG scored higher than fine-tuned closed-book there, else closed-book."""
    started = time.perf_counter()
    if not question.strip():
        raise DocfinetuneError("the question is empty")
    asker = Asker(workspace, checkpoint=checkpoint, base=base, sources=sources, config=config, run_id=run_id,
                  open_book=open_book)
    return asker.answer(question, on_token, started)
