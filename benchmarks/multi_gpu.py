"""More than one GPU: DDP and FSDP + QLoRA through `accelerate`/torchrun, against one GPU, same run.

Throughput (`throughput`): random weights of exactly Mistral 7B's shape (train_throughput.py's
model folder) and of Qwen2.5 32B's shape, loaded through the project's 4-bit path, trained by
the project's own `train.prepare` + `train.fit` on the reading text of one long CUAD contract,
each GPU capped at an A10G's 24 GiB. Variants, each in its own processes:

  single      the mistral7b-qlora-a10g recipe on 1 GPU (micro-batch 64)
  ddp         the same per GPU on 2 GPUs with DDP (2 x 64 examples a step)
  fsdp        the same on 2 GPUs with FSDP2, weights and optimizer state sharded
  big-single  Qwen2.5 32B's shape on 1 GPU: the memory check should refuse it
  big-fsdp    Qwen2.5 32B's shape on 2 GPUs with FSDP2
  fsdp-chunked  fsdp with train.loss_chunk_tokens 4096 (the logits of 4,096 tokens at a time, the
              output layer an FSDP unit of its own): the memory liger's fused loss saves on 1 GPU

Per variant: useful (non-padding) tokens/s of all GPUs after `--warmup` steps, the peak memory
of each GPU, and the project's estimate for 1 GPU and for the variant's share.

Knowledge (`knowledge`): one workspace holding several contracts of the knowledge benchmark,
trained by `docfinetune train` once on 1 GPU and once with `--num-gpus 2` (the same global
batch: 32 in one micro-batch, against 16 on each of 2 GPUs), each evaluated on the contracts'
questions by `eval` on one GPU.

    python benchmarks/multi_gpu.py prepare                      # here (CPU): the workspaces
    python benchmarks/multi_gpu.py throughput --results $OUT/multi_gpu.json [--variants ...]  # GPU host
    python benchmarks/multi_gpu.py knowledge --results $OUT/multi_gpu.json --base-model GGUF  # GPU host
    python benchmarks/multi_gpu.py report --results multi_gpu.json --write-results
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SECTION = "## More than one GPU"
CAP_GIB = 24.0
THROUGHPUT_WS = ROOT / ".bench" / "throughput"
KNOWLEDGE_WS = ROOT / ".bench" / "multi"
CONTRACTS = ("quillmere-msa", "blackboxstocksinc-08-05-2014-ex-10-1-distributor-agreement",
             "legacyeducationallianceinc-20141110-8-k-ex-10-9-8828866-ex-10-9-endorsement-agre",
             "tcpipelineslp-20160226-10-k-ex-99-12-9454048-ex-99-12-transportation-agreement")
RECIPES = {"mistral7b": "mistral7b-qlora-ddp", "qwen32b": "qwen32b-qlora-fsdp"}
# name: (processes, shape, strategy)
VARIANTS = {
    "single": (1, "mistral7b", "ddp"),
    "ddp": (2, "mistral7b", "ddp"),
    "fsdp": (2, "mistral7b", "fsdp"),
    "big-single": (1, "qwen32b", "fsdp"),
    "big-fsdp": (2, "qwen32b", "fsdp"),
    "fsdp-chunked": (2, "mistral7b", "fsdp"),
}
TRAIN_OVERRIDES = {"fsdp-chunked": {"loss_chunk_tokens": 4096}}  # beyond the recipe and the strategy
MODEL_DIRS = {"mistral7b": Path("/tmp/mistral-7b-shape"), "qwen32b": Path("/tmp/qwen2.5-32b-shape")}


def qwen32b_config():
    """Qwen2.5 32B's shape (its config.json): 64 layers, 5,120 wide, 27,648 MLP, 40 heads over 8
    KV heads, a 152,064-entry vocabulary, untied output layer: 32.8B parameters."""
    from transformers import Qwen2Config

    return Qwen2Config(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                       num_key_value_heads=8, vocab_size=152064, max_position_embeddings=32768,
                       rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False)


# --------------------------------------------------------------------------- prepare (CPU)


def prepare() -> int:
    from train_throughput import prepare as prepare_throughput

    from docfinetune.core.workspace import Workspace, read_jsonl, write_jsonl

    if not (THROUGHPUT_WS / "datasets" / "cpt.jsonl").is_file():
        prepare_throughput(THROUGHPUT_WS)
    source = ROOT / ".bench" / "knowledge"
    if not source.is_dir():
        print(f"skipped the knowledge workspace: run `benchmarks/knowledge.py prepare` first ({source})")
        return 0
    shutil.rmtree(KNOWLEDGE_WS, ignore_errors=True)
    questions = []
    for contract in CONTRACTS:  # each contract's ingested documents, side by side in one workspace
        shutil.copytree(source / contract / "documents", KNOWLEDGE_WS / "documents", dirs_exist_ok=True)
        questions += read_jsonl(source / contract / "questions.jsonl")
    write_jsonl(KNOWLEDGE_WS / "questions.jsonl", questions)
    print(f"prepared {KNOWLEDGE_WS}: {len(Workspace(KNOWLEDGE_WS).doc_ids())} documents, {len(questions)} questions")
    return 0


# --------------------------------------------------------------------------- throughput


def worker(variant: str, steps: int, warmup: int) -> int:
    """One variant in this process (one of several under torchrun); the main one prints JSON."""
    import torch
    from train_throughput import StepTimer

    from docfinetune.core import distributed
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.errors import ConfigError
    from docfinetune.core.workspace import Workspace
    from docfinetune.train import fit, prepare, read_datasets, weight_shards

    processes, shape, strategy = VARIANTS[variant]
    config = load_pipeline(RECIPES[shape], {
        "model": {"base_model": str(MODEL_DIRS[shape])},
        "train": {"max_steps": steps, "eval_every_steps": 10 ** 6, "gpu_memory_gib": CAP_GIB, "strategy": strategy,
                  **({"optimizer": "adamw_torch"} if strategy == "fsdp" else {}),  # as qwen32b-qlora-fsdp
                  **TRAIN_OVERRIDES.get(variant, {})}})
    distributed.start()
    workspace = Workspace(THROUGHPUT_WS)
    data = read_datasets(workspace)
    started = time.perf_counter()
    result = {"variant": variant, "processes": distributed.world_size(), "shape": shape, "strategy": strategy,
              "recipe": RECIPES[shape], "micro_batch_size": config.train.micro_batch_size}
    try:
        ready = prepare(workspace, config, data={"cpt": data["cpt"], "qa_train": [], "qa_val": []})
    except ConfigError as err:  # the memory check refused it (what big-single is for)
        result.update(refused=str(err), load_s=round(time.perf_counter() - started, 1),
                      allocated_after_load_gib=torch.cuda.memory_allocated() / 2 ** 30)
        if distributed.is_main():
            print(json.dumps(result))
        return 0
    result.update(load_s=round(time.perf_counter() - started, 1), fused_kernels=ready.fused_kernels,
                  estimate_gib=ready.memory.total_gib, weight_shards=weight_shards(config),
                  examples_per_step=config.train.micro_batch_size * config.train.gradient_accumulation_steps
                  * distributed.world_size())
    torch.cuda.reset_peak_memory_stats()
    timer = StepTimer(warmup, steps, profile=False)
    with tempfile.TemporaryDirectory() as run_dir:
        fit(ready.model, ready.tokenizer, ready.train_set, ready.val_set, Path(run_dir), config,
            [timer.as_callback()], None, quiet=True, fused_kernels=ready.fused_kernels)
    peaks = distributed.gather([(torch.cuda.max_memory_allocated() / 2 ** 30, torch.cuda.max_memory_reserved() / 2 ** 30)])
    result.update(timer.throughput(), device=torch.cuda.get_device_name(0), cap_gib=CAP_GIB,
                  peak_allocated_gib=[round(a, 2) for a, _ in peaks], peak_reserved_gib=[round(r, 2) for _, r in peaks])
    if distributed.is_main():
        print(json.dumps(result, default=float))
    return 0


def throughput(variants: list[str], results: Path, steps: int, warmup: int) -> int:
    from train_throughput import make_model_dir, variant_process

    from docfinetune.core.workspace import write_json

    texts = [json.loads(line)["text"] for line in open(THROUGHPUT_WS / "datasets" / "cpt.jsonl", encoding="utf-8")]
    rows = json.loads(results.read_text()).get("throughput", []) if results.is_file() else []
    for name in variants:
        processes, shape, _ = VARIANTS[name]
        if not (MODEL_DIRS[shape] / "config.json").is_file():
            started = time.perf_counter()
            make_model_dir(MODEL_DIRS[shape], texts, tiny=False, config=qwen32b_config() if shape == "qwen32b" else None)
            print(f"{shape}: model folder written in {time.perf_counter() - started:.0f} s", flush=True)
        launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                                              "--master_port", "29517"]
        command = [sys.executable, *launcher, __file__, "worker", name, "--steps", str(steps), "--warmup", str(warmup)]
        row = variant_process(name, command)
        rows = [r for r in rows if r["variant"] != name] + [row]
        save(results, "throughput", rows, write_json)
        shown = {k: row.get(k) for k in ("tokens_per_s", "peak_reserved_gib", "estimate_gib", "refused", "error",
                                         "process_s")}
        print(name, json.dumps(shown, default=str)[:2500], flush=True)
    return 0


def save(results: Path, key: str, rows, write_json) -> None:
    data = json.loads(results.read_text()) if results.is_file() else {}
    data[key] = rows
    data["date"] = date.today().isoformat()
    results.parent.mkdir(parents=True, exist_ok=True)
    write_json(results, data)


# --------------------------------------------------------------------------- knowledge


def knowledge(results: Path, base_model: str, gpus: list[int]) -> int:
    """Train the several-contract workspace on 1 GPU and on 2 (the CLI, as a user runs it) and
    evaluate each on the contracts' questions."""
    from knowledge import GPU_PIPELINE, _summary

    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace, write_json
    from docfinetune.evaluate import evaluate

    # The knowledge benchmark's recipe as a user runs it: the shipped embedded-gpu pipeline.
    shipped = load_pipeline(str(GPU_PIPELINE), {"model": {"base_model": base_model}})
    t = shipped.train
    flags = ["--pipeline", str(GPU_PIPELINE), "--base-model", base_model]
    rows = json.loads(results.read_text()).get("knowledge", []) if results.is_file() else []
    for n in gpus:
        folder = Path("/tmp") / "multi-gpu-ws" / f"gpus-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(KNOWLEDGE_WS, folder)
        # the same global batch on any number of GPUs: the pipeline's 32 in one micro-batch on one GPU,
        # 16 on each of two (DDP sums their gradients)
        extra = [] if n == 1 else ["--num-gpus", str(n), "--micro-batch-size", str(t.micro_batch_size // n)]
        command = [sys.executable, "-m", "docfinetune", "--workspace", str(folder), "train", *flags, *extra]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        train_s = time.perf_counter() - started
        if done.returncode:
            rows.append({"gpus": n, "error": done.stderr[-4000:], "command": " ".join(command[1:])})
            save(results, "knowledge", rows, write_json)
            print(f"{n} GPU(s): train failed\n{done.stderr[-3000:]}", flush=True)
            continue
        workspace = Workspace(folder)
        report = evaluate(workspace, config=shipped, questions_file=folder / "questions.jsonl", include_test=False)
        run_dir = Path((folder / "runs" / "latest").read_text().strip())
        selection = json.loads((folder / "runs" / run_dir.name / "selection.json").read_text())
        row = {"gpus": n, "train_s": round(train_s, 1), "command": " ".join(["docfinetune", *command[3:]]),
               "selected": selection["selected"], "checkpoints": selection["checkpoints"],
               "questions": _summary(report), "stats": workspace.read_stats() and {
                   k: workspace.read_stats()[k] for k in ("source_tokens", "training_tokens_per_source_token")}}
        rows = [r for r in rows if r.get("gpus") != n] + [row]
        save(results, "knowledge", rows, write_json)
        print(f"{n} GPU(s): train {train_s:.0f} s; {json.dumps(row['questions'])[:1500]}", flush=True)
    return 0


# --------------------------------------------------------------------------- report


def report(results: Path, write: bool) -> int:
    from results import publish

    data = json.loads(results.read_text())
    rows = {r["variant"]: r for r in data.get("throughput", [])}
    lines = [SECTION, "",
             f"`benchmarks/multi_gpu.py` on the lent `nvidia-h200-x2` (two H200, NVLink; torch 2.11, carried "
             f"transformers 5.24, bitsandbytes 0.50.2, liger-kernel 0.8.5), {data.get('date')}, each GPU capped at "
             f"{CAP_GIB:.0f} GiB (an A10G's memory). Commands: `bash benchmarks/device_multi_gpu.sh` (see its header).",
             "", "tokens/s: Trainer's count over all GPUs after the warm-up steps; the benchmark's tokenizer has no pad "
                 "token, so the count includes the padding that evens packed rows out (about the same share in every "
                 "variant: compare ratios and step times, not with RESULTS' useful tokens/s of other sections).", "",
             "| variant | GPUs | shape | strategy | examples a step | tokens/s (all GPUs), window | median step s "
             "| tokens/s by the median step | x single (median) | peak reserved GiB per GPU | estimate GiB per GPU "
             "| load s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def by_median(r: dict) -> float:
        return r["tokens_per_step"] / r["median_step_s"]

    single = by_median(rows["single"]) if "tokens_per_step" in rows.get("single", {}) else None
    for name, r in rows.items():
        if "error" in r:
            last = [line for line in r["error"].strip().splitlines() if line.strip()][-1][:200]
            lines.append(f"| {name} | {VARIANTS[name][0]} | {VARIANTS[name][1]} | {VARIANTS[name][2]} | | failed: "
                         f"{last.replace('|', '/')} | | | | | | |")
            continue
        if "refused" in r:
            lines.append(f"| {name} | {r['processes']} | {r['shape']} | – | {r['micro_batch_size']} | refused before "
                         f"the first step: {r['refused'].split(';')[0].replace('|', '/')} | | | "
                         f"| {r['allocated_after_load_gib']:.1f} allocated after loading | | {r['load_s']} |")
            continue
        ratio = f"{by_median(r) / single:.2f}x" if single and r["shape"] == "mistral7b" else "–"
        examples = r.get("examples_per_step") or r["micro_batch_size"] * r["processes"]
        lines.append(f"| {name} | {r['processes']} | {r['shape']} | {r['strategy']} | {examples} "
                     f"| {r['tokens_per_s']:,.0f} | {r['median_step_s']:.2f} | {by_median(r):,.0f} | {ratio} "
                     f"| {', '.join(f'{x:.1f}' for x in r['peak_reserved_gib'])} | {r['estimate_gib']:.1f} | {r['load_s']} |")
    for r in data.get("knowledge", []):
        if "error" in r:
            lines += ["", f"Knowledge, {r['gpus']} GPU(s): failed: "
                          f"{[x for x in r['error'].splitlines() if x.strip()][-1][:300]}"]
    know = [r for r in data.get("knowledge", []) if "error" not in r]
    if know:
        lines += ["", f"Knowledge: one model trained on {len(CONTRACTS)} contracts together ({', '.join(CONTRACTS)}), "
                      "the default recipe with the knowledge benchmark's GPU settings, global batch 32 either way; "
                      "`eval` on their lawyers' and hand-written questions on one GPU.", "",
                  "| GPUs | train s | selected step | base | base + RAG | fine-tuned | fine-tuned + RAG |",
                  "|---|---|---|---|---|---|---|"]
        for r in know:
            q = r["questions"]
            lines.append(f"| {r['gpus']} | {r['train_s']:.0f} | {r['selected']['step']} | "
                         + " | ".join(f"{q['correct'][s]}/{q['questions']} ({100 * q['accuracy'][s]:.1f}%)"
                                      if s in q["correct"] else "–" for s in ("base", "base+rag", "finetuned",
                                                                               "finetuned+rag"))
                         + " |")
    return publish(SECTION, lines, write)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare")
    p = sub.add_parser("worker")
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--warmup", type=int, default=4)
    p = sub.add_parser("throughput")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--warmup", type=int, default=4)
    p = sub.add_parser("knowledge")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--base-model", required=True)
    p.add_argument("--gpus", default="1,2")
    p = sub.add_parser("report")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command == "prepare":
        return prepare()
    if args.command == "worker":
        return worker(args.variant, args.steps, args.warmup)
    if args.command == "throughput":
        return throughput([v.strip() for v in args.variants.split(",") if v.strip()], args.results, args.steps,
                          args.warmup)
    if args.command == "knowledge":
        return knowledge(args.results, args.base_model, [int(n) for n in args.gpus.split(",")])
    return report(args.results, args.write_results)


if __name__ == "__main__":
    sys.exit(main())
