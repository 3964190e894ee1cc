"""Knowledge benchmark: does fine-tuning teach the real embedded model a contract?

For each contract of ../shared/cuad-dev/pdf (and the project's sample contract): ingest, build,
train with a recipe variant, then ask its questions closed-book — the lawyers' questions of
cuad-dev/questions.jsonl (the sample's hand-written ones) and the held-out Q&A-test facts —
with the base model, base + BM25 RAG, the fine-tuned model and fine-tuned + RAG
(`docfinetune.evaluate`). Accuracy per field, minutes per contract, tokens of training text per
source token. Each contract is trained alone.

Three steps, because the GPU machine has no PDF/chunking libraries and no shared/ folder:

    python benchmarks/knowledge.py prepare --out .bench/knowledge         # here: ingest each contract
    python benchmarks/knowledge.py run --out .bench/knowledge --base-model /tmp/gemma.gguf \\
        --results /tmp/knowledge --variants default,no_coverage --only quillmere --gpus 2 --jobs 8
    python benchmarks/knowledge.py report --results knowledge/ --write-results

`run` works through (variant, contract) tasks with `--jobs` worker processes spread over
`--gpus` GPUs (a 270M model leaves most of an H200 idle, so several share one); each task
writes results/<variant>/<contract>.json when done, so a rerun does only what is missing.
VARIANTS holds the recipes of the ablation; `benchmarks/device_knowledge.sh` runs it on the
lent GPU machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import yaml

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


# The GPU settings every variant shares: 4 epochs over a mix that holds each fact several
# times, micro-batches of 32 examples, evaluation at each epoch's end only on 100 val
# questions, answers generated 128 at a time (64 until 2026-12-01, when evaluating took 1.3-3.5 of
# each contract's 2.3-7.1 training minutes: half the batches). liger-kernel off: its patches stay in the worker
# process, and the first run with them answered far worse after training in that process
# (base + RAG 3% against 20% before; benchmarks/liger_generation_check.py checks why).
# One micro-batch of 32 a step since the twenty-ninth run (16 with 2 accumulated before: the same
# steps, twice the kernel launches, and a step alone waits on the CPU's launches: 83 ms of GPU work
# in a 626 ms step, train_profile 2026-12-03). 16 x 2 was chosen on 2026-11-30 when a packed row of
# 32 open-book rows (~500 tokens each) asked for 42 GB of logits and ran out of memory; since
# train.label_only_logits (the same evening) logits exist only where a token has a label.
# Runs before 2026-12-01 (second session) also set "epochs": 4 here, then the default was 4 epochs at
# r=16; the default is now 8 epochs at r=64 (the run's `8_epochs_r64`), variant `4_epochs_r16` the old.
# Since the twenty-ninth session they are the shipped pipeline `embedded-gpu`, read from its file, so a
# user's `--pipeline embedded-gpu` is the recipe measured.
GPU_PIPELINE = ROOT / "pipelines" / "embedded-gpu.yaml"
GPU = {section: values for section, values in yaml.safe_load(GPU_PIPELINE.read_text()).items()
       if isinstance(values, dict)}
# Each task's workspace. The device machine keeps /tmp while it stays warm between calls, so a
# task a call's limit cut short resumes there from its last checkpoint (one epoch at most lost).
WORKSPACES = Path("/tmp") / "knowledge-ws"
OLD_MIX = {"build": {"generators": ["rules"], "augment_variants": 0, "rules": {"max_section_facts": 400}}}
# name -> overrides on top of GPU; "default" is the pipeline as shipped.
VARIANTS = {
    "default": {},
    "qa_with_text": {"train": {"schedule": "qa_with_text"}},
    "phased": {"train": {"schedule": "phased"}},  # PIT++: Q&A alone first, text alone last (not yet measured)
    "old_mix": OLD_MIX,  # the recipe before coverage Q&A and restatements
    "old_mix_8_epochs": {**OLD_MIX, "train": {"epochs": 8, "micro_batch_size": 16, "gradient_accumulation_steps": 1}},  # exactly the old benchmark
    "no_coverage": {"build": {"generators": ["rules"]}},
    "no_restatements": {"build": {"augment_variants": 0}},
    "restatements_4": {"build": {"augment_variants": 4}},
    "with_recitations": {"build": {"rules": {"max_section_facts": 400}}},
    "lora_r64": {"lora": {"lora_r": 64, "lora_alpha": 128}},
    "lr_5e-4": {"train": {"learning_rate": 5e-4}},
    "8_epochs": {"train": {"epochs": 8}},
    "open_book": {"build": {"open_book_share": 0.5}},  # RAFT rows: the retriever's chunks in the prompt
    "no_fact_cards": {"build": {"fact_cards": False}},  # retrieval over the chunks alone
    "open_book_0.8": {"build": {"open_book_share": 0.8}},
    "qa_with_text_8_epochs_r64": {"train": {"epochs": 8}, "lora": {"lora_r": 64, "lora_alpha": 128}},
    # Capacity and method (KNOWLEDGE.md §4): LoRA at ~10x full fine-tuning's rate, and full
    # fine-tuning of the layers at two rates bracketing the usual 270M one.
    "open_book_8_epochs_r64": {"build": {"open_book_share": 0.5}, "train": {"epochs": 8},
                               "lora": {"lora_r": 64, "lora_alpha": 128}},
    "lora_r64_lr_1e-3": {"lora": {"lora_r": 64, "lora_alpha": 128}, "train": {"learning_rate": 1e-3}},
    "rag_best_first": {"generation": {"rag_order": "best_first"}},  # the order before 2026-12-01
    "no_card_questions": {"retrieval": {"card_question_weight": 0.0}},
    "rag_best_first_no_card_questions": {"generation": {"rag_order": "best_first"},
                                         "retrieval": {"card_question_weight": 0.0}},
    "8_epochs_r64": {"train": {"epochs": 8}, "lora": {"lora_r": 64, "lora_alpha": 128}},  # the default now
    "4_epochs_r16": {"train": {"epochs": 4}, "lora": {"lora_r": 16, "lora_alpha": 32}},  # the default before
    "no_held_out_cards": {"build": {"held_out_cards": False}},  # answering finds no card for a held-out fact
    # Counterfactual twins of half the open-book rows whose context states the answer (build.raft):
    # the default since 2026-12-01's fifth run, which measured it as this variant.
    "counterfactual": {"build": {"open_book_counterfactual_share": 0.5}},
    "no_counterfactual": {"build": {"open_book_counterfactual_share": 0.0}},  # the default before
    "held_out_selection": {"train": {"select_by": "held_out_accuracy"}},  # the selection rule until 2026-12-01
    "no_tolerance": {"train": {"selection_tolerance": 0.0}},  # the rule until 2026-12-01's seventh run
    # plain-word restatements of each clause fact's questions, training rows only (coverage.restatements_per_fact)
    "restated_2": {"build": {"coverage": {"restatements_per_fact": 2}}},
    "restated_4": {"build": {"coverage": {"restatements_per_fact": 4}}},
    # for the next run (not yet measured with today's recipe): the prompt in the loss too (an open-book
    # row's chunks are then read as text beside their question), more epochs, a higher learning rate
    "train_on_inputs": {"train": {"train_on_inputs": True}},
    "table_rows": {"build": {"coverage": {"table_rows": True}}},  # fee-table rows asked about (the default since the 18th run)
    "no_table_rows": {"build": {"coverage": {"table_rows": False}}},  # the default until the 18th run
    "no_section_in_questions": {"build": {"coverage": {"section_in_questions": False}}},  # as a user asks (20th run, sample only: 24 against 23 of 56)
    "12_epochs": {"train": {"epochs": 12}},
    # training's attention without cuDNN: the twenty-eighth run measured it as its code's default (99c95d0)
    "cudnn_off": {"model": {"cudnn_attention": False}},
    # the benchmark's batching until the twenty-ninth run: the same 32 examples a step as 16 x 2 accumulated
    "micro_batch_16x2": {"train": {"micro_batch_size": 16, "gradient_accumulation_steps": 2}},
    # the label-only loss 1,024 labelled tokens at a time (train.loss_chunk_tokens): a micro-batch of 32 holding
    # ~2,900-4,400 labelled tokens of reading text asked for 2-4.3 GiB of fp32 logits at once, and 5 of 12 tasks
    # ran out of the H200's memory with 8 sharing (twenty-ninth run)
    "loss_chunk_1024": {"train": {"loss_chunk_tokens": 1024}},
    # EDA's random deletion on the closed-book questions, a new draw each epoch (21st run)
    "question_dropout": {"train": {"question_dropout": 0.5}},
    "question_dropout_all": {"train": {"question_dropout": 1.0, "question_dropout_words": 0.4}},
    # after selection, the held-out facts taught too; held-out figures from the selected checkpoint (22nd run:
    # replay 4.0 the default since, 1.0 lost 16 of the taught questions)
    "teach_held_out": {"train": {"teach_held_out_passes": 4, "teach_held_out_replay": 1.0}},
    "teach_held_out_replay_4": {"train": {"teach_held_out_passes": 4, "teach_held_out_replay": 4.0}},
    "no_teaching": {"train": {"teach_held_out_passes": 0}},  # the default until the 22nd run
    # the default's teaching, every rules-generator training row replayed too (the default since the 23rd run,
    # which taught each selected checkpoint both ways: run --also-teach replay_rules)
    "teach_replay_rules": {"train": {"teach_held_out_replay_rules": True}},
    "no_replay_rules": {"train": {"teach_held_out_replay_rules": False}},  # the default's teaching until then
    "lr_4e-4": {"train": {"learning_rate": 4e-4}},  # the default since 2026-12-01's eighth run
    "lr_2e-4": {"train": {"learning_rate": 2e-4}},  # the default until then
    # closed-book answers recall their clause first (build.recite; the answer after the mark is scored):
    # from the answer's sentence (lost to default in the ninth run, 2026-12-01), or from the start of its
    # chunk's reading-text record, title and heading first, as the read-back prompt is (not yet measured)
    # (both pinned as they were measured: without reading on, which is on by default since the eleventh run)
    "recite": {"build": {"recite": True}, "generation": {"max_new_tokens": 112, "continue_recitals": False}},
    "recite_record": {"build": {"recite": True, "recital_from": "record", "recital_max_chars": 700},
                      "generation": {"max_new_tokens": 232, "continue_recitals": False}},
    # sentence recitals, then each recited clause cut before its value and continued as plain text: the
    # value read back from the model's memory of the text, not filled in the question's frame
    # (generation.continue_recitals; the records keep the verdict before reading on, so one training
    # scores both decodings)
    "recite_read": {"build": {"recite": True}, "generation": {"max_new_tokens": 112, "continue_recitals": True}},
    # recitals on the coverage generator's rows only, read on; the ~15 rules fields answered plainly: in the
    # eleventh run recite_read's held-out gain was all coverage facts' (2026-12-02; not yet measured)
    "recite_coverage": {"build": {"recite": True, "recite_generators": ["coverage"]},
                        "generation": {"max_new_tokens": 112, "continue_recitals": True}},
    # every recited row also kept plain; each question answered both ways and the recited answer, read on,
    # kept when its recital holds half the question's words (build.recite_both; recital_min_words pinned at 0,
    # as measured): twelfth run (2026-12-02), plain 69/118 users' and read on 102/291 held-out facts, but the
    # choice kept 58 and 85
    "recite_both": {"build": {"recite": True, "recite_both": True},
                    "generation": {"max_new_tokens": 112, "continue_recitals": True, "recital_min_words": 0,
                                   "recital_enough_words": 0}},
    # recite_both with a recite-prompt copy of every closed-book row (build.recite_both_rows "all"): those without
    # a recital answered plainly there, so the model learns which questions a clause is recited for, as recite_read
    # did (72 of the users' 118 recited against recite_both's 108 — twelfth run, 2026-12-02).
    # With today's teaching (6 passes; twenty-fifth run, 2026-12-03, 12 contracts): closed-book 86/118, the
    # sample's 27/56, with retrieval 100/118, held-out 91/330 (the default's twenty-fourth: 84, 30, 104, 38),
    # 7.5 minutes a contract against ~4.9 — pipelines/recite.yaml, not the default
    "recite_both_all": {"build": {"recite": True, "recite_both": True, "recite_both_rows": "all"},
                        "generation": {"max_new_tokens": 112, "continue_recitals": True}},
    # a question naming a section answered from the model's recall of it: the section's reading-text header
    # continued from memory, then asked open-book with that text (generation.recall_sections; eval keeps the
    # answer without it, so one training scores both): twenty-sixth run (2026-12-03, 12 contracts, before
    # read_quotes was the default) held-out 43 -> 62 of 330, 16 of the 20 gained quoting their clause
    "recall": {"generation": {"recall_sections": True, "read_quotes": False}},
    # ... and a question quoting its clause read on from the quote as plain text (generation.read_quotes; eval keeps
    # the answers without it too): twenty-sixth run (7 contracts) held-out 9 -> 33 of 104, recall 0 more beside it;
    # read_quotes is the default since
    "recall_quotes": {"generation": {"recall_sections": True, "read_quotes": True}},
    "no_read_quotes": {"generation": {"read_quotes": False}},  # the default's answering until the twenty-sixth run
    # a defined term's meaning read on from the term in quotes ('"Territory" means ...', generation.read_definitions;
    # eval keeps the answer without it): the rules' definitions were 44 of the twenty-sixth run's 330 held-out facts,
    # none of them quoting a clause; not yet measured
    "read_definitions": {"generation": {"read_definitions": True}},
    # every training fact also asked as multiple choice (3 of its phrasings) among same-type training values of its
    # contract: most wrong closed-book answers are another training answer of the same field (tenth run); unmeasured
    "choices": {"build": {"choice_share": 1.0, "choice_phrasings": 3}},
    # both next steps in one training: the plain answers of recite_both_all are recite_both's recipe, so beside the
    # twelfth run they say what multiple choice does to them, and the chosen answer what the choice rule does
    # (fourteenth run, 2026-12-02: chosen 67/118 users', 100/291 held-out; plain 66/118, recite_both's 69)
    "recite_both_all_choices": {"build": {"recite": True, "recite_both": True, "recite_both_rows": "all",
                                          "choice_share": 1.0, "choice_phrasings": 3},
                                "generation": {"max_new_tokens": 112, "continue_recitals": True,
                                               "recital_enough_words": 0}},  # as measured
    # open-book rows answered by quoting the context's sentence that states the answer, then the answer
    # (build.open_book_quotes, RAFT's quoting answers): recitals cost retrieval answers (fourteenth run,
    # 2026-12-02: recite_both_all_choices 79 of 107 with retrieval against the default's 85); fifteenth run
    # (2026-12-02): quotes lose more, 74 of 113 against the default's 88 (the wrong sentence quoted)
    "quoted": {"build": {"open_book_quotes": True}, "generation": {"max_new_tokens": 112}},
    # what would become the default if quotes win retrieval back: recite_both_all with quotes, without the
    # multiple-choice rows (no gain in the fourteenth run, 8% more tokens); fifteenth run: closed-book 69/113,
    # held-out 81/287, with retrieval 79/113 against the fourteenth run's 85
    "recite_both_all_quoted": {"build": {"recite": True, "recite_both": True, "recite_both_rows": "all",
                                         "open_book_quotes": True},
                               "generation": {"max_new_tokens": 112, "continue_recitals": True}},
    # every weight but the embeddings (KNOWLEDGE.md §4: LoRA learns less): on 2026-11-30's 4-epoch recipe without
    # open-book rows 14.7% and 17.3% closed-book (4 contracts); on today's recipe (sixteenth run, 2026-12-02, 12
    # contracts) 5e-5 67/118 closed-book, 94/118 with retrieval, 53/291 held-out — the LoRA default's level — and
    # 1e-4 62, 93, 57. A contract's 8 checkpoints hold ~9.7 GB (1,106 MB each, the newest's optimizer 803 MB):
    # at most 5 jobs on the 64 GB disk
    "full_lr_5e-5": {"train": {"method": "full", "learning_rate": 5e-5}},
    "full_lr_1e-4": {"train": {"method": "full", "learning_rate": 1e-4}},
    "full_lr_2e-4": {"train": {"method": "full", "learning_rate": 2e-4}},
    "full_lr_5e-5_8_epochs": {"train": {"method": "full", "learning_rate": 5e-5, "epochs": 8}},
    "full_lr_5e-5_open_book": {"train": {"method": "full", "learning_rate": 5e-5},
                               "build": {"open_book_share": 0.5}},
}

# `run --also-teach NAME,...`: the selected checkpoint taught again with each of these train overrides
# beside the variant's own teaching (checkpoints/taught-<name>), and the same questions asked of it: one
# training, so against the run's own teaching the difference is the teaching alone (the 22nd run's two
# teachings were two trainings apart, whose "before" figures differed by more than either teaching moved)
TEACHINGS = {
    "replay_rules": {"train": {"teach_held_out_replay_rules": True}},  # every rules-generator row replayed too
    "no_replay_rules": {"train": {"teach_held_out_replay_rules": False}},  # since the 23rd run: the default's off
    "passes_2": {"train": {"teach_held_out_passes": 2}},  # 23rd run: 59 of 118 closed-book against 4 passes' 72
    # 24th run (the rules rows replayed): 6 passes 84 of 118 closed-book against 4's 80 (6 / 2), with retrieval 104
    # against 101: 6 is the default since; 4 is the teaching before it
    "passes_4": {"train": {"teach_held_out_passes": 4}},
    "passes_6": {"train": {"teach_held_out_passes": 6}},
    # EDA's word deletion in the teaching alone (the 21st run's question_dropout in training gained 3 of the sample's
    # 56 and lost 16 held-out facts): 24th run 81 against 80 of 118 closed-book (7 / 6), with retrieval 100 against 101
    "question_dropout": {"train": {"question_dropout": 0.5}},
    # not yet measured: half the sampled replay beside the rules rows (cheaper, for the minutes)
    "replay_2": {"train": {"teach_held_out_replay": 2.0}},
}


def splits(out: Path) -> int:
    """How `build` splits each prepared contract (CPU, seconds): facts per split, the largest unit
    of the split (facts that must go together), and the held-out facts' fields."""
    from collections import Counter

    from docfinetune.build import split_qa
    from docfinetune.build.split import fact_groups
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace

    config = load_pipeline("default")
    fields: Counter = Counter()
    largest_total = 0
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        documents, chunks = Workspace(folder).read_corpus()
        kept, dropped, by_split, _ = split_qa(config, documents, chunks)
        facts = {name: len({p.fact_id for p in pairs}) for name, pairs in by_split.items()}
        largest = max(Counter(fact_groups(kept).values()).values(), default=0)
        largest_total += largest
        fields.update(field for _, field in {(p.fact_id, p.field) for n in ("val", "test") for p in by_split[n]})
        print(f"{folder.name[:40]:40} facts {facts}, largest unit {largest} of {sum(facts.values())}, "
              f"held-out locator questions left out {dropped.get('held_out_locator_trained', 0)}")
    print(f"largest units summed: {largest_total}; held-out (fact, field) pairs: {sum(fields.values())}: "
          + ", ".join(f"{f} {n}" for f, n in fields.most_common()))
    return 0


