"""`docfinetune train`: LoRA / QLoRA fine-tune on the built datasets, evaluate every
checkpoint, choose one — three phases: `prepare` (read, tokenize, load, check memory; writes
nothing), `fit` (Trainer), then selection.

Writes a run folder (the layout is core/runs.py's): config.yaml first, then for every evaluation a
metrics.jsonl line and a checkpoint (peft adapter, tokenizer, optimizer, scheduler, RNG and
trainer state, its own metrics.json and config.yaml), then selection.json and curves.png
(select.py), and finally names the run in runs/latest for `ask` and `eval`.

transformers' `Trainer` runs the loop. `RunRecorder`, a `TrainerCallback`, adds what it lacks:
an evaluation and checkpoint at the end of every epoch (also of an unrolled `qa_with_text`
schedule), held-out and taught question accuracy beside val loss, the run files, and progress
events for the CLI.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from docfinetune.core.models import peft_import

with peft_import():  # transformers' trainer module imports peft, and peft bitsandbytes
    from transformers import TrainerCallback

from docfinetune.core import distributed
from docfinetune.core.config import PipelineConfig, TrainConfig
from docfinetune.core.errors import ConfigError, WorkspaceError
from docfinetune.core.generate import closed_book_answers, format_prompt, generate, rag_prompt, swapped_context
from docfinetune.core.models import resolve_device
from docfinetune.core.runs import (
    CHECKPOINT_METRICS_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SELECTION_FILE,
    Run,
    checkpoint_path,
    checkpoint_step,
    config_yaml,
    drop_optimizer_state,
    last_checkpoint,
    new_run_dir,
    run_to_resume,
    write_latest,
)
from docfinetune.core.score import CHOICE_MARK, RECITAL_MARK, answer_matches
from docfinetune.core.workspace import Workspace, read_jsonl, write_json, write_jsonl, write_text_atomic
from docfinetune.train.memory import apply_cap, check_fits, estimate
from docfinetune.train.select import plot_curves, select_checkpoint

log = logging.getLogger(__name__)
EventFn = Callable[[str, dict], None]
EXAMPLE_PREDICTIONS = 5  # answers kept in each checkpoint's metrics.json
IGNORE = -100  # label of tokens left out of the loss


# --------------------------------------------------------------------------- the stage


@dataclass
class Prepared:
    """Everything a run needs before its first step: `prepare()`'s result, `fit()`'s input."""

    config: PipelineConfig
    tokenizer: Any
    model: Any
    train_set: Any  # datasets.Dataset of input_ids/labels
    val_set: Any
    questions: list[dict]  # the val questions answered at each evaluation
    taught: list[dict]  # a sample of Q&A-train questions answered beside them (what the model was taught)
    warnings: list[str]
    fused_kernels: bool
    resume_from: Path | None  # the checkpoint a resumed run continues from
    run_dir: Path | None  # set for a resumed run; a new run gets its folder in train()
    memory: Any = None  # memory.MemoryEstimate of the largest micro-batch, on CUDA
    epoch_ends: list[int] | None = None  # an unrolled schedule: examples at each epoch's end


def prepare(workspace: Workspace, config: PipelineConfig, *, resume: bool = False,
            run_id: str | None = None, data: dict[str, list[dict]] | None = None) -> Prepared:
    """Read the datasets, tokenize the training mix, load the model with its adapter and check
    that the largest micro-batch fits the GPU. Writes nothing. With `resume` the run's own
    config is used and its last complete checkpoint is where `fit` continues. `data` ({"cpt",
    "qa_train", "qa_val"} rows) replaces the workspace's datasets (the throughput benchmark
    trains on the reading text alone)."""
    checkpoint, run_dir = None, None
    if resume:
        run, checkpoint = resume_point(workspace, run_id)
        run_dir, config = run.path, run.config
    if data is None:
        if workspace.read_stats() is None:
            raise WorkspaceError(f"{workspace.datasets_dir}: no datasets yet; run `docfinetune build` first")
        data = read_datasets(workspace)
    warnings = check_settings(config, data, workspace.datasets_dir)

    from docfinetune.core.models import load_tokenizer

    tokenizer = load_tokenizer(config.model)
    prompt_of = prompts_for(workspace, config, data["qa_train"])
    if config.train.schedule in ("qa_with_text", "phased"):
        examples, epoch_ends = passes_in_order(data, config.train, prompt_of)
        train_set = to_dataset(examples, tokenizer, config.train, shuffle=False)
    else:
        epoch_ends = None
        train_set = to_dataset(training_mix(data, config.train, prompt_of), tokenizer, config.train, shuffle=True)
    val_set = to_dataset([qa_example(prompt_of, r) for r in data["qa_val"]], tokenizer, config.train, shuffle=False)
    fused = fused_kernels_on(config)
    budget_gib = apply_cap(config.train) if resolve_device(config.model) == "cuda" else None
    model = prepare_model(config)
    found = None
    if budget_gib is not None:
        lengths = [len(ids) for ids in train_set["input_ids"]]
        found = estimate(model, config, lengths, fused_loss=fused, shards=weight_shards(config))
        per_example = sum(lengths) / max(len(lengths), 1) if config.train.packing else max(lengths, default=1)
        check_fits(found, budget_gib, config.train, per_example)
        log.info("GPU memory: about %.1f GiB of %.1f expected at the largest micro-batch", found.total_gib, budget_gib)
    if sharded(config):
        shard(model, output_layer_unit=bool(config.train.loss_chunk_tokens and config.train.label_only_logits))
    questions = accuracy_sample(data["qa_val"], config.train)
    taught = taught_sample(data["qa_train"], config.train)
    if config.build.open_book_share > 0 and workspace is not None:  # one index for both samples
        asked = with_open_book_prompts(workspace, config, questions + taught)
        questions, taught = asked[:len(questions)], asked[len(questions):]
    return Prepared(config, tokenizer, model, train_set, val_set, questions, taught, warnings, fused, checkpoint,
                    run_dir, found, epoch_ends)


def resume_point(workspace: Workspace, run_id: str | None = None) -> tuple[Run, Path]:
    """The run `--resume` continues (the latest, or `run_id`) and its last complete checkpoint."""
    run = run_to_resume(workspace, run_id)
    checkpoint = last_checkpoint(run.path)
    if checkpoint is None:
        raise WorkspaceError(f"{run.path / 'checkpoints'}: no complete checkpoint to resume from; "
                             "start a new run with `docfinetune train`")
    return run, checkpoint


def train(workspace: Workspace, config: PipelineConfig, *, resume: bool = False, run_id: str | None = None,
          on_event: EventFn | None = None) -> Path:
    """Fine-tune on the workspace's datasets, evaluate every checkpoint, choose one; returns
    the run folder. Three phases: `prepare` (nothing written: a model that fails to load
    leaves no run), `fit` (the run folder, its metrics and checkpoints), `select`.

    `resume` continues the latest run (or `run_id`) from its last checkpoint with the config
    stored in that run. `on_event(kind, data)` receives "start", "step", "eval" and "done".
    """
    # Under `accelerate launch` every process runs this; the main one alone writes the run
    # folder and reports progress, the others train beside it and return the same folder.
    distributed.start()
    main = distributed.is_main()
    emit = on_event if on_event is not None and main else (lambda kind, data: None)
    ready = prepare(workspace, config, resume=resume, run_id=run_id)
    for warning in ready.warnings if main else ():
        log.warning(warning)
    seconds_before = 0.0
    if ready.run_dir is not None:
        run_dir = ready.run_dir
        if main:
            seconds_before = keep_metrics_until(run_dir, checkpoint_step(ready.resume_from))
    else:
        if main:
            run_dir = new_run_dir(workspace, run_id)
            write_text_atomic(run_dir / CONFIG_FILE, config_yaml(ready.config))
        run_dir = Path(distributed.from_main(str(run_dir) if main else None))
    start = {"run_id": run_dir.name, "run_dir": str(run_dir), "examples": len(ready.train_set),
             "tokens": sum(len(ids) for ids in ready.train_set["input_ids"]), "val_rows": len(ready.val_set),
             "warnings": ready.warnings}
    t = ready.config.train
    per_step = examples_per_step(t)
    epoch_steps = {math.ceil(n / per_step) for n in ready.epoch_ends} if ready.epoch_ends else set()
    recorder = RunRecorder(run_dir, ready.config, ready.tokenizer, ready.questions, emit, start, seconds_before,
                           epoch_steps, ready.taught, ready.fused_kernels)
    fit(ready.model, ready.tokenizer, ready.train_set, ready.val_set, run_dir, ready.config, [recorder],
        ready.resume_from, quiet=on_event is not None, fused_kernels=ready.fused_kernels,
        in_order=ready.epoch_ends is not None)

    # selection.json, written last, marks the run finished: a run stopped while it teaches the
    # held-out facts has none, and --resume selects and teaches again
    teaching = teaches_held_out(ready.config)
    if main:
        selection = select_checkpoint(run_dir, t.select_by, t.taught_weight, t.selection_tolerance, write=not teaching)
        curves = plot_curves(run_dir)
    if teaching:
        selected = distributed.from_main(selection["selected"]["path"] if main else None)
        taught = teach_held_out(workspace, run_dir, ready, selected, emit, quiet=on_event is not None)
        if main:
            selection = {**selection, "taught_all": taught} if taught else selection
            write_json(run_dir / SELECTION_FILE, selection)
    if main:
        if t.keep_optimizer_state == "last":  # selected: the run is never resumed
            drop_optimizer_state(run_dir, None)
        write_latest(workspace, run_dir)
        emit("done", {**selection, "curves": str(curves)})
    distributed.barrier()  # the others return once the run is selected
    return run_dir


def fit(model, tokenizer, train_set, val_set, run_dir: Path, config: PipelineConfig, callbacks: list,
        checkpoint: Path | None, quiet: bool, fused_kernels: bool = False, in_order: bool = False,
        scratch: Path | None = None):
    """The loop: transformers' Trainer with our schedule, cadence and callbacks (RunRecorder).
    `in_order`: `train_set` holds every epoch already ordered (one Trainer epoch, no shuffle).
    `scratch`: Trainer's folder instead of the run's checkpoints, nothing saved or evaluated on
    the way (teach_held_out saves the result itself). Returns the Trainer."""
    import torch
    from transformers import (
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    from docfinetune.core.models import resolve_device, resolve_dtype

    t = config.train
    device = resolve_device(config.model)
    has_val = len(val_set) > 0
    if t.packing and t.packed_row_tokens:
        collator = PackedRows(t.packed_row_tokens, tokenizer.pad_token_id)
    elif t.packing:
        # One row per micro-batch, position ids restarting per example: transformers builds a
        # block-causal mask from them (sdpa/eager), so examples do not see each other.
        collator = DataCollatorWithFlattening()
    else:
        tokenizer.padding_side = "right"
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
    args = TrainingArguments(
        output_dir=str(scratch or run_dir / "checkpoints"),
        num_train_epochs=1 if in_order else t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,  # val loss: the logits of a training-sized batch
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a share of the steps
        optim=t.optimizer,
        seed=t.seed,
        bf16=resolve_dtype(config.model, device) == torch.bfloat16,
        use_cpu=device == "cpu",
        # Evaluate and save every eval_every_steps (RunRecorder adds each epoch's end); keep all.
        eval_strategy="steps" if has_val and scratch is None else "no",
        eval_steps=t.eval_every_steps,
        save_strategy="steps" if scratch is None else "no",
        save_steps=t.eval_every_steps,
        save_total_limit=None,
        prediction_loss_only=True,
        logging_strategy="steps",
        logging_steps=1,
        # One packed row holds no padding; packed rows are evened out with pad tokens, padded
        # batches carry an attention mask: "non_padding" counts only real tokens in both.
        include_num_input_tokens_seen="all" if t.packing and not t.packed_row_tokens else "non_padding",
        label_names=["labels"],
        remove_unused_columns=False,
        dataloader_num_workers=t.dataloader_workers,
        use_liger_kernel=fused_kernels,  # patches the model's modules when training starts
        report_to=[] if t.report_to == "none" else [t.report_to],  # checked installed by check_settings
        run_name=run_dir.name,
        disable_tqdm=quiet,
        **parallel_arguments(config),
    )
    if distributed.world_size() == 1 and args.n_gpu > 1:
        # One process trains on one GPU. Trainer would wrap the model in DataParallel over every
        # GPU it sees (a 2-GPU machine ran "one GPU" at 2 x the batch, 2026-11-30); more than one
        # GPU is `--num-gpus N`, with one process each.
        args._n_gpu = 1
    trainer_class = _in_order_trainer() if in_order else Trainer
    if t.label_only_logits and not fused_kernels:  # liger fuses the output layer with its loss itself
        from docfinetune.train.loss import label_only_trainer

        trainer_class = label_only_trainer(trainer_class, t.loss_chunk_tokens)
    trainer = trainer_class(model=model, args=args, train_dataset=train_set, eval_dataset=val_set if has_val else None,
                            data_collator=collator, processing_class=tokenizer, callbacks=callbacks)
    if quiet:
        trainer.remove_callback(PrinterCallback)  # the caller shows progress from our events
    if t.report_to != "none":  # the project's figures go to the tracker beside the Trainer's
        for callback in callbacks:
            if isinstance(callback, RunRecorder):
                callback.tracker_log = trainer.log
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return trainer


TAUGHT_ALL = "checkpoints/taught-all"  # the adapter teach_held_out writes, beside checkpoint-<step>


class TeachingProgress(TrainerCallback):
    """teach_held_out's progress: a "teach" event per step (step, total_steps, loss)."""

    def __init__(self, emit: EventFn) -> None:
        self.emit, self.loss = emit, None

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.loss = (logs or {}).get("loss", self.loss)

    def on_step_end(self, args, state, control, **kwargs):
        self.emit("teach", {"step": state.global_step, "total_steps": state.max_steps, "loss": self.loss})


