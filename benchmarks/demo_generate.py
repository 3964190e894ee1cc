"""Seconds to answer the sample's hand-written questions open-book (the eval's RAG prompts) on
this machine, by precision and generation.batch_size: what `make demo`'s eval costs.

    .venv/bin/python benchmarks/demo_generate.py --workspace W [--precision bf16,fp32] [--batch-sizes 16,56]
        [--limit N] [--checkpoint DIR [--adapter off,unmerged,merged]]

W: a workspace with the sample contract ingested. The base model answers (or, with --checkpoint,
the base model with that LoRA adapter, unmerged as training-time evaluation answers; eval and ask
merge it), greedy,
generation.max_new_tokens of the cpu-demo pipeline; the answers of each setting are compared
with the first setting's.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

from docfinetune.core.config import load_pipeline
from docfinetune.core.generate import generate, rag_prompt
from docfinetune.core.models import load_tokenizer
from docfinetune.core.retrieve import BM25Index
from docfinetune.core.runs import load_weights, merge_adapter
from docfinetune.core.workspace import Workspace

QUESTIONS = Path(__file__).resolve().parent.parent / "sample_docs" / "quillmere_msa.questions.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--precision", default="bf16,fp32")
    parser.add_argument("--batch-sizes", default="16,56")
    parser.add_argument("--limit", type=int, default=0, help="first N questions only")
    parser.add_argument("--checkpoint", default="", help="a LoRA checkpoint folder: the fine-tuned model answers")
    parser.add_argument("--adapter", default="unmerged",
                        help="with --checkpoint, comma-separated, in this order: off (switched off: the base "
                             "model through peft), unmerged, merged (core.runs.merge_adapter, as eval and ask)")
    args = parser.parse_args()
    config = load_pipeline("cpu-demo")
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    if args.limit:
        questions = questions[:args.limit]
    documents, chunks = Workspace(Path(args.workspace)).read_corpus()
    titles = {d.doc_id: d.title for d in documents}
    index = BM25Index(chunks, titles, config.retrieval)
    prompts = [rag_prompt(q, [c for c, _ in index.search(q, config.eval.rag_k)], titles, config.generation)
               for q in questions]
    first = None
    for precision in args.precision.split(","):
        pipeline = dataclasses.replace(config, model=dataclasses.replace(config.model, precision=precision))
        checkpoint = Path(args.checkpoint) if args.checkpoint else None
        model, tokenizer = load_weights(pipeline, checkpoint), load_tokenizer(pipeline.model)
        for adapter in args.adapter.split(",") if checkpoint else ["none"]:
            if adapter == "merged":
                merge_adapter(model, pipeline)
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                load = os.getloadavg()[0]
                start = time.perf_counter()
                with model.disable_adapter() if adapter == "off" else contextlib.nullcontext():
                    answers = generate(model, tokenizer, prompts, max_new_tokens=config.generation.max_new_tokens,
                                       batch_size=batch_size)
                seconds = time.perf_counter() - start
                first = first or answers
                same = sum(a == b for a, b in zip(answers, first))
                print(f"{precision} adapter {adapter} batch {batch_size}: {len(prompts)} RAG prompts in {seconds:.1f} s "
                      f"(load {load:.2f}); answers equal to the first setting's: {same}/{len(prompts)}", flush=True)


if __name__ == "__main__":
    main()
