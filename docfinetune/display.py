"""What the terminal shows: one progress factory and the tables of each command. The CLI
calls these; stages never print."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from docfinetune.core.workspace import CURVES_FILE, read_json_file


class Consoles:
    """stdout and stderr consoles made on first use, so each run sees its own terminal."""

    @property
    def out(self) -> Console:
        return Console(highlight=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)


consoles = Consoles()
ProgressFn = Callable[[Any, int, int], None]


def print_problem(kind: str, text: str) -> None:
    """One line on stderr. The text is escaped: file names and advice may hold [brackets],
    which rich would otherwise read as markup and drop."""
    colour = "red" if kind == "error" else "yellow"
    consoles.err.print(f"[{colour}]{kind}:[/] {escape(str(text))}", soft_wrap=True)


def progress_bars(unit: str = "", transient: bool = True, label: Callable[[Any], str] = str,
                  fields: str = "") -> tuple[Any, ProgressFn]:
    """A rich Progress on stderr with one bar per key (a stage name, a file) and the callback
    `on_progress(key, done, total, **fields)` that stage functions report to. `unit` follows the
    count ("pages"); `fields` is extra text with {task.fields[...]} placeholders."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class QuietProgress(Progress):
        """Progress, less the empty line its stop() prints when stderr is not a terminal (a file,
        a pipe): a redirected stderr began with it, before an error's one line."""

        def stop(self) -> None:
            if self.disable:
                return
            self.live.stop()
            if self.tasks and not self.live.transient and not self.console.is_interactive:
                self.console.line()  # bars drawn once at the end still end their line

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(unit)] if unit else []
    columns += [TextColumn(fields)] if fields else []
    progress = QuietProgress(*columns, TimeRemainingColumn(), console=consoles.err, transient=transient)
    tasks: dict[Any, Any] = {}

    def on_progress(key: Any, done: int, total: int, **values: Any) -> None:
        if key not in tasks:
            # escaped: a label is often a file name, which may hold [brackets]
            tasks[key] = progress.add_task(escape(str(label(key))), total=total, **values)
        progress.update(tasks[key], completed=done, total=total, **values)

    return progress, on_progress