def teach_held_out(workspace: Workspace, run_dir: Path, ready: Prepared, selected: str, emit: EventFn,
                   quiet: bool, target: str = TAUGHT_ALL) -> dict | None:
    """train.teach_held_out_passes: from the selected adapter, a short training on the facts the run
    held out (Q&A-val and Q&A-test rows), `teach_held_out_replay` training rows replayed for each so
    the taught ones are kept, and the reading records of the held-out facts' chunks, in the
    qa_with_text order; the adapter goes to `target` in the run (TAUGHT_ALL; the knowledge
    benchmark teaches the same checkpoint other ways beside it). Returns selection.json's
    "taught_all" entry, or None when nothing was held out. `selected`: the selected checkpoint's
    folder in the run, which stays as it was: eval asks it the held-out facts."""
    with peft_import():
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

    t = ready.config.train
    data = read_datasets(workspace)
    held = data["qa_val"] + workspace.read_dataset("qa_test")
    if not held:
        return None
    started = time.perf_counter()
    replay, texts = teaching_rows(data, held, t)
    teaching = dataclasses.replace(t, schedule="qa_with_text", epochs=t.teach_held_out_passes, max_steps=0,
                                   learning_rate=t.teach_held_out_learning_rate or t.learning_rate, warmup_ratio=0.0)
    prompt_of = prompts_for(workspace, ready.config, replay)  # the run's generation and build settings
    examples, _ = passes_in_order({"cpt": texts, "qa_train": held + replay}, teaching, prompt_of)
    train_set = to_dataset(examples, ready.tokenizer, teaching, shuffle=False)
    # never longer than the training it follows: a run cut to --max-steps 12 would otherwise teach for
    # hundreds (6 passes of the sample at 8 a step: ~670); the default's 14-168 steps after 37-426 are not cut
    trained = checkpoint_step(last_checkpoint(run_dir))
    if math.ceil(len(train_set) / examples_per_step(teaching)) > trained:
        teaching = dataclasses.replace(teaching, max_steps=trained)
    config = dataclasses.replace(ready.config, train=teaching)
    # the weights training ended with are the last checkpoint's; teaching starts from the selected one
    set_peft_model_state_dict(ready.model, load_peft_weights(str(run_dir / selected)))
    scratch = run_dir / "teaching"
    trainer = fit(ready.model, ready.tokenizer, train_set, to_dataset([], ready.tokenizer, teaching, shuffle=False),
                  run_dir, config, [TeachingProgress(emit)], None, quiet, fused_kernels=ready.fused_kernels, in_order=True,
                  scratch=scratch)
    written = run_dir / target
    if distributed.is_main():
        staging = written.with_name(written.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        trainer.save_model(str(staging))
        shutil.rmtree(written, ignore_errors=True)
        staging.rename(written)  # a crash leaves the .partial folder, never a half-written adapter
        shutil.rmtree(scratch, ignore_errors=True)
    distributed.barrier()
    return {"path": target, "from_step": checkpoint_step(run_dir / selected), "passes": t.teach_held_out_passes,
            "rows": {"held_out": len(held), "replayed": len(replay), "reading": len(texts)},
            "steps": trainer.state.global_step, "seconds": round(time.perf_counter() - started, 1)}


def teaching_rows(data: dict[str, list[dict]], held: list[dict], t: TrainConfig) -> tuple[list[dict], list[dict]]:
    """What teach_held_out trains on beside the `held` rows: the replayed training Q&A rows (a seeded
    sample, `teach_held_out_replay` per held row, and with `teach_held_out_replay_rules` every rules
    row besides) and the reading records of the held rows' chunks."""
    replayed = min(round(len(held) * t.teach_held_out_replay), len(data["qa_train"]))
    drawn = random.Random(f"{t.seed}:teach").sample(range(len(data["qa_train"])), replayed)
    if t.teach_held_out_replay_rules:  # and every document-level field's row not drawn
        chosen = set(drawn)
        drawn += [i for i, row in enumerate(data["qa_train"]) if i not in chosen and row.get("generator") == "rules"]
    chunks = {cid for row in held for cid in row.get("source_chunk_ids") or ()}
    return [data["qa_train"][i] for i in drawn], [row for row in data["cpt"] if row.get("chunk_id") in chunks]


def examples_per_step(t: TrainConfig) -> int:
    """Examples in one optimizer step, over every process."""
    return t.micro_batch_size * t.gradient_accumulation_steps * distributed.world_size()


def teaches_held_out(config: PipelineConfig) -> bool:
    """Whether train teaches the held-out facts after selection: it trains on from the selected LoRA
    adapter, which method full lacks and FSDP would have to load into a sharded model."""
    return bool(config.train.teach_held_out_passes) and config.train.method == "lora" and not sharded(config)


def sharded(config: PipelineConfig) -> bool:
    """Whether this run shards its model across processes (FSDP on more than one)."""
    return config.train.strategy == "fsdp" and distributed.world_size() > 1


def weight_shards(config: PipelineConfig) -> int:
    """Into how many shares FSDP splits the weights and optimizer state (1: each GPU holds all)."""
    return distributed.world_size() if sharded(config) else 1


def parallel_arguments(config: PipelineConfig) -> dict:
    """TrainingArguments for several processes. DDP needs nothing beyond the launcher's
    environment. FSDP2 through accelerate on the units `shard` made, activation recomputation
    left to the model's own gradient checkpointing (FSDP's would all-gather each layer once
    more), and the full state dict gathered on the main process when a checkpoint is saved, so
    an FSDP checkpoint is the same adapter folder `ask`, `eval` and `export` read."""
    if not sharded(config):
        # Every parameter of a frozen base with an adapter takes part in each step: DDP need not
        # search the graph for unused ones (it would by default, at a cost per step).
        return {"ddp_find_unused_parameters": False} if distributed.world_size() > 1 else {}
    # NO_WRAP: `shard` made the units already (accelerate looks for the layer class by name, which
    # sharding changed, and would refuse).
    return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True, "auto_wrap_policy": "NO_WRAP",
                                          "state_dict_type": "FULL_STATE_DICT", "cpu_ram_efficient_loading": False}}


