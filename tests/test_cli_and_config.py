"""The command line's global options, `status`, config overrides, and every pipeline YAML."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from docfinetune import __version__
from docfinetune.cli import main
from docfinetune.core.config import PIPELINES_DIR, IngestConfig, load_pipeline
from docfinetune.core.errors import ConfigError


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_status_before_and_after_ingest(run_cli, contract_pdf: Path, workspace_dir: Path):
    result = run_cli("status")
    assert result.exit_code == 0 and "no workspace yet" in result.output
    assert not workspace_dir.exists()
    assert run_cli("ingest", contract_pdf).exit_code == 0
    result = run_cli("status", "--json")
    summary = json.loads(result.output)
    [doc] = summary["documents"]
    assert doc["doc_id"] == "services-agreement" and doc["pages"] == 3
    assert summary["totals"]["chunks"] == doc["chunks"] > 0
    wide = CliRunner(env={"COLUMNS": "160"}).invoke(main, ["--workspace", str(workspace_dir), "status"])
    assert "services-agreement" in wide.output and "1 document" in wide.output


def test_ingest_prints_summary_and_reports_unchanged(run_cli, contract_pdf: Path):
    first = run_cli("ingest", contract_pdf)
    assert first.exit_code == 0 and "new" in first.output and "services_agreement.pdf" in first.output
    second = run_cli("ingest", contract_pdf)
    assert second.exit_code == 0 and "unchanged" in second.output


def test_workspace_from_environment(contract_pdf: Path, tmp_path: Path):
    ws = tmp_path / "from-env"
    result = CliRunner(env={"DOCFINETUNE_WORKSPACE": str(ws)}).invoke(main, ["ingest", str(contract_pdf)])
    assert result.exit_code == 0, result.output
    assert (ws / "documents" / "services-agreement" / "chunks.jsonl").is_file()


def test_flags_override_the_pipeline(run_cli, contract_pdf: Path, workspace_dir: Path):
    assert run_cli("ingest", "--chunk-chars", "128", "--chunk-overlap-chars", "0", contract_pdf).exit_code == 0
    rows = (workspace_dir / "documents" / "services-agreement" / "chunks.jsonl").read_text().splitlines()
    assert max(len(json.loads(r)["text"]) for r in rows) <= 128
    source = json.loads((workspace_dir / "documents" / "services-agreement" / "source.json").read_text())
    assert source["settings"]["chunk_chars"] == 128


def test_bad_flag_value_is_one_line_exit_2(run_cli, contract_pdf: Path, workspace_dir: Path):
    result = run_cli("ingest", "--chunk-overlap-chars", "400", contract_pdf)
    assert result.exit_code == 2
    assert "ingest.chunk_overlap_chars: 400" in result.stderr and "Traceback" not in result.stderr
    assert not workspace_dir.exists()
    result = run_cli("ingest", "--extractor", "ocr", contract_pdf)
    assert result.exit_code == 2 and "'ocr' is not one of" in result.stderr


def test_a_bad_value_is_said_of_where_it_was_given(run_cli, tmp_path: Path, workspace_dir: Path):
    """A flag's bad value is the command line's, not the pipeline file's it overrode."""
    result = run_cli("build", "--choice-share", "2")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: the command line: build.choice_share: 2.0 is above 1"
    mine = tmp_path / "mine.yaml"
    mine.write_text("build:\n  choice_share: 3\n  choice_options: 1\n")
    result = run_cli("build", "--pipeline", str(mine), "--choice-share", "2")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "the command line: build.choice_share: 2.0 is above 1" in result.stderr  # the flag's value, not 3
    assert f"{mine}: build.choice_options: 1 is below 2" in result.stderr
    # a flag that makes a file's value wrong: both are named
    result = run_cli("build", "--recite")
    assert result.exit_code == 2 and result.stderr.startswith(
        f"error: the command line with {PIPELINES_DIR / 'default.yaml'}: generation.max_new_tokens: 48 is too few")
    assert not workspace_dir.exists()