def _built(out: Path, results: Path, variant: str):
    """(result row, its contract's workspace built here with the variant's recipe) for each contract
    the variant ran on: the build is seeded, so its splits and answers are the run's."""
    import tempfile

    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace

    config = load_pipeline("default", VARIANTS[variant])
    with tempfile.TemporaryDirectory() as scratch:
        for row in variant_rows(results, variant):
            folder = Path(scratch) / row["contract"]
            shutil.copytree(out / row["contract"], folder)
            workspace = Workspace(folder)
            build(workspace, config)
            yield row, workspace


def _answers(workspace, name: str) -> list[dict]:
    """A split's Q&A rows without counterfactual twins (their answers are swapped values, not the contract's)."""
    return [r for r in workspace.read_dataset(f"qa_{name}") if not r.get("context_swap")]


TAUGHT_KINDS = ("taught", "held out", "its clause not asked; the value taught for another clause",
                "its clause not asked; the value held out for another", "no generator's answer")


def taught(out: Path, results: Path, variant: str, before_teaching: bool = False, teaching: str = "") -> int:
    """Where the answer of each lawyers' / hand-written question sits in the variant's own build
    of its contract — taught, held out (val / test), or no generator's answer — and how often the
    run answered each kind, closed-book and with retrieval: whether a miss is a fact the model was
    taught and could not recall from another phrasing, one it had to learn by reading, or one no
    generator writes. A value can answer several clauses ("forty-five (45) days" for a payment
    window and for a go-live delay), so the question's clause is the chunk BM25 ranks highest for
    the question among those that state the reference (its text holds it, or a Q&A row with it
    as answer comes from it); the question is taught when a training row comes from that chunk
    (CPU; builds each prepared contract, ~1.5 min). `before_teaching`: the answers of the selected
    checkpoint, asked in the same run before train.teach_held_out_passes taught it the held-out facts;
    `teaching`: the answers after one of `run --also-teach`'s other teachings instead."""
    from collections import Counter

    from docfinetune.core.records import is_card
    from docfinetune.core.retrieve import BM25Index
    from docfinetune.core.score import answer_matches, normalize_spaces

    counts: Counter = Counter()
    for row, workspace in _built(out, results, variant):
        rows = [(name, r) for name in ("train", "val", "test") for r in _answers(workspace, name)]
        index = BM25Index.from_workspace(workspace)
        texts = {c.chunk_id: normalize_spaces(c.text).lower() for c in index.chunks if not is_card(c)}
        kind = "hand-written" if row["contract"].startswith("quillmere") else "lawyers'"
        records = row["lawyers_records"]
        if before_teaching:
            if not row.get("lawyers_before_teaching_records"):
                print(f"{results}: {variant} on {row['contract']} was not taught the held-out facts", file=sys.stderr)
                return 2
            records = row["lawyers_before_teaching_records"]
        if teaching:
            if teaching not in (row.get("other_teachings") or {}):
                print(f"{results}: {variant} on {row['contract']} was not taught `{teaching}`", file=sys.stderr)
                return 2
            records = row["other_teachings"][teaching]["lawyers_records"]
        for record in records:
            matching = [(name, r) for name, r in rows if answer_matches(r["answer"], record["reference"])]
            if not matching:
                where = "no generator's answer"
            else:
                parts = [normalize_spaces(p).lower() for p in record["reference"].split(";") if p.strip(" ;,.")]
                stating = {cid for cid, text in texts.items() if any(p in text for p in parts)}
                stating |= {c for _, r in matching for c in r["source_chunk_ids"]}
                score = dict(zip((c.chunk_id for c in index.chunks), index.scores(record["question"])))
                clause = max(sorted(stating), key=lambda c: score.get(c, 0.0))
                names = {name for name, r in matching if clause in r["source_chunk_ids"]}
                if "train" in names:
                    where = "taught"
                elif names:
                    where = "held out"
                elif any(name == "train" for name, _ in matching):
                    where = "its clause not asked; the value taught for another clause"
                else:
                    where = "its clause not asked; the value held out for another"
            counts[kind, where] += 1
            for system in ("finetuned", "finetuned+rag"):
                counts[kind, where, system] += record["answers"][system]["correct"]
    when = ", the selected checkpoint before teaching" if before_teaching else ""
    when = f", the selected checkpoint taught `{teaching}`" if teaching else when
    print(f"Variant `{variant}`{when}: where each question's answer sits in its contract's build\n")
    print("| question set | answer is | questions | fine-tuned | fine-tuned + RAG |\n|---|---|---|---|---|")
    for kind in ("lawyers'", "hand-written"):
        for where in TAUGHT_KINDS:
            n = counts[kind, where]
            if n:
                print(f"| {kind} | {where} | {n} | {counts[kind, where, 'finetuned']}/{n} "
                      f"| {counts[kind, where, 'finetuned+rag']}/{n} |")
    return 0