def shard(model, output_layer_unit: bool = False) -> None:
    """FSDP2's `fully_shard` on each decoder layer, then on the whole model, right after loading:
    each layer's full copy is freed as soon as its shard is made. accelerate would shard the same
    units inside Trainer, but holding a state dict of every loaded 4-bit weight meanwhile (its own
    comment calls it a VRAM spike): 1.5x the weights on each GPU, which ran Qwen2.5 32B's shape out
    of a 24 GiB cap on the H200 pair (2026-11-30). Trainer sees a model already sharded and keeps
    it. Compute in bf16, gradients reduced in fp32. `output_layer_unit`: the output layer is a
    unit of its own, gathered whenever it is called (the chunked loss calls it outside the model's
    forward); not for a model whose output layer is its input embeddings."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers.modeling_layers import GradientCheckpointingLayer

    distributed.start()
    cuda = any(p.is_cuda for p in model.parameters())
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if cuda else None, reduce_dtype=torch.float32)
    for layer in [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]:
        fully_shard(layer, mp_policy=policy)
    if output_layer_unit:
        from docfinetune.train.loss import causal_lm

        causal = causal_lm(model)
        head, embeddings = causal.get_output_embeddings(), causal.get_input_embeddings()
        if head.weight is embeddings.weight:
            raise ConfigError("train.loss_chunk_tokens with FSDP: this model's output layer is its input "
                              "embeddings (tied), so it cannot be a unit of its own; set it to 0")
        fully_shard(head, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    if cuda:
        torch.cuda.empty_cache()


def _in_order_trainer():
    from transformers import Trainer

    class InOrder(Trainer):
        """Trainer that reads the training set in its stored order (a schedule made by
        `passes_in_order`, already shuffled per epoch with the seed)."""

        def _get_train_sampler(self, *args, **kwargs):
            from torch.utils.data import SequentialSampler

            return SequentialSampler(self.train_dataset)

    return InOrder


class PackedRows:
    """Collate a micro-batch into rows of at most `row_tokens` tokens, longest example first into
    the first row with room. Position ids restart at every example, which makes transformers'
    mask block-causal (no attention across examples) — as DataCollatorWithFlattening does for
    one row. Rows are evened out with `pad_id` tokens that carry no labels and restart their own
    positions (so they form a block of their own); Trainer counts tokens other than `pad_id`."""

    def __init__(self, row_tokens: int, pad_id: int) -> None:
        self.row_tokens, self.pad_id = row_tokens, pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        rows: list[list[dict]] = []
        room: list[int] = []
        for example in sorted(features, key=lambda f: -len(f["input_ids"])):
            size = len(example["input_ids"])
            slot = next((i for i, free in enumerate(room) if size <= free), None)
            if slot is None:  # no row has room: open one
                rows.append([])
                room.append(self.row_tokens)
                slot = len(rows) - 1
            rows[slot].append(example)
            room[slot] -= size
        width = self.row_tokens - min(room)
        columns: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
        for row in rows:
            ids, labels, positions = [], [], []
            for example in row:
                ids += example["input_ids"]
                labels += [IGNORE] + list(example["labels"][1:])  # no loss across the example boundary
                positions += range(len(example["input_ids"]))
            pad = width - len(ids)
            columns["input_ids"].append(ids + [self.pad_id] * pad)
            columns["labels"].append(labels + [IGNORE] * pad)
            columns["position_ids"].append(positions + list(range(pad)))
        return {key: torch.tensor(value, dtype=torch.long) for key, value in columns.items()}


# --------------------------------------------------------------------------- evaluation and checkpoints


class RunRecorder(TrainerCallback):
    """Evaluate and save at every epoch's end too; measure question accuracy beside val loss;
    write metrics.jsonl and each checkpoint's metrics.json and config.yaml; report progress."""

    tracker_log: Callable[[dict], None] | None = None  # Trainer.log when train.report_to names a tracker

    def __init__(self, run_dir: Path, config: PipelineConfig, tokenizer, questions: list[dict],
                 emit: EventFn, start: dict, seconds_before: float, epoch_steps: set[int] = frozenset(),
                 taught: list[dict] = (), fused_kernels: bool = False) -> None:
        self.run_dir, self.config, self.tokenizer, self.questions = run_dir, config, tokenizer, questions
        self.sharded = sharded(config)
        self.taught = list(taught)
        # liger-kernel's patched model answers left-padded batches wrongly (measured on the H200:
        # 2 of 4 prompts garbled in a batch, 4 of 4 right one at a time; benchmarks/RESULTS.md),
        # so with fused kernels the evaluation asks one question at a time.
        self.generation = (dataclasses.replace(config.generation, batch_size=1) if fused_kernels
                           else config.generation)
        self.epoch_steps = epoch_steps  # an unrolled schedule's epoch ends, evaluated like Trainer's
        self.emit, self.start, self.seconds_before = emit, start, seconds_before
        self.losses: list[float] = []  # train loss of each step since the last evaluation
        self.learning_rate: float | None = None
        self.validation: dict[str, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.session_start = self.segment_start = self.last_step_end = time.perf_counter()
        self.first_step = self.saved_step = state.global_step  # a resumed run starts at its checkpoint
        self.segment_tokens = state.num_input_tokens_seen
        self.emit("start", {**self.start, "total_steps": state.max_steps,
                            "resumed_from_step": state.global_step or None})

    def on_step_end(self, args, state, control, **kwargs):
        self.last_step_end = time.perf_counter()
        if state.global_step in self.epoch_steps and state.global_step != self.saved_step:
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = True

    def tokens_per_s(self, state) -> float:
        """Input tokens (no padding) per second of training since the last evaluation."""
        seconds = self.last_step_end - self.segment_start
        return round((state.num_input_tokens_seen - self.segment_tokens) / seconds, 1) if seconds > 0 else 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # Trainer logs evaluations too
            return
        self.losses.append(logs["loss"])
        self.learning_rate = logs.get("learning_rate")
        done = state.global_step - self.first_step
        elapsed = time.perf_counter() - self.session_start
        self.emit("step", {"step": state.global_step, "loss": logs["loss"], "tokens_per_s": self.tokens_per_s(state),
                           "tokens_seen": state.num_input_tokens_seen,
                           "eta_s": round(elapsed / max(done, 1) * (state.max_steps - state.global_step), 1),
                           "learning_rate": self.learning_rate})

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step != self.saved_step:  # the epoch's last step was not evaluated yet
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = True

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        # before train.answer_from of the steps: val loss only (answering is most of an evaluation)
        answering = state.global_step >= self.config.train.answer_from * state.max_steps
        self.validation = {"val_loss": (metrics or {}).get("eval_loss"), **(self.validate(model) if answering else {})}

    def validate(self, model) -> dict:
        """Greedy answers to the sampled val questions (facts held out of training: does the
        model answer what it only read?) and to a sample of the training questions (did it
        learn what it was taught?), scored by the project's one scorer."""
        asked = self.questions + self.taught
        # as eval and ask answer: read on from recitals, both ways with build.recite_both, a quoted clause read
        # on (generation.read_quotes); not a section's recall (recall_sections: eval and ask only, ~160 tokens more)
        predictions = closed_book_answers(lambda prompts, tokens, stop_at_line_end=True:
                                          self.answers(model, prompts, tokens, stop_at_line_end),
                                          [q["question"] for q in asked], self.generation,
                                          self.config.build.recite_both)["answer"]
        results = [answer_matches(p, q["answer"], q.get("field")) for p, q in zip(predictions, asked)]
        val, taught = results[:len(self.questions)], results[len(self.questions):]
        examples = [{"question": q["question"], "reference": q["answer"], "prediction": p, "correct": ok}
                    for q, p, ok in zip(self.questions[:EXAMPLE_PREDICTIONS], predictions, val)]
        # Open-book, as `ask` with retrieval asks: the val questions and the taught sample.
        open_asked = [q for q in asked if "open_book_prompt" in q]
        open_book = []
        if open_asked:
            answers = self.answers(model, [q["open_book_prompt"] for q in open_asked])
            open_book = [answer_matches(p, q["answer"], q.get("field")) for p, q in zip(answers, open_asked)]
        held_out_count = sum("open_book_prompt" in q for q in self.questions)
        held_out_open, taught_open = open_book[:held_out_count], open_book[held_out_count:]
        return {"accuracy": sum(val) / len(val) if val else None, "correct": sum(val), "questions": len(val),
                "open_book_accuracy": sum(held_out_open) / len(held_out_open) if held_out_open else None,
                "taught_accuracy": sum(taught) / len(taught) if taught else None,
                "taught_open_book_accuracy": sum(taught_open) / len(taught_open) if taught_open else None,
                "examples": examples}

    def answers(self, model, prompts: list[str], max_new_tokens: int | None = None,
                stop_at_line_end: bool = True) -> list[str]:
        """Greedy answers in order (at most `max_new_tokens`, default generation.max_new_tokens; the first
        line of each, or the whole continuation without `stop_at_line_end`); with several processes each
        answers its share of the prompts and all get every answer (an FSDP model: shares of one length,
        generated in step)."""
        in_step = self.sharded
        mine, real = distributed.share(prompts, equal=in_step)
        answers = generate(model, self.tokenizer, mine, max_new_tokens=max_new_tokens or self.generation.max_new_tokens,
                           batch_size=self.generation.batch_size, stop_at_line_end=stop_at_line_end,
                           synced_gpus=in_step) if mine else []
        return distributed.gather(answers[:real])

    def on_save(self, args, state, control, **kwargs):
        self.save_checkpoint(state)

    def save_checkpoint(self, state) -> None:
        """Record the evaluation of the checkpoint Trainer has just written (the main process
        writes; with several, the peak memory is the largest GPU's). metrics.json goes last: it
        marks the checkpoint complete for `resume`."""
        validation, self.validation = self.validation, {}
        peaks = [p for p in distributed.gather([peak_gpu_gib()]) if p is not None]
        if not distributed.is_main():
            self.losses, self.saved_step = [], state.global_step
            return
        line = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                "train_loss": sum(self.losses) / len(self.losses) if self.losses else None,
                "val_loss": validation.get("val_loss"), "accuracy": validation.get("accuracy"),
                "correct": validation.get("correct"), "questions": validation.get("questions", 0),
                "open_book_accuracy": validation.get("open_book_accuracy"),
                "taught_accuracy": validation.get("taught_accuracy"),
                "taught_open_book_accuracy": validation.get("taught_open_book_accuracy"),
                "tokens_per_s": self.tokens_per_s(state), "peak_gpu_gib": max(peaks, default=None),
                "seconds": round(self.seconds_before + time.perf_counter() - self.session_start, 2),
                # since the last training step: val loss, the accuracy questions, writing the checkpoint
                "eval_seconds": round(time.perf_counter() - self.last_step_end, 2),
                "learning_rate": self.learning_rate}
        metrics_path = self.run_dir / METRICS_FILE
        earlier = [r for r in read_jsonl(metrics_path) if r["step"] < line["step"]] if metrics_path.is_file() else []
        write_jsonl(metrics_path, [*earlier, line])
        folder = self.run_dir / checkpoint_path(state.global_step)
        write_text_atomic(folder / CONFIG_FILE, config_yaml(self.config))
        write_json(folder / CHECKPOINT_METRICS_FILE, {**line, "examples": validation.get("examples", [])})
        if self.config.train.keep_optimizer_state == "last":  # this checkpoint is complete: resume reads it
            drop_optimizer_state(self.run_dir, folder)
        if self.tracker_log is not None:
            self.tracker_log(tracker_figures(line, self.run_dir, self.config.train))
        self.emit("eval", line)
        self.losses, self.saved_step = [], state.global_step
        self.segment_start = self.last_step_end = time.perf_counter()
        self.segment_tokens = state.num_input_tokens_seen


