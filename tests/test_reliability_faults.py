"""Issue 14, the rest of classes 9 and 10: a full disk in ingest and build, a deeply nested
--qa-file row, redirected stderr, a corrupt PDF's library warnings, ingest's workers after a
kill -9, and `ask --sources` on a workspace of one or two chunks. Each is one line and exit 2
(or the right output), with the workspace as it was."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docfinetune.core.config import IngestConfig, load_pipeline
from docfinetune.core.records import Chunk
from docfinetune.core.retrieve import BM25Index
from docfinetune.core.workspace import Workspace, read_jsonl_lines
from docfinetune.ingest import ingest
from tests.conftest import CONTRACT_PAGES, write_pdf
from tests.test_reliability_more import _one_line_error, tree_snapshot

REPO = Path(__file__).resolve().parents[1]
ALPHA = "The supplier shall deliver the goods to the buyer on the agreed delivery date.\n"
BETA = "The buyer shall pay each invoice within thirty days of receiving the invoice.\n"


def _cli(*args: object, stdin=subprocess.DEVNULL, **kwargs) -> subprocess.CompletedProcess:
    """The real command in its own process, stdout and stderr redirected (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "docfinetune", *map(str, args)], cwd=REPO, stdin=stdin,
                          capture_output=True, text=True, timeout=120, **kwargs)


# --------------------------------------------------------------------------- disk full


def _disk_full_on(monkeypatch, name: str, hit) -> list[str]:
    """Make os.<name> raise ENOSPC the first time `hit(path)`: fsync (a write's data reaching the
    disk; the path is the open file's), replace (a rename; the path is the destination) or mkdir.
    Once: undoing a failed rename frees the space it needs."""
    real = getattr(os, name)
    seen: list[str] = []

    def fake(*args, **kwargs):
        path = os.readlink(f"/proc/self/fd/{args[0]}") if name == "fsync" else str(args[1 if name == "replace" else 0])
        if hit(path) and not seen:
            seen.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, fake)
    return seen


