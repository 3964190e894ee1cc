"""Issue 14, more classes: one document id per file (Unicode slugs, suffixes for a different
file with the same slug), `--resume` picks an interrupted run and refuses a finished one, run ids
never lead outside runs/, and rich markup in document text or a corrupt JSON file of the
workspace gives output or one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from docfinetune.core.config import IngestConfig, load_pipeline
from docfinetune.core.errors import ConfigError, WorkspaceError
from docfinetune.core.runs import (
    CHECKPOINT_METRICS_FILE,
    CONFIG_FILE,
    SELECTION_FILE,
    config_yaml,
    find_run,
    run_to_resume,
)
from docfinetune.core.workspace import Workspace, write_json
from docfinetune.ingest import doc_id_for, ingest
from docfinetune.train import resume_point
from tests.conftest import make_fake_run
from tests.conftest import tree_snapshot as _tree_snapshot

TEXT = "The supplier shall deliver the goods to the buyer on the agreed delivery date.\n"


def _text_file(folder: Path, name: str, text: str = TEXT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text * 5, encoding="utf-8")
    return path


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """The workspace's files, less the lock holder's name (any command that locks rewrites it)."""
    return {k: v for k, v in _tree_snapshot(root).items() if not k.startswith(".lock")}


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# --------------------------------------------------------------------------- class 2: one id per file


def test_unicode_file_names_get_readable_distinct_ids(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert doc_id_for(Path("Договор поставки №5.pdf")) == "договор-поставки-5"
    assert doc_id_for(Path("ＡＢＣ　Ｄｅｆ.txt")) == "abc-def"  # NFKC, lowercased
    long_id = doc_id_for(Path("𠀋" * 100 + ".txt"))  # 4 bytes a letter: the id still fits a folder name
    assert long_id and len(long_id.encode("utf-8")) <= 200
    inputs = tmp_path / "in"
    first = _text_file(inputs, "Договор поставки №5.txt", "Поставщик поставляет товар покупателю в срок.\n")
    second = _text_file(inputs, "Договор №5.txt", "Покупатель оплачивает каждый счёт в течение месяца.\n")
    third = _text_file(inputs, "契約書.txt", "売主は約定の期日に商品を買主に引き渡す。\n")
    [a] = ingest([first], ws, IngestConfig())
    [b] = ingest([second], ws, IngestConfig())
    [c] = ingest([third], ws, IngestConfig())
    assert (a.doc_id, b.doc_id, c.doc_id) == ("договор-поставки-5", "договор-5", "契約書")
    assert [r.status for r in (a, b, c)] == ["new", "new", "new"]
    assert sorted(ws.doc_ids()) == sorted(["договор-поставки-5", "договор-5", "契約書"])
    assert ws.read_source("договор-поставки-5")["file_name"] == first.name


def test_a_different_file_with_the_same_slug_gets_a_suffix_and_the_same_name_still_replaces(tmp_path):
    ws = Workspace(tmp_path / "ws")
    inputs = tmp_path / "in"
    spaced = _text_file(inputs, "Supply Contract.txt")
    underscored = _text_file(inputs, "supply_contract.txt", "The buyer shall pay each invoice within thirty days.\n")
    [first] = ingest([spaced], ws, IngestConfig())
    [second] = ingest([underscored], ws, IngestConfig())
    assert (first.doc_id, first.status) == ("supply-contract", "new")
    assert (second.doc_id, second.status) == ("supply-contract-2", "new")
    assert ws.doc_ids() == ["supply-contract", "supply-contract-2"]
    assert ws.read_source("supply-contract")["file_name"] == "Supply Contract.txt"  # the first is kept
    # The same file name, changed, replaces its own document and no other.
    underscored.write_text("The buyer shall pay each invoice within ten days.\n" * 5, encoding="utf-8")
    [again] = ingest([underscored], ws, IngestConfig())
    assert (again.doc_id, again.status) == ("supply-contract-2", "replaced")
    [unchanged] = ingest([spaced], ws, IngestConfig())
    assert (unchanged.doc_id, unchanged.status) == ("supply-contract", "unchanged")
    assert ws.doc_ids() == ["supply-contract", "supply-contract-2"]


def test_two_files_with_one_slug_in_one_call_both_survive(tmp_path, run_cli, workspace_dir):
    inputs = tmp_path / "in"
    one = _text_file(inputs, "Notice-Period.txt")
    two = _text_file(inputs, "notice period.txt", "Either party may end this agreement with sixty days notice.\n")
    result = run_cli("ingest", one, two)
    assert result.exit_code == 0, result.output
    ws = Workspace(workspace_dir)
    assert ws.doc_ids() == ["notice-period", "notice-period-2"]
    names = {ws.read_source(d)["file_name"] for d in ws.doc_ids()}
    assert names == {"Notice-Period.txt", "notice period.txt"}


# --------------------------------------------------------------------------- class 7: resume


def _started_run(ws: Workspace, run_id: str, mtime: int, checkpoint_step: int | None = None,
                 finished: bool = False) -> Path:
    run_dir = ws.root / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / CONFIG_FILE).write_text(config_yaml(load_pipeline("default")), encoding="utf-8")
    if checkpoint_step is not None:
        folder = run_dir / "checkpoints" / f"checkpoint-{checkpoint_step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": checkpoint_step}))
        (folder / CHECKPOINT_METRICS_FILE).write_text(json.dumps({"step": checkpoint_step}))
    if finished:
        write_json(run_dir / SELECTION_FILE, {"run_id": run_id, "checkpoints": [
            {"step": checkpoint_step, "path": f"checkpoints/checkpoint-{checkpoint_step}"}]})
    os.utime(run_dir / CONFIG_FILE, ns=(mtime * 10**9, mtime * 10**9))
    return run_dir


def test_plain_resume_takes_the_newest_interrupted_run_with_a_checkpoint(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _started_run(ws, "interrupted", 1_000, checkpoint_step=4)
    _started_run(ws, "finished", 2_000, checkpoint_step=6, finished=True)
    _started_run(ws, "just-started", 3_000)  # newest, but no checkpoint yet
    run, checkpoint = resume_point(ws)
    assert run.id == "interrupted" and checkpoint.name == "checkpoint-4"


def test_plain_resume_with_only_finished_runs_says_nothing_to_resume(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _started_run(ws, "done", 1_000, checkpoint_step=6, finished=True)
    with pytest.raises(WorkspaceError, match="every run has finished; nothing to resume"):
        run_to_resume(ws)


def test_resuming_a_finished_run_by_name_is_refused(run_cli, workspace_dir, tiny_model_dir):
    ws = Workspace(workspace_dir)
    config = load_pipeline("default", {"model": {"base_model": str(tiny_model_dir)}})
    make_fake_run(ws, config, "r1", (2, 4, 6), 4)
    before = tree_snapshot(workspace_dir)
    result = run_cli("train", "--resume", "--run-id", "r1")
    _one_line_error(result, "r1 finished at step 6; nothing to resume")
    assert tree_snapshot(workspace_dir) == before


# --------------------------------------------------------------------------- class 8: run ids


def test_run_ids_that_lead_outside_runs_are_refused(tmp_path, run_cli, workspace_dir):
    ws = Workspace(workspace_dir)
    elsewhere = Workspace(tmp_path / "elsewhere")
    _started_run(elsewhere, "run", 1_000, checkpoint_step=2)
    _started_run(ws, "mine", 1_000, checkpoint_step=2)
    (ws.root / "runs" / "link").symlink_to(elsewhere.root / "runs" / "run")
    before = tree_snapshot(workspace_dir), tree_snapshot(elsewhere.root)
    bad = "../../elsewhere/runs/run"
    _one_line_error(run_cli("train", "--resume", "--run-id", bad), "not a run id")
    _one_line_error(run_cli("ask", "what?", "--run", ".."), "not a run id")
    _one_line_error(run_cli("eval", "--run", "../.."), "not a run id")
    _one_line_error(run_cli("ask", "what?", "--run", "link"), "leads outside")
    assert (tree_snapshot(workspace_dir), tree_snapshot(elsewhere.root)) == before
    for run_id in (bad, "..", "a/b", "link"):
        with pytest.raises(ConfigError):
            find_run(ws, run_id)
        with pytest.raises(ConfigError):
            run_to_resume(ws, run_id)
    (ws.root / "runs" / "latest").write_text("../../elsewhere/runs/run\n")
    with pytest.raises(ConfigError, match="latest"):
        find_run(ws)


# --------------------------------------------------------------------------- class 9: markup, corrupt JSON


MARKUP = "[/B] Terms [insert date]"


def test_markup_in_file_names_and_titles_is_shown_verbatim(tmp_path, run_cli, workspace_dir):
    inputs = tmp_path / "in"
    body = f"{MARKUP}\n\nSigned [/s/ John Smith] on [insert date]. The buyer shall pay each invoice.\n"
    path = _text_file(inputs, "[B] deal [insert date].txt", body)
    result = run_cli("ingest", path)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "[B] deal [insert date].txt" in result.stdout
    ws = Workspace(workspace_dir)
    [doc_id] = ws.doc_ids()
    source = ws.read_source(doc_id)
    write_json(ws.document_dir(doc_id) / "source.json", {**source, "title": MARKUP})
    result = run_cli("status")
    assert result.exit_code == 0, (result.output, result.exception)
    assert MARKUP in result.stdout


@pytest.mark.parametrize("name", ["source", "stats"])
def test_a_corrupt_source_or_stats_file_is_one_line_naming_it(name, tmp_path, run_cli, workspace_dir):
    _text_file(tmp_path / "in", "contract.txt")
    assert run_cli("ingest", tmp_path / "in" / "contract.txt").exit_code == 0
    ws = Workspace(workspace_dir)
    if name == "source":
        broken = ws.document_dir("contract") / "source.json"
    else:
        broken = ws.stats_file
        broken.parent.mkdir(parents=True)
    broken.write_text('{"doc_id": "contr', encoding="utf-8")
    before = tree_snapshot(workspace_dir)
    _one_line_error(run_cli("status"), f"{name}.json", "corrupt")
    _one_line_error(run_cli("build"), f"{name}.json", "corrupt")
    assert tree_snapshot(workspace_dir) == before


def test_a_corrupt_selection_file_is_one_line_naming_it(run_cli, workspace_dir):
    ws = Workspace(workspace_dir)
    run_dir = _started_run(ws, "r1", 1_000, checkpoint_step=2, finished=True)
    (run_dir / SELECTION_FILE).write_text('{"run_id": "r1", "checkpoints": [', encoding="utf-8")
    (ws.root / "runs" / "latest").write_text("r1\n")
    before = tree_snapshot(workspace_dir)
    _one_line_error(run_cli("ask", "what?"), "selection.json", "corrupt")
    _one_line_error(run_cli("eval", "--run", "r1"), "selection.json", "corrupt")
    _one_line_error(run_cli("train", "--resume", "--run-id", "r1"), "selection.json", "corrupt")
    assert tree_snapshot(workspace_dir) == before


def test_a_latest_file_or_run_config_that_is_not_utf8_is_one_line_naming_it(run_cli, workspace_dir):
    ws = Workspace(workspace_dir)
    run_dir = _started_run(ws, "r1", 1_000, checkpoint_step=2, finished=True)
    (ws.root / "runs" / "latest").write_bytes(b"\xff\xfe r1\n")
    before = tree_snapshot(workspace_dir)
    _one_line_error(run_cli("ask", "what?"), "latest", "not UTF-8")
    assert tree_snapshot(workspace_dir) == before
    (ws.root / "runs" / "latest").write_text("r1\n")
    (run_dir / "config.yaml").write_bytes(b"model:\n  base_model: \xff\xfe\n")
    before = tree_snapshot(workspace_dir)
    _one_line_error(run_cli("ask", "what?"), "config.yaml", "not UTF-8")
    assert tree_snapshot(workspace_dir) == before