def ingest_table(root: Path, results: list) -> Table:
    table = Table(title=f"ingested into {escape(str(root))}")
    table.add_column("file", no_wrap=True, max_width=40)
    table.add_column("status")
    for column in ("pages", "chunks", "characters", "seconds"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(escape(r.path.name), r.status, str(r.pages), str(r.chunks), f"{r.chars:,}",
                      f"{r.seconds:.2f}" if r.status in ("new", "replaced") else "-")
    return table


def datasets_table(stats: dict) -> Table:
    generators = ", ".join(stats["qa"].get("generators") or [stats["qa"].get("generator", "")])
    table = Table(title=escape(f"datasets ({generators} Q&A, built {stats['built_at']})"))
    for column in ("set", "facts", "rows", "tokens"):
        table.add_column(column, justify="left" if column == "set" else "right")
    table.add_row("reading text", "", str(stats["cpt"]["records"]), f"{stats['cpt']['tokens']:,}")
    for name, split in stats["splits"].items():
        table.add_row(escape(f"Q&A {name}"), str(split["facts"]), str(split["pairs"]), f"{split['tokens']:,}")
    qa = stats["qa"]
    dropped = ", ".join(f"{k} {v}" for k, v in qa["dropped"].items()) or "none"
    # What the train rows hold beside closed-book Q&A (older stats.json files lack the counts).
    extra = ""
    if "open_book_rows" in qa:
        quoted = f", quoting the context {qa['open_book_quotes']}" if qa.get("open_book_quotes") else ""
        extra = (f"train rows open-book {qa['open_book_rows']} (counterfactual twins "
                 f"{qa.get('counterfactual_rows', 0)}{quoted}); ")
    if "fact_cards" in qa:
        extra += f"fact cards {qa['fact_cards']} (held out {qa.get('held_out_fact_cards', 0)}); "
    if qa.get("choice_rows"):
        extra += f"multiple choice {qa['choice_rows']}; "
    table.caption = escape(f"Q&A generated {qa['generated']}, yours {qa['user_rows']}, kept {qa['kept']}; "
                           f"{extra}dropped: {dropped}")
    return table


def train_events(progress) -> Callable[[str, dict], None]:
    """`train`'s on_event: a line at the start and per evaluation, a step bar in between."""
    state: dict[str, Any] = {}

    def on_event(kind: str, data: dict) -> None:
        if kind == "start":
            for warning in data.get("warnings", []):
                print_problem("warning", warning)
            progress.console.print(
                f"run {escape(str(data['run_id']))}: {data['examples']} examples, {data['tokens']:,} tokens, "
                f"{data['total_steps']} steps" + (f", resumed at step {data['resumed_from_step']}"
                                                 if data.get("resumed_from_step") else ""), soft_wrap=True)
            state["task"] = progress.add_task("step", total=data["total_steps"], loss="-", speed="-",
                                              completed=data.get("resumed_from_step") or 0)
        elif kind == "step":
            progress.update(state["task"], completed=data["step"], loss=f"{data['loss']:.3f}",
                            speed=f"{data['tokens_per_s']:,.0f}")
        elif kind == "eval":
            accuracy = ("-" if data.get("accuracy") is None
                        else f"{data['accuracy']:.1%} ({data['correct']}/{data['questions']})")
            val = "-" if data.get("val_loss") is None else f"{data['val_loss']:.3f}"
            peak = f", GPU peak {data['peak_gpu_gib']:.1f} GiB" if data.get("peak_gpu_gib") else ""
            progress.console.print(f"step {data['step']}: val loss {val}, accuracy {accuracy}{peak}")
        elif kind == "teach":  # train.teach_held_out_passes, after selection
            if "teach" not in state:
                state["teach"] = progress.add_task("teaching held-out facts", total=data["total_steps"], loss="-",
                                                   speed="-")
            progress.update(state["teach"], completed=data["step"],
                            loss="-" if data["loss"] is None else f"{data['loss']:.3f}")

    return on_event


def selection_table(run_dir: Path, selection_file: str) -> Table:
    selection = read_json_file(run_dir / selection_file)
    table = Table(title=escape(f"checkpoints of run {selection['run_id']} ({selection['rule']})"))
    # the accuracies selection weighs, where measured: held-out and taught, closed- and open-book
    accuracies = [(key, label) for key, label in (("accuracy", "held out"), ("taught_accuracy", "taught"),
                                                  ("open_book_accuracy", "held out +RAG"),
                                                  ("taught_open_book_accuracy", "taught +RAG"))
                  if key == "accuracy" or any(c.get(key) is not None for c in selection["checkpoints"])]
    for column in ("step", "epoch", "train loss", "val loss", *(label for _, label in accuracies)):
        table.add_column(column, justify="right")

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    chosen = selection["selected"]["step"] if selection.get("selected") else None
    for c in selection["checkpoints"]:
        table.add_row(str(c["step"]), fmt(c.get("epoch"), ".2f"), fmt(c.get("train_loss"), ".3f"),
                      fmt(c.get("val_loss"), ".3f"), *(fmt(c.get(key), ".1%") for key, _ in accuracies),
                      style="bold green" if c["step"] == chosen else None)
    taught = selection.get("taught_all")
    then = (f"; then the {taught['rows']['held_out']} held-out Q&A rows taught in {taught['steps']} steps: "
            f"{taught['path']} answers (ask, export), step {chosen} the held-out facts (eval)") if taught else ""
    table.caption = escape(f"selected: step {chosen}, {selection['reason']}{then}; curves: {run_dir / CURVES_FILE}")
    return table


def print_sources(sources: list, cited: dict | None = None) -> None:
    """Each retrieved chunk with document, pages and heading; a fact card is followed by the
    contract's own words it states (`cited`: card id -> chunk)."""
    from docfinetune.core.records import is_card

    for chunk, score in sources:
        pages = f"{chunk.page_start}" if chunk.page_start == chunk.page_end else f"{chunk.page_start}-{chunk.page_end}"
        card = "fact card of the chunk at " if is_card(chunk) else ""
        consoles.out.print(f"[bold]{escape(chunk.doc_id)}[/], {card}page {pages}, "
                           f"{escape(chunk.heading or 'no heading')} (BM25 {score:.1f}):", soft_wrap=True)
        consoles.out.print(f"  {escape(chunk.text)}", soft_wrap=True, highlight=False)
        if (cited or {}).get(chunk.chunk_id) is not None:
            consoles.out.print(f"  [dim]the contract there:[/] {escape(cited[chunk.chunk_id].text)}", soft_wrap=True,
                               highlight=False)


def status_table(summary: dict) -> Table:
    docs = summary["documents"]
    table = Table(title=f"{len(docs)} document(s)", caption=escape(f"workspace: {summary['workspace']}"))
    table.add_column("document", no_wrap=True, max_width=36)
    table.add_column("title", no_wrap=True, max_width=30)
    for column in ("pages", "chunks", "characters"):
        table.add_column(column, justify="right")
    for d in docs:
        table.add_row(escape(str(d["doc_id"])), escape(str(d["title"])), str(d["pages"]), str(d["chunks"]), f"{d['chars']:,}")
    totals = summary["totals"]
    table.add_section()
    table.add_row("total", "", str(totals["pages"]), str(totals["chunks"]), f"{totals['chars']:,}")
    return table
