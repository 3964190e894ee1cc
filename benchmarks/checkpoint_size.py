"""How much disk a checkpoint of the embedded model takes, with and without the optimizer's state
(train.keep_optimizer_state every / last), LoRA (the default r=64) and full fine-tuning.

    .venv/bin/python benchmarks/checkpoint_size.py [--write-results]

Ingests the sample contract into a scratch workspace, then trains 3 steps of 2 examples with a
checkpoint after each (no answering), four times: LoRA and full, every and last. 12.6 minutes on a
2-core CPU (bf16), most of it loading the model and building the data four times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import machine, publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docfinetune.core.config import load_pipeline  # noqa: E402
from docfinetune.core.workspace import Workspace  # noqa: E402
from docfinetune.ingest import ingest  # noqa: E402
from docfinetune.pipeline import build_then_train  # noqa: E402


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def measure(scratch: Path, method: str, keep: str) -> tuple[float, float, int]:
    """(MB of one checkpoint, MB of its optimizer state, checkpoints) of a 3-step run."""
    config = load_pipeline("default", {
        "model": {"precision": "bf16"},
        "train": {"method": method, "keep_optimizer_state": keep, "max_steps": 3, "eval_every_steps": 1,
                  "answer_from": 1.0, "micro_batch_size": 2, **({"learning_rate": 5e-5} if method == "full" else {})}})
    workspace = Workspace(scratch / f"{method}-{keep}")
    if not workspace.root.exists():
        ingest([ROOT / "sample_docs" / "quillmere_msa.pdf"], workspace, config.ingest)
    run_dir = build_then_train(workspace, config, on_event=lambda kind, data: None)
    checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint-*"))
    optimizer = sum(folder_mb(e) if e.is_dir() else e.stat().st_size / 1e6
                    for c in checkpoints for e in c.glob("optimizer*"))
    return sum(folder_mb(c) for c in checkpoints) / len(checkpoints), optimizer / len(checkpoints), len(checkpoints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    lines = [f"## checkpoint_size ({dt.date.today().isoformat()})", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/checkpoint_size.py`. The embedded Gemma 3 "
             "270M (bf16) on the sample contract, default recipe, 3 steps of 2 examples with a checkpoint after each; "
             "sizes once the run is selected, mean over its checkpoints.", "",
             "| train.method | keep_optimizer_state | checkpoints | MB a checkpoint | of it optimizer state |",
             "|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as scratch:
        for method in ("lora", "full"):
            for keep in ("every", "last"):
                size, optimizer, count = measure(Path(scratch), method, keep)
                lines.append(f"| {method} | {keep} | {count} | {size:,.1f} | {optimizer:,.1f} |")
    return publish("## checkpoint_size", lines, args.write_results)


if __name__ == "__main__":
    sys.exit(main())
