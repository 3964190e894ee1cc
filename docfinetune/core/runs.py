"""Training runs: finding a run, its checkpoints, the one to resume or answer with, and
loading the base model with an adapter. `train` writes a run, `select` chooses in it, `ask` and
`eval` read it; the folder's file names are core/workspace.py's, with the rest of the layout.

Nothing here imports torch, so a missing run or an unknown checkpoint is reported before any
model library loads; `load_answerer` imports them when it is called.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from docfinetune.core.config import PipelineConfig, load_pipeline
from docfinetune.core.errors import ConfigError, DocfinetuneError, WorkspaceError
from docfinetune.core.workspace import (  # the run folder's file names live with the rest of the layout
    ADAPTER_FILE,
    CHECKPOINT_METRICS_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    FULL_MODEL_FILE,
    LATEST,
    METRICS_FILE,
    RUNS_DIR,
    SELECTION_FILE,
    SYSTEMS_FILE,
    Workspace,
    read_json_file,
    write_text_atomic,
)

__all__ = ["ADAPTER_FILE", "CHECKPOINT_METRICS_FILE", "CONFIG_FILE", "CURVES_FILE", "FULL_MODEL_FILE", "LATEST", "METRICS_FILE",
           "RUNS_DIR", "SELECTION_FILE", "SYSTEMS_FILE"]
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def runs_dir(workspace: Workspace) -> Path:
    return workspace.root / RUNS_DIR


def checkpoint_path(step: int) -> str:
    """A checkpoint's folder relative to its run (transformers Trainer's naming)."""
    return f"checkpoints/checkpoint-{step}"


def checkpoint_step(folder: Path) -> int | None:
    """The step of a checkpoint-<step> folder; None for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(Path(folder).name)
    return int(match.group(1)) if match else None


def config_yaml(config: PipelineConfig) -> str:
    """config.yaml's text: the resolved config, every field, in declaration order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Run:
    """One training run's folder, its resolved config and, once training has finished, its selection."""

    id: str
    path: Path
    config: PipelineConfig
    selection: dict | None  # selection.json; None while training has not finished

    def checkpoints(self) -> dict[int, Path]:
        """Every saved adapter by step: those selection.json lists, and any checkpoint folder
        holding an adapter that it does not (a run stopped before selecting)."""
        found = {int(entry["step"]): self.path / entry["path"]
                 for entry in (self.selection or {}).get("checkpoints", [])}
        folder = self.path / "checkpoints"
        for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
            step = checkpoint_step(sub)
            if step is not None and holds_weights(sub):
                found.setdefault(step, sub)
        return dict(sorted(found.items()))


@dataclass(frozen=True)
class Checkpoint:
    """The adapter to answer with."""

    path: Path  # the adapter folder
    step: int | None  # None for a folder outside the run's checkpoints
    reason: str  # why this one: the selection's reason, or that the caller chose it

    def relative_path(self, run: Run) -> str:
        """The folder as selection.json writes it (checkpoints/checkpoint-<step>) when it is in `run`."""
        path = self.path.resolve()
        return path.relative_to(run.path.resolve()).as_posix() if path.is_relative_to(run.path.resolve()) \
            else str(self.path)


def load_run(path: Path) -> Run:
    """The run in folder `path`, which must hold config.yaml."""
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise WorkspaceError(f"{config_path}: missing, so the run's base model is unknown; "
                             "run `docfinetune train` again")
    selection_path = path / SELECTION_FILE
    selection = read_json_file(selection_path) if selection_path.is_file() else None
    return Run(path.name, path, load_pipeline(str(config_path)), selection)