INGEST_FAULTS = {  # where the disk fills up during an ingest, and the file the error names
    "write": ("fsync", lambda p: "/.staging-alpha-" in p and "chunks.jsonl" in p, "documents/alpha/chunks.jsonl"),
    "rename": ("replace", lambda p: "/.staging-alpha-" in p and p.endswith("pages.jsonl"),
               "documents/alpha/pages.jsonl"),
    "mkdir": ("mkdir", lambda p: "/.staging-beta-" in p, "documents/beta"),
    "swap": ("replace", lambda p: p.endswith("/documents/alpha"), "documents/alpha"),
    "second swap": ("replace", lambda p: p.endswith("/documents/beta"), "documents/beta"),  # alpha's is undone
}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the open file's name from /proc")
@pytest.mark.parametrize("fault", sorted(INGEST_FAULTS))
def test_disk_full_during_ingest_is_one_line_naming_the_file_and_changes_nothing(
        fault, monkeypatch, run_cli, workspace_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    alpha, beta = inputs / "alpha.txt", inputs / "beta.txt"
    alpha.write_text(ALPHA * 5, encoding="utf-8")
    assert run_cli("ingest", alpha).exit_code == 0
    alpha.write_text(BETA * 5, encoding="utf-8")  # changed: the ingest below replaces it
    beta.write_text(BETA * 7, encoding="utf-8")
    before = tree_snapshot(workspace_dir)
    name, hit, shown = INGEST_FAULTS[fault]
    seen = _disk_full_on(monkeypatch, name, hit)
    result = run_cli("ingest", alpha, beta)
    monkeypatch.undo()
    assert seen, "the fault was never injected"
    _one_line_error(result, str(workspace_dir / shown), "disk full")
    assert tree_snapshot(workspace_dir) == before  # no staging folder left, the old alpha in place


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the open file's name from /proc")
def test_disk_full_in_a_first_ingest_leaves_no_workspace(monkeypatch, run_cli, workspace_dir, tmp_path):
    path = tmp_path / "alpha.txt"
    path.write_text(ALPHA * 5, encoding="utf-8")
    _disk_full_on(monkeypatch, "fsync", lambda p: "/.staging-" in p)
    result = run_cli("ingest", path)
    monkeypatch.undo()
    _one_line_error(result, "documents/alpha/pages.jsonl", "disk full")
    assert not workspace_dir.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the open file's name from /proc")
@pytest.mark.parametrize("fault", ["write", "swap"])
def test_disk_full_during_build_is_one_line_and_keeps_the_old_datasets(
        fault, monkeypatch, run_cli, workspace_dir, contract_pdf, tiny_model_dir):
    assert run_cli("ingest", contract_pdf).exit_code == 0
    assert run_cli("build", "--base-model", tiny_model_dir).exit_code == 0
    before = tree_snapshot(workspace_dir)
    if fault == "write":
        seen = _disk_full_on(monkeypatch, "fsync", lambda p: "/.staging-datasets-" in p and "qa_train" in p)
        shown = "datasets/qa_train.jsonl"
    else:
        seen = _disk_full_on(monkeypatch, "replace", lambda p: p.endswith("/datasets"))
        shown = "datasets"
    result = run_cli("build", "--base-model", tiny_model_dir, "--force")
    monkeypatch.undo()
    assert seen
    _one_line_error(result, str(workspace_dir / shown), "disk full")
    assert tree_snapshot(workspace_dir) == before


def test_disk_full_in_a_library_write_is_one_line_too(monkeypatch, run_cli, workspace_dir, tmp_path):
    """An ENOSPC from outside core/workspace.py's writers (a library saving a checkpoint) is
    caught by the CLI: one line naming the file."""
    import docfinetune.ingest as ingest_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/somewhere/model.safetensors")

    monkeypatch.setattr(ingest_module, "_assign_ids", full)
    path = tmp_path / "alpha.txt"
    path.write_text(ALPHA * 5, encoding="utf-8")
    _one_line_error(run_cli("ingest", path), "/somewhere/model.safetensors: disk full")
    assert not workspace_dir.exists()


# --------------------------------------------------------------------------- deeply nested JSON


def test_a_deeply_nested_qa_row_is_one_line_naming_the_file_and_line(run_cli, workspace_dir, tmp_path):
    qa = tmp_path / "mine.jsonl"
    deep = "[" * 100_000 + "]" * 100_000  # json's parser recurses once per level
    qa.write_text('{"question": "What is the fee?", "answer": "$12,500"}\n'
                  f'{{"question": {deep}, "answer": "x"}}\n', encoding="utf-8")
    rows, problems = read_jsonl_lines(qa)
    assert len(rows) == 1 and problems == ["line 2: nested too deeply (a row is one object of strings)"]
    _one_line_error(run_cli("build", "--qa-file", qa), str(qa), "line 2", "nested too deeply")
    assert not workspace_dir.exists()


# --------------------------------------------------------------------------- redirected stderr


def test_redirected_stderr_starts_with_the_message(tmp_path):
    """stderr to a file or pipe (not a terminal): the first line is the error itself; rich's
    progress display used to print an empty line first."""
    ws = tmp_path / "ws"
    missing = tmp_path / "nowhere.pdf"
    result = _cli("--workspace", ws, "ingest", missing)
    assert result.returncode == 2
    assert result.stderr == f"error: {missing}: no such file or directory\n"
    result = _cli("--workspace", ws, "build")  # fails inside the build's progress display
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, repr(result.stderr)


# --------------------------------------------------------------------------- corrupt PDF


def test_a_corrupt_pdf_prints_its_one_line_and_no_library_warnings(tmp_path):
    data = write_pdf(tmp_path / "whole.pdf", CONTRACT_PAGES).read_bytes()
    corrupt = tmp_path / "damaged.pdf"  # the middle half zeroed: pypdf logs ~18 warnings reading it
    corrupt.write_bytes(data[:200] + b"\0" * (len(data) // 2) + data[200 + len(data) // 2:])
    for extractor in ("pypdfium2", "pypdf"):
        result = _cli("--workspace", tmp_path / "ws", "ingest", "--extractor", extractor, corrupt)
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {corrupt}: corrupt PDF"), result.stderr
    assert not (tmp_path / "ws").exists()


# --------------------------------------------------------------------------- workers after kill -9


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; init reaps it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_ingest_workers_die_when_ingest_is_killed(tmp_path):
    pdf = write_pdf(tmp_path / "long.pdf", CONTRACT_PAGES * 100)  # 300 pages: pypdf takes seconds
    ingest_process = subprocess.Popen(
        [sys.executable, "-m", "docfinetune", "--workspace", str(tmp_path / "ws"), "ingest", str(pdf),
         "--extractor", "pypdf", "--workers", "2"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helpers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        # resource tracker, fork server and 2 workers (the fork server's children)
        while len(helpers) < 4 and time.monotonic() < deadline and ingest_process.poll() is None:
            time.sleep(0.05)
            helpers = [p for p in _descendants(ingest_process.pid) if _running(p)]
        assert len(helpers) >= 4, "the workers never started"
        os.kill(ingest_process.pid, signal.SIGKILL)
        ingest_process.wait()
        deadline = time.monotonic() + 5
        while any(map(_running, helpers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in helpers if _running(p)], "processes of the killed ingest are still alive"
    finally:
        for pid in helpers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if ingest_process.poll() is None:
            ingest_process.kill()


# --------------------------------------------------------------------------- sources in a tiny workspace


def _chunk(doc_id: str, text: str) -> Chunk:
    return Chunk(f"{doc_id}:0", doc_id, 0, 1, 1, 0, len(text), "", text)


def test_one_or_two_chunks_are_still_ranked_by_the_words_they_share():
    pay = _chunk("fees", "The buyer shall pay the monthly fee within thirty days of each invoice.")
    deliver = _chunk("delivery", "The supplier shall deliver the goods to the buyer's warehouse.")
    assert [c.doc_id for c, _ in BM25Index([pay]).search("When is the fee due?", 3)] == ["fees"]
    hits = BM25Index([pay, deliver]).search("When must the buyer pay the fee?", 3)
    assert [c.doc_id for c, _ in hits] == ["fees", "delivery"]  # both share "buyer"; "pay", "fee" only one
    assert hits[0][1] > hits[1][1] > 0
    assert BM25Index([pay, deliver]).search("goods", 3)[0][0].doc_id == "delivery"
    assert BM25Index([pay, deliver]).search("warranty", 3) == []  # no shared word: nothing


def test_ask_sources_on_a_one_chunk_workspace(tmp_path, tiny_model_dir):
    from docfinetune.ask import ask

    ws = Workspace(tmp_path / "ws")
    (tmp_path / "fees.txt").write_text("The buyer shall pay the monthly fee of $12,500 within thirty days.\n",
                                       encoding="utf-8")
    ingest([tmp_path / "fees.txt"], ws, IngestConfig())
    config = load_pipeline("default", {"model": {"base_model": str(tiny_model_dir), "device": "cpu"},
                                       "generation": {"max_new_tokens": 4}})
    result = ask(ws, "How much is the monthly fee?", base=True, config=config, sources=2)
    assert [(c.doc_id, c.page_start) for c, _ in result.sources] == [("fees", 1)]


# --------------------------------------------------------------------------- damaged JSONL, multi-line messages


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\x80\xff" + b])
def test_a_damaged_chunks_file_is_one_line_naming_it(damage, run_cli, workspace_dir, tmp_path):
    path = tmp_path / "alpha.txt"
    path.write_text(ALPHA * 20, encoding="utf-8")
    assert run_cli("ingest", path).exit_code == 0
    chunks = Workspace(workspace_dir).chunks_file("alpha")
    chunks.write_bytes(damage(chunks.read_bytes()))
    before = tree_snapshot(workspace_dir)
    _one_line_error(run_cli("build", "--force"), str(chunks), "corrupt")
    assert tree_snapshot(workspace_dir) == before


def test_a_library_message_of_several_lines_is_printed_as_one(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n", encoding="utf-8")  # yaml's message points at the column
    _one_line_error(run_cli("build", "--pipeline", bad), str(bad), "not valid YAML")
