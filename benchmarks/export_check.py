"""Does a merged export serve without this project? Export, then answer with plain transformers.

Given a workspace with a trained run, runs `docfinetune export --format merged` (through its
function, timed), then, in a fresh Python process that imports only torch and transformers,
loads the folder with AutoModelForCausalLM/AutoTokenizer, asks the demo question through the
exported chat template (greedy, first line, as `ask` answers), and checks that docfinetune was
never imported there. Prints one JSON object and, with --json-out, writes it.

    python benchmarks/export_check.py docfinetune-workspace [--run-id ID] [--dtype bf16|fp16]
        [--output DIR] [--json-out benchmarks/results/export-h200-DATE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTION = "Which state's law governs the Master Services Agreement?"

# Runs in its own process: torch and transformers only, nothing of docfinetune.
PLAIN_TRANSFORMERS = r"""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, question = sys.argv[1], sys.argv[2]
started = time.perf_counter()
tokenizer = AutoTokenizer.from_pretrained(folder)
device = "cuda" if torch.cuda.is_available() else "cpu"
model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
loaded = time.perf_counter()
inputs = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                       return_tensors="pt", return_dict=True).to(device)
with torch.no_grad():
    output = model.generate(**inputs, max_new_tokens=model.generation_config.max_new_tokens or 48, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id)
text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
answer = next((line.strip() for line in text.splitlines() if line.strip()), "")
print(json.dumps({
    "prompt": tokenizer.decode(inputs["input_ids"][0]), "answer": answer, "raw": text,
    "loaded_dtype": str(model.dtype), "device": device, "load_seconds": round(loaded - started, 2),
    "answer_seconds": round(time.perf_counter() - loaded, 2),
    "docfinetune_imported": any(name.split(".")[0] == "docfinetune" for name in sys.modules),
}))
"""


def folder_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--run-id", default=None, help="default: the latest run")
    parser.add_argument("--checkpoint", default=None, help="default: the selected one")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--output", type=Path, default=None, help="default: a new folder under the system's temp dir")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()

    from docfinetune.core.config import ExportConfig
    from docfinetune.core.workspace import Workspace
    from docfinetune.export import export_run

    out = args.output or Path(tempfile.mkdtemp(prefix="export-check-")) / "merged"
    started = time.perf_counter()
    folder = export_run(Workspace(args.workspace), ExportConfig(format="merged", dtype=args.dtype),
                        run_id=args.run_id, checkpoint=args.checkpoint, out=out)
    export_seconds = round(time.perf_counter() - started, 2)
    summary = json.loads((folder / "docfinetune-export.json").read_text(encoding="utf-8"))
    plain = subprocess.run([sys.executable, "-c", PLAIN_TRANSFORMERS, str(folder), args.question],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
    if plain.returncode != 0:
        print(plain.stderr, file=sys.stderr)
        return 1
    result = {
        "question": args.question, "run_id": summary["run_id"], "step": summary["step"],
        "base_model": summary["base_model"], "method": summary["method"], "dtype": args.dtype,
        "export_folder": str(folder), "export_seconds": export_seconds, "folder_mb": folder_mb(folder),
        "safetensors_files": len(list(folder.glob("*.safetensors"))),
        **json.loads(plain.stdout.strip().splitlines()[-1]),
        "machine": platform.node(), "python": platform.python_version(),
    }
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