def find_run(workspace: Workspace, run_id: str | None = None) -> Run | None:
    """The run named `run_id`, else the one runs/latest names (the last finished); None when no
    run has finished, so each command can say what to do instead."""
    runs = runs_dir(workspace)
    if run_id is None:
        latest = runs / LATEST
        if not latest.is_file():
            return None
        try:
            run_id = latest.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise WorkspaceError(f"{latest}: not UTF-8 text; it should name the newest run "
                                 "(delete it, or run `docfinetune train`)") from None
        if not run_id:
            raise WorkspaceError(f"{latest}: empty; it should name the newest run (run `docfinetune train`)")
        path = checked_run_dir(workspace, run_id, source=str(latest))
    else:
        path = checked_run_dir(workspace, run_id)
    if not path.is_dir():
        known = sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if runs.is_dir() else []
        raise WorkspaceError(f"{path}: no such run (runs: {', '.join(known) or 'none'})")
    return load_run(path)


def checked_run_dir(workspace: Workspace, run_id: str, source: str = "run id") -> Path:
    """runs/<run_id>, after checking `run_id` as `new_run_dir` checks a new one: one folder name
    (no path separator, no '..'), inside runs/ even after following links. ConfigError otherwise,
    so no command reads or writes a run outside the workspace."""
    root = runs_dir(workspace)
    if not _RUN_ID.fullmatch(run_id) or run_id == LATEST:
        raise ConfigError(f"{source} {run_id!r}: not a run id (a folder name in {root}: letters, digits, "
                          f"'.', '_' and '-')")
    path = root / run_id
    if path.exists() and not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{source} {run_id!r}: {path} leads outside {root}")
    return path


def finished_step(run: Run) -> int | None:
    """The step a finished run (one with selection.json) ended at; None while it is unfinished."""
    if run.selection is None:
        return None
    steps = [int(entry["step"]) for entry in run.selection.get("checkpoints", []) if "step" in entry]
    return max(steps, default=0)


def run_to_resume(workspace: Workspace, run_id: str | None = None) -> Run:
    """The run `run_id`, else the newest (by config.yaml) interrupted run: one with a complete
    checkpoint and no selection.json. A finished run has nothing to resume: WorkspaceError."""
    if run_id is not None:
        run = find_run(workspace, run_id)
        assert run is not None  # never None with a run_id
        step = finished_step(run)
        if step is not None:
            raise WorkspaceError(f"run {run.id} finished at step {step}; nothing to resume "
                                 "(start a new run with `docfinetune train`)")
        return run
    root = runs_dir(workspace)
    started = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
               and (p / CONFIG_FILE).is_file()] if root.is_dir() else []
    def newest(paths: list[Path]) -> Path:
        return max(paths, key=lambda p: ((p / CONFIG_FILE).stat().st_mtime_ns, p.name))

    if not started:
        raise WorkspaceError(f"{root}: no training run to resume; start one with `docfinetune train`")
    unfinished = [p for p in started if not (p / SELECTION_FILE).exists()]
    resumable = [p for p in unfinished if last_checkpoint(p) is not None]
    if resumable:
        return load_run(newest(resumable))
    if unfinished:
        raise WorkspaceError(f"{newest(unfinished) / 'checkpoints'}: no complete checkpoint to resume from (nor "
                             "in any other unfinished run); start a new run with `docfinetune train`")
    raise WorkspaceError(f"{root}: every run has finished; nothing to resume (start a new run with "
                         "`docfinetune train`)")


def write_latest(workspace: Workspace, run_dir: Path) -> None:
    """Name `run_dir` in runs/latest: the run `ask` and `eval` use unless told otherwise."""
    write_text_atomic(runs_dir(workspace) / LATEST, run_dir.name + "\n")


def new_run_dir(workspace: Workspace, run_id: str | None = None) -> Path:
    """Create runs/<run-id>/, the id being the UTC time (YYYYmmdd-HHMMSS) unless given."""
    root = runs_dir(workspace)
    if run_id is not None:
        if not _RUN_ID.fullmatch(run_id) or run_id == LATEST:
            raise ConfigError(f"run id {run_id!r}: use letters, digits, '.', '_' and '-' (not '{LATEST}')")
        run_dir = root / run_id
        if run_dir.exists():
            raise WorkspaceError(f"{run_dir}: this run exists; continue it with resume, or give another run id")
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir, n = root / stamp, 1
        while run_dir.exists():  # two runs started within one second
            run_dir, n = root / f"{stamp}-{n}", n + 1
    run_dir.mkdir(parents=True)
    return run_dir


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint: Trainer's state and our metrics.json (written last)."""
    folder = run_dir / "checkpoints"
    done = [p for p in folder.iterdir() if checkpoint_step(p) is not None and (p / "trainer_state.json").is_file()
            and (p / CHECKPOINT_METRICS_FILE).is_file()] if folder.is_dir() else []
    return max(done, key=checkpoint_step, default=None)