MISS_KINDS = ("a training answer of the same field", "a training answer of another field",
              "other words of the document", "words not in the document")


def teaching_share(out: Path, only: list[str]) -> int:
    """train.teach_held_out_passes' cost: one teaching pass against one epoch of the default recipe,
    in examples and in characters of prompt and answer, on each prepared contract built here with
    the default pipeline (CPU, seconds a contract)."""
    import dataclasses
    import tempfile

    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace
    from docfinetune.train import passes_in_order, prompts_for, read_datasets, teaching_rows

    config = load_pipeline("default")
    t = config.train
    print("| contract | epoch: examples | characters | teaching pass: examples | characters | pass / epoch |")
    print("|---|---|---|---|---|---|")
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and (not only or any(o in p.name for o in only))):
        with tempfile.TemporaryDirectory() as scratch:
            workspace = Workspace(Path(scratch) / folder.name)
            shutil.copytree(folder, workspace.root)
            build(workspace, config)
            data = read_datasets(workspace)
            held = data["qa_val"] + workspace.read_dataset("qa_test")
            replay, texts = teaching_rows(data, held, t)
            sizes = []
            for rows, train in ((data, dataclasses.replace(t, epochs=1)),
                                ({"cpt": texts, "qa_train": held + replay},
                                 dataclasses.replace(t, schedule="qa_with_text", epochs=1))):
                examples, _ = passes_in_order(rows, train, prompts_for(workspace, config, rows["qa_train"]))
                sizes.append((len(examples), sum(len(e["prompt"]) + len(e["completion"]) for e in examples)))
        (n_epoch, c_epoch), (n_pass, c_pass) = sizes
        print(f"| {folder.name[:40]} | {n_epoch:,} | {c_epoch:,} | {n_pass:,} | {c_pass:,} | {c_pass / c_epoch:.2f} |")
    return 0


def misses(out: Path, results: Path, variant: str) -> int:
    """Where each wrong closed-book answer to a held-out fact comes from, in the variant's own build
    of its contract: another fact's *training* answer (of the same field or another), other words of
    the document, or words it does not hold. A model that answers held-out questions with taught
    answers has learned "question like this -> one of these answers", not to read its memory of the
    text. The same for the lawyers' and hand-written questions (no field of the build to compare:
    any training answer). CPU; builds each contract again, ~1 min for 11."""
    from collections import Counter

    from docfinetune.core.score import answer_matches, normalize_spaces, recalled_answer

    def same(a: str, b: str) -> bool:
        return answer_matches(a, b) and answer_matches(b, a)

    counts: Counter = Counter()
    asked: Counter = Counter()  # (question set, kind) for the lawyers' and hand-written questions
    for row, workspace in _built(out, results, variant):
        test = {r["question"]: r for r in _answers(workspace, "test")}
        train = _answers(workspace, "train")
        _, chunks = workspace.read_corpus()
        text = normalize_spaces(" ".join(chunk.text for chunk in chunks)).lower()

        def source(said: str) -> int:  # index into MISS_KINDS, a training answer of any field as [1]
            if any(same(said, r["answer"]) for r in train):
                return 1
            return 2 if said and normalize_spaces(said).lower() in text else 3

        question_set = "hand-written" if row["contract"].startswith("quillmere") else "lawyers'"
        for record in row["lawyers_records"]:
            answer = record["answers"]["finetuned"]
            asked[question_set, "asked"] += 1
            asked[question_set, "right" if answer["correct"] else
                  MISS_KINDS[source(recalled_answer(answer["answer"]))]] += 1
        for record in row["held_out_records"]:
            fact = test.get(record["question"])
            if fact is None or "finetuned_answer" not in record:
                counts["not found in this build"] += 1
                continue
            field = fact.get("field", "")
            counts["questions", field] += 1
            if record["finetuned"]:
                counts["right", field] += 1
                continue
            said = recalled_answer(record["finetuned_answer"])
            same_field = any(same(said, r["answer"]) for r in train if r.get("field") == field)
            counts[MISS_KINDS[0 if same_field else source(said)], field] += 1
    fields = sorted({key[1] for key in counts if isinstance(key, tuple) and key[0] == "questions"})

    def total(kind: str) -> int:
        return sum(counts[kind, f] for f in fields)

    wrong = total("questions") - total("right")
    print(f"Variant `{variant}`: the fine-tuned model's wrong closed-book answers to held-out facts "
          f"({wrong} of {total('questions')}), by where the answer comes from\n")
    print("| field | asked | right | " + " | ".join(f"wrong: {k}" for k in MISS_KINDS) + " |")
    print("|---|---|---|" + "---|" * len(MISS_KINDS))
    for f in [*fields, None]:
        n = (lambda k: counts[k, f]) if f else total
        print(f"| {f or 'all'} | {n('questions')} | {n('right')} | " + " | ".join(str(n(k)) for k in MISS_KINDS) + " |")
    print(f"\nVariant `{variant}`: the fine-tuned model's closed-book answers to the lawyers' and hand-written "
          "questions, the wrong ones by where the answer comes from\n")
    print("| questions | asked | right | wrong: a training answer (any field) | wrong: other words of the document "
          "| wrong: words not in the document |\n|---|---|---|---|---|---|")
    for name in ("lawyers'", "hand-written"):
        print(f"| {name} | {asked[name, 'asked']} | {asked[name, 'right']} | "
              + " | ".join(str(asked[name, k]) for k in MISS_KINDS[1:]) + " |")
    if counts["not found in this build"]:
        print(f"\n{counts['not found in this build']} held-out questions are not in this build's test split "
              "(the code changed since the run).")
    return 0


def merged(*layers: dict) -> dict:
    out: dict = {}
    for layer in layers:
        for key, value in layer.items():
            out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def run_task(out: Path, results: Path, base_model: str, variant: str, contract: str, curves: bool = True,
             also_teach: tuple[str, ...] = ()) -> dict:
    """Train one contract with one variant and evaluate it; writes and returns the result row.
    `also_teach`: TEACHINGS to teach the selected checkpoint with besides the variant's own."""
    import torch

    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace
    from docfinetune.evaluate import evaluate
    from docfinetune.pipeline import build_then_train

    overrides = merged(GPU, VARIANTS[variant], {"model": {"base_model": base_model}})
    if not torch.cuda.is_available():  # the CPU smoke test
        overrides["model"]["device"] = "cpu"
    config = load_pipeline("default", overrides)
    folder = WORKSPACES / variant / contract
    workspace = Workspace(folder)
    run_dir, seconds_before = _left_by_an_earlier_call(workspace)
    started = time.perf_counter()
    if run_dir is None or not (run_dir / "selection.json").is_file():
        if run_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(out / contract, folder)
        # quiet: one line per task
        run_dir = build_then_train(workspace, config, resume=run_dir is not None, on_event=lambda kind, data: None)
    trained = time.perf_counter()
    # every checkpoint's answers: ~1.5 min a contract with 8-13 processes on the H200 (2026-12-01)
    curve = checkpoint_curve(workspace, config, run_dir, folder / "questions.jsonl") if curves else []
    lawyers = evaluate(workspace, config=config, questions_file=folder / "questions.jsonl", include_test=False)
    held_out = evaluate(workspace, config=config, include_test=True, systems="base,finetuned")
    selection = json.loads((run_dir / "selection.json").read_text())
    before = None  # train.teach_held_out_passes: the same questions of the selected checkpoint, before teaching
    other_teachings = {}
    if selection.get("taught_all"):
        before = evaluate(workspace, config=config, questions_file=folder / "questions.jsonl", include_test=False,
                          checkpoint=selection["selected"]["step"], systems="finetuned,finetuned+rag")
        # after the figures above: the run's own teaching's adapter and answers are the row's
        other_teachings = teach_again(workspace, run_dir, overrides, also_teach, folder / "questions.jsonl")
    finished = time.perf_counter()
    stats = workspace.read_stats()
    row = {
        "contract": contract, "variant": variant, "overrides": VARIANTS[variant],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU",
        "date": date.today().isoformat(),
        "build_seconds": stats["seconds"],
        # A task resumed from an earlier call's checkpoint: the run's seconds up to that checkpoint
        # (training and its evaluations, from metrics.jsonl) plus this call's.
        "train_minutes": round((seconds_before + trained - started) / 60, 2),
        "total_minutes": round((seconds_before + finished - started) / 60, 2),
        "resumed_after_seconds": seconds_before or None,
        "source_tokens": stats["source_tokens"],
        "training_tokens_per_source_token": stats["training_tokens_per_source_token"],
        "tokens_seen": max((m.get("tokens_seen", 0) for m in selection["checkpoints"]), default=0),
        "selected": selection["selected"], "checkpoints": selection["checkpoints"],
        "rule": selection["rule"], "curve": curve,
        "taught_all": selection.get("taught_all"),  # train.teach_held_out_passes: the lawyers' were asked it
        "lawyers_before_teaching": _summary(before) if before else None,
        "lawyers_before_teaching_records": [{k: r[k] for k in ("question", "reference", "field", "answers")}
                                            for r in before.get("records", [])] if before else None,
        "other_teachings": other_teachings or None,  # run --also-teach
        "lawyers": _summary(lawyers), "held_out": _summary(held_out),
        # each lawyers' / hand-written question's answers: what the systems got wrong, and how
        "lawyers_records": [{k: r[k] for k in ("question", "reference", "field", "answers")}
                            for r in lawyers.get("records", [])],
        # each held-out fact read back from its own reading text, or not (evaluate's read-back)
        "read_back": {name: [{k: r[k] for k in ("fact_id", "field", "read_back")} for r in figures["records"]]
                      for name, figures in (held_out.get("read_back") or {}).get("models", {}).items()},
        # the same facts from their sentence alone (what generation.continue_recitals reads on from)
        "read_back_sentence": {name: [{k: r[k] for k in ("fact_id", "field", "read_back")} for r in figures["records"]]
                               for name, figures in (held_out.get("read_back") or {}).get("from_sentence", {}).items()},
        # each held-out question's verdicts, for the report's table by question form
        "held_out_records": [{"question": r["question"], "field": r["field"], "generator": r.get("generator", ""),
                              **{s: r["answers"][s]["correct"] for s in ("base", "finetuned")},
                              "finetuned_answer": r["answers"]["finetuned"]["answer"],  # recited or not
                              # generation.continue_recitals: the verdict before reading on
                              **({"finetuned_recited": r["answers"]["finetuned"]["recited"]["correct"]}
                                 if "recited" in r["answers"]["finetuned"] else {}),
                              # build.recite_both: the plain and the read-on answers the answer was chosen from
                              # generation.recall_sections: the answers without and from the section's recall
                              **{f"finetuned_{key}": r["answers"]["finetuned"][key]["correct"]
                                 for key in ("plain", "read_on", "unrecalled", "recalled", "unquoted", "quoted")
                                 if key in r["answers"]["finetuned"]},
                              # ... and their texts (the recited one's and the recall too), so another choice
                              # rule can be scored on them (`recitals`)
                              **{f"finetuned_{key}_answer": r["answers"]["finetuned"][key]["answer"]
                                 for key in ("plain", "read_on", "recited", "unrecalled", "recalled", "unquoted",
                                             "quoted") if key in r["answers"]["finetuned"]},
                              **{f"finetuned_{key}": r["answers"]["finetuned"][key]
                                 for key in ("recall", "quote") if key in r["answers"]["finetuned"]},
                              # ... and how sure the model was of the plain and the recited one
                              **({"finetuned_confidence": r["answers"]["finetuned"]["confidence"]}
                                 if "confidence" in r["answers"]["finetuned"] else {})}
                             for r in held_out.get("records", [])],
    }
    target = results / variant / f"{contract}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(row, indent=1))
    # the row holds every figure, and a task with a row is not run again: its checkpoints go (a full
    # fine-tune's 1.1 GB each; 22 selected ones kept would fill 24 of the device's 64 GB)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return row


