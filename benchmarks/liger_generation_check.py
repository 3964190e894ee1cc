"""Does liger-kernel's patching change what the model generates? (GPU only.)

`train` applies liger-kernel through Trainer (`train.fused_kernels`), which patches the model
classes of the whole process; the evaluation during training then generates with the patched
model. This script answers the same prompts (short and long, single and left-padded batches)
with a plain model and, after `apply_liger_kernel_to_gemma3`, with a patched one, and prints
how many answers agree.

    python benchmarks/liger_generation_check.py --base-model /tmp/gemma-3-270m-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "Question: What is the capital of France?\nAnswer:",
    "Question: Which planet is the largest in the solar system?\nAnswer:",
    "Context:\n" + "The Provider shall respond within thirty (30) minutes to a Severity 1 incident. " * 30
    + "\n\nQuestion: What is the response time for a Severity 1 incident?\nAnswer:",
    "Context:\nThis Agreement shall be governed by the laws of the State of Illinois.\n\n"
    "Question: Which state's law governs the agreement?\nAnswer:",
]


def answers(model, tokenizer) -> dict:
    from docfinetune.core.generate import generate

    return {"batched": generate(model, tokenizer, PROMPTS, max_new_tokens=24, batch_size=len(PROMPTS)),
            "single": [generate(model, tokenizer, [p], max_new_tokens=24)[0] for p in PROMPTS]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-model", required=True)
    args = parser.parse_args()
    from docfinetune.core.config import ModelConfig
    from docfinetune.core.models import load_model, load_tokenizer

    config = ModelConfig(base_model=args.base_model, device="cuda")
    tokenizer = load_tokenizer(config)
    plain = answers(load_model(config), tokenizer)
    from liger_kernel.transformers import apply_liger_kernel_to_gemma3

    apply_liger_kernel_to_gemma3()
    patched = answers(load_model(config), tokenizer)
    same = {k: sum(a == b for a, b in zip(plain[k], patched[k])) for k in plain}
    print(json.dumps({"plain": plain, "patched": patched, "agree": same, "prompts": len(PROMPTS)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