def tracker_figures(line: dict, run_dir: Path, t: TrainConfig) -> dict[str, float]:
    """What a tracker gets beside the Trainer's loss: this evaluation's held-out and taught
    accuracy and the step the selection rule picks among the checkpoints so far (the last value
    is the run's selection). The "eval_" prefix files them with Trainer's eval_loss."""
    from docfinetune.train.select import _checkpoints, _choose

    figures = {"eval_accuracy": line.get("accuracy"), "eval_taught_accuracy": line.get("taught_accuracy"),
               "eval_open_book_accuracy": line.get("open_book_accuracy"),
               "eval_taught_open_book_accuracy": line.get("taught_open_book_accuracy"),
               "selected_step": _choose(_checkpoints(run_dir), t.select_by, t.taught_weight,
                                        t.selection_tolerance)[0]["step"]}
    return {key: value for key, value in figures.items() if value is not None}


def peak_gpu_gib() -> float | None:
    """The most GPU memory the caching allocator has held so far (None without CUDA)."""
    import torch

    return round(torch.cuda.max_memory_reserved() / 2 ** 30, 2) if torch.cuda.is_available() else None


# --------------------------------------------------------------------------- settings


def check_settings(config: PipelineConfig, data: dict[str, list[dict]], datasets_dir: Path) -> list[str]:
    """Every problem at once (raised as one ConfigError) before a model is loaded; returns warnings."""
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    t = config.train
    problems, warnings = [], []
    schedulers = [s.value for s in SchedulerType]
    if t.lr_scheduler not in schedulers:
        problems.append(f"train.lr_scheduler: {t.lr_scheduler!r} is not one of {', '.join(schedulers)}")
    if t.report_to != "none":
        from transformers import integrations

        if not getattr(integrations, f"is_{t.report_to}_available")():
            problems.append(f"train.report_to: {t.report_to} is not installed: pip install {t.report_to}")
    if t.optimizer not in {o.value for o in OptimizerNames}:
        problems.append(f"train.optimizer: {t.optimizer!r} is not a transformers optimizer name "
                        "(e.g. adamw_torch, adamw_torch_fused, paged_adamw_8bit)")
    if t.teach_held_out_passes and not teaches_held_out(config):
        why = "method full has no adapter" if t.method != "lora" else "FSDP shards the model it would load it into"
        warnings.append(f"train.teach_held_out_passes: the held-out facts are not taught after selection ({why}); "
                        "the selected checkpoint is the model")
    if not data["cpt"] and not data["qa_train"]:
        problems.append(f"{datasets_dir}: cpt.jsonl and qa_train.jsonl are both empty, so there is nothing "
                        "to train on; ingest documents with text, then `docfinetune build --force`")
    elif not data["qa_train"]:
        warnings.append(f"{datasets_dir / 'qa_train.jsonl'}: no Q&A to train on; the model only reads the "
                        "documents, which teaches it to recite them rather than answer questions")
    if not data["qa_val"]:
        warnings.append(f"{datasets_dir / 'qa_val.jsonl'}: no validation questions, so val loss and accuracy "
                        "are undefined; training goes on and the last checkpoint is selected (hold facts "
                        "out with build.split_val_fraction)")
    if problems:
        raise ConfigError(*problems)
    return warnings


