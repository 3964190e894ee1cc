"""Does 4-bit QLoRA learn as well as bf16 LoRA? The real Gemma 3 270M, one CUAD contract, the
whole pipeline as a user runs it (`docfinetune ingest`, `build`, `train`, `ask`), twice: with
train.quantization none (bf16 weights) and nf4 (4-bit NF4 + double quantization), everything
else equal. Then, for each run, `evaluate` on the contract's lawyer-written questions, on the
held-out Q&A-test facts, and on a seeded sample of the Q&A-train facts (what the run was taught).

    python benchmarks/qlora_gemma.py prepare --out .bench/qlora        # here: the PDF and its questions
    python benchmarks/qlora_gemma.py run --out .bench/qlora --base-model /tmp/gemma-3-270m-q4_k_m.gguf \\
        --results $OUT/qlora.json                                       # on the GPU machine
    python benchmarks/qlora_gemma.py report --results qlora.json --write-results
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CUAD = ROOT.parent / "shared" / "cuad-dev"
CONTRACT = "DUOSTECHNOLOGIESGROUP,INC_04_21_2009-EX-10.1-STRATEGIC ALLIANCE AGREEMENT.PDF"
SECTION = "## QLoRA (4-bit) against bf16 LoRA on the real Gemma 3 270M"
# The knowledge benchmark's settings (8 epochs, 16 examples per packed row), evaluated per epoch.
TRAIN_FLAGS = ["--micro-batch-size", "16", "--eval-every-steps", "1000"]
TRAINED_FACTS = 100


def prepare(out: Path) -> int:
    if not CUAD.exists():
        print(f"skipped: {CUAD} is absent")
        return 0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy(CUAD / "pdf" / CONTRACT, out / "contract.pdf")
    rows = [json.loads(line) for line in (CUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    mine = [r for r in rows if r["document"] == CONTRACT]
    (out / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mine), encoding="utf-8")
    print(f"prepared {out}: {CONTRACT}, {len(mine)} questions")
    return 0


def cli(workspace: Path, *args: str) -> float:
    """Run `docfinetune ARGS` as a user would; returns its wall time in seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "docfinetune", *args], capture_output=True, text=True,
                          env={**os.environ, "DOCFINETUNE_WORKSPACE": str(workspace)})
    if done.returncode != 0:
        raise SystemExit(f"docfinetune {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    print(f"docfinetune {' '.join(args)[:80]}: {seconds:.1f} s", flush=True)
    return seconds


def run(out: Path, base_model: str, results: Path, quantizations: list[str], device: str, epochs: str) -> int:
    import torch

    from docfinetune.core.config import load_pipeline
    from docfinetune.core.runs import find_run
    from docfinetune.core.workspace import Workspace, read_jsonl, write_json, write_jsonl
    from docfinetune.evaluate import evaluate

    rows = json.loads(results.read_text()) if results.is_file() else []
    for quantization in quantizations:
        workspace = Path("/tmp") / f"qlora-{quantization}"
        shutil.rmtree(workspace, ignore_errors=True)
        seconds = {"ingest": cli(workspace, "ingest", str(out / "contract.pdf")),
                   "build": cli(workspace, "build", "--base-model", base_model),
                   "train": cli(workspace, "train", "--base-model", base_model, "--quantization", quantization,
                                *TRAIN_FLAGS, "--device", device, "--epochs", epochs)}
        question = json.loads((out / "questions.jsonl").read_text().splitlines()[0])["question"]
        seconds["ask"] = cli(workspace, "ask", question)
        ws = Workspace(workspace)
        run_dir = find_run(ws).path
        config = load_pipeline("default", {"model": {"base_model": base_model}, "train": {"device": device}})
        taught = list(read_jsonl(ws.datasets_dir / "qa_train.jsonl"))
        taught = random.Random(0).sample(taught, min(TRAINED_FACTS, len(taught)))
        write_jsonl(workspace / "taught.jsonl", [{"question": r["question"], "answer": r["answer"],
                                                  "field": r.get("field")} for r in taught])
        started = time.perf_counter()
        lawyers = evaluate(ws, config=config, questions_file=out / "questions.jsonl", include_test=False)
        held_out = evaluate(ws, config=config, include_test=True, systems="base,finetuned")
        trained = evaluate(ws, config=config, questions_file=workspace / "taught.jsonl", include_test=False,
                           systems="finetuned")
        seconds["evaluate"] = time.perf_counter() - started
        selection = json.loads((run_dir / "selection.json").read_text())
        metrics = list(read_jsonl(run_dir / "metrics.jsonl"))
        rows = [r for r in rows if r["quantization"] != quantization] + [{
            "quantization": quantization, "device": torch.cuda.get_device_name(0) if device == "cuda" else "CPU", "date": date.today().isoformat(),
            "contract": CONTRACT, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "selected": selection["selected"], "metrics": metrics,
            "lawyers": lawyers["systems"], "held_out": held_out["systems"], "taught": trained["systems"]}]
        write_json(results, rows)
        print(json.dumps({"quantization": quantization, "seconds": rows[-1]["seconds"],
                          "lawyers": {k: v.get("accuracy") for k, v in lawyers["systems"].items()},
                          "taught": {k: v.get("accuracy") for k, v in trained["systems"].items()}}, default=str),
              flush=True)
    return 0


def report(results: Path, write: bool) -> int:
    rows = {r["quantization"]: r for r in json.loads(results.read_text())}
    any_row = next(iter(rows.values()))
    lines = [SECTION, "",
             f"`python benchmarks/qlora_gemma.py run …` on {any_row['device']}, {any_row['date']}: the whole "
             f"pipeline through the CLI on `{CONTRACT}` (cuad-dev), real Gemma 3 270M weights, "
             f"`--epochs 8 {' '.join(TRAIN_FLAGS)}`, the same seed; only train.quantization differs.", "",
             "`train s` is the whole command (the first run also converted the GGUF once, which made its build and train commands 13 s and 22 s longer); "
             "`training s` is the run's own clock (steps, evaluations, checkpoints).", "",
             "| | ingest s | build s | train s | training s | ask s | final train loss | selected val loss "
             "| lawyers' questions | held-out facts | taught facts (sample) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for quantization, r in rows.items():
        s = r["seconds"]
        last = r["metrics"][-1]
        chosen = next((m for m in r["metrics"] if m["step"] == r["selected"]["step"]), last)

        def acc(block: dict) -> str:
            f = block["finetuned"]
            return f"{f['correct']}/{f['scored']} ({100 * (f['accuracy'] or 0):.0f}%)"

        lines.append(f"| {quantization} | {s['ingest']} | {s['build']} | {s['train']} | {last['seconds']} | {s['ask']} | "
                     f"{last['train_loss']:.3f} | {chosen['val_loss']:.3f} | {acc(r['lawyers'])} | "
                     f"{acc(r['held_out'])} | {acc(r['taught'])} |")
    from results import publish

    return publish(SECTION, lines, write)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "qlora")
    p = sub.add_parser("run")
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "qlora")
    p.add_argument("--base-model", required=True)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--quantizations", default="none,nf4")
    p.add_argument("--device", default="cuda", help="cpu runs the same steps (none only) as a smoke test")
    p.add_argument("--epochs", default="8")
    p = sub.add_parser("report")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.command == "prepare":
        return prepare(args.out)
    if args.command == "report":
        return report(args.results, args.write_results)
    return run(args.out, args.base_model, args.results, args.quantizations.split(","), args.device, args.epochs)


if __name__ == "__main__":
    sys.exit(main())
