"""The command line: parses, dispatches to each stage's function, and prints. Nothing else.

Library code raises typed errors; here they become one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click
from rich.markup import escape

from docfinetune import __version__
from docfinetune.core.config import (
    DEFAULT_WORKSPACE,
    WORKSPACE_ENV,
    BuildConfig,
    EvalConfig,
    ExportConfig,
    GenerationConfig,
    IngestConfig,
    LLMQAConfig,
    LoRAConfig,
    ModelConfig,
    RetrievalConfig,
    TrainConfig,
    load_pipeline,
    section_fields,
)
from docfinetune.core.errors import ConfigError, DiskFullError, DocfinetuneError, IngestFailed
from docfinetune.core.workspace import DISK_FULL_ERRNOS, Workspace
from docfinetune.display import consoles, print_problem

EXIT_BAD_INPUT = 2
COMMAND_LINE = "the command line"  # what a bad flag value is said of (not the pipeline file)


class _Group(click.Group):
    """Turns DocfinetuneError into a one-line message and exit code 2 (never a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IngestFailed as failure:
            for bad in failure.failures:
                print_problem("error", bad)
            if ctx.meta.get("inputs", 0) > 1:
                consoles.err.print(f"{len(failure.failures)} input(s) failed; nothing was ingested and the "
                          "workspace is unchanged (--keep-going ingests the good ones)", soft_wrap=True)
            sys.exit(EXIT_BAD_INPUT)
        except DocfinetuneError as error:
            # one line even when a library's message spans several (yaml's points at the column)
            print_problem("error", " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__)
            sys.exit(EXIT_BAD_INPUT)
        except OSError as error:
            if error.errno not in DISK_FULL_ERRNOS:  # a write outside core/workspace.py's (a library's)
                raise
            print_problem("error", DiskFullError(error.filename or "a file"))
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            consoles.err.print("interrupted; nothing half-written was kept")
            sys.exit(130)


def config_options(section: str, section_type: type, flag_prefix: str = "", one_line_errors: bool = False) -> Callable:
    """Add one `--flag` per plain field of a config section (nested sections are skipped);
    the help text comes from the field, and the default shown is the field's, which is the
    `default` pipeline's value (pipelines/default.yaml sets no field). Flags stay None unless
    given, so the chosen pipeline decides. A list field takes a comma-separated value.
    `section` may be dotted ("build.llm"). With `one_line_errors` a value outside a field's
    choices is reported by the config's check (one line, exit 2), not by click's usage text."""

    def decorate(command: Callable) -> Callable:
        for spec in reversed(section_fields(section_type)):
            if spec.is_section:
                continue
            flag = f"--{flag_prefix}{spec.name.replace('_', '-')}"
            key = f"{section.replace('.', '__')}__{spec.name}"
            shown = ",".join(spec.default) if spec.is_list else spec.default
            help_text = f"{spec.help} [default: {shown}]"
            if spec.type is bool:
                command = click.option(f"{flag}/--no-{flag[2:]}", key, default=None, help=help_text)(command)
            elif spec.is_list:
                command = click.option(flag, key, type=str, default=None, help=help_text)(command)
            else:
                kind = click.Choice(spec.choices) if spec.choices and not one_line_errors else spec.type
                command = click.option(flag, key, type=kind, default=None, help=help_text)(command)
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
    if ctx.invoked_subcommand not in (None, "config", "ingest"):  # ingest recovers under its lock
        # Finish or undo a document or datasets swap that a crash interrupted, before any
        # command reads the workspace (one listing when nothing is wrong).
        ctx.obj["workspace"].repair(ctx.invoked_subcommand)


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
    from docfinetune.display import ingest_table, progress_bars
    from docfinetune.ingest import ingest as run_ingest

    config = load_pipeline(pipeline_name, _overrides(flags), COMMAND_LINE).ingest
    workspace: Workspace = ctx.obj["workspace"]
    ctx.meta["inputs"] = len(paths)
    progress, on_progress = progress_bars(unit="pages", label=lambda path: path.name[:40])
    with progress:
        results = run_ingest(paths, workspace, config, password=password,
                             keep_going=keep_going, on_progress=on_progress)
    consoles.out.print(ingest_table(workspace.root, results))
    for r in results:
        for warning in r.warnings:
            print_problem("warning", f"{r.path}: {warning}")
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print_problem("error", f"{r.path}: {r.error}")
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
@config_options("retrieval", RetrievalConfig, flag_prefix="retrieval-")
@click.pass_context
def build(ctx: click.Context, qa_files: tuple[Path, ...], force: bool, pipeline_name: str,
          **flags: Any) -> None:
    """Turn the ingested chunks into continued-pretraining text and Q&A, split by fact.

    The `llm` generator is configured with the --generator-* flags (a local model with
    --generator-model, or an OpenAI-compatible endpoint with --generator-url).
    """
    from docfinetune.build import build as run_build
    from docfinetune.build import datasets_stale
    from docfinetune.core.errors import BadInputError
    from docfinetune.display import progress_bars

    config = load_pipeline(pipeline_name, _overrides(flags), COMMAND_LINE)
    workspace: Workspace = ctx.obj["workspace"]
    for path in qa_files:  # checked before "up to date": a missing file is never skipped
        if not path.is_file():
            raise BadInputError(path, "no such file" if not path.exists() else "not a file")
    reason = datasets_stale(workspace, config, list(qa_files))
    if reason is None and not force:
        consoles.out.print("datasets are up to date (use --force to rebuild)")
        _print_datasets(workspace)
        return
    progress, on_progress = progress_bars()
    with progress:
        run_build(workspace, config, list(qa_files), on_progress=on_progress)
    consoles.err.print(escape(f"built the datasets ({reason or 'forced'})"), soft_wrap=True)
    _print_datasets(workspace)


def _print_datasets(workspace: Workspace) -> None:
    from docfinetune.display import datasets_table

    stats = workspace.read_stats()
    if stats:
        consoles.out.print(datasets_table(stats))


@main.command()
@click.option("--resume", is_flag=True, help="Continue the latest (or --run-id) interrupted run from its last checkpoint.")
@click.option("--run-id", default=None, help="Name of the run (default: the UTC time).")
@click.option("--num-gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train on N GPUs of this machine: starts this command under `accelerate launch` with N "
                   "processes (train.strategy: ddp or fsdp says how they share the work).")
@pipeline_option
@config_options("model", ModelConfig)
@config_options("generation", GenerationConfig)
@config_options("lora", LoRAConfig)
@config_options("train", TrainConfig)
@click.pass_context
def train(ctx: click.Context, resume: bool, run_id: str | None, num_gpus: int, pipeline_name: str,
          **flags: Any) -> None:
    """Fine-tune a LoRA adapter on the built datasets; evaluate and keep every checkpoint; select one.

    Builds the datasets first when they are missing or stale.
    """
    from docfinetune.core import distributed
    from docfinetune.core.models import resolve_device
    from docfinetune.core.runs import SELECTION_FILE
    from docfinetune.display import progress_bars, selection_table, train_events
    from docfinetune.pipeline import fresh_datasets
    from docfinetune.train import resume_point
    from docfinetune.train import train as run_train

    overrides = _overrides(flags)
    config = load_pipeline(pipeline_name, overrides, COMMAND_LINE)
    resolve_device(config.model)  # a GPU recipe on a machine without one: said before anything is built
    if num_gpus > 1 and distributed.world_size() == 1:
        sys.exit(_launch(num_gpus))
    main = distributed.is_main()
    if resume and overrides and main:
        print_problem("warning", "--resume uses the run's own settings; the other flags are ignored")
    workspace: Workspace = ctx.obj["workspace"]
    if main:
        building, on_progress = progress_bars()
        with building:  # the datasets first, when missing or stale
            fresh_datasets(workspace, resume_point(workspace, run_id)[0].config if resume else config, on_progress)
    distributed.barrier()  # the other processes read the datasets the main one has made
    progress, _ = progress_bars(transient=False, fields="loss {task.fields[loss]}  {task.fields[speed]} tok/s")
    with progress:
        run_dir = run_train(workspace, config, resume=resume, run_id=run_id, on_event=train_events(progress))
    if main:
        consoles.out.print(selection_table(run_dir, SELECTION_FILE))


def _launch(num_gpus: int) -> int:
    """This `train` command again under `accelerate launch` with `num_gpus` processes, one per
    GPU (accelerate sets RANK/WORLD_SIZE, and each process picks its GPU); returns its exit code."""
    import subprocess

    import torch

    found = torch.cuda.device_count()
    if found < num_gpus:
        raise ConfigError(f"train --num-gpus {num_gpus}: this machine has {found} CUDA GPU{'s' * (found != 1)}")
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):  # the same command line, less --num-gpus
        if arg == "--num-gpus":
            del argv[i:i + 2]
            break
        if arg.startswith("--num-gpus="):
            del argv[i]
            break
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_gpus),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "docfinetune", *argv]
    done = subprocess.run(command)
    if done.returncode:
        print_problem("error", f"train --num-gpus {num_gpus}: a training process failed (exit code "
                               f"{done.returncode}); its message is above")
    return done.returncode