def teach_again(workspace, run_dir: Path, overrides: dict, names: tuple[str, ...], questions: Path) -> dict:
    """`run --also-teach`: the run's selected checkpoint taught the held-out facts once more for each of
    `names` (TEACHINGS[name] over the variant's `overrides`), each adapter beside the run's own as
    checkpoints/taught-<name>, and the lawyers' / hand-written questions asked of it, closed-book and
    with retrieval. One model serves every teaching: teach_held_out loads the selected weights first."""
    import gc

    import torch

    from docfinetune.core.config import load_pipeline
    from docfinetune.evaluate import evaluate
    from docfinetune.train import prepare, teach_held_out

    if not names:
        return {}
    selected = json.loads((run_dir / "selection.json").read_text())["selected"]["path"]
    config = load_pipeline("default", overrides)  # the teachings differ in train settings only
    ready = prepare(workspace, config)
    taught = {}
    for name in names:
        ready.config = load_pipeline("default", merged(overrides, TEACHINGS[name]))
        taught[name] = teach_held_out(workspace, run_dir, ready, selected, lambda kind, data: None, quiet=True,
                                      target=f"checkpoints/taught-{name}")
    del ready
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # seven other processes share the GPU
    out = {}
    for name, entry in taught.items():
        answers = evaluate(workspace, config=config, questions_file=questions, include_test=False,
                           checkpoint=entry["path"], systems="finetuned,finetuned+rag")
        out[name] = {"overrides": TEACHINGS[name], "taught": entry, "lawyers": _summary(answers),
                     "lawyers_records": [{k: r[k] for k in ("question", "reference", "field", "answers")}
                                         for r in answers.get("records", [])]}
    return out


def _left_by_an_earlier_call(workspace) -> tuple[Path | None, float]:
    """The run a device call that ended mid-task left in `workspace` (the machine keeps /tmp
    while it stays warm between calls) and the run's seconds so far: a finished run (selection
    written, evaluation left to do) or one to resume from its last complete checkpoint. (None, 0)
    when there is none, and the task starts over."""
    from docfinetune.core.runs import checkpoint_step, find_run, last_checkpoint, run_to_resume
    from docfinetune.core.workspace import read_jsonl

    try:
        run = run_to_resume(workspace)  # interrupted, with a complete checkpoint
    except Exception:  # none: a finished run, or nothing usable (a copy killed half-made)
        try:
            run = find_run(workspace)
        except Exception:
            run = None
    if run is None:
        return None, 0.0
    metrics = run.path / "metrics.jsonl"
    lines = list(read_jsonl(metrics)) if metrics.is_file() else []
    if run.selection is None:  # resume drops the lines after the last complete checkpoint
        step = checkpoint_step(last_checkpoint(run.path))
        lines = [line for line in lines if line.get("step", 0) <= step]
    return run.path, float(lines[-1].get("seconds", 0.0)) if lines else 0.0


def checkpoint_curve(workspace, config, run_dir: Path, questions: Path) -> list[dict]:
    """The lawyers' / hand-written questions answered by every checkpoint, with retrieval (the
    system `ask` uses) and closed-book (one verdict per question and system), so the report can say
    what each selection rule would have chosen from one training and what it scored on both.
    Diagnostics only: selection never sees them."""
    import dataclasses

    from docfinetune.evaluate import evaluate

    quick = dataclasses.replace(config, eval=dataclasses.replace(config.eval, extraction_chunks=0))
    selection = json.loads((run_dir / "selection.json").read_text())
    curve = []
    for checkpoint in selection["checkpoints"]:
        report = evaluate(workspace, config=quick, questions_file=questions, include_test=False,
                          checkpoint=checkpoint["step"], systems="finetuned,finetuned+rag")
        curve.append({"step": checkpoint["step"], **{system: [r["answers"][system]["correct"] for r in report["records"]]
                                                     for system in ("finetuned", "finetuned+rag")}})
    return curve


def _exit_with_parent() -> None:
    """End this worker when the process that started it is gone: the device call's `timeout`
    kills that one alone, and a worker left running would train beside the next call's copy of
    its task (which resumes from the last checkpoint instead)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(queue, out: Path, results: Path, base_model: str, deadline: float, curves: bool,
            also_teach: tuple[str, ...] = ()) -> None:
    _exit_with_parent()
    while time.time() < deadline:
        try:
            variant, contract = queue.get_nowait()
        except Exception:
            return
        began = time.perf_counter()
        try:
            row = run_task(out, results, base_model, variant, contract, curves, also_teach)
            print(json.dumps({"variant": variant, "contract": contract, "minutes": row["total_minutes"],
                              "lawyers": row["lawyers"]["accuracy"], "held_out": row["held_out"]["accuracy"]}),
                  flush=True)
        except Exception as err:  # one task's failure is reported, the others go on
            import traceback

            print(f"FAILED {variant}/{contract} after {time.perf_counter() - began:.0f} s: {err!r}", flush=True)
            traceback.print_exc()


def run(out: Path, base_model: str, results: Path, variants: list[str], only: list[str], jobs: int,
        gpus: int, budget_minutes: float, curves: bool = True, also_teach: tuple[str, ...] = ()) -> int:
    import multiprocessing as mp

    unknown = [v for v in variants if v.partition("@")[0] not in VARIANTS]
    unknown += [f"--also-teach {name}" for name in also_teach if name not in TEACHINGS]
    if unknown:
        print(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}; teachings: {', '.join(TEACHINGS)}")
        return 2
    contracts = sorted(p.name for p in out.iterdir() if p.is_dir())
    # Tasks by contract, largest first (the long ones must not start last), each with its variants in
    # the order given: a run cut short holds both sides of a comparison for the contracts it finished
    # (2026-12-01, variant by variant: the first call finished 5 tasks, all of one variant).
    size = {c: sum(1 for _ in open(out / c / "documents" / next((out / c / "documents").iterdir()).name
                                   / "chunks.jsonl")) for c in contracts}
    tasks = []
    for contract in sorted(contracts, key=lambda c: -size[c]):
        for spec in variants:
            variant, _, subset = spec.partition("@")
            wanted = subset.split("+") if subset else only
            if wanted and not any(w in contract for w in wanted):
                continue
            if not (results / variant / f"{contract}.json").is_file():
                tasks.append((variant, contract))
    # What an earlier call left half-done first: it resumes from its last checkpoint.
    started = [t for t in tasks if (WORKSPACES / t[0] / t[1] / "runs").is_dir()]
    tasks = started + [t for t in tasks if t not in started]
    print(f"{len(tasks)} tasks on {jobs} workers over {gpus} GPU(s)", flush=True)
    _warm_the_model_cache(base_model)
    context = mp.get_context("spawn")
    queue = context.Queue()
    for task in tasks:
        queue.put(task)
    deadline = time.time() + budget_minutes * 60
    workers = []
    for n in range(jobs):
        os.environ["CUDA_VISIBLE_DEVICES"] = str(n % max(gpus, 1))
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // jobs))
        worker = context.Process(target=_worker, args=(queue, out, results, base_model, deadline, curves,
                                                                also_teach))
        worker.start()
        workers.append(worker)
    for worker in workers:
        worker.join()
    left = sum(not (results / v / f"{c}.json").is_file() for v, c in tasks)
    print(f"done; {left} task(s) left for a rerun", flush=True)
    return 0


def _warm_the_model_cache(base_model: str) -> None:
    """Convert the GGUF once, before the workers start, so they all load the cached weights."""
    from docfinetune.core.config import ModelConfig
    from docfinetune.core.models import load_model, load_tokenizer

    source = ModelConfig(base_model=base_model, device="cpu")
    load_tokenizer(source)
    load_model(source)


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


SYSTEMS = ("base", "base+rag", "finetuned", "finetuned+rag")
SYSTEM_NAMES = {"finetuned": "fine-tuned", "finetuned+rag": "fine-tuned + RAG"}
RECITATION_FIELDS = {"section"}  # "what does Section N provide?": not a short-answer fact


SUBSET = ("quillmere", "blackbox", "legacy", "duos")  # the ablation's contracts: the sample and three of cuad-dev


def load_rows(results: Path) -> dict[str, list[dict]]:
    """{variant: rows} from results/<variant>/<contract>.json, or from one JSON file holding that
    mapping (benchmarks/results/, gzipped there: 8 MB of JSON travel with every device call as 0.9 MB);
    variants in VARIANTS order."""
    if results.is_file():
        rows = json.loads(gzip.decompress(results.read_bytes()) if results.suffix == ".gz" else results.read_text())
    else:
        rows = {}
        for path in sorted(results.glob("*/*.json")):
            rows.setdefault(path.parent.name, []).append(json.loads(path.read_text()))
    order = list(VARIANTS)
    rank = {v: order.index(v.split("+")[0]) if v.split("+")[0] in order else len(order) for v in rows}
    return dict(sorted(rows.items(), key=lambda kv: (rank[kv[0]], kv[0])))


def variant_rows(results: Path, variant: str) -> list[dict]:
    """The rows of one variant of a results file or folder; a missing one stops with one line."""
    rows = load_rows(results)
    if variant not in rows:
        print(f"{results}: no rows of variant {variant!r} (it holds {', '.join(rows) or 'none'})", file=sys.stderr)
        raise SystemExit(2)
    return rows[variant]


from docfinetune.core.generate import quoted_clause  # noqa: E402
from docfinetune.core.score import RECITAL_MARK  # noqa: E402  (after the sys.path line)
from docfinetune.train.select import CHECKPOINT_FIELDS, _choose  # noqa: E402


def _sum(rows: list[dict], part: str, system: str, fields=None, exclude=frozenset()) -> tuple[int, int]:
    correct = total = 0
    for r in rows:
        for field, per in r[part]["by_field"].items():
            if (fields is None or field in fields) and field not in exclude and system in per:
                correct += per[system]["correct"]
                total += per[system]["count"]
    return correct, total


def question_form(question: str) -> str:
    """The generators' question forms: a cloze reads like the reading text itself ("Complete this
    clause ...: '... within ___ after ...'"), a locator asks the reverse direction ("Which section
    ... sets ...?"), the rest ask forward in question words."""
    if re.search(r"(?i)^complete this clause|what fills the blank", question):
        return "cloze"
    if re.match(r"(?i)(?:which|in which) (?:section|article|schedule|exhibit|annex|appendix)\b|what is .+'s role\b",
                question):
        return "locator (reverse)"
    return "forward"


def _pct(pair: tuple[int, int]) -> str:
    return f"{100 * pair[0] / pair[1]:.1f}% ({pair[0]}/{pair[1]})" if pair[1] else "–"


def variant_figures(rows: list[dict]) -> dict:
    sample = [r for r in rows if "quillmere" in r["contract"]]
    return {
        "contracts": len(rows),
        "lawyers": {s: _sum(rows, "lawyers", s) for s in SYSTEMS},
        "sample": {s: _sum(sample, "lawyers", s) for s in SYSTEMS},
        "cuad": {s: _sum([r for r in rows if r not in sample], "lawyers", s) for s in SYSTEMS},
        "held_out": {s: _sum(rows, "held_out", s, exclude=RECITATION_FIELDS) for s in ("base", "finetuned")},
        "train_minutes": statistics.median(r["train_minutes"] for r in rows),
        "tokens_per_source": statistics.median(r["training_tokens_per_source_token"] for r in rows),
    }