def resolve_checkpoint(run: Run, checkpoint: int | str | Path | None = None, *, held_out: bool = False) -> Checkpoint:
    """The adapter to answer with: the selected checkpoint (or, when training then taught the
    held-out facts, train.teach_held_out_passes, that adapter — unless `held_out`: the questions
    include those facts, which only the selected one never saw), the one saved at step `checkpoint`
    (an int or a string of digits), or the folder `checkpoint` names (relative to the working
    directory or to the run). WorkspaceError, listing the saved steps, when there is none."""
    available = run.checkpoints()
    steps = ", ".join(map(str, available)) or "none saved yet"
    if checkpoint is None:
        selected = (run.selection or {}).get("selected")
        if not selected:
            raise WorkspaceError(f"{run.path / SELECTION_FILE}: no checkpoint selected yet (missing or empty: "
                                 f"did training finish?); pass --checkpoint STEP (steps: {steps})")
        taught = (run.selection or {}).get("taught_all")
        if taught and not held_out:
            found = Checkpoint(run.path / taught["path"], None,
                               f"step {selected['step']}, then every held-out fact taught "
                               f"(train.teach_held_out_passes {taught['passes']})")
        else:
            found = Checkpoint(run.path / selected["path"], int(selected["step"]),
                               (run.selection or {}).get("reason", "selected by training"))
    elif isinstance(checkpoint, int) or (isinstance(checkpoint, str) and checkpoint.isdigit()):
        step = int(checkpoint)
        if step not in available:
            raise WorkspaceError(f"run {run.id}: no checkpoint at step {step}; available steps: {steps}")
        found = Checkpoint(available[step], step, "chosen with --checkpoint")
    else:
        path = Path(checkpoint).expanduser()
        if not path.exists() and (run.path / path).exists():
            path = run.path / path
        by_path = {p.resolve(): s for s, p in available.items()}
        found = Checkpoint(path, by_path.get(path.resolve()), "chosen with --checkpoint")
    if not holds_weights(found.path):
        raise WorkspaceError(f"{found.path}: not a checkpoint (no {ADAPTER_FILE} or {FULL_MODEL_FILE}); "
                             f"run {run.id} has steps: {steps}")
    return found


def load_answerer(config: PipelineConfig, adapter: Path | None, *, merged: bool = False):
    """(model, tokenizer): `load_weights` and the base model's tokenizer; with `merged` the
    adapter is folded into the weights (`merge_adapter`), for a process that only answers."""
    from docfinetune.core.models import load_tokenizer

    model = load_weights(config, adapter)
    if merged:
        merge_adapter(model, config)
    return model, load_tokenizer(config.model)


def merge_adapter(model, config: PipelineConfig) -> bool:
    """Fold a LoRA adapter into the weights it adapts, in place; True when it did.

    Answers then skip the adapter's extra small matmuls: on the 2-core CPU the demo's adapter
    answered 32 RAG prompts in 18.2 s unmerged against 10.7 s merged (Gemma 3 270M, bf16, 32
    RAG prompts, benchmarks/demo_generate.py --adapter unmerged,merged; a few answers differ by
    bf16 rounding). 4-bit weights (nf4) stay unmerged:
    re-quantizing W + BA would round the adapter away. Switching the adapter off later
    (`disable_adapter`) unmerges first, at bf16 rounding; eval answers its base systems before
    merging."""
    if config.model.quantization == "nf4" or not hasattr(model, "merge_adapter"):
        return False
    model.merge_adapter()
    return True


