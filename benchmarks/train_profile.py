"""Where a default training's minutes go, for one contract trained alone on the GPU machine.

The knowledge benchmark's task (the GPU settings of `knowledge.py`, the default recipe) for one
prepared contract, run alone: wall time of the training steps, of each evaluation (val loss and
answering) and of teaching, from the run's own events; every `generate` call's prompts, token
limit and seconds (which answering kind costs what); and a torch profile of a window of training
steps: the profiled steps' wall time against the GPU's busy time (a step far longer than its
kernels is held up by the CPU: launches, Python, synchronisation), with the top operators.

    python benchmarks/knowledge.py prepare                                    # here, once
    python benchmarks/train_profile.py --contract waste2energyholdings-... \\
        --base-model /tmp/gemma-3-270m-q4_k_m.gguf --out $OUT/profile          # GPU machine
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PROFILED_STEPS = 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=ROOT / ".bench" / "knowledge",
                        help="knowledge.py prepare's folder")
    parser.add_argument("--contract", required=True, help="a folder name under --prepared")
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--variant", default="default", help="a knowledge.py variant")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=0, help="stop early (a smoke test); 0: the whole training")
    parser.add_argument("--profile-from", type=int, default=30,
                        help="the profiled window's first step (past warm-up and the first evaluation)")
    args = parser.parse_args()

    import torch
    from knowledge import GPU, VARIANTS, merged
    from torch.profiler import ProfilerActivity, profile, schedule

    import docfinetune.core.generate as generation_module
    import docfinetune.train as train_module
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace
    from docfinetune.pipeline import build_then_train

    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path("/tmp") / "train-profile" / args.contract
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(args.prepared / args.contract, folder)
    overrides = merged(GPU, VARIANTS[args.variant], {"model": {"base_model": args.base_model}},
                       {"train": {"max_steps": args.max_steps}} if args.max_steps else {})
    cuda = torch.cuda.is_available()
    if not cuda:  # a smoke test here
        overrides["model"]["device"] = "cpu"
    config = load_pipeline("default", overrides)

    calls: list[dict] = []
    plain_generate = generation_module.generate

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    def timed_generate(model, tokenizer, prompts, **settings):
        synchronize()
        started = time.perf_counter()
        out = plain_generate(model, tokenizer, prompts, **settings)
        synchronize()
        calls.append({"prompts": len(prompts), "max_new_tokens": settings.get("max_new_tokens"),
                      "stop_at_line_end": settings.get("stop_at_line_end", True),
                      "batch_size": settings.get("batch_size"), "seconds": round(time.perf_counter() - started, 3)})
        return out

    generation_module.generate = timed_generate  # the modules that imported it by name
    train_module.generate = timed_generate

    events: list[tuple[float, str, dict]] = []
    profiler = profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])],
                       schedule=schedule(wait=args.profile_from, warmup=2, active=PROFILED_STEPS, repeat=1))

    def on_event(kind: str, data: dict) -> None:
        events.append((time.perf_counter(), kind, {k: v for k, v in data.items() if k in (
            "step", "total_steps", "eval_seconds", "tokens_per_s", "accuracy", "val_loss")}))
        if kind == "step":
            profiler.step()

    started = time.perf_counter()
    with profiler:
        build_then_train(Workspace(folder), config, on_event=on_event)
    seconds = time.perf_counter() - started

    steps = [e for e in events if e[1] == "step"]
    gaps = [b[0] - a[0] for a, b in zip(steps, steps[1:])]
    evals = [e[2] for e in events if e[1] == "eval"]
    teach = [e for e in events if e[1] == "teach"]
    by_kind: dict[str, dict] = defaultdict(lambda: {"calls": 0, "prompts": 0, "seconds": 0.0})
    for c in calls:
        kind = by_kind[f"{c['max_new_tokens']} tokens, {'line' if c['stop_at_line_end'] else 'no line'} stop"]
        kind["calls"] += 1
        kind["prompts"] += c["prompts"]
        kind["seconds"] = round(kind["seconds"] + c["seconds"], 2)
    try:
        averages = profiler.key_averages()
    except AssertionError:  # the training ended before the window
        averages = []
    # GPU busy time as torch's own table sums it: events on the GPU, not the step markers and other
    # annotations, whose device time repeats their kernels' (5.6 s against 0.5 s on the H200)
    from torch.autograd import DeviceType

    gpu_busy_us = sum(a.self_device_time_total for a in averages
                      if a.device_type == DeviceType.CUDA and not getattr(a, "is_user_annotation", False))
    cpu_total_us = sum(a.self_cpu_time_total for a in averages)
    profiled_gaps = gaps[args.profile_from + 1:args.profile_from + 1 + PROFILED_STEPS]
    summary = {
        "contract": args.contract, "variant": args.variant,
        "device": torch.cuda.get_device_name(0) if cuda else "CPU",
        "train_minutes": round(seconds / 60, 2), "steps": len(steps),
        "step_seconds_median": round(statistics.median(gaps), 3) if gaps else None,
        "step_seconds_profiled": [round(g, 3) for g in profiled_gaps],
        "tokens_per_s_median": statistics.median(e[2].get("tokens_per_s") or 0 for e in steps) if steps else None,
        "eval_seconds": [e.get("eval_seconds") for e in evals],
        "teach_seconds": round(teach[-1][0] - teach[0][0], 1) if len(teach) > 1 else None,
        "generate_by_kind": dict(by_kind),
        "profiled_gpu_busy_s_per_step": round(gpu_busy_us / 1e6 / PROFILED_STEPS, 4),
        "profiled_cpu_self_s_per_step": round(cpu_total_us / 1e6 / PROFILED_STEPS, 4),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    (args.out / "summary.json").write_text(json.dumps({**summary, "generate_calls": calls}, indent=1))
    tables = "" if not averages else (
        (averages.table(sort_by="self_cuda_time_total", row_limit=25) + "\n\n" if cuda else "")
        + averages.table(sort_by="self_cpu_time_total", row_limit=25))
    (args.out / "operators.txt").write_text(tables)
    print(json.dumps(summary, indent=1))
    print(tables[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
