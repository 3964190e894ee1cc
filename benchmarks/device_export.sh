#!/usr/bin/env bash
# `export_check.py` on the lent GPU machine: train the sample contract with the default recipe,
# answer the demo question with `ask`'s code (closed-book), export merged, and answer again
# from the exported folder with plain transformers. Same preparation and pieces as
# device_knowledge.sh (its header says how); then one call:
#   carry [.device/on-device.sh, .device/gguf/p4, .device/whl, .bench]
#   command: bash .bench/code/benchmarks/device_export.sh
# Writes $OUT/export.json and $OUT/export.log.
set -euo pipefail
if [ ! -f /tmp/gemma-3-270m-q4_k_m.gguf ]; then
  bash .device/on-device.sh install >/dev/null
  bash .device/on-device.sh piece p4 >/dev/null
  bash .device/on-device.sh assemble
fi
export PYTHONPATH=/tmp/site:$PWD/.bench/code PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
rm -rf /tmp/export-ws && cp -r .bench/knowledge/quillmere-msa /tmp/export-ws
python3 - <<'PY' 2>&1 | grep -v -i warn | tee "$OUT/export.log"
import json, sys, time
from pathlib import Path
sys.path.insert(0, ".bench/code/benchmarks")
from knowledge import GPU, merged
from docfinetune.ask import ask
from docfinetune.core.config import load_pipeline
from docfinetune.core.workspace import Workspace
from docfinetune.pipeline import build_then_train

config = load_pipeline("default", merged(GPU, {"model": {"base_model": "/tmp/gemma-3-270m-q4_k_m.gguf"}}))
workspace = Workspace(Path("/tmp/export-ws"))
started = time.perf_counter()
run_dir = build_then_train(workspace, config, on_event=lambda kind, data: None)
print(json.dumps({"trained_minutes": round((time.perf_counter() - started) / 60, 2), "run": run_dir.name}))
question = "Which state's law governs the Master Services Agreement?"
closed = ask(workspace, question, config=config, open_book=False)
opened = ask(workspace, question, config=config, open_book=True, sources=1)
print(json.dumps({"ask_closed_book": closed.answer, "ask_open_book": opened.answer,
                  "open_book_source": opened.sources[0][0].text[:160] if opened.sources else None,
                  "open_book_first_token_s": opened.seconds_to_first_token}))
PY
python3 .bench/code/benchmarks/export_check.py /tmp/export-ws --json-out "$OUT/export.json" 2>&1 | grep -v -i warn | tail -40