@main.command()
@click.argument("question")
@click.option("--checkpoint", default=None,
              help="A step or checkpoint folder of the run (default: the selected one, then taught the held-out facts).")
@click.option("--base", is_flag=True, help="Answer with the untuned base model, for comparison.")
@click.option("--sources", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also list the N chunks BM25 ranks best, with document and page.")
@click.option("--run", "run_id", default=None, help="A run id under runs/ (default: the latest).")
@click.option("--open-book/--closed-book", "open_book", default=None,
              help="Answer with the retrieved chunks in the prompt, or without. Default: whichever the run's "
                   "last `eval` of this checkpoint measured better (closed-book before any eval).")
@pipeline_option
@click.pass_context
def ask(ctx: click.Context, question: str, checkpoint: str | None, base: bool, sources: int,
        run_id: str | None, open_book: bool | None, pipeline_name: str) -> None:
    """Answer QUESTION with the selected checkpoint, streaming the answer. QUESTION "-" reads
    questions from stdin, one a line, and answers each with the model loaded once."""
    from docfinetune.ask import Asker
    from docfinetune.display import print_sources

    started = time.perf_counter()
    if question != "-" and not question.strip():
        raise DocfinetuneError("the question is empty")
    asker = Asker(ctx.obj["workspace"], checkpoint=checkpoint, base=base, sources=sources,
                  config=load_pipeline(pipeline_name) if base else None, run_id=run_id, open_book=open_book)
    questions = (line.strip() for line in sys.stdin) if question == "-" else iter([question])
    for asked in questions:
        if not asked:
            continue
        result = asker.answer(asked, lambda piece: click.echo(piece, nl=False), started)
        click.echo()
        folder = asker.chosen.relative_path(asker.run) if asker.chosen is not None else None
        if result.step is not None:
            who = f"run {result.run_id}, step {result.step}"
        elif folder and not Path(folder).is_absolute():  # checkpoints/taught-all
            who = f"run {result.run_id}, {folder}"
        else:
            who = result.checkpoint
        mode = f"open-book, {len(result.context)} retrieved chunks" if result.open_book else "closed-book"
        consoles.err.print(f"[dim]{escape(f'{who}; {mode} ({result.why})')}; first token after "
                           f"{result.seconds_to_first_token or 0:.1f} s[/]", soft_wrap=True)
        print_sources(result.sources, result.cited)
        started = None  # the next question's time counts from when it is asked


@main.command(name="eval")
@click.option("--questions", "questions_file", type=click.Path(path_type=Path), default=None,
              help="JSONL of question/answer (optional field, title/document) instead of the held-out test facts.")
@click.option("--with-test/--no-test", "include_test", default=None,
              help="Also ask the held-out Q&A-test questions (default: only when no --questions file).")
@click.option("--run", "run_id", default=None, help="Run to evaluate (default: the latest).")
@click.option("--checkpoint", type=int, default=None,
              help="Checkpoint step (default: the selected one, then taught the held-out facts; with the Q&A-test "
                   "facts asked, the selected one).")
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
    from docfinetune.display import progress_bars
    from docfinetune.evaluate import evaluate
    from docfinetune.evaluate.report import summary_table

    config = load_pipeline(pipeline_name, _overrides(flags), COMMAND_LINE)
    progress, on_progress = progress_bars()
    with progress:
        report = evaluate(ctx.obj["workspace"], config=config, questions_file=questions_file,
                          include_test=include_test, run_id=run_id, checkpoint=checkpoint,
                          systems=systems, on_progress=on_progress)
    consoles.out.print(summary_table(report))


@main.command(name="export")
@click.option("--run-id", "--run", "run_id", default=None, help="Run to export (default: the latest).")
@click.option("--checkpoint", default=None,
              help="A step or checkpoint folder of the run (default: the selected one, then taught the held-out facts).")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Folder to create (default: exports/<run>-step<N>-<format> in the workspace); it must not exist.")
@pipeline_option
@config_options("export", ExportConfig, one_line_errors=True)
@click.pass_context
def export_command(ctx: click.Context, run_id: str | None, checkpoint: str | None, output: Path | None,
                   pipeline_name: str, **flags: Any) -> None:
    """Export a run's checkpoint for vLLM, Ollama, llama.cpp or plain transformers, with a model card.

    Built in a hidden folder beside the output and renamed into place when complete.
    """
    import time

    from docfinetune.display import progress_bars
    from docfinetune.export import export_run

    config = load_pipeline(pipeline_name, _overrides(flags), COMMAND_LINE).export
    progress, on_progress = progress_bars()
    started = time.perf_counter()
    with progress:
        folder = export_run(ctx.obj["workspace"], config, run_id=run_id, checkpoint=checkpoint, out=output,
                            on_progress=on_progress)
    size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
    consoles.out.print(escape(f"exported {config.format} to {folder} ({size_mb:,.1f} MB in "
                              f"{time.perf_counter() - started:.1f} s); its README.md is the model card"),
                       soft_wrap=True)


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
        consoles.out.print(escape(f"{workspace.root}: no workspace yet; run `docfinetune ingest FILE...`"),
                           soft_wrap=True)
        return
    from docfinetune.display import status_table

    consoles.out.print(status_table(summary))
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
