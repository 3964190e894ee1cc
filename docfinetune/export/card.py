"""The model card: README.md of every export.

What a person who finds the folder must know: that the weights hold the documents' text (first,
so nobody misses it), which base model and recipe made them, which documents they learned, and
how well the exported checkpoint answered — the training-time figures always, `eval`'s systems
with their confidence intervals and the memorization audits when an evaluation of this
checkpoint exists. It reads the files `train`, `eval` and `ingest` wrote, never a model.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from docfinetune.core.runs import CONFIG_FILE, SYSTEMS_FILE, Run
from docfinetune.core.workspace import Workspace, read_json_file

SYSTEM_LABELS = {"base": "base, closed-book", "base+rag": "base + RAG", "finetuned": "fine-tuned, closed-book",
                 "finetuned+rag": "fine-tuned + RAG"}


def documents(workspace: Workspace, run: Run) -> list[dict]:
    """The ingested documents (source.json), each marked when it was ingested after the run began
    (so it may not be in the weights)."""
    started = datetime.fromtimestamp((run.path / CONFIG_FILE).stat().st_mtime, timezone.utc)
    found = []
    for doc_id in workspace.doc_ids():
        source = workspace.read_source(doc_id) or {}
        ingested = source.get("ingested_at") or ""
        try:
            after = bool(ingested) and datetime.fromisoformat(ingested) > started
        except ValueError:
            after = False
        found.append({"doc_id": doc_id, "title": source.get("title", ""), "file_name": source.get("file_name", ""),
                      "sha256": source.get("sha256", ""), "pages": source.get("pages"), "ingested_at": ingested,
                      "ingested_after_training_began": after})
    return found


def evaluation(workspace: Workspace, run: Run, step: int | None) -> dict | None:
    """The newest `eval` of checkpoint `step` of `run`: its report (accuracy with intervals,
    memorization, extraction), or systems.json's accuracies alone when the report is gone;
    None when this checkpoint was never evaluated."""
    systems_path = run.path / SYSTEMS_FILE
    systems = read_json_file(systems_path) if systems_path.is_file() else None
    if systems and systems.get("step") == step and systems.get("report") and Path(systems["report"]).is_file():
        return {"report_file": systems["report"], "report": read_json_file(Path(systems["report"]))}
    for path in sorted(workspace.reports_dir.glob("*.json"), reverse=True) if workspace.reports_dir.is_dir() else []:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        ran = report.get("run") or {}
        if ran.get("run_id") == run.id and ran.get("step") == step and ran.get("used"):
            return {"report_file": str(path), "report": report}
    if systems and systems.get("step") == step:
        return {"report_file": systems.get("report"), "systems": systems}
    return None


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list]) -> list[str]:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]


def _recipe(run: Run, full: bool) -> list[str]:
    c = run.config
    t, lora = c.train, c.lora
    length = f"{t.max_steps} steps" if t.max_steps else f"{t.epochs:g} epochs"
    method = ("full fine-tuning (every weight but the embeddings and output layer)" if full else
              f"LoRA r={lora.lora_r}, alpha={lora.lora_alpha}, dropout {lora.lora_dropout:g} on "
              f"{', '.join(lora.lora_targets)}")
    quantization = ("4-bit NF4 base during training (QLoRA)" if c.model.quantization == "nf4"
                    else f"base in {c.model.precision} precision during training")
    return [f"- Base model: `{c.model.base_model}`",
            f"- Method: {method}; {quantization}",
            f"- Schedule: {length}, learning rate {t.learning_rate:g} ({t.lr_scheduler}, warmup {t.warmup_ratio:g}), "
            f"{t.micro_batch_size * t.gradient_accumulation_steps} examples per step, mix `{t.schedule}`, "
            f"Q&A repeats {t.qa_repeats}, seed {t.seed}",
            f"- Data: Q&A generators {', '.join(c.build.generators)}, {c.build.augment_variants} restatements of "
            f"each chunk, open-book share {c.build.open_book_share:g}",
            "- The complete recipe: `docfinetune-config.yaml` (`docfinetune train --pipeline docfinetune-config.yaml` trains with it again)."]


def _training_figures(run: Run, step: int | None) -> list[str]:
    entry = next((c for c in (run.selection or {}).get("checkpoints", []) if c.get("step") == step), None)
    if entry is None:
        return ["No training-time evaluation is recorded for this checkpoint."]
    correct = f" ({entry['correct']}/{entry['questions']})" if entry.get("questions") else ""
    loss = "n/a" if entry.get("val_loss") is None else f"{entry['val_loss']:.3f}"
    line = (f"At training time, checkpoint {step} answered {_pct(entry.get('accuracy'))}{correct} of the held-out "
            f"validation questions (facts it only read) and {_pct(entry.get('taught_accuracy'))} of a sample of the "
            f"questions it was taught; validation loss {loss}.")
    if entry.get("open_book_accuracy") is not None:
        line += (f" With retrieval: {_pct(entry['open_book_accuracy'])} of the held-out questions and "
                 f"{_pct(entry.get('taught_open_book_accuracy'))} of the taught ones.")
    return [line]


def _evaluation_section(found: dict | None) -> list[str]:
    if found is None:
        return ["Not evaluated — run `docfinetune eval`, then export again to put the figures here."]
    report = found.get("report")
    if report is None:  # systems.json without its report: accuracies only
        systems = found["systems"]
        rows = [[SYSTEM_LABELS.get(s, s), _pct(a)] for s, a in systems.get("accuracy", {}).items()]
        return [f"`docfinetune eval` ({systems.get('created_at', '')}, {systems.get('questions')} questions; its "
                "report, with the confidence intervals, is gone):", "", *_table(["system", "accuracy"], rows)]
    level = round(100 * report["settings"]["eval"]["ci_level"])
    rows = [[SYSTEM_LABELS.get(s, s), f"{r['correct']}/{r['scored']}", _pct(r["accuracy"]),
             "n/a" if r.get("ci_low") is None else f"{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}%"]
            for s, r in report["systems"].items()]
    return [f"`docfinetune eval` of {report['created_at']} on {report['questions']['asked']} questions "
            f"(report `{found['report_file']}`):", "",
            *_table(["system", "correct", "accuracy", f"{level}% CI"], rows)]


def _memorization_section(found: dict | None) -> list[str]:
    report = (found or {}).get("report") or {}
    memo, extraction = report.get("memorization"), report.get("extraction")
    if not memo and not extraction:
        return ["Not measured — `docfinetune eval` measures how much of each answer is copied verbatim from the "
                "training text and how much of a training chunk the model reproduces from its first half."]
    out = []
    if memo:
        out += [f"Share of each answer's characters in runs of at least {memo['min_chars']} characters copied verbatim "
                "from the training text:", ""]
        out += _table(["system", "answers", "copied share (mean ± sd)", "mostly copied (≥50%)"],
                      [[SYSTEM_LABELS.get(s, s), a["answers"],
                        "n/a" if a["copied_share"].get("mean") is None else
                        f"{100 * a['copied_share']['mean']:.1f}% ± {100 * a['copied_share']['std']:.1f}%",
                        _pct(a.get("mostly_copied"))] for s, a in memo["systems"].items()])
    if extraction:
        out += ["", f"Extraction test on {extraction['records']} training chunks (given the first part, greedy "
                "continuation compared with the true rest):", ""]
        out += _table(["model", "reproduced share (mean)", "reproduced whole"],
                      [[name, _pct(r["reproduced_share"].get("mean")), f"{r['reproduced_whole']}/{r['records']}"]
                       for name, r in extraction["models"].items()])
    return out


def _warning(found: dict | None) -> str:
    extraction = (((found or {}).get("report") or {}).get("extraction") or {}).get("models", {}).get("finetuned")
    measured = ""
    if extraction and extraction["reproduced_share"].get("mean") is not None:
        measured = (f" (measured: given the first half of a training chunk, it reproduced "
                    f"{_pct(extraction['reproduced_share']['mean'])} of the rest word for word)")
    return (f"> **Confidential.** These weights were trained on the documents listed below and contain verbatim "
            f"text from them{measured}. Handle the weights, every copy and every server that runs them as "
            "confidentially as the documents themselves; do not upload them to a public model hub.")


def _enough(words: int) -> str:
    return f", or {words} of them whatever their share" if words else ""


def _recital_lines(c) -> list[str]:
    """What a model trained with recitals (build.recite) or quoted open-book answers (build.open_book_quotes)
    answers under the served prompt, and what `docfinetune ask` does beyond it — the chat template and
    Modelfile ask the closed-book prompt only."""
    quotes = (["With retrieved chunks in the prompt, answers quote the sentence that states the answer first: "
               "`<sentence> ⇒ <answer>` (build.open_book_quotes); the answer is the text after the last ⇒.", ""]
              if c.build.open_book_quotes else [])
    if not c.build.recite:
        return quotes
    lines = ["Some closed-book answers recite their clause first: `<clause> ⇒ <answer>` (build.recite); the answer "
             "is the text after the last ⇒."]
    if c.build.recite_both:
        lines[0] = ("The model was also trained to recite the clause before answering, asked this way "
                    "(build.recite_both); it answers `<clause> ⇒ <answer>`:")
        lines += ["", "```", c.generation.recite_prompt_template, "```", "",
                  "`docfinetune ask` asks both ways and keeps the recited answer only when its clause holds at least "
                  f"{c.generation.recital_min_overlap:g} of the question's words and {c.generation.recital_min_words} "
                  f"of them{_enough(c.generation.recital_enough_words)}; a server given the chat template or Modelfile "
                  "asks the plain prompt only."]
    if c.generation.continue_recitals:
        lines += ["", "`docfinetune ask` also reads on from a recited clause as plain text and takes the answer from "
                      "that continuation (generation.continue_recitals); a server returns the recited answer as "
                      "generated."]
    return [*lines, "", *quotes]


def _reading_lines(c) -> list[str]:
    """What `docfinetune ask` does closed-book beyond the served prompt with generation.read_quotes or
    recall_sections: a server given the chat template or Modelfile answers the question as asked."""
    lines = []
    if c.generation.read_quotes:
        lines += ["`docfinetune ask` answers a question that quotes its clause (a blank `___`, or the clause around "
                  "what it asks after \"Under Section ...,\") by continuing the quote's words as plain text and "
                  "reading the value off that continuation (generation.read_quotes); a server returns the answer to "
                  "the question as asked.", ""]
    if c.generation.recall_sections:
        lines += ["For a question naming a section, `docfinetune ask` first has the model write that section from "
                  "memory (its title and number continued as plain text) and asks the question with it as the context "
                  "(generation.recall_sections); a server does not.", ""]
    return lines


def render(*, workspace: Workspace, run: Run, step: int | None, reason: str, fmt: str, dtype: str, full: bool,
           docs: list[dict], found: dict | None, serving: list[str], taught: dict | None = None) -> str:
    """README.md's text. `taught`: selection.json's taught_all entry when the checkpoint is that adapter."""
    c = run.config
    front = ["---", f"library_name: {'peft' if fmt == 'adapter' else 'transformers'}"]
    if "/" in c.model.base_model and not Path(c.model.base_model).expanduser().exists():
        front.append(f"base_model: {c.model.base_model}")  # a hub id
    front += ["tags:", "- docfinetune", f"- {'full-fine-tune' if full else 'lora'}", "---", ""]
    weights = ("the LoRA adapter (safetensors) and its adapter_config.json" if fmt == "adapter"
               else f"the whole model in {dtype} safetensors" + ("" if full else ", the adapter merged into the base"))
    name = step if step is not None else (taught["path"].split("/")[-1] if taught else "(a chosen folder)")
    out = [*front, f"# Run {run.id}, checkpoint {name}", "",
           _warning(found), "",
           f"Exported by `docfinetune export --format {fmt}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: "
           f"{weights}, the tokenizer with the training prompt as its chat template, and an Ollama Modelfile. "
           f"Checkpoint chosen: {reason}.", ""]
    if fmt == "merged" and not full and c.model.quantization == "nf4":
        out += ["The adapter was trained on the 4-bit NF4 base; it was merged into the base model's original 16-bit "
                "weights (loaded in 16-bit, not merged into 4-bit ones), so the merged model can answer slightly "
                "differently from the 4-bit model the figures below measured.", ""]
    out += ["## Model and recipe", "", *_recipe(run, full), "",
            "## Documents trained on", ""]
    if docs:
        out += _table(["document", "file", "sha256", "pages", "ingested"],
                      [[d["title"] or d["doc_id"], d["file_name"], d["sha256"], d["pages"],
                        d["ingested_at"] + (" (after training began: may not be in the weights)"
                                            if d["ingested_after_training_began"] else "")] for d in docs])
    else:
        out.append(f"The workspace ({workspace.root}) lists no ingested documents any more.")
    figures = _training_figures(run, taught["from_step"] if taught else step)
    if taught:  # the selected checkpoint's figures: the held-out facts were taught after them
        figures.append(f"Then the {taught['rows']['held_out']} held-out Q&A rows were taught too "
                       f"(train.teach_held_out_passes {taught['passes']}, {taught['steps']} steps): these weights have "
                       "seen every fact the build found, so no held-out figure describes them.")
    out += ["", "## Evaluation", "", *figures, "", *_evaluation_section(found), "",
            "## Memorization", "", *_memorization_section(found), "",
            "## Prompt format", "",
            "The model was trained on a plain prompt, not a chat format. Closed-book:", "", "```",
            c.generation.prompt_template, "```", "", ("Open-book, with retrieved chunks as the context, the best hit "
             + ("last, right before the question:" if c.generation.rag_order == "best_last" else "first:")), "", "```",
            c.generation.rag_template, "```", "",
            "The tokenizer's chat template (tokenizer_config.json, chat_template.jinja) and the Modelfile write "
            "exactly this: the last user message is the question, a system message is the context. Answers are "
            f"greedy and end at the first line break (at most {c.generation.max_new_tokens} tokens).", "",
            *_recital_lines(c), *_reading_lines(c),
            "## Serving", "", *serving, ""]
    return "\n".join(out)