def test_help_texts_come_from_the_config():
    result = CliRunner().invoke(main, ["ingest", "--help"])
    assert "Maximum characters per chunk" in result.output and "--keep-going" in result.output


@pytest.mark.parametrize("path", sorted(PIPELINES_DIR.rglob("*.y*ml")), ids=lambda p: p.name)
def test_every_pipeline_yaml_loads_and_is_headed_by_its_command(path: Path):
    config = load_pipeline(str(path))
    assert config.name == path.stem
    assert path.read_text().startswith("# docfinetune")
    assert yaml.safe_load(path.read_text())["name"] == config.name


def test_pipelines_found_recursively(tmp_path: Path):
    # Counted against an independent walk of the folder: the parametrized test above must see them all.
    walked = [Path(folder, name) for folder, _, names in os.walk(PIPELINES_DIR) for name in names
              if name.endswith((".yaml", ".yml"))]
    assert sorted(walked) == sorted(PIPELINES_DIR.rglob("*.y*ml")) and len(walked) >= 5


def test_config_errors_are_all_reported_at_once(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ningest:\n  chunk_chars: 'big'\n  colour: blue\n  chunk_overlap_chars: -1\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(str(bad))
    problems = info.value.problems
    assert any("ingest.chunk_chars: expected int" in p for p in problems)
    assert any("ingest.colour: unknown key" in p for p in problems)
    assert any("chunk_overlap_chars: -1" in p for p in problems)
    with pytest.raises(ConfigError, match="no such pipeline"):
        load_pipeline("does-not-exist")


def test_overrides_and_validation():
    config = load_pipeline("default", {"ingest": {"chunk_chars": 300, "extractor": None}})
    assert config.ingest.chunk_chars == 300 and config.ingest.extractor == "pypdfium2"
    with pytest.raises(ConfigError):
        IngestConfig(chunk_chars=10)


def test_a_bare_yaml_off_is_read_as_the_word(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  fused_kernels: off\n")
    assert load_pipeline(str(recipe)).train.fused_kernels == "off"


def test_errors_keep_square_brackets(run_cli, tmp_path: Path, workspace_dir: Path):
    """rich would read "[draft]" as markup and drop it from the file name."""
    missing = tmp_path / "scan[draft].pdf"
    result = run_cli("ingest", missing)
    assert result.exit_code == 2 and "scan[draft].pdf" in result.stderr
    assert not workspace_dir.exists()


def test_the_knowledge_benchmark_measures_the_shipped_gpu_pipeline():
    """benchmarks/knowledge.py trains "default" with its shared GPU settings: those are the
    embedded-gpu pipeline's, so `--pipeline embedded-gpu` is the recipe its figures describe."""
    import importlib.util

    path = PIPELINES_DIR.parent / "benchmarks" / "knowledge.py"
    spec = importlib.util.spec_from_file_location("knowledge_benchmark", path)
    knowledge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(knowledge)
    measured = load_pipeline("default", knowledge.merged(knowledge.GPU, knowledge.VARIANTS["default"]))
    shipped = load_pipeline("embedded-gpu")
    assert dataclasses.replace(measured, name=shipped.name, description=shipped.description) == shipped
    assert shipped.train.micro_batch_size == 32 and shipped.train.gradient_accumulation_steps == 1
    assert shipped.train.fused_kernels == "off"


def test_a_gpu_recipe_without_a_gpu_is_one_line_before_anything_is_built(run_cli, contract_pdf: Path,
                                                                          workspace_dir: Path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_cli("ingest", contract_pdf).exit_code == 0
    before = sorted(p.relative_to(workspace_dir) for p in workspace_dir.rglob("*"))
    result = run_cli("train", "--pipeline", "embedded-gpu")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["error: model.device: cuda was asked for, but no CUDA device is visible"]
    assert sorted(p.relative_to(workspace_dir) for p in workspace_dir.rglob("*")) == before  # no datasets built