# --------------------------------------------------------------------------- data


def read_datasets(workspace: Workspace) -> dict[str, list[dict]]:
    return {name: workspace.read_dataset(name) for name in ("cpt", "qa_train", "qa_val")}


def qa_example(prompt_of: Callable[[dict], str], row: dict) -> dict:
    """A Q&A row as the model sees it: the prompt (left out of the loss) and the answer, after
    the clause it is recalled from when the row has a recital (build.recite)."""
    recital = f" {row['recital']}{RECITAL_MARK}" if row.get("recital") else " "
    return {"prompt": prompt_of(row), "completion": recital + row["answer"].strip()}


def prompts_for(workspace: Workspace | None, config: PipelineConfig,
                rows: list[dict]) -> Callable[[dict], str]:
    """How a Q&A row is asked: closed-book in `generation.prompt_template`, or, for an open-book
    row (`context_chunk_ids`), with those chunks in `generation.rag_template` — the prompt eval's
    RAG systems use."""
    generation = config.generation
    chunks, titles = {}, {}
    if workspace is not None and any(r.get("context_chunk_ids") for r in rows):
        documents, corpus = workspace.read_searchable(held_out_cards=False)  # training never reads them
        chunks = {c.chunk_id: c for c in corpus}
        titles = {d.doc_id: d.title for d in documents}

    def prompt_of(row: dict) -> str:
        context = swapped_context([chunks[cid] for cid in row.get("context_chunk_ids") or () if cid in chunks],
                                  row.get("context_swap"))
        if context:
            return rag_prompt(row["question"], context, titles, generation)
        # build.recite_both: a row's copy asked for a recital (before 2026-12-02 its recital marked it)
        if config.build.recite_both and (row.get("recital") or row.get("prompt") == "recite"):
            return format_prompt(generation.recite_prompt_template, row["question"])
        return format_prompt(generation.prompt_template, row["question"])

    return prompt_of


