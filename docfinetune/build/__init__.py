"""`docfinetune build`: ingested chunks -> the data that teaches a model the documents, in
datasets/ (its files: core/workspace.py).

Streams: the reading text (each chunk, and `augment_variants` rule-made restatements of it), Q&A
from the generators of `build.generators` (core/plugins.py), and, with an instruct model or
endpoint set, LLM rewrites (reading text) and paraphrases of the training facts. Q&A is curated,
then split by fact and by answer across every stream (split.py). Fact cards (cards.py) state
the document-level training facts in a line each, for retrieval; multiple-choice copies of
training facts (choices.py, build.choice_share) teach which value answers which question.
Prompt templates are applied at training time, not stored. The folder is built aside and
swapped in whole; pipeline.py builds when `datasets_stale()` says so, before training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from docfinetune.build.augment import augmented_records
from docfinetune.build.cards import fact_cards
from docfinetune.build.choices import choice_rows
from docfinetune.build.cpt import cpt_records
from docfinetune.build.curate import curate
from docfinetune.build.generators import make_generator
from docfinetune.build.raft import counterfactual_rows, open_book_rows
from docfinetune.build.recite import add_quotes, add_recitals
from docfinetune.build.split import SPLITS, split_by_fact
from docfinetune.build.user_qa import read_qa_file
from docfinetune.core.config import PipelineConfig
from docfinetune.core.records import Chunk, QAPair
from docfinetune.core.workspace import STATS_FILE, Workspace, file_sha256, swap_in, write_json, write_jsonl

QA_FIELDS = ("question", "answer", "fact_id", "source_chunk_ids", "doc_id", "generator", "field",
             "context_chunk_ids", "context_swap")
ProgressFn = Callable[[str, int, int], None]


def inputs_fingerprint(workspace: Workspace, config: PipelineConfig, qa_files: list[Path]) -> str:
    """What decides the datasets: each document's bytes and ingest settings, the build,
    retrieval and model settings, and the user's Q&A files."""
    sources = {d: workspace.read_source(d) or {} for d in workspace.doc_ids()}
    parts = {
        "documents": [(d, source.get("sha256"), source.get("settings")) for d, source in sources.items()],
        "build": dataclasses.asdict(config.build),
        "retrieval": dataclasses.asdict(config.retrieval),  # the open-book rows' contexts
        "tokenizer": config.model.base_model,
        "qa_files": [(str(p), file_sha256(p)) for p in qa_files if p.is_file()],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def datasets_stale(workspace: Workspace, config: PipelineConfig, qa_files: list[Path] = ()) -> str | None:
    """Why the datasets must be (re)built, or None when they are up to date."""
    stats = workspace.read_stats()
    if stats is None:
        return "no datasets yet"
    if stats.get("inputs_fingerprint") != inputs_fingerprint(workspace, config, list(qa_files)):
        return "the documents, settings or Q&A files changed"
    return None


def count_tokens(tokenizer, texts: list[str]) -> int:
    total = 0
    for start in range(0, len(texts), 512):
        batch = tokenizer(texts[start:start + 512], add_special_tokens=False)["input_ids"]
        total += sum(len(ids) for ids in batch)
    return total


def build(workspace: Workspace, config: PipelineConfig, qa_files: list[Path] = (),
          on_progress: ProgressFn | None = None) -> dict:
    """Write datasets/ for the ingested documents; returns the stats written to stats.json."""
    from docfinetune.core.models import load_tokenizer

    started = time.perf_counter()
    qa_files = [Path(p) for p in qa_files]
    user_pairs = [pair for path in qa_files for pair in read_qa_file(path)]  # bad rows fail first
    with workspace.lock("build"):  # a snapshot of committed documents: no ingest swaps meanwhile
        workspace.recover("build")
        documents, chunks = workspace.read_corpus()
        fingerprint = inputs_fingerprint(workspace, config, qa_files)
    tokenizer = load_tokenizer(config.model)

    build_config = config.build
    originals = cpt_records(documents, chunks, build_config.cpt_context)
    restated = augmented_records(documents, chunks, build_config.augment_variants, build_config.split_seed)
    cpt = originals + restated
    kept, dropped, splits, generator_stats = split_qa(config, documents, chunks, workspace, user_pairs,
                                                      on_progress)
    llm_stats: dict = {}
    rewritten: list[dict] = []
    if build_config.llm.model or build_config.llm.url:
        rewritten, paraphrased = llm_streams(config, workspace, documents, chunks, splits["train"], llm_stats,
                                             on_progress)
        cpt += rewritten
        splits["train"] += paraphrased  # train facts only: held-out facts stay unasked
    # Cards of held-out facts are searched only when answering (ask, eval), never in training.
    cards, held_out_cards = fact_cards(kept, chunks, splits["test"]) if build_config.fact_cards else ([], [])
    held_out_cards = held_out_cards if build_config.held_out_cards else []
    # Open-book copies of training rows (RAFT): the retriever's chunks (and cards) before the question.
    # Restatements train closed-book recall only: the same open-book rows with them as without.
    open_book = open_book_rows([p for p in splits["train"] if p.meta.get("direction") != "restated"], documents,
                               chunks + cards, build_config.open_book_share,
                               build_config.open_book_chunks, build_config.open_book_gold_probability,
                               build_config.split_seed, config.retrieval)
    # ... and counterfactual twins of some: the answer changed in the context and in the answer.
    twins = counterfactual_rows(open_book, splits["train"], chunks + cards,
                                build_config.open_book_counterfactual_share, build_config.split_seed)
    splits["train"] += open_book + twins
    quotes = (add_quotes(open_book + twins, chunks + cards, splits["val"] + splits["test"],
                         build_config.recital_max_chars) if build_config.open_book_quotes else 0)
    recitals = (add_recitals(splits["train"], chunks, splits["val"] + splits["test"], build_config.recital_max_chars,
                             build_config.recital_from, originals, tuple(build_config.recite_generators),
                             keep_plain=build_config.recite_both,
                             copy_all=build_config.recite_both_rows == "all")
                if build_config.recite else 0)
    # Last, so a multiple-choice row copies a final plain closed-book row (no recital, no context).
    choices = choice_rows(splits["train"], build_config.choice_share, build_config.choice_options,
                          build_config.split_seed, build_config.choice_phrasings)
    splits["train"] += choices

    source_tokens = count_tokens(tokenizer, [c.text for c in chunks])
    reading_tokens = {"original": count_tokens(tokenizer, [r["text"] for r in originals]),
                      "restated": count_tokens(tokenizer, [r["text"] for r in restated]),
                      "llm_rewrites": count_tokens(tokenizer, [r["text"] for r in rewritten])}
    qa_tokens = {name: count_tokens(tokenizer, [f"{p.question}\n{p.recital}{p.answer}" for p in pairs])
                 for name, pairs in splits.items()}
    # An open-book row also reads its chunks (~3 x 130 tokens): they count as training text.
    by_id = {c.chunk_id: c.text for c in chunks + cards}
    context_tokens = count_tokens(tokenizer, [by_id[cid] for p in splits["train"] for cid in p.context_chunk_ids
                                              if cid in by_id])
    qa_tokens["train"] += context_tokens
    stats = {
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs_fingerprint": fingerprint,
        "pipeline": config.name,
        "tokenizer": config.model.base_model,
        "documents": len(documents),
        "chunks": len(chunks),
        "source_tokens": source_tokens,
        "cpt": {"records": len(cpt), "chars": sum(len(r["text"]) for r in cpt),
                "tokens": sum(reading_tokens.values()),
                "by_stream": {"original": {"records": len(originals), "tokens": reading_tokens["original"]},
                              "restated": {"records": len(restated), "tokens": reading_tokens["restated"],
                                           "variants": build_config.augment_variants},
                              "llm_rewrites": {"records": len(rewritten), "tokens": reading_tokens["llm_rewrites"]}}},
        # Tokens of training text (one epoch: reading text + Q&A-train) per token of the documents.
        "training_tokens_per_source_token": round(
            (sum(reading_tokens.values()) + qa_tokens["train"]) / max(source_tokens, 1), 2),
        "qa": {
            "generators": list(config.build.generators),
            "generated": sum(s["generated"] for s in generator_stats.values()),
            "user_rows": len(user_pairs),
            "kept": len(kept),
            "open_book_rows": sum(bool(p.context_chunk_ids) for p in splits["train"]),
            "counterfactual_rows": sum(bool(p.context_swap) for p in splits["train"]),
            "recitals": recitals,
            "open_book_quotes": quotes,
            "choice_rows": len(choices),
            "fact_cards": len(cards),
            "held_out_fact_cards": len(held_out_cards),
            "dropped": dict(sorted(dropped.items())),
            "generator_stats": generator_stats,
            "llm_streams": llm_stats,
        },
        "splits": {
            name: {
                "facts": len({p.fact_id for p in pairs}),
                "pairs": len(pairs),
                "tokens": qa_tokens[name],
                "facts_by_field": _facts_by_field(pairs),
                "pairs_by_generator": dict(Counter(p.generator for p in pairs)),
            }
            for name, pairs in splits.items()
        },
        "facts_by_field": _facts_by_field(kept),
        "per_document": {
            d.doc_id: {"title": d.title, "chunks": sum(c.doc_id == d.doc_id for c in chunks),
                       "facts": len({p.fact_id for p in kept if p.doc_id == d.doc_id}),
                       "pairs": sum(p.doc_id == d.doc_id for p in kept)}
            for d in documents
        },
        "qa_files": [str(p) for p in qa_files],
        "settings": dataclasses.asdict(config.build),
    }
    stats["seconds"] = round(time.perf_counter() - started, 2)
    _write(workspace, cpt, splits, {"cards": cards, "cards_held_out": held_out_cards}, stats)
    return stats


def split_qa(config: PipelineConfig, documents, chunks, workspace: Workspace | None = None,
             user_pairs: list[QAPair] = (), on_progress: ProgressFn | None = None):
    """Every configured generator's Q&A with the user's rows, curated and split by fact:
    (kept, dropped counts, splits, per-generator stats). The build's Q&A before the LLM streams
    and open-book rows; benchmarks call it to see the split `build` makes."""
    build_config = config.build
    generated: list[QAPair] = []
    generator_stats: dict[str, dict] = {}
    for name in build_config.generators:
        generator = make_generator(name, config, workspace, on_progress)
        rows = list(generator.generate(documents, chunks))
        generator_stats[name] = {"generated": len(rows), **getattr(generator, "stats", {})}
        generated.extend(rows)
    kept, dropped = curate(generated + list(user_pairs), chunks, build_config.curate_max_question_chars,
                           build_config.curate_max_answer_chars, build_config.curate_duplicate_similarity)
    splits = split_by_fact(kept, build_config.split_val_fraction, build_config.split_test_fraction,
                           build_config.split_seed)
    # Restatements (coverage.restatements_per_fact) are study rows: a held-out fact is asked as without them.
    restated = {id(p) for name in ("val", "test") for p in splits[name] if p.meta.get("direction") == "restated"}
    if restated:
        splits = {name: [p for p in pairs if id(p) not in restated] for name, pairs in splits.items()}
        kept = [p for p in kept if id(p) not in restated]
    asked = {id(p) for pairs in splits.values() for p in pairs}
    if len(asked) < len(kept):  # held-out locator questions whose answer is also trained (build.split)
        dropped = {**dropped, "held_out_locator_trained": len(kept) - len(asked)}
        kept = [p for p in kept if id(p) in asked]
    return kept, dropped, splits, generator_stats


def llm_streams(config: PipelineConfig, workspace: Workspace, documents, chunks, train_pairs: list[QAPair],
                stats: dict, on_progress: ProgressFn | None) -> tuple[list[dict], list[QAPair]]:
    """The instruct model's two streams: entity-centred rewrites of each section (reading text)
    and new phrasings of each training fact's question. Replies are cached under cache/llm/."""
    from docfinetune.build.generators.llm.client import ReplyClient
    from docfinetune.build.generators.llm.streams import paraphrase_questions, rewrite_sections

    build_config = config.build
    client = ReplyClient(build_config.llm, workspace.cache_dir("llm"), allow_download=config.model.allow_download,
                         on_progress=(lambda done, total: on_progress("llm streams", done, total)) if on_progress
                         else None)
    rewritten, paraphrased = [], []
    if build_config.llm_rewrites_per_chunk:
        stats["rewrites"] = {}
        rewritten = rewrite_sections(documents, chunks, client, rewrites=build_config.llm_rewrites_per_chunk,
                                     with_context=build_config.cpt_context, stats=stats["rewrites"])
    if build_config.llm_paraphrases_per_fact:
        stats["paraphrases"] = {}
        paraphrased = paraphrase_questions(train_pairs, documents, client,
                                           per_fact=build_config.llm_paraphrases_per_fact, chunks=chunks,
                                           stats=stats["paraphrases"])
    return rewritten, paraphrased


def _facts_by_field(pairs: list[QAPair]) -> dict[str, int]:
    facts: dict[str, set[str]] = {}
    for p in pairs:
        facts.setdefault(p.field or "other", set()).add(p.fact_id)
    return {field: len(ids) for field, ids in sorted(facts.items())}


def _write(workspace: Workspace, cpt: list[dict], splits: dict[str, list[QAPair]], cards: dict[str, list[Chunk]],
           stats: dict) -> None:
    with workspace.lock("build"):  # staged and swapped under the lock: recovery never sees it live
        staged = workspace.staging_dir("datasets", parent=workspace.root)
        try:
            write_jsonl(staged / workspace.dataset_file("cpt").name, cpt)
            for name, written in cards.items():
                write_jsonl(staged / workspace.dataset_file(name).name, (dataclasses.asdict(c) for c in written))
            for name in SPLITS:  # "recital" / "prompt" on every row of a split that has one (one schema for `datasets`)
                fields = QA_FIELDS + tuple(f for f in ("recital", "prompt") if any(getattr(p, f) for p in splits[name]))
                write_jsonl(staged / workspace.dataset_file(f"qa_{name}").name,
                            ({k: getattr(p, k) for k in fields} for p in splits[name]))
            write_json(staged / STATS_FILE, stats)  # last: marks the folder complete
            swap_in(staged, workspace.datasets_dir)
        except BaseException:
            workspace.discard(staged)
            raise

