"""Knowledge benchmark: does fine-tuning teach the real embedded model a contract?

For each contract of ../shared/cuad-dev/pdf (and the project's sample contract): ingest, build,
train with a pipeline, then ask its questions closed-book — the lawyers' questions of
cuad-dev/questions.jsonl (the sample's hand-written ones) and the held-out Q&A-test facts —
with the base model, base + BM25 RAG, the fine-tuned model and fine-tuned + RAG
(`docfinetune.evaluate`). Accuracy per field, minutes per contract.

Three steps, because the GPU machine has no PDF/chunking libraries and no shared/ folder:

    python benchmarks/knowledge.py prepare --out .bench/knowledge      # here: ingest each contract
    python benchmarks/knowledge.py run --out .bench/knowledge --base-model /tmp/gemma.gguf \\
        --results $OUT/knowledge.json [--set train.epochs=6 ...]        # on the GPU machine
    python benchmarks/knowledge.py report --results knowledge.json --write-results
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CUAD = ROOT.parent / "shared" / "cuad-dev"
SAMPLE = ROOT / "sample_docs" / "quillmere_msa.pdf"
SECTION = "## Knowledge"


def prepare(out: Path) -> int:
    from docfinetune.core.config import IngestConfig
    from docfinetune.core.workspace import Workspace, write_jsonl
    from docfinetune.ingest import doc_id_for, ingest

    if not CUAD.is_dir():
        print(f"skipped: {CUAD} is absent")
        return 0
    by_document: dict[str, list[dict]] = defaultdict(list)
    for line in (CUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_document[row["document"]].append(row)
    sample_questions = [json.loads(line) for line in SAMPLE.with_suffix(".questions.jsonl").read_text().splitlines() if line.strip()]
    jobs = [(CUAD / "pdf" / name, rows) for name, rows in sorted(by_document.items())]
    jobs.append((SAMPLE, [{**q, "document": SAMPLE.name} for q in sample_questions]))
    shutil.rmtree(out, ignore_errors=True)
    for pdf, rows in jobs:
        folder = out / doc_id_for(pdf)
        ingest([pdf], Workspace(folder), IngestConfig())
        write_jsonl(folder / "questions.jsonl", rows)
        print(f"prepared {folder.name}: {len(rows)} questions")
    return 0


def parse_sets(pairs: list[str]) -> dict:
    """["train.epochs=6", "lora.lora_r=32"] -> {"train": {"epochs": 6.0}, ...} (YAML-typed values)."""
    import yaml

    overrides: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        *path, leaf = key.split(".")
        target = overrides
        for part in path:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(value)
    return overrides


def run(out: Path, base_model: str, pipeline: str, sets: list[str], results: Path, only: list[str],
        budget_minutes: float) -> int:
    import torch

    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace
    from docfinetune.evaluate import evaluate
    from docfinetune.train import train

    overrides = parse_sets(sets)
    overrides.setdefault("model", {})["base_model"] = base_model
    config = load_pipeline(pipeline, overrides)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    rows = json.loads(results.read_text()) if results.is_file() else []
    done = {r["contract"] for r in rows}
    began = time.perf_counter()
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        if folder.name in done or (only and not any(o in folder.name for o in only)):
            continue
        if (time.perf_counter() - began) / 60 > budget_minutes:
            print(f"time budget of {budget_minutes} minutes spent; rerun to continue", flush=True)
            break
        workspace = Workspace(folder)
        started = time.perf_counter()
        run_dir = train(workspace, config)
        trained = time.perf_counter()
        lawyers = evaluate(workspace, config=config, questions_file=folder / "questions.jsonl", include_test=False)
        held_out = evaluate(workspace, config=config, include_test=True,
                            systems="base,finetuned")
        finished = time.perf_counter()
        selection = json.loads((run_dir / "selection.json").read_text())
        rows.append({
            "contract": folder.name, "device": device, "date": date.today().isoformat(),
            "pipeline": pipeline, "overrides": overrides,
            "train_minutes": round((trained - started) / 60, 2),
            "total_minutes": round((finished - started) / 60, 2),
            "selected": selection["selected"], "checkpoints": selection["checkpoints"],
            "lawyers": _summary(lawyers), "held_out": _summary(held_out),
        })
        results.write_text(json.dumps(rows, indent=1))
        print(json.dumps({"contract": folder.name, "minutes": rows[-1]["total_minutes"],
                          "lawyers": rows[-1]["lawyers"]["accuracy"],
                          "held_out": rows[-1]["held_out"]["accuracy"]}), flush=True)
    return 0


def _summary(report: dict) -> dict:
    """The figures this benchmark tabulates, from an evaluate() report."""
    systems = report["systems"]
    return {
        "questions": report["questions"]["scored"],
        "accuracy": {name: s["accuracy"] for name, s in systems.items()},
        "correct": {name: s["correct"] for name, s in systems.items()},
        "by_field": {field: {name: {"correct": f["correct"], "count": f["scored"]} for name, f in per.items()}
                     for field, per in report.get("by_field", {}).items()},
        "memorization": report.get("memorization", {}).get("systems", {}).get("finetuned"),
        "extraction": report.get("extraction"),
        "report": report.get("files", {}).get("json"),
    }


def report(results: Path, write: bool) -> int:
    from results import machine, publish

    rows = json.loads(results.read_text())
    systems = ("base", "base+rag", "finetuned", "finetuned+rag")
    lines = [f"{SECTION} — {rows[0]['date']}", "",
             f"Device: {rows[0]['device']} (training and answering); ingest ran here ({machine()}). "
             f"Pipeline `{rows[0]['pipeline']}` with overrides `{json.dumps(rows[0]['overrides'])}`. "
             "Command: `benchmarks/knowledge.py prepare`, then `run` on the GPU machine, then `report`.", "",
             "Lawyers' questions (cuad-dev/questions.jsonl; the sample contract: its hand-written questions), "
             "closed-book unless marked RAG:", "",
             "| contract | questions | base | base+RAG | fine-tuned | fine-tuned+RAG | held-out test facts: base → fine-tuned | selected step | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    totals = defaultdict(lambda: [0, 0])
    for r in rows:
        law, held = r["lawyers"], r["held_out"]
        cells = [f"{law['correct'][s]}/{law['questions']}" for s in systems]
        for s in systems:
            totals[s][0] += law["correct"][s]
            totals[s][1] += law["questions"]
        totals["held_base"][0] += held["correct"]["base"]
        totals["held_tuned"][0] += held["correct"]["finetuned"]
        totals["held_base"][1] += held["questions"]
        lines.append(f"| {r['contract'][:40]} | {law['questions']} | " + " | ".join(cells)
                     + f" | {held['correct']['base']}/{held['questions']} → {held['correct']['finetuned']}/{held['questions']}"
                     + f" | {r['selected']['step']} | {r['total_minutes']:.1f} |")
    lines.append("| **all** | " + str(totals["base"][1]) + " | "
                 + " | ".join(f"**{100 * totals[s][0] / max(1, totals[s][1]):.1f}%**" for s in systems)
                 + f" | **{100 * totals['held_base'][0] / max(1, totals['held_base'][1]):.1f}% → "
                   f"{100 * totals['held_tuned'][0] / max(1, totals['held_base'][1]):.1f}%** | | "
                 + f"{sum(r['total_minutes'] for r in rows):.1f} |")
    fields = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in rows:
        for field, per_system in r["lawyers"]["by_field"].items():
            for system, f in per_system.items():
                fields[field][system][0] += f["correct"]
                fields[field][system][1] += f["count"]
    lines += ["", "Per field (lawyers' questions, all contracts):", "",
              "| field | " + " | ".join(systems) + " |", "|---" * (len(systems) + 1) + "|"]
    for field in sorted(fields):
        lines.append(f"| {field} | " + " | ".join(
            f"{fields[field][s][0]}/{fields[field][s][1]}" for s in systems) + " |")
    lines += ["", "Memorization (fine-tuned answers to the lawyers' questions: share of characters in verbatim runs of "
              "≥ 20 characters from the training text) and extraction (20 training chunks: share of the true second "
              "half reproduced verbatim from the first half):", "",
              "| contract | copied share, mean ± std | extraction base | extraction fine-tuned | longest exact prefix, fine-tuned |",
              "|---|---|---|---|---|"]
    shares = []
    for r in rows:
        m, e = r["lawyers"]["memorization"], (r["lawyers"].get("extraction") or {}).get("models", {})
        shares.append(m["copied_share"]["mean"])
        tuned = e.get("finetuned", {})
        lines.append(f"| {r['contract'][:40]} | {m['copied_share']['mean']:.2f} ± {m['copied_share']['std']:.2f} "
                     f"| {e.get('base', {}).get('reproduced_share', {}).get('mean', 0):.2f} "
                     f"| {tuned.get('reproduced_share', {}).get('mean', 0):.2f} "
                     f"| {tuned.get('exact_prefix_chars', {}).get('max', 0)} chars |")
    lines.append(f"| **mean over contracts** | **{sum(shares) / len(shares):.2f}** | | | |")

    return publish(SECTION, lines, write)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    r.add_argument("--base-model", required=True)
    r.add_argument("--pipeline", default="default")
    r.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value override")
    r.add_argument("--results", type=Path, required=True)
    r.add_argument("--only", action="append", default=[], help="contracts whose folder name contains this")
    r.add_argument("--budget-minutes", type=float, default=1e9, help="start no contract after this long")
    t = sub.add_parser("report")
    t.add_argument("--results", type=Path, required=True)
    t.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.step == "prepare":
        return prepare(args.out)
    if args.step == "run":
        return run(args.out, args.base_model, args.pipeline, args.sets, args.results, args.only,
                   args.budget_minutes)
    return report(args.results, args.write_results)


if __name__ == "__main__":
    sys.exit(main())