def training_mix(data: dict[str, list[dict]], t: TrainConfig, prompt_of: Callable[[dict], str]) -> list[dict]:
    """One copy of the document text beside `qa_repeats` copies of the Q&A (shuffled later)."""
    cpt = [{"prompt": "", "completion": row["text"]} for row in data["cpt"]]
    return cpt + [qa_example(prompt_of, row) for row in data["qa_train"]] * t.qa_repeats


def passes_in_order(data: dict[str, list[dict]], t: TrainConfig,
                    prompt_of: Callable[[dict], str]) -> tuple[list[dict], list[int]]:
    """The `qa_with_text` and `phased` schedules, unrolled: for each epoch, the chunks in a new
    seeded order, each chunk's Q&A-train rows (`qa_repeats` copies) right before its reading
    records (the original and its restatements). `phased` keeps only the Q&A in the first quarter
    of the epochs and only the reading text in the last quarter (PIT++: the question format is
    learned before the text is stored, and the text is read last). Returns the examples of all
    epochs in order and the number of examples at the end of each epoch."""
    questions: dict[str, list[dict]] = {}
    texts: dict[str, list[dict]] = {}
    for row in data["qa_train"]:
        key = (row.get("source_chunk_ids") or [""])[0] or f"qa:{row['fact_id']}"
        questions.setdefault(key, []).extend([row] * t.qa_repeats)
    for row in data["cpt"]:
        texts.setdefault(row.get("chunk_id") or f"text:{len(texts)}", []).append(
            {"prompt": "", "completion": row["text"]})
    keys = sorted(set(questions) | set(texts))
    epochs = max(1, math.ceil(t.epochs))
    edge = epochs // 4 if t.schedule == "phased" else 0  # 8 epochs: 2 of Q&A, 4 of both, 2 of text
    examples, ends = [], []
    for epoch in range(epochs):
        random.Random(f"{t.seed}:{epoch}").shuffle(keys)
        with_questions, with_text = epoch < epochs - edge, epoch >= edge
        dropping = random.Random(f"{t.seed}:{epoch}:question_dropout")
        for key in keys:
            if with_questions:
                examples.extend(qa_example(prompt_of, with_words_dropped(row, t, dropping))
                                for row in questions.get(key, []))
            if with_text:
                examples.extend(texts.get(key, []))
        ends.append(len(examples))
    return examples, ends


