"""Reliability benchmark (issue 14): cleanup time, concurrent ingests, kill -9 at random points
of ingest, build and train, and a sweep of hostile inputs and damaged workspaces.

    nice python benchmarks/reliability.py [--sizes 120000,1000000,5000000] [--writers 6] [--rounds 3]
        [--concurrent-trials 200] [--concurrent-writers 3] [--kill-trials 100]
        [--kill-stages ingest,build,train] [--hostile-cases 200] [--seed 0]
        [--compare-with OLD_CHECKOUT] [--write-results]

- Cleanup: seconds for `clean_pages` on one page that is a single run of letters (a scanned
  table's OCR, a base64 blob), per size; and, for contrast, the quadratic hyphen pattern that
  cleanup used before, on the smaller sizes only (120k letters took ~38 s).
- Concurrency, rounds: per round, a big `docfinetune ingest` in the background and, while it
  runs, small ones one after another (up to --writers - 1), into one workspace, each its own file
  (rewritten every round, so rounds 2+ replace); counts the commands that failed, the documents
  missing, incomplete or stale (not this round's text) at the end, and leftover staging/retired
  folders. Before the workspace lock a small ingest's recovery deleted the big one's staging folder.
- Concurrency, trials: per trial, --concurrent-writers `docfinetune ingest` processes started
  at once into one workspace, each with its own file and one file they all share (every file
  rewritten per trial, so trials 2+ replace); afterwards every document must be there once,
  complete and byte-equal (pages.jsonl, chunks.jsonl) to a clean ingest of that trial's file.
- Kill -9: per stage, --kill-trials runs of the real command (a subprocess) on a copy of a
  prepared workspace, killed after a seeded uniform random time in [0, 1.1 x an uninterrupted
  run's seconds]; then, in this process, `status`, `build`, `ask` (and for train `train --resume`)
  must see a consistent state: every document complete and equal to its old or new clean
  version, none lost; datasets absent, or complete and matching their stats, and rebuilt from all
  documents; every checkpoint marked complete loadable, runs/latest a finished run; no traceback;
  no worker process of the killed command alive 3 s later.
- Hostile inputs: the README's bad inputs, seeded fuzzed PDFs and --qa-file rows, damaged
  workspace files read by status/build/ask/train --resume, ENOSPC at each write and rename of an
  ingest and a build in turn, two copies of one contract, markup in document text; counts
  tracebacks (target 0), errors that are not one line, and workspaces changed by a failed command.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
# One torch thread, here and in the commands started: on 2 cores shared with other jobs torch's
# thread pool spin-waits (a 4-step train of the tiny model: 17 s with 2 threads, 7.8 s with 1).
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results import machine, publish  # noqa: E402

from docfinetune.core.config import IngestConfig  # noqa: E402
from docfinetune.core.workspace import Workspace  # noqa: E402
from docfinetune.ingest import ingest  # noqa: E402
from docfinetune.ingest.clean import clean_pages  # noqa: E402

OLD_HYPHEN_BREAK = re.compile(r"([A-Za-z]+)-\n([a-z][A-Za-z]*)")  # before issue 14: quadratic
OLD_MAX_LETTERS = 40_000


def cleanup_rows(sizes: list[int]) -> list[str]:
    rows = ["| letters in one run | clean_pages (s) | old hyphen pattern alone (s) |", "|---:|---:|---:|"]
    for n in sizes:
        text = "a" * n
        started = time.perf_counter()
        out = clean_pages([text])
        seconds = time.perf_counter() - started
        assert out.pages == [text]
        old = "not run (quadratic)"
        if n <= OLD_MAX_LETTERS:
            started = time.perf_counter()
            OLD_HYPHEN_BREAK.sub("", text)
            old = f"{time.perf_counter() - started:.2f}"
        rows.append(f"| {n:,} | {seconds:.2f} | {old} |")
    for n in (10_000, 20_000, OLD_MAX_LETTERS):
        if n not in sizes:
            started = time.perf_counter()
            OLD_HYPHEN_BREAK.sub("", "a" * n)
            rows.append(f"| {n:,} | - | {time.perf_counter() - started:.2f} |")
    return rows


def _write_doc(path: Path, r: int, i: int, paragraphs: int) -> Path:
    body = "".join(f"Clause {k}. The party number {i} shall deliver item {k} in round {r}.\n\n"
                   for k in range(paragraphs))
    path.write_text(f"Round {r} of document {i}.\n\n{body}", encoding="utf-8")
    return path


def concurrency_rows(writers: int, rounds: int, code: Path = ROOT) -> tuple[list[str], dict]:
    """Each round: one big ingest in the background and, while it runs, small ingests one after
    another (`docfinetune ingest big & while kill -0 $!; do docfinetune ingest small; done`),
    at most `writers - 1` of them."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    totals = {"commands": 0, "failed": 0, "missing": 0, "incomplete": 0, "leftovers": 0}
    rows = ["| round | commands | failed | documents missing | incomplete | leftover staging/retired | seconds |",
            "|---:|---:|---:|---:|---:|---:|---:|"]

    def command(path: Path) -> list[str]:
        return [sys.executable, "-m", "docfinetune", "--workspace", str(ws.root), "ingest", str(path)]

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ws = Workspace(tmp_path / "ws")
        for r in range(1, rounds + 1):
            started = time.perf_counter()
            big = subprocess.Popen(command(_write_doc(tmp_path / "doc0.txt", r, 0, 300_000)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code)
            time.sleep(1.0)  # let it get past its start (imports, recovery) into staging
            results, i = [], 1
            while big.poll() is None and i < writers:
                small = _write_doc(tmp_path / f"doc{i}.txt", r, i, 20)
                results.append(subprocess.run(command(small), stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, env=env, cwd=code).returncode)
                i += 1
            results.append(big.wait())
            seconds = time.perf_counter() - started
            failed = sum(rc != 0 for rc in results)
            present = set(ws.doc_ids())
            expected = {f"doc{k}" for k in range(i)}
            missing = len(expected - present)
            incomplete = 0
            for doc_id in expected & present:
                source = ws.read_source(doc_id) or {}
                chunks = ws.chunks_file(doc_id)
                folder = ws.document_dir(doc_id)
                if (not all((folder / name).is_file() for name in ("source.json", "pages.jsonl", "chunks.jsonl"))
                        or not source.get("chunks") or source.get("file_name") != f"{doc_id}.txt"):
                    incomplete += 1
                elif f"in round {r}." not in chunks.read_text(encoding="utf-8"):
                    incomplete += 1  # an older round's version: this round's was lost
            leftovers = sum(1 for parent in (ws.documents_dir, ws.root) if parent.is_dir()
                            for p in parent.iterdir() if p.name.startswith((".staging-", ".retired-")))
            for key, value in (("commands", len(results)), ("failed", failed), ("missing", missing),
                               ("incomplete", incomplete), ("leftovers", leftovers)):
                totals[key] += value
            rows.append(f"| {r} | {len(results)} | {failed} | {missing} | {incomplete} | {leftovers} | {seconds:.1f} |")
    return rows, totals


def _total(totals: dict) -> str:
    return (f"Total: {totals['commands']} commands, {totals['failed']} failed, {totals['missing']} documents "
            f"missing, {totals['incomplete']} incomplete or stale, {totals['leftovers']} leftover folders.")


# --------------------------------------------------------------------------- shared by the slow cases


def _cli(ws: Path, *args: object):
    """A command run in this process (imports paid once): click's Result."""
    from click.testing import CliRunner

    from docfinetune.cli import main as cli_main

    return CliRunner().invoke(cli_main, ["--workspace", str(ws), *map(str, args)])


def _problem(result, ok: tuple[int, ...] = (0,)) -> str | None:
    """What is wrong with a command's outcome: a traceback, an exit code outside `ok`, or an
    exit 2 that is not one `error:` line; None when fine."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"traceback: {type(result.exception).__name__}: {str(result.exception)[:120]}"
    if result.exit_code not in ok:
        return f"exit {result.exit_code}: {result.stderr.strip()[:160]!r}"
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if not line.startswith("waiting for")]
        if len(lines) != 1 or not lines[0].startswith("error:"):
            return f"not one line: {result.stderr[:160]!r}"
    return None


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes, less the lock files (any command rewrites the holder)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"/" for p in sorted(root.rglob("*"))
            if not p.name.startswith(".lock")}


def _leftovers(ws: Workspace) -> list[str]:
    return [p.name for parent in (ws.documents_dir, ws.root) if parent.is_dir() for p in parent.iterdir()
            if p.name.startswith((".staging-", ".retired-"))]


def _document_bytes(ws: Workspace) -> dict[str, bytes]:
    """doc id -> its pages.jsonl and chunks.jsonl (what a clean ingest must reproduce byte for byte)."""
    return {d: b"".join((ws.document_dir(d) / name).read_bytes() for name in ("pages.jsonl", "chunks.jsonl"))
            for d in ws.doc_ids()}


def _incomplete(ws: Workspace) -> list[str]:
    """Documents that `doc_ids` lists but that lack a file or whose chunks disagree with source.json."""
    bad = []
    for doc_id in ws.doc_ids():
        folder = ws.document_dir(doc_id)
        if not all((folder / n).is_file() for n in ("source.json", "pages.jsonl", "chunks.jsonl")):
            bad.append(doc_id)
            continue
        lines = [x for x in ws.chunks_file(doc_id).read_text(encoding="utf-8").splitlines() if x.strip()]
        if len(lines) != (ws.read_source(doc_id) or {}).get("chunks"):
            bad.append(doc_id)
    return bad


def _datasets_problem(ws: Workspace, documents: int | None = None) -> str | None:
    """None when datasets/ is absent or complete: every file there, rows as stats.json counts
    them, built from `documents` documents (when given)."""
    if not ws.datasets_dir.is_dir():
        return None if documents is None else "no datasets"
    stats = ws.read_stats()
    if stats is None:
        return "datasets/ without stats.json"
    counts = {"cpt": stats["cpt"]["records"], **{f"qa_{k}": v["pairs"] for k, v in stats["splits"].items()}}
    for name, expected in counts.items():
        rows = len(ws.read_dataset(name))
        if rows != expected:
            return f"{name}: {rows} rows, stats.json says {expected}"
    if documents is not None and stats["documents"] != documents:
        return f"built from {stats['documents']} of {documents} documents"
    return None


def _runs_problem(ws: Workspace) -> str | None:
    """A checkpoint marked complete (metrics.json) without its adapter, or runs/latest naming a
    run that has not finished (no selection.json or its selected checkpoint missing)."""
    runs = ws.root / "runs"
    if not runs.is_dir():
        return None
    for metrics in runs.glob("*/checkpoints/*/metrics.json"):
        if not all((metrics.parent / n).is_file() and (metrics.parent / n).stat().st_size
                   for n in ("adapter_config.json", "adapter_model.safetensors")):
            return f"{metrics.parent.relative_to(ws.root)}: marked complete without its adapter"
    latest = runs / "latest"
    if latest.is_file():
        run = runs / latest.read_text(encoding="utf-8").strip()
        if not (run / "selection.json").is_file():
            return f"runs/latest names {run.name}, which has no selection.json"
        selected = json.loads((run / "selection.json").read_text(encoding="utf-8")).get("selected") or {}
        if selected and not (run / selected.get("path", "")).is_dir():
            return f"{run.name}: the selected checkpoint {selected.get('path')} is missing"
    return None


class Fixtures:
    """Inputs built once under `root`: a tiny random model, a pipeline that trains it for 4 steps
    on CPU, a 3-page and a 30-page PDF (ingest's worker pool starts at 24 pages), text files in an
    old and a new version (the new one replaces), and a clean ingest of each as reference."""

    def __init__(self, root: Path) -> None:
        import yaml

        from tests.conftest import CONTRACT_PAGES, write_pdf
        from tests.tiny_model import build_tiny_mistral, build_tiny_tokenizer

        self.root = root
        self.model = build_tiny_mistral(root / "tiny-model", build_tiny_tokenizer(root / "tiny-tokenizer"))
        self.pipeline = root / "reliability.yaml"
        # short everything: no open-book rows or restatements, 4 steps of 2 examples, 2 questions answered
        # in 4 tokens at steps 2 and 4 (two checkpoints: a kill can land between them)
        self.pipeline.write_text(yaml.safe_dump({
            "name": "reliability", "description": "benchmarks/reliability.py: a tiny model, 4 steps on CPU",
            "model": {"base_model": str(self.model), "device": "cpu"}, "generation": {"max_new_tokens": 4},
            "build": {"open_book_share": 0.0, "augment_variants": 0},
            "train": {"max_steps": 4, "eval_every_steps": 2, "eval_max_questions": 2, "micro_batch_size": 2,
                      "max_seq_tokens": 256}}), encoding="utf-8")
        for version in ("old", "new"):
            (root / version).mkdir()
        self.contract = write_pdf(root / "old" / "contract.pdf", CONTRACT_PAGES)
        self.long = write_pdf(root / "new" / "long.pdf", [
            [f"SCHEDULE {p}", *(f"{p}.{n} The carrier shall move shipment {100 * p + n} to dock {n} within {n + p} "
                                "days." for n in range(1, 30))] for p in range(1, 31)])
        for version, days in (("old", 30), ("new", 45)):
            for name in ("a", "b"):
                _write_paragraphs(root / version / f"{name}.txt", f"Document {name}: the buyer shall pay each "
                                  f"invoice within {days} days of receiving it.", 40)
        self.reference = {}
        for version, files in (("old", ["contract.pdf", "a.txt", "b.txt"]), ("new", ["long.pdf", "a.txt", "b.txt"])):
            ws = Workspace(root / f"reference-{version}")
            ingest([root / version / f for f in files], ws, IngestConfig())
            self.reference[version] = _document_bytes(ws)

    def workspace(self, name: str, *steps: tuple) -> Workspace:
        """A workspace made by in-process commands, e.g. ("ingest", path), ("build",), ("train",)."""
        ws = Workspace(self.root / name)
        for step in steps:
            extra = ["--pipeline", self.pipeline] if step[0] in ("build", "train") else []
            result = _cli(ws.root, *step, *extra)
            assert _problem(result) is None, (step, _problem(result), result.output)
        return ws


def _write_paragraphs(path: Path, sentence: str, paragraphs: int) -> Path:
    path.write_text("".join(f"{k}. {sentence}\\n\\n" for k in range(1, paragraphs + 1)), encoding="utf-8")
    return path


def _run_and_kill(command: list[str], after_s: float) -> tuple[bool, list[int]]:
    """Run `command` in its own process and SIGKILL it after `after_s` seconds unless it ended
    first. Returns (killed, pids of its child processes still running 3 s after the kill; they
    are then killed too, so the next trial starts clean)."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    children: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + after_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            children.update((c.pid, c) for c in psutil.Process(process.pid).children(recursive=True))
        except psutil.Error:
            pass
        time.sleep(0.02)
    killed = process.poll() is None
    if killed:
        process.kill()
    process.wait()

    def running(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    give_up = time.monotonic() + 3
    while any(map(running, children.values())) and time.monotonic() < give_up:
        time.sleep(0.1)
    orphans = [pid for pid, p in children.items() if running(p)]
    for pid in orphans:
        children[pid].kill()
    return killed, orphans


# --------------------------------------------------------------------------- concurrent ingest trials


def concurrent_trials(fx: Fixtures, trials: int, writers: int, rng: random.Random) -> tuple[list[str], dict]:
    """Each trial: `writers` ingest processes started together into one workspace, process i
    with its own file w<i>.txt and the shared file shared.txt (in a random order); every file
    holds this trial's text. Afterwards: every command exit 0, one document per file, each equal
    to a clean ingest of this trial's file, nothing left in staging."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folder = fx.root / "concurrent"
    folder.mkdir()
    ws = Workspace(folder / "ws")
    totals = {"trials": trials, "commands": 0, "failed": 0, "missing": 0, "wrong": 0, "extra": 0, "leftovers": 0}
    notes: list[str] = []
    started = time.perf_counter()
    for t in range(trials):
        files = [_write_paragraphs(folder / f"w{i}.txt", f"Trial {t}: writer {i} delivers item {i}.",
                                   rng.randint(5, 400)) for i in range(writers)]
        shared = _write_paragraphs(folder / "shared.txt", f"Trial {t}: every writer shares this clause.",
                                   rng.randint(5, 400))
        processes = []
        for own in files:
            inputs = [own, shared] if rng.random() < 0.5 else [shared, own]
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "docfinetune", "--workspace", str(ws.root), "ingest", *map(str, inputs)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT))
        for process in processes:
            _, err = process.communicate()
            totals["commands"] += 1
            if process.returncode != 0:
                totals["failed"] += 1
                notes.append(f"trial {t}: exit {process.returncode}: {err.strip()[:160]}")
        reference = Workspace(folder / f"reference-{t}")
        ingest([*files, shared], reference, IngestConfig())
        expected, present = _document_bytes(reference), _document_bytes(ws)
        shutil.rmtree(reference.root)
        totals["missing"] += len(expected.keys() - present.keys())
        totals["extra"] += len(present.keys() - expected.keys())  # a second id for one file
        wrong = [d for d in expected.keys() & present.keys() if expected[d] != present[d]]
        totals["wrong"] += len(wrong) + len(_incomplete(ws))
        totals["leftovers"] += len(_leftovers(ws))
        if wrong or expected.keys() != present.keys():
            notes.append(f"trial {t}: wrong {wrong}, ids {sorted(present)} (expected {sorted(expected)})")
    totals["seconds"] = time.perf_counter() - started
    rows = ["| trials | writers per trial | commands | failed | documents missing | incomplete or not equal to "
            "a clean ingest | extra ids | leftover staging/retired | seconds |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {trials} | {writers} | {totals['commands']} | {totals['failed']} | {totals['missing']} | "
            f"{totals['wrong']} | {totals['extra']} | {totals['leftovers']} | {totals['seconds']:.0f} |"]
    return rows + _notes(notes), totals


def _notes(notes: list[str], most: int = 5) -> list[str]:
    if not notes:
        return []
    more = [f"- ... and {len(notes) - most} more"] if len(notes) > most else []
    return ["", *(f"- {n}" for n in notes[:most]), *more]


# --------------------------------------------------------------------------- kill -9 trials

QUESTION = "How much is the monthly fee?"


def _check_after_ingest(fx: Fixtures, ws: Workspace, command: list[str]) -> list[str]:
    problems = []
    old, new = fx.reference["old"], fx.reference["new"]
    if problem := _problem(_cli(ws.root, "status", "--json")):
        problems.append(f"status: {problem}")
    present = _document_bytes(ws)
    lost = old.keys() - present.keys()
    if lost:
        problems.append(f"lost {sorted(lost)}")
    for doc_id, data in present.items():
        if data not in (old.get(doc_id), new.get(doc_id)):
            problems.append(f"{doc_id}: neither its old nor its new version")
    if bad := _incomplete(ws):
        problems.append(f"incomplete {bad}")
    if problem := _problem(_cli(ws.root, "build", "--pipeline", fx.pipeline)):
        problems.append(f"build: {problem}")
    elif problem := _datasets_problem(ws, len(present)):
        problems.append(f"datasets: {problem}")
    if problem := _problem(_cli(ws.root, "ask", QUESTION, "--base", "--sources", 2, "--pipeline", fx.pipeline)):
        problems.append(f"ask: {problem}")
    if problem := _problem(_cli(ws.root, *command)):
        problems.append(f"ingest again: {problem}")
    final = _document_bytes(ws)
    if final != {**old, **new}:
        problems.append(f"after ingesting again: {sorted(d for d in final if final[d] != {**old, **new}.get(d))}")
    if _leftovers(ws):
        problems.append(f"leftovers after ingesting again: {_leftovers(ws)}")
    return problems


def _check_after_build(fx: Fixtures, ws: Workspace, had_datasets: bool) -> list[str]:
    problems = []
    documents = len(ws.doc_ids())
    result = _cli(ws.root, "status", "--json")
    if problem := _problem(result):
        problems.append(f"status: {problem}")
    elif problem := _datasets_problem(ws):
        problems.append(f"datasets seen after the kill: {problem}")
    elif had_datasets and not ws.datasets_dir.is_dir():
        problems.append("the old datasets were lost")
    if problem := _problem(_cli(ws.root, "build", "--pipeline", fx.pipeline)):
        problems.append(f"build: {problem}")
    elif problem := _datasets_problem(ws, documents):
        problems.append(f"datasets after build: {problem}")
    from docfinetune.build import datasets_stale
    from docfinetune.core.config import load_pipeline

    if datasets_stale(ws, load_pipeline(str(fx.pipeline))) is not None:
        problems.append("build left stale datasets")
    if problem := _problem(_cli(ws.root, "ask", QUESTION, "--base", "--sources", 2, "--pipeline", fx.pipeline)):
        problems.append(f"ask: {problem}")
    if _leftovers(ws):
        problems.append(f"leftovers after build: {_leftovers(ws)}")
    return problems


def _check_after_train(fx: Fixtures, ws: Workspace) -> list[str]:
    from docfinetune.core.errors import DocfinetuneError
    from docfinetune.train import resume_point

    problems = []
    stats = ws.stats_file.read_bytes()
    if problem := _problem(_cli(ws.root, "status")):
        problems.append(f"status: {problem}")
    if problem := _runs_problem(ws):
        problems.append(problem)
    result = _cli(ws.root, "build", "--pipeline", fx.pipeline)
    if problem := _problem(result):
        problems.append(f"build: {problem}")
    elif ws.stats_file.read_bytes() != stats:
        problems.append("build rebuilt datasets that were up to date")
    try:
        run, _ = resume_point(ws)
    except DocfinetuneError:
        run = None  # nothing to resume: `train --resume` must say so in one line
    result = _cli(ws.root, "train", "--resume")
    if problem := _problem(result, ok=(0,) if run else (2,)):
        problems.append(f"train --resume ({'resumable' if run else 'nothing to resume'}): {problem}")
    elif run and not (run.path / "selection.json").is_file():
        problems.append(f"train --resume did not finish {run.path.name}")
    if problem := _runs_problem(ws):
        problems.append(f"after train --resume: {problem}")
    if problem := _problem(_cli(ws.root, "ask", QUESTION, "--sources", 1)):
        problems.append(f"ask: {problem}")
    return problems


def kill_trials(fx: Fixtures, stage: str, trials: int, rng: random.Random) -> tuple[str, dict, list[str]]:
    """`trials` runs of one stage's command on a copy of a prepared workspace, each killed at a
    seeded random time, then checked (`_check_after_<stage>`)."""
    python = [sys.executable, "-m", "docfinetune"]
    if stage == "ingest":
        bases = [fx.workspace("base-ingest", ("ingest", fx.contract, fx.root / "old" / "a.txt",
                                              fx.root / "old" / "b.txt"))]
        args = ["ingest", fx.long, fx.root / "new" / "a.txt", fx.root / "new" / "b.txt", "--workers", 2]
    elif stage == "build":
        old_a, old_b = fx.root / "old" / "a.txt", fx.root / "old" / "b.txt"
        bases = [fx.workspace("base-build-first", ("ingest", fx.contract, old_a, old_b)),  # no datasets yet
                 fx.workspace("base-build-stale", ("ingest", fx.contract, old_a), ("build",), ("ingest", old_b))]
        args = ["build", "--pipeline", fx.pipeline]
    else:
        bases = [fx.workspace("base-train", ("ingest", fx.contract, fx.root / "old" / "a.txt"), ("build",), ("train",))]
        args = ["train", "--pipeline", fx.pipeline]
    copies = fx.root / f"kill-{stage}"

    def fresh(t: int) -> Workspace:
        ws = Workspace(copies / str(t))
        shutil.copytree(bases[t % len(bases)].root, ws.root)
        return ws

    durations = []
    for t in range(2):  # an uninterrupted run, twice: the kill times are drawn from its length
        ws = fresh(t)
        started = time.perf_counter()
        _run_and_kill([*python, "--workspace", str(ws.root), *map(str, args)], 600)
        durations.append(time.perf_counter() - started)
        shutil.rmtree(ws.root)
    full_s = max(durations)
    totals = {"trials": trials, "killed": 0, "inconsistent": 0, "orphans": 0, "tracebacks": 0}
    notes: list[str] = []
    started = time.perf_counter()
    for t in range(trials):
        ws = fresh(t)
        had_datasets = ws.datasets_dir.is_dir()
        killed, orphans = _run_and_kill([*python, "--workspace", str(ws.root), *map(str, args)],
                                        rng.uniform(0, 1.1 * full_s))
        totals["killed"] += killed
        totals["orphans"] += len(orphans)
        if stage == "ingest":
            problems = _check_after_ingest(fx, ws, args)
        elif stage == "build":
            problems = _check_after_build(fx, ws, had_datasets)
        else:
            problems = _check_after_train(fx, ws)
        if orphans:
            problems.append(f"{len(orphans)} processes of the killed command still alive")
        if problems:
            totals["inconsistent"] += 1
            totals["tracebacks"] += sum("traceback" in p for p in problems)
            notes.append(f"{stage} trial {t}: {'; '.join(problems)}")
            print(notes[-1], file=sys.stderr, flush=True)
        shutil.rmtree(ws.root)
    totals["seconds"] = time.perf_counter() - started
    row = (f"| {stage} | {trials} | {full_s:.1f} | {totals['killed']} | {trials - totals['killed']} | "
           f"{totals['inconsistent']} | {totals['orphans']} | {totals['tracebacks']} | {totals['seconds']:.0f} |")
    return row, totals, notes


# --------------------------------------------------------------------------- hostile inputs


def _fuzzed_pdf(data: bytes, rng: random.Random) -> bytes:
    """One of: bytes flipped, a range zeroed, cut short (end marker put back), garbage inserted."""
    data = bytearray(data)
    kind = rng.choice(["flip", "zero", "cut", "insert"])
    if kind == "flip":
        for _ in range(rng.randint(1, 50)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "zero":
        start = rng.randrange(len(data))
        data[start:start + rng.randint(1, len(data) // 2)] = bytes(rng.randint(1, len(data) // 2))
    elif kind == "cut":
        data = data[: rng.randrange(16, len(data))] + b"\n%%EOF\n"
    else:
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
    return bytes(data)


def _fuzzed_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["str", "int", "float", "bool", "null", "list", "dict"] if depth < 4 else ["str", "int", "null"])
    if kind == "str":
        return rng.choice(["", " ", "What is the fee?", "$12,500", "[/B] [insert date]", "<eos>", "\u0000", "\ud800",
                           "x" * rng.randint(1, 50_000)])
    if kind in ("list", "dict"):
        items = [_fuzzed_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        return items if kind == "list" else {rng.choice(KEYS): v for v in items}
    return {"int": rng.randint(-5, 10**20), "float": rng.random(), "bool": True, "null": None}[kind]


KEYS = ["question", "answer", "instruction", "input", "output", "fact_id", "doc_id", "field", "extra"]


def _fuzzed_qa_file(path: Path, rng: random.Random) -> Path:
    lines = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.1:
            depth = rng.choice([100, 5_000, 200_000])
            lines.append('{"question": ' + "[" * depth + "]" * depth + ', "answer": "x"}')
        elif kind < 0.2:
            lines.append(rng.choice(['{"question": "a", "answer": ', "NaN", '{"question": 1e999}', "]", '"just a string"']))
        else:
            row = {key: _fuzzed_value(rng) for key in rng.sample(KEYS, rng.randint(0, 5))}
            lines.append(json.dumps(row, ensure_ascii=rng.random() < 0.5))
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:
        data += b"\n\xff\xfe not utf-8"
    path.write_bytes(data)
    return path


DAMAGE = {"truncated": lambda b: b[: len(b) // 2], "garbage": lambda b: bytes(range(256)) * 4, "empty": lambda b: b""}


def _disk_full_at(k: int, names: tuple[str, ...] = ("fsync", "replace")) -> tuple[dict, Callable]:
    """Patch os.fsync and os.replace so that the k-th call (counted over both) raises ENOSPC
    (k=0: count only). Returns the counter and the undo."""
    real = {name: getattr(os, name) for name in names}
    count = {"calls": 0}

    def patched(name):
        def call(*args, **kwargs):
            count["calls"] += 1
            if count["calls"] == k:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real[name](*args, **kwargs)
        return call

    for name in names:
        setattr(os, name, patched(name))
    return count, lambda: [setattr(os, name, fn) for name, fn in real.items()]


def hostile_sweep(fx: Fixtures, cases: int, rng: random.Random) -> tuple[list[str], dict, list[str]]:
    """Every case is a command run in this process on a copy of a prepared workspace; `expect`
    is "error" (exit 2, one line, workspace unchanged) or "any" (also exit 0)."""
    from tests.test_bad_input import BAD_INPUTS

    base = fx.workspace("base-hostile", ("ingest", fx.contract, fx.root / "old" / "a.txt"), ("build",), ("train",))
    [run_id] = [p.name for p in (base.root / "runs").iterdir() if p.is_dir()]
    folder = fx.root / "hostile"
    folder.mkdir()
    groups: dict[str, dict] = {}
    notes: list[str] = []

    def attempt(group: str, label: str, args: list, expect: str = "any", prepare=None, fault: int = 0) -> None:
        ws = Workspace(folder / "ws")
        if ws.root.exists():
            shutil.rmtree(ws.root)
        shutil.copytree(base.root, ws.root)
        if prepare:
            prepare(ws)
        before = _snapshot(ws.root)
        undo = _disk_full_at(fault)[1] if fault else None
        try:
            result = _cli(ws.root, *args)
        finally:
            if undo:
                undo()
        tally = groups.setdefault(group, {"cases": 0, "tracebacks": 0, "not one line": 0, "changed": 0, "other": 0})
        tally["cases"] += 1
        problem = _problem(result, ok=(2,) if expect == "error" else (0, 2))
        if problem is None and result.exit_code == 2 and _snapshot(ws.root) != before:
            problem = "workspace changed by a failed command"
        if problem:
            key = ("tracebacks" if problem.startswith("traceback") else "not one line" if problem.startswith("not one")
                   else "changed" if problem.startswith("workspace changed") else "other")
            tally[key] += 1
            notes.append(f"{group} / {label}: {problem}")
            print(notes[-1], file=sys.stderr, flush=True)

    # The README's bad inputs.
    for name, (make, _) in sorted(BAD_INPUTS.items()):
        case = folder / "bad" / name.replace(" ", "-")
        case.mkdir(parents=True)
        attempt("README bad inputs", name, ["ingest", make(case)], "error")
    # Fuzzed PDFs and --qa-file rows.
    data = fx.contract.read_bytes()
    for i in range(cases // 2):
        path = folder / "pdf" / f"fuzzed-{i}.pdf"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_fuzzed_pdf(data, rng))
        attempt("fuzzed PDFs", path.name, ["ingest", path])
    (folder / "qa").mkdir()
    for i in range(cases - cases // 2):
        path = _fuzzed_qa_file(folder / "qa" / f"fuzzed-{i}.jsonl", rng)
        attempt("fuzzed --qa-file rows", path.name, ["build", "--qa-file", path, "--pipeline", fx.pipeline])
    # Damaged workspace files, read by the commands that read them.
    run = f"runs/{run_id}"
    checkpoint = sorted((base.root / run / "checkpoints").iterdir())[-1].relative_to(base.root)
    targets = ["documents/contract/source.json", "documents/contract/pages.jsonl", "documents/contract/chunks.jsonl",
               "datasets/stats.json", "datasets/cpt.jsonl", "datasets/qa_train.jsonl", "datasets/qa_val.jsonl",
               "runs/latest", f"{run}/selection.json", f"{run}/metrics.jsonl", f"{run}/config.yaml",
               f"{checkpoint}/metrics.json", f"{checkpoint}/adapter_config.json"]
    commands = [["status"], ["build", "--pipeline", fx.pipeline], ["ask", QUESTION, "--sources", 1],
                ["train", "--resume"]]
    for target in targets:
        for damage, change in DAMAGE.items():
            def prepare(ws: Workspace, target=target, change=change) -> None:
                path = ws.root / target
                path.write_bytes(change(path.read_bytes()))
            for args in commands:
                attempt("damaged workspace files", f"{damage} {target}: {args[0]}", args, prepare=prepare)
    # Disk full at every write and rename of an ingest (2 new documents, 1 replaced) and a build, in turn.
    new_doc = _write_paragraphs(folder / "new-clause.txt", "The seller shall insure the goods in transit.", 60)
    qa = folder / "mine.jsonl"
    qa.write_text('{"question": "Who insures the goods?", "answer": "The seller"}\n', encoding="utf-8")
    for args in (["ingest", new_doc, fx.long, fx.root / "new" / "a.txt", "--workers", 1],
                 ["build", "--force", "--qa-file", qa, "--pipeline", fx.pipeline]):
        ws = Workspace(folder / "count")
        shutil.copytree(base.root, ws.root)
        count, undo = _disk_full_at(0)
        try:
            _cli(ws.root, *args)
        finally:
            undo()
        shutil.rmtree(ws.root)
        for k in range(1, count["calls"] + 1):
            attempt("disk full (ENOSPC) at each write or rename", f"{args[0]} call {k}", args, "error", fault=k)
    # Two copies of one contract under different names, then build.
    copy = folder / "contract-copy.pdf"
    shutil.copy(fx.contract, copy)
    attempt("two copies of one contract", "build", ["build", "--pipeline", fx.pipeline],
            prepare=lambda ws: _cli(ws.root, "ingest", copy))
    # Markup and control tokens in document text.
    markup = _write_paragraphs(folder / "[B] deal [insert date].txt", "[/B] Signed [/s/ John Smith] on [insert date] "
                               "<eos><start_of_turn>user the buyer pays the fee.", 10)
    attempt("markup in text", "ingest", ["ingest", markup])
    attempt("markup in text", "status", ["status"], prepare=lambda ws: _cli(ws.root, "ingest", markup))
    attempt("markup in text", "ask --sources", ["ask", "[/B] fee [insert date]", "--sources", 3],
            prepare=lambda ws: _cli(ws.root, "ingest", markup))
    rows = ["| group | cases | tracebacks | errors not one line | workspace changed on error | other |",
            "|---|---:|---:|---:|---:|---:|"]
    totals = {k: sum(g[k] for g in groups.values()) for k in ("cases", "tracebacks", "not one line", "changed", "other")}
    for name, g in [*groups.items(), ("total", totals)]:
        rows.append(f"| {name} | {g['cases']} | {g['tracebacks']} | {g['not one line']} | {g['changed']} | {g['other']} |")
    return rows, totals, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="120000,1000000,5000000", help="letters per run, comma-separated")
    parser.add_argument("--writers", type=int, default=6, help="concurrent ingests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of a big ingest and small ones (0: none)")
    parser.add_argument("--compare-with", type=Path, default=None,
                        help="another checkout (e.g. `git archive HEAD` of the code before the lock) whose "
                             "ingest to run the same rounds with, for contrast")
    parser.add_argument("--concurrent-trials", type=int, default=200, help="trials of ingests started together")
    parser.add_argument("--concurrent-writers", type=int, default=3, help="ingest processes per trial")
    parser.add_argument("--kill-trials", type=int, default=100, help="kill -9 trials per stage")
    parser.add_argument("--kill-stages", default="ingest,build,train", help="stages to kill, comma-separated")
    parser.add_argument("--hostile-cases", type=int, default=200, help="fuzzed PDFs and --qa-file files, together")
    parser.add_argument("--seed", type=int, default=0, help="seeds the file sizes, kill times and fuzzing")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    started = time.perf_counter()
    command = "nice python benchmarks/reliability.py " + " ".join(sys.argv[1:])
    sizes = [int(s) for s in args.sizes.split(",") if s]
    lines = [f"## Reliability — {date.today().isoformat()}", "", f"`{command}` on {machine()}.", "",
             "Cleanup of one page that is a single run of letters (target: 5 MB in at most 5 s):", ""]
    lines += cleanup_rows(sizes)
    if args.rounds:
        rows, totals = concurrency_rows(args.writers, args.rounds)
        lines += ["", f"Concurrent writers, {args.rounds} rounds: a big `docfinetune ingest` (300,000 paragraphs, ~20 MB) "
                  f"in the background and, while it runs, up to {args.writers - 1} small ones one after another, into "
                  "one workspace (each round rewrites every file, so later rounds replace):", ""]
        lines += rows
        lines += ["", _total(totals)]
    if args.compare_with:
        rows, totals = concurrency_rows(args.writers, args.rounds, args.compare_with.resolve())
        lines += ["", f"The same rounds with the code in `{args.compare_with}` (the commit before the lock):", "",
                  *rows, "", _total(totals), "",
                  "Without the lock the small ingests do not wait (more commands per round), and their recovery "
                  "deletes the big one's staging folder; it is lost only when that lands in the big ingest's "
                  "few-millisecond write or swap window (its atomic writes recreate a deleted folder), so this loop "
                  "rarely shows a loss. tests/test_reliability.py reproduces the deterministic case (a held "
                  "lock, a live staging folder)."]
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        fx = Fixtures(Path(tmp))
        if args.concurrent_trials:
            rows, _ = concurrent_trials(fx, args.concurrent_trials, args.concurrent_writers, rng)
            lines += ["", f"Concurrent ingests (target: 0 incomplete or lost documents): per trial "
                      f"{args.concurrent_writers} `docfinetune ingest` processes started together into one workspace, "
                      "each with its own text file and one file all of them share, every file rewritten per trial "
                      "(5 to 400 paragraphs, seeded) so later trials replace; a document counts as right when its "
                      "pages.jsonl and chunks.jsonl equal a clean ingest of that trial's file byte for byte:", "", *rows]
            print("\n".join(rows), flush=True)
        stages = [s for s in args.kill_stages.split(",") if s] if args.kill_trials else []
        if stages:
            rows = ["| stage | trials | uninterrupted run (s) | killed while running | ended before the kill | "
                    "inconsistent states | orphaned processes | tracebacks | seconds |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            notes: list[str] = []
            for stage in stages:
                row, _, stage_notes = kill_trials(fx, stage, args.kill_trials, rng)
                rows.append(row)
                notes += stage_notes
                print(row, flush=True)
            lines += ["", "Kill -9 at a seeded random time in [0, 1.1 x an uninterrupted run] of the real command "
                      "(target: 0 inconsistent states). ingest: a 30-page PDF (2 worker processes), a replaced and "
                      "a new text file into a workspace of 3 documents; build: half the trials a first build, half "
                      "a rebuild after a new document; train: a new 4-step run of a tiny random model on CPU, beside "
                      "a finished one. After each kill, in order: `status`; `build` (up to date for train); "
                      "`ask --sources` (the base model, or the latest run for train); for train `train --resume` "
                      "(must resume when a complete checkpoint exists, else one line); for ingest the same ingest "
                      "again. Inconsistent: a command's traceback or unexpected exit, a document lost, incomplete "
                      "or equal to neither its old nor its new clean ingest, datasets not matching their stats.json "
                      "or not rebuilt from every document, a checkpoint marked complete without its adapter, "
                      "runs/latest naming an unfinished run, leftovers after the next writer, or a process of the "
                      "killed command alive 3 s later:", "", *rows, *_notes(notes)]
        if args.hostile_cases:
            rows, _, notes = hostile_sweep(fx, args.hostile_cases, rng)
            lines += ["", "Hostile inputs and damaged workspaces (target: 0 tracebacks; every failure one line, exit 2, "
                      "the workspace unchanged). Each case is a command on a copy of a workspace with 2 documents, "
                      "datasets and a finished run; damaged files are truncated to half, replaced by garbage or "
                      "emptied, then read by `status`, `build`, `ask --sources 1` and `train --resume`:", "",
                      *rows, *_notes(notes)]
            print("\n".join(rows), flush=True)
    lines += ["", f"Total {time.perf_counter() - started:,.0f} s."]
    return publish("## Reliability", lines, args.write_results)

if __name__ == "__main__":
    sys.exit(main())
