"""CPU training speed of the embedded Gemma 3 270M: today's loss (logits at every position)
against the label-only loss (train/loss.py), same run, same data.

The sample contract is ingested and built with the `cpu-demo` recipe (what `make demo` trains),
and every variant trains the same first `--steps` micro-batches of its `qa_with_text` schedule
from the same seeded adapter through the project's own `train.prepare` + `train.fit` (Trainer),
one variant after the other in one process, `--rounds` times over (the machine is shared: a
round of every variant is interleaved with the others' rounds). Per variant: the median of the
per-step tokens/s after `--warmup` steps of every round, and the train loss of each step (the
same batches, so old and new must agree). The model is the embedded one from the model cache,
converted from its GGUF on first use as `make demo` does.

    nice .venv/bin/python benchmarks/cpu_train.py [--steps 8] [--warmup 2] [--rounds 3]
        [--variants old,new,...] [--profile] [--write-results]

`--profile` runs each variant for warmup + 2 steps under torch.profiler instead and prints where
the two steps' CPU time goes (by operator family, then the top operators).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SAMPLE = ROOT / "sample_docs" / "quillmere_msa.pdf"
RECIPE = "cpu-demo"
SECTION = "## CPU training speed"
BF16 = {"model": {"precision": "bf16"}}
# name: pipeline overrides on top of cpu-demo (plus `compile`: torch.compile each decoder layer).
VARIANTS: dict[str, dict] = {
    "old": {"train": {"label_only_logits": False}},  # today's path: the model's own loss
    "new": {"train": {"label_only_logits": True}},
    "old-bf16": {**BF16, "train": {"label_only_logits": False}},
    "new-bf16": BF16,
    "new-bf16-no-dropout": {**BF16, "lora": {"lora_dropout": 0.0}},
    "new-1-thread": {"threads": 1},
    "new-compiled": {"compile": True},
    "new-bf16-compiled": {**BF16, "compile": True},
    # cpu-demo's `auto` is bf16 only where the CPU computes it (avx512_bf16, AMX): fp32 pinned, beside new-bf16
    "new-fp32": {"model": {"precision": "fp32"}},
    # a micro-batch's 8 examples packed into rows of at most N tokens instead of one row of up to ~2,700:
    # SDPA computes the whole masked square of a row, so shorter rows skip the pairs that cannot attend
    "new-fp32-rows512": {"model": {"precision": "fp32"}, "train": {"packed_row_tokens": 512}},
    "new-fp32-rows1024": {"model": {"precision": "fp32"}, "train": {"packed_row_tokens": 1024}},
}
DEFAULT_VARIANTS = "old,new,old-bf16,new-bf16,new-bf16-no-dropout"
FAMILIES = (("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear")),
            ("attention", ("scaled_dot_product", "flash_attention")),
            ("log-softmax / cross-entropy", ("log_softmax", "nll_loss", "cross_entropy")),
            ("dropout", ("bernoulli", "dropout")),
            ("copy / cast", ("copy_", "_to_copy")),
            ("optimizer", ("adam", "_foreach")))


def prepare_workspace(root: Path):
    """The sample contract ingested and built with the cpu-demo recipe (reused when built)."""
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace
    from docfinetune.ingest import ingest

    workspace = Workspace(root)
    if workspace.read_stats() is None:
        config = load_pipeline(RECIPE)
        ingest([SAMPLE], workspace, config.ingest)
        build(workspace, config, [])
    return workspace


class StepTimer:
    """A TrainerCallback: wall time, tokens seen and loss of every step; optionally a
    torch.profiler session over the two steps after `warmup`."""

    def __init__(self, warmup: int, profile: bool) -> None:
        self.warmup, self.profile, self.profiler = warmup, profile, None
        self.marks: list[tuple[float, int]] = []
        self.losses: list[float] = []
        self.load = os.getloadavg()[0]  # other jobs on the machine when the variant started
        self.labelled_share = 0.0

    def as_callback(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

            def on_step_begin(self, args, state, control, **kwargs):
                if timer.profile and state.global_step == timer.warmup and timer.profiler is None:
                    import torch

                    timer.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    timer.profiler.__enter__()

            def on_step_end(self, args, state, control, **kwargs):
                timer.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))
                if timer.profiler and state.global_step == timer.warmup + 2:
                    timer.profiler.__exit__(None, None, None)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    timer.losses.append(logs["loss"])

        return Callback()

    def step_rates(self) -> list[float]:
        """Tokens per second of each step after the warmup."""
        pairs = list(zip(self.marks, self.marks[1:]))[self.warmup:]
        return [(n1 - n0) / (t1 - t0) for (t0, n0), (t1, n1) in pairs]


def run_variant(name: str, workspace, steps: int, warmup: int, profile: bool) -> StepTimer:
    import torch

    from docfinetune.core.config import load_pipeline
    from docfinetune.train import IGNORE, fit, prepare
    from docfinetune.train.loss import causal_lm

    settings = dict(VARIANTS[name])
    threads, compiled = settings.pop("threads", None), settings.pop("compile", False)
    overrides = {section: dict(values) for section, values in settings.items()}
    overrides.setdefault("train", {}).update(max_steps=steps, eval_every_steps=10 ** 6)
    config = load_pipeline(RECIPE, overrides)
    ready = prepare(workspace, config)
    if compiled:  # regional: one compiled layer function reused by all 18 layers; lengths vary, so dynamic
        for layer in causal_lm(ready.model).get_decoder().layers:
            layer.compile(dynamic=True)
    timer = StepTimer(warmup, profile)
    examples = ready.train_set.select(range(min(len(ready.train_set), steps * config.train.micro_batch_size)))
    timer.labelled_share = (sum(sum(label != IGNORE for label in labels[1:]) for labels in examples["labels"])
                            / sum(len(ids) for ids in examples["input_ids"]))
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            fit(ready.model, ready.tokenizer, ready.train_set, ready.val_set.select([]), Path(run_dir), config,
                [timer.as_callback()], None, quiet=True, fused_kernels=False, in_order=ready.epoch_ends is not None)
    finally:
        torch.set_num_threads(default_threads)
    if profile:
        print_profile(name, timer)
    del ready
    gc.collect()
    return timer


def print_profile(name: str, timer: StepTimer) -> None:
    events = timer.profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    families: dict[str, float] = {}
    for event in events:
        family = next((f for f, needles in FAMILIES if any(n in event.key for n in needles)), "other")
        families[family] = families.get(family, 0.0) + event.self_cpu_time_total / 1e6
    (t0, n0), (t1, n1) = timer.marks[timer.warmup], timer.marks[timer.warmup + 2]
    print(f"\n{name}: 2 profiled steps, {n1 - n0} tokens, {t1 - t0:.2f} s wall, {total:.2f} s CPU-op time")
    for family, seconds in sorted(families.items(), key=lambda kv: -kv[1]):
        print(f"  {family:30s} {seconds:6.2f} s  {seconds / total:5.1%}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))


def report(timers: dict[str, list[StepTimer]], args, seconds: float) -> list[str]:
    import torch
    from results import machine

    old = timers.get("old")
    first = next(iter(timers.values()))[0]
    tokens = [n1 - n0 for (_, n0), (_, n1) in zip(first.marks, first.marks[1:])]
    lines = [f"{SECTION} — {date.today().isoformat()}", "",
             f"`nice .venv/bin/python benchmarks/cpu_train.py --steps {args.steps} --warmup {args.warmup} "
             f"--rounds {args.rounds} --variants {args.variants}`",
             f"on {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, shared with other "
             f"jobs; {seconds / 60:.0f} min. The embedded Gemma 3 270M, LoRA r=16 on every projection, the "
             f"`{RECIPE}` recipe on the sample contract: the first {args.steps} micro-batches of its schedule "
             f"(8 examples packed into one row: {min(tokens)}-{max(tokens)} tokens, median "
             f"{statistics.median(tokens):.0f}; {first.labelled_share:.0%} of the tokens carry a label), the same "
             "batches and adapter seed for every variant, one variant after the other, every round. tokens/s: "
             f"median over the steps after {args.warmup} warm-up steps of all rounds, then each round's median "
             "and the 1-minute load average when the variant started (the benchmark's own 2 threads make "
             "~2; more is other jobs on the machine); × old: median over rounds of the round's median "
             "against old's in the same round; "
             f"loss: Trainer's logged train loss at step {args.steps}, and the mean of the {args.steps} steps.",
             "", "| variant | tokens/s | per round (load) | × old | loss at last step | mean loss |",
             "|---|---|---|---|---|---|"]
    for name, runs in timers.items():
        median = statistics.median(r for timer in runs for r in timer.step_rates())
        per_round = ", ".join(f"{statistics.median(t.step_rates()):.0f} ({t.load:.1f})" for t in runs)
        ratios = [statistics.median(t.step_rates()) / statistics.median(o.step_rates()) for t, o in zip(runs, old or [])]
        ratio = f"{statistics.median(ratios):.2f}×" if ratios else "—"
        lines.append(f"| {name} | {median:.0f} | {per_round} | {ratio} | {runs[0].losses[-1]:.4f} | "
                     f"{statistics.mean(runs[0].losses):.4f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per variant and round")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the medians (first-touch, kernel set-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--workspace", type=Path, default=Path(tempfile.gettempdir()) / "docfinetune-cpu-train",
                        help="where the sample contract is ingested and built (kept and reused)")
    parser.add_argument("--profile", action="store_true", help="profile two steps of each variant instead")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    workspace = prepare_workspace(args.workspace)
    started = time.perf_counter()
    if args.profile:
        for name in names:
            run_variant(name, workspace, args.warmup + 2, args.warmup, profile=True)
        return 0
    timers: dict[str, list[StepTimer]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        for name in names:
            timer = run_variant(name, workspace, args.steps, args.warmup, profile=False)
            timers[name].append(timer)
            print(f"round {round_number + 1} {name}: {statistics.median(timer.step_rates()):.0f} tokens/s "
                  f"(load {timer.load:.1f}), losses {[round(x, 4) for x in timer.losses]}", flush=True)
    from results import publish

    return publish(SECTION, report(timers, args, time.perf_counter() - started), args.write_results)


if __name__ == "__main__":
    raise SystemExit(main())