def with_words_dropped(row: dict, t: TrainConfig, rng: random.Random) -> dict:
    """`row`, or (for a closed-book row, with chance `question_dropout`) a copy whose question has
    each word deleted with chance `question_dropout_words`, keeping at least three: a user's
    question shares only some of the training question's words (EDA's random deletion)."""
    if not t.question_dropout or row.get("context_chunk_ids") or rng.random() >= t.question_dropout:
        return row
    question, mark, options = row["question"].partition(CHOICE_MARK)  # a multiple-choice row keeps its options
    kept = [w for w in question.split() if rng.random() >= t.question_dropout_words]
    if len(kept) < 3:
        return row
    return {**row, "question": " ".join(kept) + mark + options}


def tokenize(tokenizer, prompt: str, completion: str, max_tokens: int, learn_prompt: bool) -> dict:
    """input_ids ending in eos, and labels that are IGNORE on the prompt's tokens unless
    `learn_prompt`. Prompt and completion are tokenized together, as the model reads them, and
    told apart by each token's character offset; truncated to `max_tokens`, from the end — or,
    when that would leave no answer token to learn (a question longer than `max_tokens`), from
    the start, so the row still teaches its answer.

    The text's characters never become control tokens: "<eos>" or "<start_of_turn>" written in
    a document or a Q&A is tokenized as the characters it is (`split_special_tokens`); only the
    tokenizer's own bos and the eos appended here are real."""
    text = prompt + completion
    encoded = tokenizer(text, return_offsets_mapping=True, split_special_tokens=True)
    ids = list(encoded["input_ids"])
    in_prompt = [start < len(prompt) for start, _ in encoded["offset_mapping"]]
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
        in_prompt.append(False)
    labels = [IGNORE if masked and not learn_prompt else i for i, masked in zip(ids, in_prompt)]
    kept = slice(0, max_tokens)
    if all(label == IGNORE for label in labels[kept]):
        kept = slice(max(0, len(ids) - max_tokens), len(ids))
    return {"input_ids": ids[kept], "labels": labels[kept]}


def to_dataset(rows: list[dict], tokenizer, t: TrainConfig, shuffle: bool):
    """A `datasets.Dataset` of input_ids and labels (shuffled with the seed when asked)."""
    from datasets import Dataset

    examples = [tokenize(tokenizer, r["prompt"], r["completion"], t.max_seq_tokens, t.train_on_inputs)
                for r in rows]
    dataset = Dataset.from_dict({"input_ids": [e["input_ids"] for e in examples],
                                 "labels": [e["labels"] for e in examples]})
    return dataset.shuffle(seed=t.seed) if shuffle else dataset


