"""The commands as a user sees them: train, ask and eval on the tiny model through the CLI,
with what each prints asserted (tables, the streamed answer, the selection)."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture(scope="module")
def trained_ws(ingested_contract, tiny_model_dir, tmp_path_factory):
    """A copy of the ingested contract and the CLI's `train` output on it."""
    from click.testing import CliRunner

    from docfinetune.cli import main

    root = tmp_path_factory.mktemp("cli-render") / "ws"
    shutil.copytree(ingested_contract.root, root)
    result = CliRunner().invoke(main, [
        "--workspace", str(root), "train", "--base-model", str(tiny_model_dir), "--device", "cpu",
        "--max-steps", "4", "--eval-every-steps", "2", "--micro-batch-size", "4", "--max-seq-tokens", "64",
        "--eval-max-questions", "4", "--max-new-tokens", "6"])
    return root, result


def test_train_prints_the_run_and_the_selection_table(trained_ws):
    root, result = trained_ws
    assert result.exit_code == 0, result.output
    assert "built the datasets" not in result.output  # build progress is transient, on stderr
    assert "checkpoints of run" in result.output and "selected" in result.output
    assert "curves:" in result.output and "highest" in result.output and "accuracy" in result.output
    header = " ".join(result.output.split())
    for column in ("held out", "taught", "+RAG"):  # what selection weighs: held-out and taught, closed and open
        assert column in header
    selection = json.loads(next((root / "runs").glob("*/selection.json")).read_text())
    assert [c["step"] for c in selection["checkpoints"]] == [2, 4]
    assert (root / "datasets" / "stats.json").is_file()


def test_train_teaching_held_out_facts_says_which_checkpoint_answers_what(ingested_contract, tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from docfinetune.cli import main

    root = tmp_path / "ws"
    shutil.copytree(ingested_contract.root, root)
    result = CliRunner().invoke(main, [
        "--workspace", str(root), "train", "--base-model", str(tiny_model_dir), "--device", "cpu",
        "--max-steps", "4", "--eval-every-steps", "2", "--micro-batch-size", "4", "--max-seq-tokens", "64",
        "--eval-max-questions", "4", "--max-new-tokens", "6", "--teach-held-out-passes", "1"])
    assert result.exit_code == 0, result.output
    taught = json.loads(next((root / "runs").glob("*/selection.json")).read_text())["taught_all"]
    caption = " ".join(result.output.split())
    assert f"then the {taught['rows']['held_out']} held-out Q&A rows taught in {taught['steps']} steps" in caption
    assert "checkpoints/taught-all answers (ask, export)" in caption
    # ask answers with the taught adapter and names it within its run
    run_id = next((root / "runs").glob("*/selection.json")).parent.name
    asked = CliRunner().invoke(main, ["--workspace", str(root), "ask", "Which state's laws govern the agreement?"])
    assert asked.exit_code == 0, asked.output
    assert f"run {run_id}, checkpoints/taught-all; closed-book (no evaluation of this checkpoint yet)" in asked.output


def test_ask_streams_an_answer_and_lists_the_sources(trained_ws, run_cli):
    root, _ = trained_ws
    result = run_cli("ask", "--sources", "1", "Which state's laws govern the agreement?", workspace=root)
    assert result.exit_code == 0, result.output
    first_line, *rest = result.output.splitlines()
    assert first_line.strip()  # the streamed answer
    assert any("page" in line and "BM25" in line for line in rest)  # the source, with its page and score


def test_eval_prints_the_systems_table_and_writes_the_report(trained_ws, run_cli, tmp_path):
    root, _ = trained_ws
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Which state's laws govern the agreement?",
                                     "answer": "Vermont", "field": "governing_law"}) + "\n")
    result = run_cli("eval", "--questions", questions, "--systems", "base,finetuned", "--extraction-chunks", "0",
                     workspace=root)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "base," in text and "fine-tuned," in text and "1 questions" in text
    assert sum(cell in ("0/1", "1/1") for cell in text.split()) == 2  # one row per system, each "correct/scored"
    assert list((root / "reports").glob("*.md")) and list((root / "reports").glob("*.json"))


def test_config_help_shows_the_default_pipelines_values(run_cli):
    # One layer of defaults: pipelines/default.yaml sets no field, so --help's defaults are what it uses.
    from docfinetune.core.config import load_pipeline

    result = run_cli("train", "--help")
    epochs = load_pipeline("default").train.epochs
    assert result.exit_code == 0 and f"[default: {epochs}]" in " ".join(result.output.split())
