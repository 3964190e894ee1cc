"""Issue 14: a workspace lock between writers, no half-replaced document visible to any command,
and a hyphen rejoin that is linear in the length of a run of letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from docfinetune.cli import main
from docfinetune.core.config import IngestConfig
from docfinetune.core.workspace import LOCK_TIMEOUT_ENV, Workspace
from docfinetune.ingest import ingest
from docfinetune.ingest.clean import _HYPHEN_BREAK, clean_pages, rejoin_hyphenated

REPO = Path(__file__).resolve().parents[1]

ALPHA = "The supplier shall deliver the goods to the buyer on the agreed delivery date.\n"
BETA = "The buyer shall pay each invoice within thirty days of receiving the invoice.\n"


def _two_documents(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    for name, text in (("alpha.txt", ALPHA), ("beta.txt", BETA)):
        (tmp_path / name).write_text(text * 5, encoding="utf-8")
    ingest([tmp_path / "alpha.txt", tmp_path / "beta.txt"], ws, IngestConfig())
    assert ws.doc_ids() == ["alpha", "beta"]
    return ws


def _crash_mid_replace(ws: Workspace, doc_id: str) -> None:
    """What a kill between swap_in's two renames leaves: the old version moved aside, the new
    one still staged."""
    staged = ws.staging_dir(doc_id)
    (staged / "pages.jsonl").write_text("", encoding="utf-8")
    os.replace(ws.document_dir(doc_id), ws.documents_dir / f".retired-{doc_id}")


# (a) The lock: a second writer waits, then gives up naming the holder; it never recovers
#     (deletes) the holder's staging folder.

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from docfinetune.core.workspace import Workspace
    with Workspace(Path(sys.argv[1])).lock("ingest"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_second_ingest_waits_then_gives_up_and_leaves_the_holders_staging_folder(tmp_path):
    ws = _two_documents(tmp_path)
    live = ws.documents_dir / ".staging-gamma-live"  # the holder's work in progress
    live.mkdir()
    (live / "pages.jsonl").write_text('{"page": 1}\n', encoding="utf-8")
    new = tmp_path / "gamma.txt"
    new.write_text(ALPHA, encoding="utf-8")
    env = {**os.environ, LOCK_TIMEOUT_ENV: "0.5", "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.root)], stdout=subprocess.PIPE,
                              text=True, env=env, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = subprocess.run([sys.executable, "-m", "docfinetune", "--workspace", str(ws.root), "ingest",
                                 str(new)], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr  # one "waiting for" line, one error line
    assert lines[0].startswith(f"waiting for {holder.pid} (") and str(ws.root) in lines[0]
    assert str(holder.pid) in lines[1] and "gave up" in lines[1] and LOCK_TIMEOUT_ENV in lines[1]
    assert "Traceback" not in result.stderr
    assert live.is_dir() and (live / "pages.jsonl").is_file()  # not recovered away
    assert ws.doc_ids() == ["alpha", "beta"]


def test_lock_is_reentrant_and_released_when_its_process_dies(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.lock("outer"):
        with ws.lock("inner"):
            ws.recover()  # takes it again: no self-deadlock
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.root)], stdout=subprocess.PIPE,
                              text=True, env=env, cwd=REPO)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()  # a crash: the OS drops the lock, no stale lock is left
    holder.wait()
    waited = []
    with ws.lock("after", timeout=5, on_wait=waited.append):
        pass
    assert waited == []


# (b) A replace interrupted between its two renames is repaired before any command reads.

def test_status_repairs_an_interrupted_replace_instead_of_listing_one_of_two(tmp_path):
    ws = _two_documents(tmp_path)
    _crash_mid_replace(ws, "beta")
    result = CliRunner().invoke(main, ["--workspace", str(ws.root), "status", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [d["doc_id"] for d in summary["documents"]] == ["alpha", "beta"]
    assert sorted(p.name for p in ws.documents_dir.iterdir()) == ["alpha", "beta"]


def test_build_never_reads_one_of_two_documents(tmp_path):
    ws = _two_documents(tmp_path)
    _crash_mid_replace(ws, "beta")
    documents, chunks = ws.read_corpus()  # what build (and train, through it) reads
    assert [d.doc_id for d in documents] == ["alpha", "beta"]
    assert {c.doc_id for c in chunks} == {"alpha", "beta"}


def test_a_reader_that_cannot_write_reports_the_half_replaced_document(tmp_path, monkeypatch):
    ws = _two_documents(tmp_path)
    _crash_mid_replace(ws, "beta")
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)  # a read-only workspace
    result = CliRunner().invoke(main, ["--workspace", str(ws.root), "status"])
    assert result.exit_code == 2
    assert "beta half-replaced" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# (c) Cleanup is linear on a long run of letters.

def test_hyphen_rejoin_starts_only_at_a_words_first_letter():
    """Why it is linear: a match may start only where a word starts, so each run of letters is
    scanned once. The quadratic pattern also matched from every letter inside a run."""
    text = "abcdefgh-\nijk"
    assert _HYPHEN_BREAK.match(text, 0)
    assert all(_HYPHEN_BREAK.match(text, pos) is None for pos in range(1, 8))


def test_long_run_of_letters_cleans_like_a_short_one():
    short, long = "a" * 20, "a" * 200_000
    for run in (short, long):
        text = f"{run} x-\nray and {run}-\nb"
        assert rejoin_hyphenated(text, {"xray"}) == f"{run} xray and {run}-b"
        assert clean_pages([run]).pages == [run]
