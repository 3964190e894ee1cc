"""`docfinetune ask`: answer a question with the checkpoint that `train` selected, streaming.

Reads what `train` wrote:

    runs/latest                      the newest run's id
    runs/<run-id>/config.yaml        the resolved pipeline config (base model, prompt, lengths)
    runs/<run-id>/selection.json     every checkpoint (step, path, figures) and the selected one
    runs/<run-id>/checkpoints/<ck>/  a PEFT adapter (adapter_config.json, adapter_model.safetensors)

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

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from docfinetune.config import PipelineConfig, TrainConfig, load_pipeline
from docfinetune.data.qa_types import Chunk
from docfinetune.errors import DocfinetuneError
from docfinetune.generate import first_line, format_prompt, greedy_settings
from docfinetune.workspace import Workspace

RUNS_DIR = "runs"
LATEST_FILE = "latest"
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


@dataclass(frozen=True)
class Run:
    """One training run's folder and what `ask` needs from it."""

    run_id: str
    path: Path
    config: PipelineConfig
    selection: dict | None  # selection.json, None while training has not finished

    def checkpoints(self) -> dict[int, Path]:
        """Every saved checkpoint by step: those selection.json lists, and any adapter folder
        under checkpoints/ it does not (a run stopped before selecting)."""
        found: dict[int, Path] = {}
        for entry in (self.selection or {}).get("checkpoints", []):
            found[int(entry["step"])] = self.path / entry["path"]
        folder = self.path / "checkpoints"
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                number = re.search(r"(\d+)$", sub.name)
                if number and (sub / "adapter_config.json").is_file():
                    found.setdefault(int(number.group(1)), sub)
        return dict(sorted(found.items()))


def runs_dir(workspace: Workspace) -> Path:
    return workspace.root / RUNS_DIR


def find_run(workspace: Workspace, run_id: str | None = None) -> Run | None:
    """The run named `run_id`, else the one runs/latest names; None when nothing was trained."""
    runs = runs_dir(workspace)
    if run_id is None:
        latest = runs / LATEST_FILE
        if not latest.is_file():
            return None
        run_id = latest.read_text(encoding="utf-8").strip()
        if not run_id:
            raise DocfinetuneError(f"{latest}: empty; it should name the newest run (run `docfinetune train`)")
    path = runs / run_id
    if not path.is_dir():
        known = sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if runs.is_dir() else []
        raise DocfinetuneError(f"{path}: no such run (runs: {', '.join(known) or 'none'})")
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise DocfinetuneError(f"{config_path}: missing, so the run's base model is unknown; "
                               "run `docfinetune train` again")
    selection_path = path / "selection.json"
    selection = json.loads(selection_path.read_text(encoding="utf-8")) if selection_path.is_file() else None
    return Run(run_id, path, load_pipeline(str(config_path)), selection)


def resolve_checkpoint(run: Run, checkpoint: int | str | Path | None = None) -> tuple[Path, int | None]:
    """The adapter folder and step to answer with: the selected checkpoint, the one saved at
    step `checkpoint` (an int or a string of digits), or the folder `checkpoint` names
    (relative to the working directory or to the run)."""
    available = run.checkpoints()
    steps = ", ".join(map(str, available)) or "none saved yet"
    if checkpoint is None:
        selected = (run.selection or {}).get("selected")
        if not selected:
            raise DocfinetuneError(f"run {run.run_id}: no checkpoint selected yet ({run.path / 'selection.json'} "
                                   f"is missing or empty); pass --checkpoint STEP (steps: {steps})")
        path, step = run.path / selected["path"], int(selected["step"])
    elif isinstance(checkpoint, int) or (isinstance(checkpoint, str) and checkpoint.isdigit()):
        step = int(checkpoint)
        if step not in available:
            raise DocfinetuneError(f"run {run.run_id}: no checkpoint at step {step}; available steps: {steps}")
        path = available[step]
    else:
        path = Path(checkpoint).expanduser()
        if not path.exists() and (run.path / path).exists():
            path = run.path / path
        by_path = {p.resolve(): s for s, p in available.items()}
        step = by_path.get(path.resolve())
    if not (path / "adapter_config.json").is_file():
        raise DocfinetuneError(f"{path}: not a checkpoint (no adapter_config.json); "
                               f"run {run.run_id} has steps: {steps}")
    return path, step


def load_answerer(config: PipelineConfig, adapter: Path | None):
    """The base model (and its tokenizer) with the adapter at `adapter` on top, if any, in
    inference mode."""
    from docfinetune.models import load_model, load_tokenizer

    model = load_model(config.model, config.train)
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter))
        except (ValueError, RuntimeError, KeyError) as err:
            raise DocfinetuneError(f"{adapter}: cannot put this adapter on {config.model.base_model} ({err})") from None
    model.eval()
    return model, load_tokenizer(config.model)


class _Cancelled:
    """A stopping criterion that ends generation once `event` is set (Ctrl-C while streaming)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def stream_answer(model, tokenizer, question: str, train: TrainConfig,
                  on_token: TokenFn | None = None) -> tuple[str, float | None]:
    """Generate the answer in a thread, passing each new piece of it to `on_token` as it
    arrives. Returns the answer (what `answer_questions` gives for this question: the pieces
    join to it) and the perf_counter time of the first piece (None for an empty answer)."""
    import torch
    from transformers import TextIteratorStreamer

    encoded = tokenizer([format_prompt(train.prompt_template, question)], return_tensors="pt")
    encoded = encoded.to(next(model.parameters()).device)
    length = encoded["input_ids"].shape[1]
    settings = greedy_settings(tokenizer, length, train.max_new_tokens)
    cancel = threading.Event()
    settings["stopping_criteria"].append(_Cancelled(cancel))
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
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
    raw, shown, first_at = "", "", None

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
        for piece in streamer:
            raw += piece
            show(first_line(raw))
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
            raise DocfinetuneError(f"no trained model in {runs_dir(workspace)}; run `docfinetune train` "
                                   "first, or use --base")
        if config is None:
            raise DocfinetuneError(f"no run in {runs_dir(workspace)} to take the pipeline config from; "
                                   "give the pipeline (--pipeline) to ask the base model")
    else:
        config = run.config
    if base:
        if checkpoint is not None:
            raise DocfinetuneError("give --checkpoint or --base, not both")
        adapter, step = None, None
    else:
        adapter, step = resolve_checkpoint(run, checkpoint)
    found: list[tuple[Chunk, float]] = []
    if sources:
        from docfinetune.retrieve import BM25Index

        found = BM25Index.from_workspace(workspace).search(question, sources)

    model, tokenizer = load_answerer(config, adapter)
    answer, first_at = stream_answer(model, tokenizer, question, config.train, on_token)
    return AskResult(
        question=question,
        answer=answer,
        run_id=run.run_id if run else None,
        checkpoint=str(adapter) if adapter else BASE_MODEL,
        step=step,
        sources=found,
        seconds_to_first_token=None if first_at is None else first_at - started,
        seconds=time.perf_counter() - started,
    )