def load_weights(config: PipelineConfig, checkpoint: Path | None):
    """The model of `config.model` in inference mode: the base model with the LoRA adapter at
    `checkpoint` on top, the whole fine-tuned model a train.method full checkpoint holds, or the
    bare base model when `checkpoint` is None."""
    from docfinetune.core.models import load_model, peft_import

    if checkpoint is not None and is_full_checkpoint(checkpoint):
        # a local model folder: the same loader, precision and errors as the base model
        return load_model(dataclasses.replace(config.model, base_model=str(checkpoint))).eval()
    model = load_model(config.model)
    if checkpoint is not None:
        with peft_import(for_inference=True):
            from peft import PeftModel

        try:
            with warnings.catch_warnings():
                # peft 0.21 asks transformers 5 for `is_gradient_checkpointing`, which warns on every load
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                model = PeftModel.from_pretrained(model, str(checkpoint), is_trainable=False)
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise DocfinetuneError(f"{checkpoint}: cannot put this LoRA adapter on {config.model.base_model} "
                                   f"({err})") from None
    return model.eval()


def holds_weights(folder: Path) -> bool:
    """A checkpoint folder: a peft adapter, or the whole model (train.method full)."""
    return (folder / ADAPTER_FILE).is_file() or (folder / FULL_MODEL_FILE).is_file()


def drop_optimizer_state(run_dir: Path, keep: Path | None) -> None:
    """Delete the optimizer state (Trainer's optimizer.pt, or an FSDP optimizer folder) of every
    checkpoint of the run older than `keep`, which must be complete (resume reads only the newest
    complete checkpoint), or of all of them with None (a selected run is not resumed). The weights
    stay for selection, eval, ask and export."""
    newest = checkpoint_step(keep) if keep is not None else None
    for folder in (run_dir / "checkpoints").glob("checkpoint-*"):
        step = checkpoint_step(folder)
        if step is None or (newest is not None and step >= newest):
            continue
        for entry in folder.glob("optimizer*"):
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def is_full_checkpoint(folder: Path) -> bool:
    """A checkpoint of train.method full: the whole model's weights, no adapter."""
    return not (folder / ADAPTER_FILE).is_file() and (folder / FULL_MODEL_FILE).is_file()


def best_system(run: Run, step: int | None, checkpoint: str | None = None) -> tuple[str | None, dict | None]:
    """("finetuned" or "finetuned+rag", the figures) from the run's systems.json when its last
    evaluation measured both fine-tuned systems on checkpoint `step` (and folder `checkpoint`,
    relative to the run, where both record it: a taught-all adapter has no step); (None, None)
    otherwise."""
    path = run.path / SYSTEMS_FILE
    try:
        figures = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None, None
    if not figures or figures.get("step") != step:
        return None, None
    if checkpoint is not None and figures.get("checkpoint") not in (None, checkpoint):
        return None, None
    accuracy = figures.get("accuracy", {})
    if accuracy.get("finetuned") is None or accuracy.get("finetuned+rag") is None:
        return None, None
    return ("finetuned+rag" if accuracy["finetuned+rag"] > accuracy["finetuned"] else "finetuned"), figures


def measured_system(run: Run, chosen: Checkpoint) -> tuple[str | None, dict | None, str]:
    """best_system for the adapter `chosen`, and where its figures come from: `chosen` itself (""),
    or, for the taught-all adapter that no evaluation has asked, the checkpoint it was taught from —
    an eval that includes the held-out facts asks that one, and teaching kept retrieval ahead there
    (H200, 10 contracts: fine-tuned + RAG 95 against closed-book 63 of 107 after teaching, 90 against
    58 before; benchmarks/RESULTS.md, "Knowledge")."""
    best, figures = best_system(run, chosen.step, chosen.relative_path(run))
    taught = (run.selection or {}).get("taught_all")
    if best is None and taught and chosen.step is None and chosen.relative_path(run) == taught["path"]:
        best, figures = best_system(run, taught["from_step"], run.selection["selected"]["path"])
        if best is not None:
            return best, figures, f"step {taught['from_step']}, before the held-out facts were taught"
    return best, figures, ""
