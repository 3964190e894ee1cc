"""`docfinetune eval`: did fine-tuning beat retrieval?

Four systems answer the same questions, all through `generate.answer_questions` with one load
of the base model (the LoRA adapter is attached once, switched off for the base systems, then
merged into the weights for the fine-tuned ones; a full fine-tune is loaded beside the base
weights):

    base            the base model, closed-book
    base+rag        the base model with the BM25 top-k chunks in the prompt
    finetuned       the selected (or a chosen) checkpoint, closed-book
    finetuned+rag   the checkpoint with the same retrieval

Every answer is scored by `evaluate.score.answer_matches`; each system's accuracy comes with a
Wilson interval, and pairs of systems with an exact McNemar test. Then the audits: how much of
each answer is copied verbatim from the training text, whether the model reproduces training
records from their first half (extraction test), and whether each answer is supported by some
chunk (grounded) or not (hallucinated). Everything goes to reports/<UTC time>.{json,md,png}.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from docfinetune.core.config import EvalConfig, GenerationConfig, PipelineConfig, load_pipeline
from docfinetune.core.errors import ConfigError, WorkspaceError
from docfinetune.core.generate import answer_confidence, closed_book_answers, format_prompt, generate
from docfinetune.core.runs import (
    Checkpoint,
    Run,
    find_run,
    is_full_checkpoint,
    load_answerer,
    load_weights,
    merge_adapter,
    resolve_checkpoint,
    runs_dir,
)
from docfinetune.core.workspace import Workspace, read_jsonl
from docfinetune.evaluate.questions import TEST_SOURCE, Question, QuestionSet, asks_test_rows, load_questions

SYSTEMS = ("base", "base+rag", "finetuned", "finetuned+rag")
COMPARISONS = (("finetuned", "base"), ("base+rag", "base"), ("finetuned", "base+rag"),
               ("finetuned+rag", "base+rag"), ("finetuned+rag", "finetuned"))

ProgressFn = Callable[[str, int, int], None]


def check_systems(systems: Iterable[str] | str) -> tuple[str, ...]:
    """The asked systems ("base,base+rag" or a list) in the canonical order; ConfigError on an
    unknown name or none."""
    if isinstance(systems, str):
        systems = systems.split(",")
    asked = [s.strip() for s in systems if s.strip()]
    unknown = [s for s in asked if s not in SYSTEMS]
    if unknown:
        raise ConfigError(f"--systems: {', '.join(map(repr, unknown))} unknown (choose from {', '.join(SYSTEMS)})")
    if not asked:
        raise ConfigError(f"--systems: name at least one of {', '.join(SYSTEMS)}")
    return tuple(s for s in SYSTEMS if s in asked)


def _pipeline(workspace: Workspace, config: PipelineConfig | None, fine_tuned: bool, run_id: str | None,
              step: int | None, held_out: bool = False) -> tuple[PipelineConfig, EvalConfig, Run | None, Checkpoint | None]:
    """(model/prompt settings, eval settings, run, checkpoint). A run's own config.yaml decides
    the model and prompt (its adapter was trained on them); `config.eval` decides the eval
    settings. Without a usable run only the base systems can be evaluated. `held_out`: the
    Q&A-test rows are asked, so the selected checkpoint answers even where training then taught
    them (train.teach_held_out_passes)."""
    try:
        run = find_run(workspace, run_id)
        if run is None:
            raise WorkspaceError(f"{runs_dir(workspace)}: no run trained yet; run `docfinetune train` first, "
                                 "or evaluate only the base model (--systems base,base+rag)")
        return run.config, (config or run.config).eval, run, resolve_checkpoint(run, step, held_out=held_out)
    except WorkspaceError:
        if fine_tuned or run_id is not None or step is not None:
            raise
    pipeline = config or load_pipeline("default")
    return pipeline, pipeline.eval, None, None


def _answer(model, tokenizer, prompts: list[str], generation: GenerationConfig,
            progress: Callable[[int], None]) -> list[str]:
    """Answers to complete prompts (closed-book or RAG), reporting progress after each batch."""
    from docfinetune.core.generate import generate

    return generate(model, tokenizer, prompts, max_new_tokens=generation.max_new_tokens,
                    batch_size=generation.batch_size, on_progress=progress)


def _training_texts(workspace: Workspace, cpt: list[dict]) -> list[str] | None:
    """CPT records (`cpt`, read by the caller) and Q&A-train answers: what the model was trained
    to say; None without datasets."""
    if not workspace.dataset_file("cpt").is_file():
        return None
    texts = [row["text"] for row in cpt]
    train = workspace.dataset_file("qa_train")
    if train.is_file():
        texts += [row["answer"] for row in read_jsonl(train)]
    return texts


def groundedness(questions: list[str], answers: list[str], index, k: int) -> dict:
    """How many non-empty answers some chunk (of the `k` BM25 finds for question + answer) supports."""
    from docfinetune.core.score import is_supported

    grounded = answered = 0
    for question, answer in zip(questions, answers):
        if not answer.strip():
            continue
        answered += 1
        hits = index.search(f"{question} {answer}", k)
        grounded += any(is_supported(answer, chunk.text) for chunk, _ in hits)
    return {
        "answers": answered, "grounded": grounded, "hallucinated": answered - grounded,
        "grounded_share": grounded / answered if answered else None,
        "hallucinated_share": (answered - grounded) / answered if answered else None,
    }


def evaluate(
    workspace: Workspace,
    *,
    config: PipelineConfig | None = None,
    questions_file: Path | None = None,
    include_test: bool | None = None,
    run_id: str | None = None,
    checkpoint: int | None = None,
    systems: Iterable[str] | str = SYSTEMS,
    on_progress: ProgressFn | None = None,
) -> dict:
    """Answer the questions with each system, score, audit; write reports/<time>.{json,md,png}
    and return the report.

    `config` gives the eval settings (its `eval` section) and, when there is no trained run,
    the model; a run's own config.yaml decides model and prompt. Questions: the held-out
    Q&A-test rows, or `questions_file`'s rows (both with `include_test=True`).
    """
    from docfinetune.core.generate import rag_prompt
    from docfinetune.core.score import answer_matches, recalled_answer
    from docfinetune.evaluate import memorization, stats
    from docfinetune.evaluate.report import write_report

    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    systems = check_systems(systems)
    fine_tuned = any(s.startswith("finetuned") for s in systems)
    pipeline, eval_config, run, chosen = _pipeline(workspace, config, fine_tuned, run_id, checkpoint,
                                                   asks_test_rows(questions_file, include_test))
    asked: QuestionSet = load_questions(workspace, eval_config, questions_file, include_test)
    questions: list[Question] = asked.questions
    texts = [q.question for q in questions]
    progress = on_progress or (lambda stage, done, total: None)

    # Retrieval, before the model: a workspace without chunks fails here, not after loading.
    index = None
    if any(s.endswith("+rag") for s in systems) or workspace.doc_ids():
        from docfinetune.core.retrieve import BM25Index

        index = BM25Index.from_workspace(workspace, pipeline.retrieval)
    rag_prompts: list[str] = []
    titles = workspace.titles()
    if any(s.endswith("+rag") for s in systems):
        rag_prompts = [rag_prompt(q, [c for c, _ in index.search(q, eval_config.rag_k)], titles, pipeline.generation)
                       for q in texts]

    progress("loading model", 0, 1)
    model, tokenizer = load_answerer(pipeline, chosen.path if chosen and fine_tuned else None)
    # A full fine-tune (train.method full) has no adapter to switch off: the base systems get
    # the base weights, loaded beside it.
    base_weights = None
    if fine_tuned and chosen and is_full_checkpoint(chosen.path) and any(s.startswith("base") for s in systems):
        base_weights = load_weights(pipeline, None)
    progress("loading model", 1, 1)

    @contextlib.contextmanager
    def model_for(system: str):
        """The model that answers for `system`: the base systems run with the adapter switched off."""
        if system.startswith("base") and base_weights is not None:
            yield base_weights
        elif system.startswith("base") and hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield model
        else:
            yield model

    generation = pipeline.generation
    # The extraction test's prompts: the first part of sampled training records.
    cases: list[dict] = []
    cpt_path = workspace.dataset_file("cpt")
    cpt = list(read_jsonl(cpt_path)) if cpt_path.is_file() else []  # read once: extraction, read-back, audit
    if eval_config.extraction_chunks and cpt:
        records = memorization.sample_records(cpt, eval_config.extraction_chunks, eval_config.seed)
        cases = memorization.extraction_cases(records, tokenizer, eval_config.extraction_prefix_share,
                                              eval_config.extraction_max_new_tokens)
    # Read-back: each held-out fact's reading-text record up to its answer (facts, not questions:
    # all of them, whatever `max_questions` samples).
    read_back: list[dict] = []
    test_path = workspace.dataset_file("qa_test")
    if eval_config.read_back and asked.sources.get(TEST_SOURCE) and cpt and test_path.is_file():
        read_back = memorization.read_back_cases(list(read_jsonl(test_path)), cpt, tokenizer)
    from_sentence = memorization.sentence_cases(read_back, pipeline.build.recital_max_chars)
    answers: dict[str, list[str]] = {}
    recited: dict[str, list[str]] = {}  # closed-book answers before continue_recitals read on from them
    plain: dict[str, list[str]] = {}  # build.recite_both: the plain closed-book answers ...
    read_on: dict[str, list[str]] = {}  # ... and the recited ones read on, the answer chosen from the two
    confidence: dict[str, dict[str, list[float]]] = {}  # ... and how sure the model was of the plain and recited
    unrecalled: dict[str, list[str]] = {}  # generation.recall_sections: the answers without a section's recall ...
    recalled: dict[str, list[str]] = {}  # ... the answers read from it ...
    recall: dict[str, list[str]] = {}  # ... and the recalled text ("" for a question naming no section)
    unquoted: dict[str, list[str]] = {}  # generation.read_quotes: the answers without reading on from a quote ...
    quoted: dict[str, list[str]] = {}  # ... the ones read on from it ("" where none was read) ...
    quote: dict[str, list[str]] = {}  # ... and the quote's words read on from ("" for a question quoting no clause)
    continued: dict[str, list[str]] = {}
    read: dict[str, list[str]] = {}
    read_sentence: dict[str, list[str]] = {}
    # The base model's work first, then the adapter merged for the fine-tuned systems (1.7x
    # faster answers on CPU, `merge_adapter`); merged weights are never switched back.
    for name in ("base", "finetuned"):
        group = [s for s in systems if s.split("+")[0] == name]
        if not group:
            continue
        if name == "finetuned":
            merge_adapter(model, pipeline)  # a full fine-tune has no adapter: nothing to merge
        with model_for(name) as answering:
            for system in group:
                stage = f"answering ({system})"
                progress(stage, 0, len(texts))

                def step(done: int, stage: str = stage) -> None:
                    progress(stage, done, len(texts))

                if system.endswith("+rag"):
                    answers[system] = _answer(answering, tokenizer, rag_prompts, generation, step)
                    continue
                passes = [0]  # closed-book may ask more than once (for a recital, reading on): a stage each

                def ask(prompts: list[str], tokens: int, stage: str = stage,
                        stop_at_line_end: bool = True) -> list[str]:
                    passes[0] += 1
                    named = stage if passes[0] == 1 else f"{stage}, pass {passes[0]}"
                    progress(named, 0, len(prompts))
                    return generate(answering, tokenizer, prompts, max_new_tokens=tokens,
                                    batch_size=generation.batch_size, stop_at_line_end=stop_at_line_end,
                                    on_progress=lambda done: progress(named, done, len(prompts)))

                got = closed_book_answers(ask, texts, generation, pipeline.build.recite_both and name == "finetuned",
                                          titles=list(titles.values()))
                answers[system] = got["answer"]
                if pipeline.build.recite:  # else "recited" is the answer as asked, before any quote or recall
                    recited[system] = got["recited"]
                if "recall" in got:
                    unrecalled[system], recalled[system] = got["unrecalled"], got["recalled"]
                    recall[system] = got["recall"]
                if "quoted" in got:
                    unquoted[system], quoted[system], quote[system] = got["unquoted"], got["quoted"], got["quote"]
                if "plain" in got:
                    plain[system], read_on[system] = got["plain"], got["read_on"]
                    # how sure the model was of each, in the prompt it was asked: what a choice by confidence
                    # between the two would read (recorded, not used)
                    stage = f"{stage}, confidence"
                    progress(stage, 0, len(texts))
                    confidence[system] = {
                        key: answer_confidence(answering, tokenizer, [format_prompt(template, q) for q in texts],
                                               got[key], batch_size=min(generation.batch_size, 8))
                        for key, template in (("plain", generation.prompt_template),
                                              ("recited", generation.recite_prompt_template))}
                    progress(stage, len(texts), len(texts))
            if cases:
                stage = f"extraction test ({name})"
                progress(stage, 0, len(cases))
                continued[name] = memorization.continue_greedily(
                    answering, tokenizer, [c["prompt"] for c in cases], eval_config.extraction_max_new_tokens,
                    generation.batch_size)
                progress(stage, len(cases), len(cases))
            if read_back:
                stage = f"read-back of held-out facts ({name})"
                progress(stage, 0, len(read_back))
                read[name] = memorization.continue_cases(answering, tokenizer, read_back, generation.batch_size)
                read_sentence[name] = memorization.continue_cases(answering, tokenizer, from_sentence,
                                                                  generation.batch_size)
                progress(stage, len(read_back), len(read_back))

    verdicts = {s: [answer_matches(a, q.reference, q.field or None) if q.reference is not None else None
                    for a, q in zip(answers[s], questions)] for s in systems}
    level = eval_config.ci_level
    report: dict = {
        "created_at": now.isoformat(timespec="seconds"),
        "workspace": str(workspace.root),
        "run": None if run is None else {
            "run_id": run.id, "checkpoint": chosen.relative_path(run), "step": chosen.step,
            "reason": chosen.reason, "used": fine_tuned},
        "settings": {
            "systems": list(systems),
            "base_model": pipeline.model.base_model,
            "device": str(next(model.parameters()).device),
            "prompt_template": generation.prompt_template,
            "max_new_tokens": generation.max_new_tokens,
            "batch_size": generation.batch_size,
            "eval": dataclasses.asdict(eval_config),
        },
        "questions": {
            "asked": len(questions), "scored": sum(q.reference is not None for q in questions),
            "sources": asked.sources, "sampled_from": asked.sampled_from,
            "skipped": asked.skipped, "skipped_documents": asked.skipped_documents,
        },
        "systems": {s: {**stats.accuracy(verdicts[s], level),
                        "answered": sum(bool(a.strip()) for a in answers[s])} for s in systems},
        "by_field": stats.by_field([q.field for q in questions], verdicts, level),
        "comparisons": [stats.compare(a, verdicts[a], b, verdicts[b]) for a, b in COMPARISONS
                        if a in verdicts and b in verdicts],
    }

    training_texts = _training_texts(workspace, cpt)
    if training_texts:
        progress("memorization audit", 0, len(systems))
        verbatim = memorization.VerbatimIndex(training_texts, eval_config.memorization_min_chars)
        report["memorization"] = {
            "min_chars": eval_config.memorization_min_chars,
            "training_chars": verbatim.chars,
            "headline": next((s for s in ("finetuned", "finetuned+rag") if s in systems), systems[0]),
            # the answers themselves: a recital before one (build.recite) is training text by design
            "systems": {s: memorization.audit_answers(texts, [recalled_answer(a) for a in answers[s]], verbatim,
                                                      eval_config.memorization_worst_cases)
                        for s in systems},
        }
        progress("memorization audit", len(systems), len(systems))
    else:
        report["memorization_skipped"] = f"no training text ({workspace.dataset_file('cpt')} is missing)"

    report["extraction"] = None
    if cases:
        report["extraction"] = {"records": len(cases), "models": {
            name: memorization.score_extraction(cases, generated, eval_config.memorization_min_chars)
            for name, generated in continued.items()}}

    report["read_back"] = None
    if read_back:
        report["read_back"] = {"facts": len(read_back), "models": {
            name: memorization.score_read_back(read_back, generated) for name, generated in read.items()},
            # the same facts from their sentence alone (what continue_recitals reads on from)
            "from_sentence": {name: memorization.score_read_back(from_sentence, generated)
                              for name, generated in read_sentence.items()}}

    if index is not None:
        report["groundedness"] = {s: groundedness(texts, answers[s], index, eval_config.groundedness_k)
                                  for s in systems}
    def answered(s: str, i: int, q) -> dict:
        row = {"answer": answers[s][i], "correct": verdicts[s][i]}
        # the decodings of one training the answer came from, to compare
        for key, given in (("recited", recited), ("plain", plain), ("read_on", read_on), ("unrecalled", unrecalled),
                           ("recalled", recalled), ("unquoted", unquoted), ("quoted", quoted)):
            if s not in given or given[s][i] == answers[s][i]:
                continue
            if given[s][i] == "" and key in ("recalled", "quoted"):  # none made for this question
                continue
            row[key] = {"answer": given[s][i], "correct": answer_matches(given[s][i], q.reference, q.field or None)
                        if q.reference is not None else None}
        for key, given in (("recall", recall), ("quote", quote)):
            if s in given and given[s][i]:
                row[key] = given[s][i]
        if s in confidence:
            row["confidence"] = {key: round(values[i], 4) for key, values in confidence[s].items()}
        return row

    report["records"] = [
        {"question": q.question, "reference": q.reference, "field": q.field, "doc_id": q.doc_id, "source": q.source,
         "generator": q.generator, "answers": {s: answered(s, i, q) for s in systems}}
        for i, q in enumerate(questions)
    ]
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_report(workspace, report, now)
    if run is not None and fine_tuned:
        _record_systems(run, chosen, report)
    return report


def _record_systems(run: Run, chosen: Checkpoint, report: dict) -> None:
    """runs/<id>/systems.json: this evaluation's accuracy per system on the checkpoint, which
    `ask` reads to answer with retrieval when that measured better."""
    from docfinetune.core.runs import SYSTEMS_FILE
    from docfinetune.core.workspace import write_json

    write_json(run.path / SYSTEMS_FILE, {
        "created_at": report["created_at"], "step": chosen.step, "checkpoint": chosen.relative_path(run),
        "report": report.get("files", {}).get("json"),
        "questions": report["questions"]["scored"], "rag_k": report["settings"]["eval"]["rag_k"],
        "accuracy": {name: figures["accuracy"] for name, figures in report["systems"].items()}})


__all__ = ["SYSTEMS", "check_systems", "evaluate", "groundedness"]