def with_open_book_prompts(workspace: Workspace, config: PipelineConfig, questions: list[dict]) -> list[dict]:
    """The val questions, each with the prompt eval's fine-tuned+RAG system asks it (the BM25 top
    eval.rag_k chunks): a run trained on open-book rows is also scored open-book at every
    evaluation, the system `ask` uses when retrieval wins."""
    from docfinetune.core.retrieve import BM25Index

    # as in training: checkpoints are chosen without the held-out facts' cards
    documents, chunks = workspace.read_searchable(held_out_cards=False)
    titles = {d.doc_id: d.title for d in documents}
    index = BM25Index(chunks, titles, config.retrieval)
    return [{**q, "open_book_prompt": rag_prompt(q["question"], [c for c, _ in index.search(q["question"],
                                                                                            config.eval.rag_k)],
                                                 titles, config.generation)} for q in questions]


def taught_sample(qa_train: list[dict], t: TrainConfig) -> list[dict]:
    """The taught questions each evaluation answers: closed-book training rows as a user asks them
    (no context chunks; no multiple-choice row, which shows its answer among the options)."""
    return accuracy_sample([r for r in qa_train if not r.get("context_chunk_ids") and CHOICE_MARK not in r["question"]], t)


def accuracy_sample(qa_val: list[dict], t: TrainConfig) -> list[dict]:
    """At most eval_max_questions val rows: the same seeded sample at every evaluation."""
    if len(qa_val) <= t.eval_max_questions:
        return qa_val
    keep = sorted(random.Random(t.seed).sample(range(len(qa_val)), t.eval_max_questions))
    return [qa_val[i] for i in keep]


# --------------------------------------------------------------------------- model


def prepare_model(config: PipelineConfig):
    """The base model with a fresh LoRA adapter (seeded), or with its own weights trainable
    (train.method full), ready for Trainer."""
    from transformers import set_seed

    from docfinetune.core.models import load_model, peft_import

    with peft_import():
        from peft import LoraConfig, TaskType, get_peft_model

    t = config.train
    full = t.method == "full"
    # Full fine-tuning keeps fp32 master weights (Trainer autocasts to bf16 on CUDA): a bf16
    # weight drops any update below ~0.4% of itself, which at lr 2e-5 is most of them.
    model = load_model(dataclasses.replace(config.model, precision="fp32") if full else config.model,
                       shardable=sharded(config))
    # transformers builds the packed (block-causal) mask only when no KV cache is passed;
    # with use_cache on, the forward makes one and packed examples would attend to each other.
    model.config.use_cache = False
    if t.gradient_checkpointing:
        # QLoRA takes this path too, without peft's prepare_model_for_kbit_training: that casts
        # the frozen bf16 weights left unquantized (embeddings, output layer, norms) to fp32,
        # +1 GiB on Mistral 7B and an fp32 output layer, for a stability bf16 does not need.
        checkpointing = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; older ones lack it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model.enable_input_require_grads()  # the frozen embeddings' output must carry grads to the adapters
        keep_activations(model, t.checkpointed_layers)
    if full:
        # The embeddings and the output layer (tied on Gemma: 168M of the 270M weights, a
        # 262,144-entry vocabulary) stay frozen: a contract's few thousand distinct tokens would
        # move a handful of rows and Adam would keep state for all of them.
        model.get_input_embeddings().requires_grad_(False)
        model.get_output_embeddings().requires_grad_(False)
        model.train()
        return model
    set_seed(t.seed)  # the adapter's initial weights
    lora = config.lora
    try:
        model = get_peft_model(model, LoraConfig(r=lora.lora_r, lora_alpha=lora.lora_alpha,
                                                 lora_dropout=lora.lora_dropout,
                                                 target_modules=list(lora.lora_targets),
                                                 task_type=TaskType.CAUSAL_LM))
    except ValueError as err:
        raise ConfigError(f"lora.lora_targets: {lora.lora_targets!r} does not name modules of "
                          f"{config.model.base_model} ({err})") from None
    model.train()
    return model


def keep_activations(model, checkpointed_share: float) -> int:
    """Selective checkpointing: the last decoder layers beyond `checkpointed_share` keep their
    activations instead of recomputing them. Returns how many layers still recompute."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    recomputed = round(len(layers) * checkpointed_share)
    for layer in layers[recomputed:]:
        layer.gradient_checkpointing = False
    return recomputed


def fused_kernels_on(config: PipelineConfig) -> bool:
    """Whether Trainer applies liger-kernel: `auto` when training on CUDA with it installed."""
    import importlib.util

    t = config.train
    if t.fused_kernels == "off":
        return False
    if sharded(config):
        # liger's fused loss multiplies by the output layer's weight itself, which FSDP2 keeps
        # sharded (a DTensor) outside the layer's own forward: "mixed torch.Tensor and DTensor"
        # on the H200 pair, 2026-11-30. The label-only loss takes its place.
        if t.fused_kernels == "on":
            raise ConfigError("train.fused_kernels: on does not work with train.strategy fsdp (liger's fused loss "
                              "reads the sharded output layer); use auto or off")
        return False
    cuda = resolve_device(config.model) == "cuda"
    installed = importlib.util.find_spec("liger_kernel") is not None
    if t.fused_kernels == "on" and not (cuda and installed):
        raise ConfigError("train.fused_kernels: on needs a CUDA GPU and liger-kernel "
                          "(pip install 'docfinetune[gpu]'); use auto or off")
    return cuda and installed


# --------------------------------------------------------------------------- resume


def keep_metrics_until(run_dir: Path, step: int) -> float:
    """Drop metrics lines after `step` (evaluations whose checkpoint did not complete);
    returns the run's seconds so far."""
    path = run_dir / METRICS_FILE
    kept = [r for r in read_jsonl(path) if r["step"] <= step] if path.is_file() else []
    write_jsonl(path, kept)
    return kept[-1]["seconds"] if kept else 0.0
