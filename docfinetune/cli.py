"""The command line: parses, dispatches to each stage's function, and prints. Nothing else.

Library code raises typed errors; here they become one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from docfinetune import __version__
from docfinetune.core.config import (
    DEFAULT_WORKSPACE,
    WORKSPACE_ENV,
    BuildConfig,
    EvalConfig,
    IngestConfig,
    LLMQAConfig,
    LoRAConfig,
    ModelConfig,
    TrainConfig,
    load_pipeline,
    section_fields,
)
from docfinetune.core.errors import DocfinetuneError, IngestFailed
from docfinetune.core.workspace import Workspace

EXIT_BAD_INPUT = 2


class _Consoles:
    """stdout and stderr consoles made on first use, so each run sees its own terminal."""

    @property
    def out(self) -> Console:
        return Console(highlight=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)


_consoles = _Consoles()


def _print_problem(kind: str, text: str) -> None:
    """One line on stderr. The text is escaped: file names and advice may hold [brackets],
    which rich would otherwise read as markup and drop."""
    from rich.markup import escape

    colour = "red" if kind == "error" else "yellow"
    _consoles.err.print(f"[{colour}]{kind}:[/] {escape(str(text))}", soft_wrap=True)


class _Group(click.Group):
    """Turns DocfinetuneError into a one-line message and exit code 2 (never a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IngestFailed as failure:
            for bad in failure.failures:
                _print_problem("error", bad)
            if ctx.meta.get("inputs", 0) > 1:
                _consoles.err.print(f"{len(failure.failures)} input(s) failed; nothing was ingested and the "
                          "workspace is unchanged (--keep-going ingests the good ones)", soft_wrap=True)
            sys.exit(EXIT_BAD_INPUT)
        except DocfinetuneError as error:
            for line in str(error).splitlines() or [type(error).__name__]:
                _print_problem("error", line)
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            _consoles.err.print("interrupted; nothing half-written was kept")
            sys.exit(130)


def config_options(section: str, section_type: type, flag_prefix: str = "") -> Callable:
    """Add one `--flag` per plain field of a config section (nested sections are skipped);
    the help text comes from the field. Defaults stay None so that the pipeline YAML decides
    unless the flag is given. `section` may be dotted ("build.llm")."""

    def decorate(command: Callable) -> Callable:
        for f in reversed(section_fields(section_type)):
            if dataclasses.is_dataclass(f.type):
                continue
            flag = f"--{flag_prefix}{f.name.replace('_', '-')}"
            key = f"{section.replace('.', '__')}__{f.name}"
            help_text = f"{f.metadata.get('help', '')} [default: {f.default}]"
            if f.type is bool:
                flag = f"{flag}/--no-{flag[2:]}"
                command = click.option(flag, key, default=None, help=help_text)(command)
                continue
            kind = f.metadata.get("choices")
            command = click.option(flag, key, type=click.Choice(kind) if kind else f.type,
                                   default=None, help=help_text)(command)
        return command

    return decorate


def _overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop `section__key` (or `section__sub__key`) flags out of a command's kwargs into a nested
    {section: {key: value}} mapping for `load_pipeline`."""
    overrides: dict[str, Any] = {}
    for name in [k for k in kwargs if "__" in k]:
        *path, key = name.split("__")
        value = kwargs.pop(name)
        if value is not None:
            target = overrides
            for part in path:
                target = target.setdefault(part, {})
            target[key] = value
    return overrides


def _stage_progress():
    """A transient progress display with one bar per named stage, and the callback
    (`on_progress(stage, done, total)`) that stage functions report to."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=_consoles.err, transient=True)
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, on_progress


pipeline_option = click.option(
    "--pipeline", "pipeline_name", default="default", show_default=True,
    help="A recipe name from pipelines/ or a path to a YAML file.",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), envvar=WORKSPACE_ENV,
    default=DEFAULT_WORKSPACE, show_default=True, show_envvar=True,
    help="Folder that holds every stage's files.",
)
@click.option("-v", "--verbose", count=True, help="More detail (-vv for debug logs).")
@click.version_option(__version__, prog_name="docfinetune")
@click.pass_context
def main(ctx: click.Context, workspace: Path, verbose: int) -> None:
    """Turn your own documents into a language model that has learned them, privately."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"workspace": Workspace(workspace), "verbose": verbose}


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--password", default=None, help="Password of encrypted PDFs.")
@click.option("--keep-going", is_flag=True,
              help="Ingest the good inputs even if some are bad (exit code 2 all the same).")
@pipeline_option
@config_options("ingest", IngestConfig)
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], password: str | None, keep_going: bool,
           pipeline_name: str, **flags: Any) -> None:
    """Extract, clean and chunk PDF, text and Markdown files (directories recursively).

    Nothing is written unless every input is usable; a re-ingested unchanged file is skipped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from docfinetune.ingest import ingest as run_ingest

    config = load_pipeline(pipeline_name, _overrides(flags)).ingest
    workspace: Workspace = ctx.obj["workspace"]
    ctx.meta["inputs"] = len(paths)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("pages"), TimeRemainingColumn(), console=_consoles.err, transient=True)
    tasks: dict[Path, Any] = {}

    def on_progress(path: Path, done: int, total: int) -> None:
        if path not in tasks:
            tasks[path] = progress.add_task(path.name[:40], total=total)
        progress.update(tasks[path], completed=done, total=total)

    with progress:
        results = run_ingest(paths, workspace, config, password=password,
                             keep_going=keep_going, on_progress=on_progress)

    table = Table(title=f"ingested into {workspace.root}")
    table.add_column("file", no_wrap=True, max_width=40)
    table.add_column("status")
    for column in ("pages", "chunks", "characters", "seconds"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(r.path.name, r.status, str(r.pages), str(r.chunks), f"{r.chars:,}",
                      f"{r.seconds:.2f}" if r.status in ("new", "replaced") else "-")
    _consoles.out.print(table)
    for r in results:
        for warning in r.warnings:
            _print_problem("warning", f"{r.path}: {warning}")
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        _print_problem("error", f"{r.path}: {r.error}")
    if failed:
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@click.option("--qa-file", "qa_files", multiple=True, type=click.Path(path_type=Path),
              help="Your own Q&A (JSONL: question/answer, or instruction/input/output); repeatable.")
@click.option("--force", is_flag=True, help="Rebuild even when the datasets are up to date.")
@pipeline_option
@config_options("model", ModelConfig)
@config_options("build", BuildConfig)
@config_options("build.llm", LLMQAConfig, flag_prefix="generator-")
@click.pass_context
def build(ctx: click.Context, qa_files: tuple[Path, ...], force: bool, pipeline_name: str,
          **flags: Any) -> None:
    """Turn the ingested chunks into continued-pretraining text and Q&A, split by fact.

    The `llm` generator is configured with the --generator-* flags (a local model with
    --generator-model, or an OpenAI-compatible endpoint with --generator-url).
    """
    from docfinetune.build import build as run_build
    from docfinetune.build import datasets_stale

    config = load_pipeline(pipeline_name, _overrides(flags))
    workspace: Workspace = ctx.obj["workspace"]
    reason = datasets_stale(workspace, config, list(qa_files))
    if reason is None and not force:
        _consoles.out.print("datasets are up to date (use --force to rebuild)")
        _print_datasets(workspace)
        return
    progress, on_progress = _stage_progress()
    with progress:
        run_build(workspace, config, list(qa_files), on_progress=on_progress)
    _consoles.err.print(f"built the datasets ({reason or 'forced'})", soft_wrap=True)
    _print_datasets(workspace)


def _print_datasets(workspace: Workspace) -> None:
    from docfinetune.build import read_stats

    stats = read_stats(workspace)
    if not stats:
        return
    table = Table(title=f"datasets ({stats['qa']['generator']} Q&A, built {stats['built_at']})")
    for column in ("set", "facts", "rows", "tokens"):
        table.add_column(column, justify="left" if column == "set" else "right")
    table.add_row("continued pretraining", "", str(stats["cpt"]["records"]), f"{stats['cpt']['tokens']:,}")
    for name, split in stats["splits"].items():
        table.add_row(f"Q&A {name}", str(split["facts"]), str(split["pairs"]), f"{split['tokens']:,}")
    qa = stats["qa"]
    dropped = ", ".join(f"{k} {v}" for k, v in qa["dropped"].items()) or "none"
    table.caption = (f"Q&A generated {qa['generated']}, yours {qa['user_rows']}, kept {qa['kept']}; "
                     f"dropped: {dropped}")
    _consoles.out.print(table)


@main.command()
@click.option("--resume", is_flag=True, help="Continue the latest (or --run-id) interrupted run from its last checkpoint.")
@click.option("--run-id", default=None, help="Name of the run (default: the UTC time).")
@pipeline_option
@config_options("model", ModelConfig)
@config_options("lora", LoRAConfig)
@config_options("train", TrainConfig)
@click.pass_context
def train(ctx: click.Context, resume: bool, run_id: str | None, pipeline_name: str, **flags: Any) -> None:
    """Fine-tune a LoRA adapter on the built datasets; evaluate and keep every checkpoint; select one.

    Builds the datasets first when they are missing or stale.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from docfinetune.train import train as run_train

    overrides = _overrides(flags)
    config = load_pipeline(pipeline_name, overrides)
    if resume and overrides:
        _consoles.err.print("warning: --resume uses the run's own settings; the other flags are ignored")
    workspace: Workspace = ctx.obj["workspace"]
    progress = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("loss {task.fields[loss]}  {task.fields[speed]} tok/s"),
                        TimeRemainingColumn(), console=_consoles.err)
    state: dict[str, Any] = {}

    def on_event(kind: str, data: dict) -> None:
        if kind == "start":
            for warning in data.get("warnings", []):
                _print_problem("warning", warning)  # progress.console is this same stderr console
            progress.console.print(
                f"run {data['run_id']}: {data['examples']} examples, {data['tokens']:,} tokens, "
                f"{data['total_steps']} steps" + (f", resumed at step {data['resumed_from_step']}"
                                                 if data.get("resumed_from_step") else ""), soft_wrap=True)
            state["task"] = progress.add_task("train", total=data["total_steps"], loss="-", speed="-",
                                              completed=data.get("resumed_from_step") or 0)
        elif kind == "step":
            progress.update(state["task"], completed=data["step"], loss=f"{data['loss']:.3f}",
                            speed=f"{data['tokens_per_s']:,.0f}")
        elif kind == "eval":
            accuracy = "-" if data.get("accuracy") is None else f"{data['accuracy']:.1%} ({data['correct']}/{data['questions']})"
            val = "-" if data.get("val_loss") is None else f"{data['val_loss']:.3f}"
            peak = f", GPU peak {data['peak_gpu_gib']:.1f} GiB" if data.get("peak_gpu_gib") else ""
            progress.console.print(f"step {data['step']}: val loss {val}, accuracy {accuracy}{peak}")

    with progress:
        run_dir = run_train(workspace, config, resume=resume, run_id=run_id, on_event=on_event)
    _print_selection(run_dir)


def _print_selection(run_dir: Path) -> None:
    selection = json.loads((run_dir / "selection.json").read_text(encoding="utf-8"))
    table = Table(title=f"checkpoints of run {selection['run_id']} ({selection['rule']})")
    for column in ("step", "epoch", "train loss", "val loss", "accuracy", ""):
        table.add_column(column, justify="right")

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    chosen = selection["selected"]["step"] if selection.get("selected") else None
    for c in selection["checkpoints"]:
        table.add_row(str(c["step"]), fmt(c.get("epoch"), ".2f"), fmt(c.get("train_loss"), ".3f"),
                      fmt(c.get("val_loss"), ".3f"), fmt(c.get("accuracy"), ".1%"),
                      "[bold green]selected[/]" if c["step"] == chosen else "")
    table.caption = f"{selection['reason']}; curves: {run_dir / 'curves.png'}"
    _consoles.out.print(table)


@main.command()
@click.argument("question")
@click.option("--checkpoint", default=None, help="A step or checkpoint folder of the run (default: the selected one).")
@click.option("--base", is_flag=True, help="Answer with the untuned base model, for comparison.")
@click.option("--sources", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also list the N chunks BM25 ranks best, with document and page.")
@click.option("--run", "run_id", default=None, help="A run id under runs/ (default: the latest).")
@pipeline_option
@click.pass_context
def ask(ctx: click.Context, question: str, checkpoint: str | None, base: bool, sources: int,
        run_id: str | None, pipeline_name: str) -> None:
    """Answer QUESTION with the selected checkpoint, streaming the answer."""
    from docfinetune.ask import ask as run_ask

    result = run_ask(ctx.obj["workspace"], question, checkpoint=checkpoint, base=base, sources=sources,
                     on_token=lambda piece: click.echo(piece, nl=False),
                     config=load_pipeline(pipeline_name) if base else None, run_id=run_id)
    click.echo()
    who = result.checkpoint if result.step is None else f"run {result.run_id}, step {result.step}"
    _consoles.err.print(f"[dim]{who}; first token after {result.seconds_to_first_token or 0:.1f} s[/]",
                        soft_wrap=True)
    for chunk, score in result.sources:
        pages = f"{chunk.page_start}" if chunk.page_start == chunk.page_end else f"{chunk.page_start}-{chunk.page_end}"
        _consoles.out.print(f"[bold]{chunk.doc_id}[/], page {pages}, {chunk.heading or 'no heading'} "
                            f"(BM25 {score:.1f}):", soft_wrap=True)
        _consoles.out.print(f"  {chunk.text}", soft_wrap=True, highlight=False)


@main.command(name="eval")
@click.option("--questions", "questions_file", type=click.Path(path_type=Path), default=None,
              help="JSONL of question/answer (optional field, title/document) instead of the held-out test facts.")
@click.option("--with-test/--no-test", "include_test", default=None,
              help="Also ask the held-out Q&A-test questions (default: only when no --questions file).")
@click.option("--run", "run_id", default=None, help="Run to evaluate (default: the latest).")
@click.option("--checkpoint", type=int, default=None, help="Checkpoint step (default: the selected one).")
@click.option("--systems", default="base,base+rag,finetuned,finetuned+rag", show_default=True,
              help="Comma-separated systems to compare.")
@pipeline_option
@config_options("eval", EvalConfig)
@click.pass_context
def evaluate_command(ctx: click.Context, questions_file: Path | None, include_test: bool | None,
                     run_id: str | None, checkpoint: int | None, systems: str, pipeline_name: str,
                     **flags: Any) -> None:
    """Did fine-tuning beat retrieval? Base vs RAG vs fine-tuned, with memorization and
    groundedness audits; writes reports/<time>.{json,md,png}."""
    from docfinetune.evaluate import evaluate
    from docfinetune.evaluate.report import summary_table

    config = load_pipeline(pipeline_name, _overrides(flags))
    progress, on_progress = _stage_progress()
    with progress:
        report = evaluate(ctx.obj["workspace"], config=config, questions_file=questions_file,
                          include_test=include_test, run_id=run_id, checkpoint=checkpoint,
                          systems=systems, on_progress=on_progress)
    _consoles.out.print(summary_table(report))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show what the workspace holds."""
    workspace: Workspace = ctx.obj["workspace"]
    summary = workspace.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    if not workspace.root.exists():
        _consoles.out.print(f"{workspace.root}: no workspace yet; run `docfinetune ingest FILE...`", soft_wrap=True)
        return
    docs = summary["documents"]
    table = Table(title=f"{len(docs)} document(s)", caption=f"workspace: {workspace.root}")
    table.add_column("document", no_wrap=True, max_width=36)
    table.add_column("title", no_wrap=True, max_width=30)
    for column in ("pages", "chunks", "characters"):
        table.add_column(column, justify="right")
    for d in docs:
        table.add_row(d["doc_id"], d["title"], str(d["pages"]), str(d["chunks"]), f"{d['chars']:,}")
    totals = summary["totals"]
    table.add_section()
    table.add_row("total", "", str(totals["pages"]), str(totals["chunks"]), f"{totals['chars']:,}")
    _consoles.out.print(table)
    _print_datasets(workspace)


@main.command(name="config")
@pipeline_option
def show_config(pipeline_name: str) -> None:
    """Print a pipeline's resolved settings as YAML."""
    import yaml

    config = load_pipeline(pipeline_name)
    click.echo(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


if __name__ == "__main__":
    main()