def _variant_row(variant: str, rows: list[dict]) -> str:
    f = variant_figures(rows)
    overrides = VARIANTS.get(variant, rows[0].get("overrides", {}))
    return (f"| {variant} | `{json.dumps(overrides)}` | {f['contracts']} "
            f"| **{_pct(f['lawyers']['finetuned'])}** | {_pct(f['lawyers']['base'])} | {_pct(f['lawyers']['base+rag'])} "
            f"| {_pct(f['lawyers']['finetuned+rag'])} | {_pct(f['sample']['finetuned'])} "
            f"| {_pct(f['sample']['finetuned+rag'])} "
            f"| {_pct(f['held_out']['base'])} → **{_pct(f['held_out']['finetuned'])}** "
            f"| {f['tokens_per_source']:.1f} | {f['train_minutes']:.1f} |")


TABLE_HEAD = ["| variant | overrides | contracts | lawyers' + hand-written: fine-tuned | base | base+RAG "
              "| fine-tuned+RAG | hand-written (sample): fine-tuned | hand-written: fine-tuned+RAG "
              "| held-out: base → fine-tuned | tokens/source | train min (median) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]


def rescore(rows: list[dict]) -> int:
    """Score the stored answers to the lawyers' + hand-written questions again with today's
    scorer (core/score.py), in place; returns how many verdicts changed. Held-out facts keep the
    verdicts of their run (their answers are not stored)."""
    from docfinetune.core.score import answer_matches

    changed = 0
    for row in rows:
        by_field: dict = defaultdict(lambda: defaultdict(lambda: {"correct": 0, "count": 0}))
        for record in row["lawyers_records"]:
            for system, answer in record["answers"].items():
                verdict = answer_matches(answer["answer"], record["reference"], record["field"] or None)
                changed += verdict != answer["correct"]
                answer["correct"] = verdict
                by_field[record["field"]][system]["correct"] += verdict
                by_field[record["field"]][system]["count"] += 1
        part = row["lawyers"]
        part["by_field"] = {f: dict(per) for f, per in by_field.items()}
        systems = {s for per in by_field.values() for s in per}
        part["correct"] = {s: sum(per[s]["correct"] for per in by_field.values() if s in per) for s in systems}
        part["accuracy"] = {s: part["correct"][s] / max(1, len(row["lawyers_records"])) for s in systems}
    return changed


RULES = {  # name -> how a checkpoint is chosen from the run's own evaluations (train/select.py)
    "held-out facts alone (the rule until 2026-12-01)": lambda cs: _choose(cs, "held_out_accuracy")[0],
    "held-out + taught, 0.5 each (the rule until 2026-12-01's seventh run)": lambda cs: _choose(cs, "accuracy", 0.5)[0],
    "the same, within 0.03 of the best the most closed-book (train.selection_tolerance)":
        lambda cs: _choose(cs, "accuracy", 0.5, 0.03)[0],
    "the same, within 0.05 (the default until 2026-12-02)": lambda cs: _choose(cs, "accuracy", 0.5, 0.05)[0],
    "the same, answering from half the steps on (train.answer_from 0.5, the default)":
        lambda cs: _choose([c for c in cs if c["step"] >= 0.5 * cs[-1]["step"]], "accuracy", 0.5, 0.05)[0],
    "the last checkpoint": lambda cs: cs[-1],
}


def paired(by_variant: dict[str, list[dict]]) -> list[str]:
    """Each variant against the first one, question by question on the contracts both ran: the
    lawyers' / hand-written answers it gained and lost, closed-book and with retrieval, and how
    often both chose the same checkpoint. Two runs of one recipe differ by a few questions
    (2026-12-01: closed-book 3 gained, 7 lost; the checkpoint differed on 7 of 13 contracts),
    so a total alone cannot tell a change from that spread."""
    baseline, *others = by_variant
    base = {r["contract"]: r for r in by_variant[baseline]}
    out: list[str] = []
    for variant in others:
        rows = [r for r in by_variant[variant] if r["contract"] in base]
        if not rows:
            continue
        if not out:
            out = ["", f"Against `{baseline}`, question by question on the contracts both ran (lawyers' + "
                       "hand-written):", "",
                   "| variant | contracts | fine-tuned: gained / lost | fine-tuned + RAG: gained / lost "
                   "| same checkpoint chosen |", "|---|---|---|---|---|"]
        moved = {system: [0, 0] for system in ("finetuned", "finetuned+rag")}
        for r in rows:
            pairs = zip(base[r["contract"]]["lawyers_records"], r["lawyers_records"])
            for before, after in pairs:
                for system, counts in moved.items():  # [gained, lost]
                    was, now = before["answers"][system]["correct"], after["answers"][system]["correct"]
                    counts[0] += now and not was
                    counts[1] += was and not now
        same = sum(r["selected"]["step"] == base[r["contract"]]["selected"]["step"] for r in rows)
        out.append(f"| {variant} | {len(rows)} | " + " | ".join(f"{gained} / {lost}" for gained, lost in moved.values())
                   + f" | {same} of {len(rows)} |")
    return out


def against_runs(by_variant: dict[str, list[dict]], baselines: list[tuple[str, list[dict]]]) -> list[str]:
    """Each variant against the rows of earlier runs (`--baseline FILE[:VARIANT]`), question by question
    on the contracts both ran: a variant measured without the default beside it is compared with
    each of the default's runs, whose spread (three runs, 2026-12-01: 7-10 of 112 closed-book answers
    differ between two) says which differences count. Held-out facts are matched by question text
    (a generator change rewording one drops it from the pair)."""
    out: list[str] = []
    for variant, rows in by_variant.items():
        for name, base_rows in baselines:
            base = {r["contract"]: r for r in base_rows}
            shared = [r for r in rows if r["contract"] in base]
            if not shared:
                continue
            if not out:
                out = ["", "Against earlier runs, question by question on the contracts both ran (baseline → variant; "
                           "gained / lost):", "",
                       "| variant | baseline | contracts | lawyers' + hand-written: fine-tuned | gained / lost "
                       "| hand-written (sample): fine-tuned | fine-tuned + RAG | held-out: fine-tuned |",
                       "|---|---|---|---|---|---|---|---|"]
            tally = {k: [0, 0, 0] for k in ("closed", "hand", "rag", "held")}  # [baseline right, variant right, n]
            moved = [0, 0]
            for r in shared:
                before = {(q["question"], i): q for i, q in enumerate(base[r["contract"]]["lawyers_records"])}
                for i, q in enumerate(r["lawyers_records"]):
                    was = before.get((q["question"], i))
                    if was is None:
                        continue
                    for key, system in (("closed", "finetuned"), ("rag", "finetuned+rag")) + (
                            (("hand", "finetuned"),) if r["contract"] == "quillmere-msa" else ()):
                        a, b = was["answers"][system]["correct"], q["answers"][system]["correct"]
                        tally[key][0] += a
                        tally[key][1] += b
                        tally[key][2] += 1
                    a, b = was["answers"]["finetuned"]["correct"], q["answers"]["finetuned"]["correct"]
                    moved[0] += b and not a
                    moved[1] += a and not b
                held = {h["question"]: h["finetuned"] for h in base[r["contract"]].get("held_out_records", [])}
                for h in r.get("held_out_records", []):
                    if h["question"] in held:
                        tally["held"][0] += held[h["question"]]
                        tally["held"][1] += h["finetuned"]
                        tally["held"][2] += 1
            cells = {k: f"{a} → **{b}** of {n}" if n else "–" for k, (a, b, n) in tally.items()}
            out.append(f"| {variant} | {name} | {len(shared)} | {cells['closed']} | {moved[0]} / {moved[1]} "
                       f"| {cells['hand']} | {cells['rag']} | {cells['held']} |")
    return out


def selection_rules(by_variant: dict[str, list[dict]]) -> list[str]:
    """What each selection rule would have scored on the lawyers' / hand-written questions, from
    the checkpoint curves (every checkpoint answered them), beside the best single checkpoint per
    contract (an oracle no rule can reach: it looks at the answers)."""
    out: list[str] = []
    for variant, rows in by_variant.items():
        rows = [r for r in rows if r.get("curve") and len(r["curve"]) == len(r["checkpoints"])]
        if not rows:
            continue
        # curves before 2026-12-01's sixth session hold the answers with retrieval alone
        systems = [s for s in ("finetuned+rag", "finetuned") if all(s in e for r in rows for e in r["curve"])]
        out += ["", f"Variant `{variant}`: the lawyers' + hand-written questions under each checkpoint-selection "
                    f"rule, {len(rows)} contracts (every checkpoint answered them):", "",
                "| rule | " + " | ".join(f"{SYSTEM_NAMES[s]}: {k}" for s in systems
                                         for k in ("all", "lawyers' (cuad-dev)", "hand-written (sample)"))
                + " | steps chosen (share of the run) |",
                "|---" * (3 * len(systems) + 2) + "|"]

        def tally(pick) -> tuple[dict, list[float]]:
            sums = {(s, k): [0, 0] for s in systems for k in ("all", "cuad", "sample")}  # correct, asked
            where = []
            for r in rows:
                entry = pick(r)
                where.append(entry["step"] / r["curve"][-1]["step"])
                for system in systems:
                    for key in ("all", "sample" if "quillmere" in r["contract"] else "cuad"):
                        sums[system, key][0] += sum(entry[system])
                        sums[system, key][1] += len(entry[system])
            return sums, where

        def at_rule(rule):
            def pick(r):
                chosen = rule([{k: c.get(k) for k in CHECKPOINT_FIELDS} | {"path": c.get("path")}
                               for c in r["checkpoints"]])["step"]
                return next(e for e in r["curve"] if e["step"] == chosen)
            return pick

        picks = {name: at_rule(rule) for name, rule in RULES.items()}
        picks["best checkpoint per contract (oracle)"] = lambda r: max(r["curve"], key=lambda e: sum(e["finetuned+rag"]))
        for name, pick in picks.items():
            sums, where = tally(pick)
            cells = [_pct((a, n)) for a, n in sums.values()]
            out.append(f"| {name} | " + " | ".join(cells) + f" | median {statistics.median(where):.2f} |")
    return out


def _teaching_lines(variant: str, rows: list[dict]) -> list[str]:
    """train.teach_held_out_passes: each contract's lawyers' + hand-written questions asked of its
    selected checkpoint and of the adapter that then learned the held-out facts (one training:
    the difference is the teaching alone)."""
    taught = [r for r in rows if r.get("lawyers_before_teaching")]
    if not taught:
        return []
    lines = ["", f"Variant `{variant}`, the same questions before (the selected checkpoint) and after teaching the "
                 "held-out facts (checkpoints/taught-all), closed-book and with retrieval:", "",
             "| contract | questions | held-out rows taught (steps, seconds) | before | after | gained / lost "
             "| before + RAG | after + RAG |", "|---|---|---|---|---|---|---|---|"]
    totals = [0] * 7
    for r in taught:
        t, before, after = r["taught_all"], r["lawyers_before_teaching"], r["lawyers"]
        pairs = list(zip(r["lawyers_before_teaching_records"], r["lawyers_records"]))
        gained = sum(a["answers"]["finetuned"]["correct"] and not b["answers"]["finetuned"]["correct"] for b, a in pairs)
        lost = sum(b["answers"]["finetuned"]["correct"] and not a["answers"]["finetuned"]["correct"] for b, a in pairs)
        figures = [before["questions"], before["correct"]["finetuned"], after["correct"]["finetuned"], gained, lost,
                   before["correct"]["finetuned+rag"], after["correct"]["finetuned+rag"]]
        totals = [a + b for a, b in zip(totals, figures)]
        n = figures[0]
        lines.append(f"| {r['contract'][:40]} | {n} | {t['rows']['held_out']} ({t['steps']}, {t['seconds']:.0f}) "
                     f"| {figures[1]}/{n} | {figures[2]}/{n} | {gained} / {lost} | {figures[5]}/{n} | {figures[6]}/{n} |")
    n = totals[0]
    lines.append(f"| all | {n} | | {totals[1]}/{n} | **{totals[2]}/{n}** | {totals[3]} / {totals[4]} "
                 f"| {totals[5]}/{n} | **{totals[6]}/{n}** |")
    return lines


def _other_teaching_lines(variant: str, rows: list[dict]) -> list[str]:
    """`run --also-teach`: each contract's selected checkpoint taught the run's way and each other
    way, the same questions asked of each (one training: the differences are the teachings alone)."""
    taught = [r for r in rows if r.get("other_teachings")]
    if not taught:
        return []
    names = list(taught[0]["other_teachings"])
    lines = ["", f"Variant `{variant}`: the selected checkpoint taught the held-out facts the run's way and "
                 f"{len(names)} other way(s) (`run --also-teach`), the same questions asked of each; closed-book "
                 "(with retrieval), and each other way's gained / lost against the run's own teaching:", "",
             "| contract | questions | before | the run's teaching | " + " | ".join(f"`{n}`" for n in names)
             + " | " + " | ".join(f"`{n}`: gained / lost" for n in names) + " |",
             "|---|---|---|---|" + "---|" * 2 * len(names)]
    totals: dict = {}

    def cell(summary: dict) -> str:
        return f"{summary['correct']['finetuned']} ({summary['correct']['finetuned+rag']})"

    def add(key, summary: dict) -> None:
        for system in ("finetuned", "finetuned+rag"):
            totals[key, system] = totals.get((key, system), 0) + summary["correct"][system]

    for r in taught:
        n = r["lawyers"]["questions"]
        cells, changes = [], []
        add("before", r["lawyers_before_teaching"])
        add("run", r["lawyers"])
        for name in names:
            other = r["other_teachings"][name]
            add(name, other["lawyers"])
            pairs = list(zip(r["lawyers_records"], other["lawyers_records"]))
            gained = sum(b["answers"]["finetuned"]["correct"] and not a["answers"]["finetuned"]["correct"] for a, b in pairs)
            lost = sum(a["answers"]["finetuned"]["correct"] and not b["answers"]["finetuned"]["correct"] for a, b in pairs)
            totals[name, "gained"] = totals.get((name, "gained"), 0) + gained
            totals[name, "lost"] = totals.get((name, "lost"), 0) + lost
            cells.append(cell(other["lawyers"]))
            changes.append(f"{gained} / {lost}")
        lines.append(f"| {r['contract'][:40]} | {n} | {cell(r['lawyers_before_teaching'])} | {cell(r['lawyers'])} | "
                     + " | ".join(cells) + " | " + " | ".join(changes) + " |")
    n = sum(r["lawyers"]["questions"] for r in taught)
    total = {key: {"correct": {s: totals[key, s] for s in ("finetuned", "finetuned+rag")}} for key in ("before", "run", *names)}
    lines.append(f"| all | {n} | {cell(total['before'])} | **{cell(total['run'])}** | "
                 + " | ".join(f"**{cell(total[name])}**" for name in names) + " | "
                 + " | ".join(f"{totals[name, 'gained']} / {totals[name, 'lost']}" for name in names) + " |")
    lines.append("")
    lines.append("| teaching | steps (median) | seconds (median) | rows replayed (median) |\n|---|---|---|---|")
    for name in ("run", *names):
        entries = [r["taught_all"] if name == "run" else r["other_teachings"][name]["taught"] for r in taught]
        label = "the run's" if name == "run" else f"`{name}`"
        lines.append(f"| {label} | {statistics.median(e['steps'] for e in entries):g} | "
                     f"{statistics.median(e['seconds'] for e in entries):.0f} | "
                     f"{statistics.median(e['rows']['replayed'] for e in entries):g} |")
    return lines


def report(results: Path, write: bool, rescored: bool = False, baselines: list[str] = ()) -> int:
    from results import machine, publish

    by_variant = load_rows(results)
    earlier = []
    for spec in baselines:  # FILE or FILE:VARIANT (default: the file's default rows)
        path, _, variant = spec.partition(":")
        earlier.append((f"{Path(path).name.split('.')[0]}:{variant or 'default'}", variant_rows(Path(path), variant or "default")))
    if not by_variant:
        print(f"no results under {results}")
        return 1
    if rescored:
        changed = sum(rescore(rows) for rows in by_variant.values())
        print(f"re-scored with today's scorer: {changed} verdict(s) changed")
    first = next(iter(by_variant.values()))[0]
    lines = [f"{SECTION} — {first['date']}", "",
             f"Device: {first['device']} (training and answering; several contracts at once, each process alone "
             f"on its contract); ingest ran here ({machine()}). Command: `benchmarks/device_knowledge.sh` "
             "(`knowledge.py prepare` here, `run` on the GPU machine, `report` here). Embedded Gemma 3 270M, "
             "each contract trained alone, the default recipe unless the variant says (LoRA r=64, 8 epochs since "
             "2026-12-01's second run; r=16, 4 epochs before). Shared settings: " + f"`{json.dumps(GPU)}`.", "",
             "Accuracy, closed-book unless marked RAG. *Lawyers' + hand-written*: cuad-dev/questions.jsonl on "
             "its 12 contracts and the sample contract's 56 hand-written questions. *Held-out*: short-answer "
             "Q&A-test facts, never asked in any training stream (no training question of any generator has the "
             "same answer in that document), learned (if at all) from the reading text. *Tokens/source*: "
             "training tokens per epoch (reading text + Q&A-train) per token of the document, median over "
             "contracts.", "",
             f"Ablation, every variant on the same {len(SUBSET)} contracts ({', '.join(SUBSET)}; 75 questions, "
             "56 of them the sample's):", "", *TABLE_HEAD]
    for variant, rows in by_variant.items():
        subset = [r for r in rows if any(s in r["contract"] for s in SUBSET)]
        if len(subset) == len(SUBSET):
            lines.append(_variant_row(variant, subset))
    lines += ["", "All contracts a variant ran on (13 = the 12 of cuad-dev and the sample):", "", *TABLE_HEAD]
    for variant, rows in by_variant.items():
        if len(rows) > len(SUBSET):
            lines.append(_variant_row(variant, rows))
    lines += paired(by_variant)
    lines += against_runs(by_variant, earlier)
    lines += selection_rules(by_variant)
    for variant, rows in by_variant.items():
        if len(rows) <= len(SUBSET):
            continue
        lines += ["", f"Variant `{variant}`, per contract:", "",
                  "| contract | questions | base | base+RAG | fine-tuned | fine-tuned+RAG "
                  "| held-out: base → fine-tuned | tokens/source | selected step | train min (evaluating) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: r["contract"]):
            law = r["lawyers"]
            held = (_sum([r], "held_out", "base", exclude=RECITATION_FIELDS),
                    _sum([r], "held_out", "finetuned", exclude=RECITATION_FIELDS))
            last = r["checkpoints"][-1]["step"] if r["checkpoints"] else "-"
            evaluating = [c["eval_seconds"] for c in r["checkpoints"] if c.get("eval_seconds") is not None]
            of_which = f" ({sum(evaluating) / 60:.1f})" if evaluating else ""  # metrics before 2026-12-01: none
            lines.append(f"| {r['contract'][:40]} | {law['questions']} | "
                         + " | ".join(f"{law['correct'][s]}/{law['questions']}" for s in SYSTEMS)
                         + f" | {held[0][0]}/{held[0][1]} → {held[1][0]}/{held[1][1]} "
                         f"| {r['training_tokens_per_source_token']:.1f} | {r['selected']['step']} of {last} "
                         f"| {r['train_minutes']:.1f}{of_which} |")
        fields = sorted({f for r in rows for f in r["held_out"]["by_field"]})
        lines += ["", f"Variant `{variant}`, held-out facts per field (base → fine-tuned):", "",
                  "| field | facts asked | base | fine-tuned |", "|---|---|---|---|"]
        for field in fields:
            b, t = _sum(rows, "held_out", "base", {field}), _sum(rows, "held_out", "finetuned", {field})
            lines.append(f"| {field} | {t[1]} | {_pct(b)} | {_pct(t)} |")
        records = [h for r in rows for h in r.get("held_out_records", []) if h["field"] not in RECITATION_FIELDS]
        if records:  # rows since 2026-12-01's sixth session
            lines += ["", f"Variant `{variant}`, held-out facts by question form (a cloze is the reading text with "
                          "a blank: if it alone is answered, the text is remembered but not reached by a question):",
                      "", "| form | questions | base | fine-tuned |", "|---|---|---|---|"]
            for form in ("forward", "cloze", "locator (reverse)"):
                asked = [h for h in records if question_form(h["question"]) == form]
                lines.append(f"| {form} | {len(asked)} | {_pct((sum(h['base'] for h in asked), len(asked)))} "
                             f"| {_pct((sum(h['finetuned'] for h in asked), len(asked)))} |")
        by_generator = [h for h in records if h.get("generator")]
        if by_generator:  # rows since 2026-12-02's eleventh session
            lines += ["", f"Variant `{variant}`, held-out facts by the generator that wrote them (rules: the ~15 "
                          "contract fields; coverage: a fact from every clause):", "",
                      "| generator | questions | base | fine-tuned |", "|---|---|---|---|"]
            for generator in sorted({h["generator"] for h in by_generator}):
                asked = [h for h in by_generator if h["generator"] == generator]
                lines.append(f"| {generator} | {len(asked)} | {_pct((sum(h['base'] for h in asked), len(asked)))} "
                             f"| {_pct((sum(h['finetuned'] for h in asked), len(asked)))} |")
        read = {name: [f for r in rows for f in r.get("read_back", {}).get(name, [])] for name in ("base", "finetuned")}
        if read["finetuned"]:  # rows since 2026-12-01's seventh session
            lines += ["", f"Variant `{variant}`, held-out facts read back: the model gets the fact's reading-text "
                          "record up to its answer and continues; beside it, the fine-tuned model's answers to "
                          "the same facts' questions (read back but not answered: remembered, not reached by a "
                          "question):", "",
                      "| field | facts | read back: base | read back: fine-tuned | questions: fine-tuned "
                      "| from its sentence alone: fine-tuned |", "|---|---|---|---|---|---|"]
            alone = [f for r in rows for f in r.get("read_back_sentence", {}).get("finetuned", [])]  # since the tenth
            read_fields = sorted({f["field"] for f in read["finetuned"]})
            for field in read_fields + ["all"]:
                got = {name: [f["read_back"] for f in facts if field in ("all", f["field"])]
                       for name, facts in read.items()}
                asked = _sum(rows, "held_out", "finetuned", set(read_fields) if field == "all" else {field})
                short = [f["read_back"] for f in alone if field in ("all", f["field"])]
                lines.append(f"| {field} | {len(got['finetuned'])} | {_pct((sum(got['base']), len(got['base'])))} "
                             f"| {_pct((sum(got['finetuned']), len(got['finetuned'])))} | {_pct(asked)} "
                             f"| {_pct((sum(short), len(short))) if short else '–'} |")
        lines += _recited_lines(variant, rows)
        lines += _read_on_lines(variant, rows)
        lines += _answering_lines(variant, rows)
        lines += _both_ways_lines(variant, rows)
        lines += _confidence_lines(variant, rows)
        lines += _teaching_lines(variant, rows)
        lines += _other_teaching_lines(variant, rows)
        lawyer_fields = sorted({f for r in rows for f in r["lawyers"]["by_field"]})
        lines += ["", f"Variant `{variant}`, lawyers' + hand-written questions per field:", "",
                  "| field | " + " | ".join(SYSTEMS) + " |", "|---" * (len(SYSTEMS) + 1) + "|"]
        for field in lawyer_fields:
            lines.append(f"| {field} | " + " | ".join(
                f"{c}/{n}" for c, n in (_sum(rows, "lawyers", s, {field}) for s in SYSTEMS)) + " |")
        shares = [r["lawyers"]["memorization"]["copied_share"]["mean"] for r in rows
                  if r["lawyers"].get("memorization")]
        extraction = [r["lawyers"]["extraction"]["models"].get("finetuned", {}).get("reproduced_share", {}).get("mean")
                      for r in rows if r["lawyers"].get("extraction")]
        extraction = [e for e in extraction if e is not None]
        if shares:
            lines += ["", f"Memorization (`{variant}`): fine-tuned answers copy on average "
                      f"{statistics.mean(shares):.2f} of their characters verbatim (runs of ≥ 20) from the training "
                      f"text; from half a training chunk the fine-tuned model reproduces "
                      f"{statistics.mean(extraction) if extraction else 0:.2f} of the rest verbatim (mean over contracts)."]
    return publish(SECTION, lines, write)


def _recited_lines(variant: str, rows: list[dict]) -> list[str]:
    """How many fine-tuned closed-book answers came in the recited form (build.recite: "clause ⇒
    answer"), and how many of those were right: a recital that leads to a wrong answer shows
    whether recall or extraction failed. Nothing for a variant that never recites."""
    sets = {"held-out facts": [(h["finetuned_answer"], h["finetuned"]) for r in rows
                               for h in r.get("held_out_records", []) if "finetuned_answer" in h],
            "lawyers' + hand-written": [(q["answers"]["finetuned"]["answer"], q["answers"]["finetuned"]["correct"])
                                        for r in rows for q in r["lawyers_records"]]}
    recited = {name: [correct for answer, correct in pairs if RECITAL_MARK.strip() in answer]
               for name, pairs in sets.items()}
    if not any(recited.values()):
        return []
    lines = ["", f"Variant `{variant}`, fine-tuned closed-book answers in the recited form (clause ⇒ answer; "
                 "scored on the answer after ⇒):", "",
             "| questions | answers | recited | right, of the recited | right, of the others |", "|---|---|---|---|---|"]
    for name, pairs in sets.items():
        others = [correct for answer, correct in pairs if RECITAL_MARK.strip() not in answer]
        lines.append(f"| {name} | {len(pairs)} | {len(recited[name])} | "
                     f"{_pct((sum(recited[name]), len(recited[name])))} | {_pct((sum(others), len(others)))} |")
    return lines


def recitals(out: Path, results: Path, variant: str, baselines: list[str], thetas: list[float],
             min_words: list[int] = (0,)) -> int:
    """Where a recite variant gains and loses against plain runs (`--baseline FILE[:VARIANT]`), on the
    contracts both ran: the users' questions by kind (the lawyers' rules fields, the sample's rules
    fields, the sample's clause questions), held-out facts by the generator that wrote them (the
    variant's build of each contract names it; CPU, ~1 min for 12), and the per-question choice
    build.recite_both makes: the recited answer when its recital holds at least θ of the question's
    words (generation.recital_min_overlap) and at least k of them (recital_min_words), else the
    baseline's plain answer — two trainings, so an estimate of what one model answering both ways
    could keep (2026-12-02). A build.recite_both variant is also scored on its own two answers
    (`_own_choice`)."""
    from docfinetune.build.cards import CARD_FIELDS
    from docfinetune.core.generate import recital_quotes

    recited = {r["contract"]: r for r in variant_rows(results, variant)}
    generator = {}  # (contract, held-out question) -> the generator that wrote it
    for row, workspace in _built(out, results, variant):
        for fact in workspace.read_dataset("qa_test"):
            generator[row["contract"], fact["question"]] = fact["generator"]

    def kind(contract: str, field: str) -> str:
        asked = "the sample's" if contract.startswith("quillmere") else "the lawyers'"
        return f"{asked} {'rules fields' if field in CARD_FIELDS else 'clause questions'}"

    def keep(question: str, answer: str, rule: tuple[float, int] | None) -> bool:  # the recited answer, at (θ, k)
        return rule is None or recital_quotes(question, answer, *rule)

    rules = [(theta, k) for k in min_words for theta in thetas]
    if _answered_both_ways(list(recited.values())):
        _own_choice(variant, list(recited.values()), rules)

    for spec in baselines:
        path, _, base_variant = spec.partition(":")
        base = {r["contract"]: r for r in variant_rows(Path(path), base_variant or "default")}
        shared = sorted(set(base) & set(recited))
        print(f"\n{variant} against {Path(path).name}:{base_variant or 'default'}, {len(shared)} contracts")
        kinds: dict[str, list[int]] = {}  # kind -> [baseline right, variant right, asked]
        held_kinds: dict[str, list[int]] = {}
        for contract in shared:
            for was, now in zip(base[contract]["lawyers_records"], recited[contract]["lawyers_records"]):
                tally = kinds.setdefault(kind(contract, now["field"]), [0, 0, 0])
                tally[0] += was["answers"]["finetuned"]["correct"]
                tally[1] += now["answers"]["finetuned"]["correct"]
                tally[2] += 1
            plain = {h["question"]: h["finetuned"] for h in base[contract].get("held_out_records", [])}
            for h in recited[contract]["held_out_records"]:
                if h["question"] not in plain:  # reworded since the baseline ran (86613b6)
                    continue
                tally = held_kinds.setdefault(generator[contract, h["question"]], [0, 0, 0])
                tally[0] += plain[h["question"]]
                tally[1] += h["finetuned"]
                tally[2] += 1
        for name, (was, now, n) in {**kinds, **{f"held-out, {g}": t for g, t in held_kinds.items()}}.items():
            print(f"  {name}: {was} -> {now} of {n}")
        for rule in [None, *rules]:
            users = [0, 0, 0]  # chosen right, asked, the sample's right
            held = [0, 0]
            for contract in shared:
                for was, now in zip(base[contract]["lawyers_records"], recited[contract]["lawyers_records"]):
                    source = now if keep(now["question"], now["answers"]["finetuned"]["answer"], rule) else was
                    users[0] += source["answers"]["finetuned"]["correct"]
                    users[1] += 1
                    users[2] += contract.startswith("quillmere") and source["answers"]["finetuned"]["correct"]
                plain = {h["question"]: h["finetuned"] for h in base[contract].get("held_out_records", [])}
                for h in recited[contract]["held_out_records"]:
                    if h["question"] in plain:
                        held[0] += h["finetuned"] if keep(h["question"], h["finetuned_answer"], rule) \
                            else plain[h["question"]]
                        held[1] += 1
            label = "recited always" if rule is None else f"θ {rule[0]:g}, k {rule[1]}"
            print(f"  {label}: users' {users[0]}/{users[1]} (the sample's {users[2]}), held-out {held[0]}/{held[1]}")
    return 0


def _decodings(rows: list[dict], keys: tuple[str, ...]) -> dict[str, list[tuple[bool, ...]]]:
    """For each question set, each closed-book answer's verdicts under the decodings `keys` that
    eval keeps beside it ("recited", "plain", "read_on"; one that equals the answer is not kept, so
    it scores as the answer), then the answer's own."""
    def verdicts(answer: dict) -> tuple[bool, ...]:
        return (*(answer[k]["correct"] if k in answer else answer["correct"] for k in keys), answer["correct"])

    def held_verdicts(held: dict) -> tuple[bool, ...]:
        return (*(held.get(f"finetuned_{k}", held["finetuned"]) for k in keys), held["finetuned"])

    return {"lawyers' + hand-written": [verdicts(q["answers"]["finetuned"]) for r in rows for q in r["lawyers_records"]],
            "hand-written (sample)": [verdicts(q["answers"]["finetuned"]) for r in rows
                                      if r["contract"].startswith("quillmere") for q in r["lawyers_records"]],
            "held-out facts": [held_verdicts(h) for r in rows for h in r.get("held_out_records", [])]}


def _own_choice(variant: str, rows: list[dict], rules: list[tuple[float, int]],
                confidences: tuple[float, ...] = (0.3, 0.5, 0.7)) -> None:
    """A build.recite_both variant's choice between its own plain and read-on answers (one training)
    at each (θ, k) of generation.recital_min_overlap and recital_min_words; where eval recorded how
    sure the model was of each answer (2026-12-02 on), also the choice by confidence: the read-on
    answer when it recites and the model was surer of its recital than of its plain answer, and the
    (θ, k) rule with the plain answer kept whenever its confidence reaches c. Held-out records
    written before the twelfth run's keep the text of the chosen answer only: there a rule looser
    than the run's (θ below it) cannot be scored and shows "–"."""
    from docfinetune.core.config import GenerationConfig
    from docfinetune.core.generate import RECITAL_MARK, recital_quotes

    def pick(answer: dict, key: str) -> dict:  # eval keeps a decoding only where it is not the answer
        return answer.get(key, answer)

    run_theta = min((r.get("overrides", {}).get("generation", {}).get("recital_min_overlap", 0.5) for r in rows))
    sure = all("confidence" in q["answers"]["finetuned"] for r in rows for q in r["lawyers_records"])
    choices = [(f"θ {theta:g}, k {k}", theta, lambda q, text, c, t=theta, n=k: recital_quotes(q, text, t, n))
               for theta, k in rules]
    generation = GenerationConfig()  # the rule the pipeline chooses by, recital_enough_words included
    theta, k, enough = generation.recital_min_overlap, generation.recital_min_words, generation.recital_enough_words
    choices.append((f"θ {theta:g}, k {k}, or {enough} words (the pipeline's rule)", theta,
                    lambda q, text, c, t=theta, n=k, e=enough: recital_quotes(q, text, t, n, e)))
    if sure:
        choices.append(("surer of the recital", 0.0,
                        lambda q, text, c: RECITAL_MARK in text and c["recited"] > c["plain"]))
        choices += [(f"θ {theta:g}, k {k}, plain kept at confidence ≥ {bar:g}", theta,
                     lambda q, text, c, t=theta, n=k, b=bar: c["plain"] < b and recital_quotes(q, text, t, n))
                    for bar in confidences]
    print(f"\n{variant}, its own plain and read-on answers (one training), {len(rows)} contracts")
    for label, theta, read_it in choices:
        users = [0, 0, 0]  # right, asked, the sample's right
        for r in rows:
            for q in r["lawyers_records"]:
                answer = q["answers"]["finetuned"]
                read = pick(answer, "read_on")
                chosen = read if read_it(q["question"], read["answer"], answer.get("confidence")) \
                    else pick(answer, "plain")
                users[0] += chosen["correct"]
                users[1] += 1
                users[2] += r["contract"].startswith("quillmere") and chosen["correct"]
        held, scorable = [0, 0], True
        for r in rows:
            for h in r.get("held_out_records", []):
                read_text = h.get("finetuned_read_on_answer",
                                  None if "finetuned_read_on" in h else h["finetuned_answer"])
                if read_text is None:  # the run kept the plain answer and not the read-on one's text: a
                    scorable = scorable and theta >= run_theta  # stricter rule keeps it too
                    read_text = ""
                confidence = h.get("finetuned_confidence")
                if confidence is None and sure:
                    scorable = False
                read_right = h.get("finetuned_read_on", h["finetuned"])
                held[0] += read_right if read_it(h["question"], read_text, confidence) \
                    else h.get("finetuned_plain", h["finetuned"])
                held[1] += 1
        held_text = f"{held[0]}/{held[1]}" if scorable else "–"
        print(f"  {label}: users' {users[0]}/{users[1]} (the sample's {users[2]}), held-out {held_text}")
    # The ceiling of any choice between the two: a question counts when either answer is right.
    either = {name: (sum(plain or read for plain, read, _ in verdicts), len(verdicts))
              for name, verdicts in _decodings(rows, ("plain", "read_on")).items()}
    users, sample, held = either["lawyers' + hand-written"], either["hand-written (sample)"], either["held-out facts"]
    print(f"  either answer right (the best any choice can do): users' {users[0]}/{users[1]} "
          f"(the sample's {sample[0]}), held-out {held[0]}/{held[1]}")


def _answered_both_ways(rows: list[dict]) -> bool:
    """Whether the rows come from a build.recite_both training (eval kept plain / read-on answers)."""
    return any("finetuned_plain" in h or "finetuned_read_on" in h for r in rows for h in r.get("held_out_records", []))


def _read_on_lines(variant: str, rows: list[dict]) -> list[str]:
    """With generation.continue_recitals: the same training's closed-book answers scored before and
    after reading on from each recital as plain text (an answer left alone counts the same in both),
    question by question. Nothing for a variant that never read on, nor for build.recite_both
    (`_both_ways_lines` has these with the plain answers beside them)."""
    if _answered_both_ways(rows) or not any(r.get("overrides", {}).get("build", {}).get("recite") for r in rows):
        return []  # (a model without recitals: what eval kept as "recited" there was the answer before a quote or recall)
    if not any("recited" in q["answers"]["finetuned"] for r in rows for q in r["lawyers_records"]) and \
            not any("finetuned_recited" in h for r in rows for h in r.get("held_out_records", [])):
        return []
    lines = ["", f"Variant `{variant}`, closed-book before and after reading on from the recital "
                 "(generation.continue_recitals; one training, two decodings):", "",
             "| questions | asked | before | after | gained / lost |", "|---|---|---|---|---|"]
    for name, pairs in _decodings(rows, ("recited",)).items():
        was, now = sum(b for b, _ in pairs), sum(a for _, a in pairs)
        gained, lost = sum(a and not b for b, a in pairs), sum(b and not a for b, a in pairs)
        lines.append(f"| {name} | {len(pairs)} | {_pct((was, len(pairs)))} | {_pct((now, len(pairs)))} "
                     f"| {gained} / {lost} |")
    return lines


def _answering_lines(variant: str, rows: list[dict]) -> list[str]:
    """With generation.recall_sections or read_quotes: the same training's closed-book answers without and
    with the answers read from a named section's recall / from a quoted clause read on (a question with
    neither scores the same in both), and those answers' own accuracy where one was made."""
    held = [h for r in rows for h in r.get("held_out_records", [])]
    lines = []
    # recall comes first, then a quote read on overrides it: the answer after recall is the one before the quote
    for made, without, read, then, what in (("recall", "unrecalled", "recalled", "unquoted", "read from the recall "
                                             "of the section a question names (generation.recall_sections)"),
                                            ("quote", "unquoted", "quoted", None, "read on from the clause a question "
                                             "quotes (generation.read_quotes)")):
        if not any(f"finetuned_{made}" in h or f"finetuned_{without}" in h for h in held):
            continue
        lines += ["", f"Variant `{variant}`, closed-book without and with the answers {what}; one training, two "
                      "decodings:", "",
                  f"| questions | asked | with a {made} | without | with | gained / lost | the {made}'s answers |",
                  "|---|---|---|---|---|---|---|"]
        sets = {"lawyers' + hand-written": [q["answers"]["finetuned"] for r in rows for q in r["lawyers_records"]],
                "hand-written (sample)": [q["answers"]["finetuned"] for r in rows
                                          if r["contract"].startswith("quillmere") for q in r["lawyers_records"]],
                "held-out facts": [{"correct": h["finetuned"], made: h.get(f"finetuned_{made}"),
                                    **{k: {"correct": h[f"finetuned_{k}"]} for k in (without, read, then)
                                       if f"finetuned_{k}" in h}} for h in held]}
        if made == "quote" and any(r["overrides"].get("generation", {}).get("read_definitions") for r in rows):
            # generation.read_definitions reads on from a defined term too: its questions apart, and the
            # held-out facts as the default decodes them (a definition's question answered as asked)
            defines = [(found := quoted_clause(h["question"], definitions=True)) is not None
                       and found[2] == "definition" for h in held]
            sets["held-out: a defined term's meaning asked"] = [
                a for a, meant in zip(sets["held-out facts"], defines) if meant]
            sets["held-out facts, definitions not read on"] = [
                {**a, "correct": a.get(without, a)["correct"], made: None} if meant else a
                for a, meant in zip(sets["held-out facts"], defines)]
        for name, answers in sets.items():
            pairs = [(a.get(without, a)["correct"], a.get(then, a)["correct"]) for a in answers]
            was, now = sum(b for b, _ in pairs), sum(a for _, a in pairs)
            gained, lost = sum(a and not b for b, a in pairs), sum(b and not a for b, a in pairs)
            own = [a.get(read, a)["correct"] for a in answers if a.get(made)]
            lines.append(f"| {name} | {len(pairs)} | {len(own)} | {_pct((was, len(pairs)))} | "
                         f"{_pct((now, len(pairs)))} | {gained} / {lost} | {_pct((sum(own), len(own)))} |")
    return lines


def _both_ways_lines(variant: str, rows: list[dict]) -> list[str]:
    """build.recite_both: each closed-book question answered plainly and for a recital (before and
    after reading on), and the answer chosen by generation.recital_min_overlap — four scorings of one
    training."""
    if not _answered_both_ways(rows):
        return []
    lines = ["", f"Variant `{variant}`, closed-book answered plainly and for a recital (before and after reading on), "
                 "and the answer chosen between them (build.recite_both; one training, four scorings):", "",
             "| questions | asked | plain | recited | recited, read on | chosen |", "|---|---|---|---|---|---|"]
    for name, verdict_rows in _decodings(rows, ("plain", "recited", "read_on")).items():
        cells = [_pct((sum(v[k] for v in verdict_rows), len(verdict_rows))) for k in range(4)]
        lines.append(f"| {name} | {len(verdict_rows)} | " + " | ".join(cells) + " |")
    return lines


def _confidence_lines(variant: str, rows: list[dict]) -> list[str]:
    """build.recite_both, where eval recorded how sure the model was of each answer: the plain and
    the read-on answers' accuracy by the plain answer's confidence — whether a sure plain answer is
    a right one, and an unsure one is where reading on helps."""
    bins = (0.0, 0.3, 0.5, 0.7, 0.9, 1.01)
    sets: dict[str, list[tuple[float, bool, bool]]] = {"lawyers' + hand-written": [], "held-out facts": []}
    for r in rows:
        for q in r["lawyers_records"]:
            answer = q["answers"]["finetuned"]
            if "confidence" in answer:
                sets["lawyers' + hand-written"].append((answer["confidence"]["plain"],
                                                        answer.get("plain", answer)["correct"],
                                                        answer.get("read_on", answer)["correct"]))
        for h in r.get("held_out_records", []):
            if "finetuned_confidence" in h:
                sets["held-out facts"].append((h["finetuned_confidence"]["plain"], h.get("finetuned_plain", h["finetuned"]),
                                               h.get("finetuned_read_on", h["finetuned"])))
    if not any(sets.values()):
        return []
    lines = ["", f"Variant `{variant}`, closed-book by how sure the model was of its plain answer (the geometric mean "
                 "of its tokens' probabilities): the plain and the read-on answers' accuracy in each band:", "",
             "| questions | plain answer's confidence | asked | plain | read on |", "|---|---|---|---|---|"]
    for name, scored in sets.items():
        for low, high in zip(bins, bins[1:]):
            band = [(p, ro) for c, p, ro in scored if low <= c < high]
            if band:
                lines.append(f"| {name} | {low:g}–{min(high, 1):g} | {len(band)} | {_pct((sum(p for p, _ in band), len(band)))} "
                             f"| {_pct((sum(ro for _, ro in band), len(band)))} |")
    return lines


def keep(results: Path, out: Path) -> int:
    """A run's rows (results/<variant>/<contract>.json, as `run` writes them) stored as one gzipped
    {variant: rows} file for benchmarks/results/ — byte-identical for the same rows (no timestamp)."""
    rows = load_rows(results)
    out.write_bytes(gzip.compress(json.dumps(rows).encode(), 9, mtime=0))
    print(f"{out}: " + ", ".join(f"{variant} {len(r)} contracts" for variant, r in rows.items()))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    sp = sub.add_parser("splits", help="how build splits each prepared contract (CPU)")
    sp.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    tg = sub.add_parser("taught", help="whether each question's answer was taught, held out or never generated (CPU)")
    tg.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    tg.add_argument("--results", type=Path, required=True)
    tg.add_argument("--variant", default="default")
    tg.add_argument("--before-teaching", action="store_true",
                    help="the selected checkpoint's answers, asked before the held-out facts were taught")
    tg.add_argument("--teaching", default="", choices=["", *TEACHINGS],
                    help="the answers after this other teaching (run --also-teach)")
    ts = sub.add_parser("teaching-share", help="one teaching pass against one epoch, in examples and characters (CPU)")
    ts.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    ts.add_argument("--only", action="append", default=[], help="contracts whose folder name contains this")
    ms = sub.add_parser("misses", help="where the wrong answers to held-out facts come from (CPU)")
    ms.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    ms.add_argument("--results", type=Path, required=True)
    ms.add_argument("--variant", default="default")
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    r.add_argument("--base-model", required=True)
    r.add_argument("--results", type=Path, required=True, help="folder of results/<variant>/<contract>.json")
    r.add_argument("--variants", default="default",
                   help="comma-separated VARIANTS, each optionally @contract+contract (substrings) to limit it")
    r.add_argument("--only", action="append", default=[], help="contracts whose folder name contains this")
    r.add_argument("--jobs", type=int, default=1, help="worker processes")
    r.add_argument("--gpus", type=int, default=1, help="GPUs the workers are spread over")
    r.add_argument("--budget-minutes", type=float, default=1e9, help="start no task after this long")
    r.add_argument("--no-curves", action="store_true",
                   help="answer the questions with the selected checkpoint only, not with every one (faster)")
    r.add_argument("--also-teach", default="", metavar="NAME,...",
                   help=f"teach the selected checkpoint these other ways too and ask it again ({', '.join(TEACHINGS)})")
    rc = sub.add_parser("recitals", help="a recite variant against plain runs: by kind of question, by "
                                          "generator, and build.recite_both's choice at each θ (CPU)")
    rc.add_argument("--out", type=Path, default=ROOT / ".bench" / "knowledge")
    rc.add_argument("--results", type=Path, required=True)
    rc.add_argument("--variant", default="recite_read")
    rc.add_argument("--baseline", action="append", required=True, metavar="FILE[:VARIANT]")
    rc.add_argument("--theta", default="0.3,0.4,0.5,0.6,0.7", help="overlap thresholds, comma-separated")
    rc.add_argument("--min-words", default="0,3", help="recital_min_words values, comma-separated")
    kp = sub.add_parser("keep", help="a run's rows as one gzipped file for benchmarks/results/")
    kp.add_argument("--results", type=Path, required=True, help="the folder `run` wrote (results/<variant>/*.json)")
    kp.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("report")
    t.add_argument("--results", type=Path, required=True)
    t.add_argument("--write-results", action="store_true")
    t.add_argument("--rescore", action="store_true",
                   help="score the stored answers again with today's scorer (after a scorer fix)")
    t.add_argument("--baseline", action="append", default=[], metavar="FILE[:VARIANT]",
                   help="earlier results to compare each variant with, question by question (default: their "
                        "default rows); repeat for several runs")
    args = parser.parse_args()
    if args.step == "prepare":
        return prepare(args.out)
    if args.step == "splits":
        return splits(args.out)
    if args.step == "taught":
        return taught(args.out, args.results, args.variant, args.before_teaching, args.teaching)
    if args.step == "teaching-share":
        return teaching_share(args.out, args.only)
    if args.step == "misses":
        return misses(args.out, args.results, args.variant)
    if args.step == "recitals":
        return recitals(args.out, args.results, args.variant, args.baseline,
                        [float(t) for t in args.theta.split(",")], [int(k) for k in args.min_words.split(",")])
    if args.step == "keep":
        return keep(args.results, args.out)
    if args.step == "run":
        return run(args.out, args.base_model, args.results, args.variants.split(","), args.only, args.jobs,
                   args.gpus, args.budget_minutes, curves=not args.no_curves,
                   also_teach=tuple(n for n in args.also_teach.split(",") if n))
    return report(args.results, args.write_results, args.rescore, args.baseline)


if __name__ == "__main__":
    sys.exit(main())
