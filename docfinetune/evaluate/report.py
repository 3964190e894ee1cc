"""`eval`'s report: reports/<UTC time>.json (every figure, record and setting), .md (the same
for people) and .png (the systems' accuracy with their confidence intervals); and the summary
as a rich Table for the terminal."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

from docfinetune.core.workspace import Workspace, write_bytes_atomic, write_json, write_text_atomic

SYSTEM_LABELS = {
    "base": "base, closed-book",
    "base+rag": "base + RAG",
    "finetuned": "fine-tuned, closed-book",
    "finetuned+rag": "fine-tuned + RAG",
}
MD_MAX_RECORDS = 100


def report_stem(workspace: Workspace, now: datetime) -> Path:
    """reports/<UTC time>, e.g. reports/20250301T120000Z; '-2', '-3'... when that is taken."""
    folder = workspace.reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%Y%m%dT%H%M%SZ")
    candidate, n = folder / stem, 1
    while any(candidate.with_suffix(s).exists() for s in (".json", ".md", ".png")):
        n += 1
        candidate = folder / f"{stem}-{n}"
    return candidate


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ci(row: dict) -> str:
    if row.get("ci_low") is None:
        return "n/a"
    return f"{100 * row['ci_low']:.1f}–{100 * row['ci_high']:.1f}%"


def accuracy_chart(report: dict) -> bytes:
    """PNG bytes: one bar per system, error bars from its Wilson interval."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # the object API: no global backend, no pyplot state

    systems = [s for s, row in report["systems"].items() if row["accuracy"] is not None]
    values = [report["systems"][s]["accuracy"] for s in systems]
    below = [v - report["systems"][s]["ci_low"] for s, v in zip(systems, values)]
    above = [report["systems"][s]["ci_high"] - v for s, v in zip(systems, values)]
    figure = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    colors = {"base": "tab:gray", "base+rag": "tab:blue", "finetuned": "tab:orange", "finetuned+rag": "tab:green"}
    positions = list(range(len(systems)))
    axis.bar(positions, values, yerr=[below, above], capsize=6,
             color=[colors.get(s, "tab:purple") for s in systems])
    for x, v, up in zip(positions, values, above):
        axis.text(x, v + up + 0.015, f"{100 * v:.1f}%", ha="center", va="bottom", fontsize="small")
    axis.set_xticks(positions, [SYSTEM_LABELS.get(s, s) for s in systems], fontsize="small")
    axis.set_ylim(0, 1.1)
    axis.set_ylabel("accuracy")
    level = round(100 * report["settings"]["eval"]["ci_level"])
    scored = max((report["systems"][s]["scored"] for s in systems), default=0)
    axis.set_title(f"accuracy on {scored} questions ({level}% Wilson intervals)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(value: str) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _spread(figures: dict | None, percent: bool = True) -> str:
    if not figures or figures.get("mean") is None:
        return "n/a"
    if percent:
        return f"{100 * figures['mean']:.1f}% ± {100 * figures['std']:.1f}% (median {100 * figures['median']:.1f}%)"
    return f"{figures['mean']:.1f} ± {figures['std']:.1f} (max {figures['max']:.0f})"


def render_markdown(report: dict) -> str:
    settings, q = report["settings"], report["questions"]
    level = round(100 * settings["eval"]["ci_level"])
    out = [f"# docfinetune eval — {report['created_at']}", ""]
    run = report.get("run")
    if run:
        out.append(f"Run `{run['run_id']}`, checkpoint `{run['checkpoint']}` (step {run['step']})"
                   + (f" — {run['reason']}" if run.get("reason") else "") + ".")
    out += [f"Base model `{settings['base_model']}` on {settings['device']}; prompt "
            f"`{settings['prompt_template']!r}`; greedy, at most {settings['max_new_tokens']} new tokens.", ""]
    sources = ", ".join(f"{n} from {s}" for s, n in q["sources"].items())
    out.append(f"**Questions:** {q['asked']} asked ({sources}), {q['scored']} with a reference answer"
               + (f"; a seeded sample of {q['sampled_from']}" if q["sampled_from"] > q["asked"] else "")
               + (f"; {q['skipped']} skipped: their documents are not in the workspace "
                  f"({', '.join(q['skipped_documents'])})" if q["skipped"] else "") + ".")
    out += ["", "## Accuracy", ""]
    out += _table(["system", "correct", "accuracy", f"{level}% CI"],
                  [[SYSTEM_LABELS.get(s, s), f"{r['correct']}/{r['scored']}", _pct(r["accuracy"]), _ci(r)]
                   for s, r in report["systems"].items()])
    if report.get("comparisons"):
        out += ["", "Paired comparisons (exact McNemar test on the questions one system got and the other missed):", ""]
        out += _table(["A", "B", "only A right", "only B right", "both", "neither", "p"],
                      [[SYSTEM_LABELS.get(c["a"], c["a"]), SYSTEM_LABELS.get(c["b"], c["b"]), c["only_a"],
                        c["only_b"], c["both"], c["neither"], f"{c['p_value']:.3g}"] for c in report["comparisons"]])
    if report.get("by_field"):
        systems = list(report["systems"])
        out += ["", "## By field", ""]
        out += _table(["field", "questions", *[SYSTEM_LABELS.get(s, s) for s in systems]],
                      [[name, str(max(r["scored"] for r in rows.values())),
                        *[f"{_pct(rows[s]['accuracy'])} ({rows[s]['correct']}/{rows[s]['scored']})" for s in systems]]
                       for name, rows in report["by_field"].items()])
    memo = report.get("memorization")
    if memo:
        out += ["", "## Memorization", "",
                f"Share of each answer's characters inside a run of at least {memo['min_chars']} characters "
                f"found verbatim in the training text ({memo['training_chars']:,} characters of CPT records "
                "and Q&A-train answers). A correct short answer is copied by nature; compare with the base "
                "model's figure.", ""]
        out += _table(["system", "answers", "copied share (mean ± sd)", "mostly copied (≥50%)", "longest run"],
                      [[SYSTEM_LABELS.get(s, s), a["answers"], _spread(a["copied_share"]), _pct(a["mostly_copied"]),
                        f"{a['longest_run_chars']} chars"] for s, a in memo["systems"].items()])
        headline = memo.get("headline")
        if headline and memo["systems"][headline]["worst"]:
            out += ["", f"Most copied answers ({SYSTEM_LABELS.get(headline, headline)}):", ""]
            out += _table(["question", "answer", "copied", "longest run"],
                          [[w["question"], w["answer"], _pct(w["copied_share"]), w["longest_run_chars"]]
                           for w in memo["systems"][headline]["worst"]])
    elif report.get("memorization_skipped"):
        out += ["", "## Memorization", "", f"Not measured: {report['memorization_skipped']}."]
    extraction = report.get("extraction")
    if extraction:
        e = settings["eval"]
        out += ["", "## Extraction test", "",
                f"{extraction['records']} training records (seeded sample); the model gets the first "
                f"{_pct(e['extraction_prefix_share'])} and continues greedily for {e['extraction_max_new_tokens']} "
                f"tokens. Reproduced: share of the true continuation in common runs of ≥{e['memorization_min_chars']} "
                "characters; exact prefix: characters reproduced exactly from the cut.", ""]
        out += _table(["model", "reproduced share", "exact prefix (chars)", "reproduced whole"],
                      [[name, _spread(r["reproduced_share"]), _spread(r["exact_prefix_chars"], percent=False),
                        f"{r['reproduced_whole']}/{r['records']}"] for name, r in extraction["models"].items()])
    read_back = report.get("read_back")
    if read_back:
        out += ["", "## Held-out facts read back", "",
                f"{read_back['facts']} held-out facts whose answer stands in their reading-text record: the model "
                "gets the record up to the answer and continues greedily for the answer's length and 4 tokens; read "
                "back when the continuation states the answer (the questions' scorer). Beside the held-out questions' accuracy: a fact read back but not answered is "
                "remembered and not reached by its questions. From its sentence alone: the same with only the "
                "answer's sentence before it, as a recital cut before its value gives (facts with 4 words or more "
                "there).", ""]
        alone = read_back.get("from_sentence", {})

        def share(r: dict | None) -> str:
            return f"{r['read_back']}/{r['facts']} ({_pct(r['read_back'] / r['facts'])})" if r and r["facts"] else "–"

        out += _table(["model", "read back", "from its sentence alone"],
                      [[name, share(r), share(alone.get(name))] for name, r in read_back["models"].items()])
    grounded = report.get("groundedness")
    if grounded:
        out += ["", "## Groundedness", "",
                f"An answer is grounded when one of the {settings['eval']['groundedness_k']} chunks BM25 retrieves "
                "for its question and answer supports it (all its words occur there); otherwise it is "
                "counted as hallucinated.", ""]
        out += _table(["system", "answers", "grounded", "hallucinated"],
                      [[SYSTEM_LABELS.get(s, s), g["answers"], f"{g['grounded']} ({_pct(g['grounded_share'])})",
                        f"{g['hallucinated']} ({_pct(g['hallucinated_share'])})"] for s, g in grounded.items()])
    records = report["records"]
    out += ["", "## Answers", ""]
    if len(records) > MD_MAX_RECORDS:
        out += [f"The first {MD_MAX_RECORDS} of {len(records)}; all are in the JSON report.", ""]
    systems = list(report["systems"])
    out += _table(["question", "reference", *[SYSTEM_LABELS.get(s, s) for s in systems]],
                  [[r["question"], r["reference"] or "",
                    *[("✓ " if r["answers"][s]["correct"] else "✗ " if r["answers"][s]["correct"] is False else "")
                      + r["answers"][s]["answer"] for s in systems]] for r in records[:MD_MAX_RECORDS]])
    out += ["", "## Settings", "", "```", *(f"{k}: {v!r}" for k, v in settings["eval"].items()), "```", ""]
    return "\n".join(out)


def write_report(workspace: Workspace, report: dict, now: datetime) -> dict[str, str]:
    """Write the .png, .md and finally .json (which lists all three); returns their paths."""
    stem = report_stem(workspace, now)
    files = {"json": str(stem.with_suffix(".json")), "md": str(stem.with_suffix(".md"))}
    if any(row["accuracy"] is not None for row in report["systems"].values()):
        files["png"] = str(stem.with_suffix(".png"))
        write_bytes_atomic(Path(files["png"]), accuracy_chart(report))
    report["files"] = files
    write_text_atomic(Path(files["md"]), render_markdown(report))
    write_json(Path(files["json"]), report)
    return files


def summary_table(report: dict):
    """The accuracy of each system, and the audits' headline figures, as a rich Table."""
    from rich.table import Table

    level = round(100 * report["settings"]["eval"]["ci_level"])
    table = Table(title=f"{report['questions']['asked']} questions", title_justify="left")
    table.add_column("system")
    table.add_column("correct", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column(f"{level}% CI", justify="right")
    table.add_column("copied share", justify="right")
    table.add_column("grounded", justify="right")
    memo = (report.get("memorization") or {}).get("systems", {})
    grounded = report.get("groundedness") or {}
    for system, row in report["systems"].items():
        copied = memo.get(system, {}).get("copied_share", {}).get("mean")
        table.add_row(SYSTEM_LABELS.get(system, system), f"{row['correct']}/{row['scored']}", _pct(row["accuracy"]),
                      _ci(row), _pct(copied), _pct(grounded.get(system, {}).get("grounded_share")))
    notes = []
    extraction = report.get("extraction")
    if extraction:
        for name, r in extraction["models"].items():
            notes.append(f"extraction ({name}): {_pct(r['reproduced_share']['mean'])} of true continuations "
                         f"reproduced, {r['reproduced_whole']}/{r['records']} whole")
    if report.get("files"):
        notes.append(f"report: {report['files']['md']}")
    table.caption = "\n".join(notes) or None
    table.caption_justify = "left"
    return table
