"""`export` on runs made here the way `train` lays them out (the tiny random Mistral): merged weights
that give the base + adapter's logits, an adapter plain peft loads, 16-bit merges of a QLoRA
run, full fine-tunes, the training prompt as chat template and Modelfile, the model card, and
bad inputs that leave nothing behind. Then `train.report_to`: the trackers' setting and the
project's figures logged beside the Trainer's."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from docfinetune.core.config import ExportConfig, PipelineConfig, load_pipeline
from docfinetune.core.errors import ConfigError, WorkspaceError
from docfinetune.core.generate import format_prompt
from docfinetune.core.runs import config_yaml
from docfinetune.core.workspace import Workspace, file_sha256
from docfinetune.export import base_for_merge, export_run
from tests.conftest import CONTRACT_PAGES, make_fake_run, write_pdf

RUN_ID = "r1"
STEPS = (1, 2)
SELECTED = 2
QUESTION = "Which state's law governs the agreement?"


@pytest.fixture(scope="module")
def config(tiny_model_dir: Path) -> PipelineConfig:
    return load_pipeline("default", {"model": {"base_model": str(tiny_model_dir), "device": "cpu"},
                                     "generation": {"max_new_tokens": 10}})


@pytest.fixture(scope="module")
def trained(ingested_contract: Workspace, config: PipelineConfig, tmp_path_factory) -> Workspace:
    """A copy of `ingested_contract` with a finished LoRA run (random adapters, step 2 selected)."""
    workspace = Workspace(tmp_path_factory.mktemp("export-trained") / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    make_fake_run(workspace, config, RUN_ID, STEPS, SELECTED)
    return workspace


@pytest.fixture
def scratch(trained: Workspace, tmp_path: Path) -> Workspace:
    """A copy of the trained workspace that a test may change."""
    copy = Workspace(tmp_path / "ws")
    shutil.copytree(trained.root, copy.root)
    return copy


def logits(model, tokenizer, text: str = QUESTION) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits.float()


def tensor_dtypes(folder: Path) -> set[torch.dtype]:
    from safetensors.torch import load_file

    return {t.dtype for f in folder.glob("*.safetensors") for t in load_file(f).values()}


def assert_within_bf16_error(exported: torch.Tensor, reference: torch.Tensor, *references_in_bf16: torch.Tensor) -> None:
    """The exported bf16 model's logits are as close to the fp32 reference as a bf16 rendering of the
    same model is (within twice the larger error). Two renderings, because either alone depends on the
    CPU: on AVX2 the reference run in bf16 was 0.015 off and the export (then summed in bf16) 0.018; on
    AMX, which keeps bf16 products in fp32, the run in bf16 is 0.006 off and the reference's weights
    rounded to bf16 once 0.009, as the export now is (logits up to 0.7)."""
    budget = max((r - reference).abs().max().item() for r in references_in_bf16)
    assert 0 < (exported - reference).abs().max().item() <= 2 * budget


def test_merged_export_gives_the_base_plus_adapter_logits_in_bf16(trained: Workspace, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_run(trained, ExportConfig(format="merged"), out=tmp_path / "merged")
    assert out == tmp_path / "merged" and sorted(p.name for p in tmp_path.iterdir()) == ["merged"]  # nothing aside
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "Modelfile", "README.md", "docfinetune-config.yaml",
            "docfinetune-export.json"} <= names
    assert "adapter_config.json" not in names and tensor_dtypes(out) == {torch.bfloat16}

    merged = AutoModelForCausalLM.from_pretrained(out).eval()  # plain transformers, nothing of ours
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert merged.dtype == torch.bfloat16 and merged.generation_config.do_sample is False
    adapter = str(trained.root / "runs" / RUN_ID / "checkpoints" / "checkpoint-2")

    def base_plus_adapter(dtype: torch.dtype) -> torch.Tensor:
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
        return logits(PeftModel.from_pretrained(base, adapter).eval(), tokenizer)

    # The tiny base is stored in fp32, a real one (Mistral, Gemma) in bf16: round the base first, as
    # its checkpoint would be, so the reference holds only the error the export adds.
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).float()
    expected = logits(PeftModel.from_pretrained(base, adapter).eval(), tokenizer)
    rounded_once = PeftModel.from_pretrained(base, adapter).merge_and_unload().to(torch.bfloat16).eval()
    assert_within_bf16_error(logits(merged, tokenizer), expected, base_plus_adapter(torch.bfloat16),
                             logits(rounded_once, tokenizer))
    # summed in fp32 and rounded once (export.merge_in_fp32): to the bit what the fp32 merge rounds to
    want = rounded_once.state_dict()
    assert all(torch.equal(tensor, want[name]) for name, tensor in merged.state_dict().items())
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    assert (logits(base, tokenizer) - expected).abs().max() > 0.5  # the adapter changes them 30x more
    summary = json.loads((out / "docfinetune-export.json").read_text())
    assert summary["step"] == SELECTED and summary["format"] == "merged" and summary["dtype"] == "bf16"


def test_the_training_prompt_is_the_chat_template_and_the_modelfile(trained: Workspace, config, tmp_path):
    from transformers import AutoTokenizer

    out = export_run(trained, ExportConfig(format="merged", dtype="fp16"), out=tmp_path / "fp16")
    assert tensor_dtypes(out) == {torch.float16}
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompt = format_prompt(config.generation.prompt_template, QUESTION)
    asked = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                          return_dict=True)
    assert asked["input_ids"] == tokenizer(prompt)["input_ids"]  # bos included, as in training
    context = "[Services Agreement, page 3]\nThis Agreement is governed by the laws of the State of Vermont."
    open_book = tokenizer.apply_chat_template([{"role": "system", "content": context},
                                               {"role": "user", "content": QUESTION}], tokenize=False)
    assert open_book == tokenizer.bos_token + config.generation.rag_template.format(context=context, prompt=prompt)
    taught = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION},
                                            {"role": "assistant", "content": "Vermont"}], tokenize=False)
    assert taught == tokenizer.bos_token + prompt + " Vermont" + tokenizer.eos_token  # a training row
    settings = json.loads((out / "tokenizer_config.json").read_text())
    assert settings["chat_template"] == (out / "chat_template.jinja").read_text()
    modelfile = (out / "Modelfile").read_text()
    assert "FROM .\n" in modelfile and "Question: {{ .Prompt }}\nAnswer:{{ end }}" in modelfile
    assert "PARAMETER temperature 0" in modelfile and 'PARAMETER stop """\n"""' in modelfile


def test_adapter_export_loads_with_plain_peft(trained: Workspace, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_run(trained, ExportConfig(format="adapter"), checkpoint="1", out=tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "Modelfile",
            "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob("model*.safetensors")) and not (out / "optimizer.pt").exists()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def with_adapter(folder: Path):
        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(folder)).eval()

    checkpoint = trained.root / "runs" / RUN_ID / "checkpoints" / "checkpoint-1"
    assert torch.equal(logits(with_adapter(out), tokenizer), logits(with_adapter(checkpoint), tokenizer))
    assert "ADAPTER .\n" in (out / "Modelfile").read_text() and "--enable-lora" in (out / "README.md").read_text()


def test_a_qlora_run_is_merged_into_16bit_weights_not_4bit_ones(scratch: Workspace, config, tmp_path):
    # The adapter's run trained on a 4-bit NF4 base (config.yaml says so). bitsandbytes cannot
    # load 4-bit on this CPU, and the merge must not try: it loads the base in 16-bit.
    qlora = dataclasses.replace(config, model=dataclasses.replace(config.model, quantization="nf4"))
    (scratch.root / "runs" / RUN_ID / "config.yaml").write_text(config_yaml(qlora))
    loaded = base_for_merge(qlora.model, "bf16")
    assert (loaded.quantization, loaded.precision, loaded.device) == ("none", "bf16", "cpu")
    assert base_for_merge(qlora.model, "fp16").precision == "fp32"  # cast to fp16 once, after the merge

    out = export_run(scratch, ExportConfig(format="merged"), out=tmp_path / "qlora")
    assert tensor_dtypes(out) == {torch.bfloat16}
    saved = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in saved and saved["dtype"] == "bfloat16"
    card = (out / "README.md").read_text()
    assert "trained on the 4-bit NF4 base" in card and "not merged into 4-bit" in card


def make_full_run(workspace: Workspace, config: PipelineConfig, tiny_model_dir: Path) -> Path:
    """Turn run r1's checkpoints into a full fine-tune's: each holds a whole (perturbed) model."""
    from transformers import AutoModelForCausalLM

    run = workspace.root / "runs" / RUN_ID
    full = dataclasses.replace(config, train=dataclasses.replace(config.train, method="full"))
    (run / "config.yaml").write_text(config_yaml(full))
    for step in STEPS:
        folder = run / "checkpoints" / f"checkpoint-{step}"
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            (folder / name).unlink()
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        torch.manual_seed(step)
        with torch.no_grad():
            for p in model.model.layers.parameters():
                p.add_(0.05 * torch.randn_like(p))
        model.config.use_cache = False  # as train leaves it
        model.save_pretrained(folder)
    return run


def test_a_full_fine_tune_exports_merged_and_refuses_adapter(scratch: Workspace, config, tiny_model_dir, tmp_path,
                                                              run_cli):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = make_full_run(scratch, config, tiny_model_dir)
    out = export_run(scratch, ExportConfig(format="merged"), out=tmp_path / "full")
    assert tensor_dtypes(out) == {torch.bfloat16} and json.loads((out / "config.json").read_text())["use_cache"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    def trained_model(dtype: torch.dtype) -> torch.Tensor:
        return logits(AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "checkpoint-2", dtype=dtype).eval(),
                      tokenizer)

    assert_within_bf16_error(logits(AutoModelForCausalLM.from_pretrained(out).eval(), tokenizer),
                             trained_model(torch.float32), trained_model(torch.bfloat16),
                             logits(AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "checkpoint-2")
                                    .to(torch.bfloat16).eval(), tokenizer))
    assert "full fine-tuning" in (out / "README.md").read_text()

    result = run_cli("export", "--format", "adapter", "--output", tmp_path / "no", workspace=scratch.root)
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: run {RUN_ID} was fully fine-tuned: use --format merged")
    assert not (tmp_path / "no").exists()


def one_line_exit_2(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(trained: Workspace, run_cli, tmp_path):
    before = sorted(p.relative_to(trained.root) for p in trained.root.rglob("*"))
    out = tmp_path / "exports" / "x"

    def export(*args):
        return run_cli("export", *args, workspace=trained.root)

    assert "no checkpoint at step 99; available steps: 1, 2" in one_line_exit_2(
        export("--checkpoint", "99", "--output", out))
    assert "export.format: 'zip' is not one of merged, adapter, gguf" in one_line_exit_2(
        export("--format", "zip", "--output", out))
    assert "export.dtype: 'fp8'" in one_line_exit_2(export("--dtype", "fp8", "--output", out))
    gguf = one_line_exit_2(export("--format", "gguf", "--output", out))
    assert "no maintained" in gguf and "llama.cpp/convert_hf_to_gguf.py" in gguf and "--format merged" in gguf
    assert "no such run" in one_line_exit_2(export("--run-id", "nope", "--output", out))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert "is not a writable folder" in one_line_exit_2(export("--output", a_file / "sub" / "export"))
    taken = tmp_path / "taken"
    (taken / "keep").mkdir(parents=True)
    assert "exists; remove it" in one_line_exit_2(export("--output", taken))
    assert not (tmp_path / "exports").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "taken"]
    assert [p.name for p in taken.iterdir()] == ["keep"]
    assert sorted(p.relative_to(trained.root) for p in trained.root.rglob("*")) == before  # no exports/ either


def test_an_export_that_fails_halfway_leaves_nothing(trained: Workspace, monkeypatch, tmp_path):
    import docfinetune.export as export_stage

    def disk_full(staging: Path, *args):
        (staging / "README.md").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_stage, "_write_serving_files", disk_full)
    out = tmp_path / "new" / "deeper" / "export"
    with pytest.raises(WorkspaceError, match=r"could not write the export \(No space left on device\); nothing was written"):
        export_run(trained, ExportConfig(format="adapter"), out=out)
    assert list(tmp_path.iterdir()) == []  # neither the export, nor its staging folder, nor the parents made for it


def test_the_model_card_names_documents_figures_and_the_confidentiality(scratch: Workspace, tmp_path):
    run = scratch.root / "runs" / RUN_ID
    out = export_run(scratch, out=tmp_path / "before-eval")
    card = (out / "README.md").read_text()
    pdf = write_pdf(tmp_path / "services_agreement.pdf", CONTRACT_PAGES)  # the file ingested_contract took in
    source = scratch.read_source(scratch.doc_ids()[0])
    assert source["sha256"] == file_sha256(pdf)
    assert f"| {source['sha256']} | 3 |" in card and "services_agreement.pdf" in card
    assert "contain verbatim text from them" in card and "as confidentially as the documents" in card
    assert "Not evaluated — run `docfinetune eval`" in card and "Memorization" in card
    assert "answered 50.0% (10/20) of the held-out validation questions" in card  # selection.json, step 2
    assert "With retrieval: 60.0% of the held-out questions and 40.0% of the taught ones." in card
    assert yaml.safe_load((out / "docfinetune-config.yaml").read_text())["model"]["base_model"]

    report = {  # the parts of an eval report the card reads (evaluate/report.py writes them)
        "created_at": "2026-11-30T12:00:00+00:00", "run": {"run_id": RUN_ID, "step": SELECTED, "used": True},
        "settings": {"eval": {"ci_level": 0.95}}, "questions": {"asked": 40},
        "systems": {"base": {"correct": 2, "scored": 40, "accuracy": 0.05, "ci_low": 0.014, "ci_high": 0.165},
                    "finetuned+rag": {"correct": 20, "scored": 40, "accuracy": 0.5, "ci_low": 0.352, "ci_high": 0.648}},
        "memorization": {"min_chars": 20, "systems": {"finetuned+rag": {
            "answers": 40, "copied_share": {"mean": 0.4, "std": 0.25}, "mostly_copied": 0.3}}},
        "extraction": {"records": 20, "models": {"finetuned": {"reproduced_share": {"mean": 0.07},
                                                               "reproduced_whole": 1, "records": 20}}},
    }
    (scratch.root / "reports").mkdir()
    (scratch.root / "reports" / "20261130T120000Z.json").write_text(json.dumps(report))
    (run / "systems.json").write_text(json.dumps({"step": SELECTED, "report": "gone.json",
                                                  "accuracy": {"finetuned": 0.4}}))
    card = (export_run(scratch, out=tmp_path / "after-eval") / "README.md").read_text()
    assert "| fine-tuned + RAG | 20/40 | 50.0% | 35.2–64.8% |" in card and "95% CI" in card
    assert "| fine-tuned + RAG | 40 | 40.0% ± 25.0% | 30.0% |" in card
    assert "it reproduced 7.0% of the rest word for word" in card
    other = export_run(scratch, checkpoint=1, out=tmp_path / "step-1")  # a checkpoint eval never saw
    assert "Not evaluated" in (other / "README.md").read_text()


def test_the_model_card_says_what_a_recite_model_answers_beyond_the_served_prompt():
    from docfinetune.export.card import _recital_lines

    assert _recital_lines(load_pipeline("default")) == []  # no recitals: nothing to say
    both = "\n".join(_recital_lines(load_pipeline("default", {"build": {"recite": True, "recite_both": True},
                                                                "generation": {"max_new_tokens": 112}})))
    assert "Question: {question}\nRecite the clause, then answer:" in both
    assert "at least 0.5 of the question's words and 3 of them, or 5 of them whatever their share" in both
    assert "plain prompt only" in both
    assert "reads on from a recited clause" in both  # continue_recitals is on by default
    alone = "\n".join(_recital_lines(load_pipeline("default", {"build": {"recite": True},
                                                                 "generation": {"continue_recitals": False,
                                                                                "max_new_tokens": 112}})))
    assert "the text after the last ⇒" in alone and "Recite the clause" not in alone and "reads on" not in alone
    quoted = "\n".join(_recital_lines(load_pipeline("default", {"build": {"open_book_quotes": True},
                                                                  "generation": {"max_new_tokens": 112}})))
    assert "With retrieved chunks in the prompt, answers quote the sentence" in quoted and "Recite" not in quoted


def test_the_model_card_says_what_ask_reads_beyond_the_served_prompt():
    from docfinetune.export.card import _reading_lines

    default = "\n".join(_reading_lines(load_pipeline("default")))
    assert "generation.read_quotes" in default and "recall_sections" not in default  # quotes are read on by default
    both = "\n".join(_reading_lines(load_pipeline("default", {"generation": {"recall_sections": True}})))
    assert "generation.read_quotes" in both and "generation.recall_sections" in both
    assert _reading_lines(load_pipeline("default", {"generation": {"read_quotes": False}})) == []


def test_the_cli_exports_the_selected_checkpoint_into_the_workspace(trained: Workspace, run_cli, tmp_path):
    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(trained.root, workspace.root)
    result = run_cli("export", "--format", "adapter", workspace=workspace.root)
    assert result.exit_code == 0, result.stderr
    out = workspace.root / "exports" / f"{RUN_ID}-step{SELECTED}-adapter"
    assert (out / "adapter_model.safetensors").is_file() and str(out) in result.stdout.replace("\n", "")
    assert "exists; remove it" in one_line_exit_2(run_cli("export", "--format", "adapter", workspace=workspace.root))


# --------------------------------------------------------------------------- trackers


def test_report_to_is_none_by_default_and_one_of_the_trackers():
    assert load_pipeline("default").train.report_to == "none"
    for tracker in ("tensorboard", "wandb", "mlflow"):
        assert load_pipeline("default", {"train": {"report_to": tracker}}).train.report_to == tracker
    with pytest.raises(ConfigError, match="report_to: 'comet' is not one of none, tensorboard, wandb, mlflow"):
        load_pipeline("default", {"train": {"report_to": "comet"}})


def test_a_tracker_that_is_not_installed_stops_training_before_it_starts(monkeypatch, tmp_path):
    from transformers import integrations

    from docfinetune.train import check_settings

    monkeypatch.setattr(integrations, "is_wandb_available", lambda: False)
    config = load_pipeline("default", {"train": {"report_to": "wandb"}})
    data = {"cpt": [{"text": "x"}], "qa_train": [], "qa_val": []}
    with pytest.raises(ConfigError, match="train.report_to: wandb is not installed: pip install wandb"):
        check_settings(config, data, tmp_path)


def test_the_tracker_gets_the_projects_figures_beside_the_trainers(monkeypatch, tmp_path, tiny_model_dir):
    """A stand-in for transformers' TensorBoard integration records what Trainer passes it."""
    from transformers import TrainerCallback, integrations
    from transformers.integrations import integration_utils

    from docfinetune.ingest import ingest
    from docfinetune.pipeline import build_then_train

    logged: list[dict] = []

    class Recording(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    monkeypatch.setattr(integrations, "is_tensorboard_available", lambda: True)
    monkeypatch.setitem(integration_utils.INTEGRATION_TO_CALLBACK, "tensorboard", Recording)
    config = load_pipeline("default", {
        "model": {"base_model": str(tiny_model_dir), "device": "cpu"},
        "generation": {"max_new_tokens": 4}, "build": {"split_val_fraction": 0.2, "split_test_fraction": 0.2},
        "train": {"max_steps": 4, "eval_every_steps": 2, "micro_batch_size": 8, "max_seq_tokens": 48,
                  "eval_max_questions": 3, "report_to": "tensorboard"}})
    workspace = Workspace(tmp_path / "ws")
    ingest([write_pdf(tmp_path / "services_agreement.pdf", CONTRACT_PAGES)], workspace, config.ingest)
    run_dir = build_then_train(workspace, config)

    assert any("loss" in entry for entry in logged)  # the Trainer's own
    ours = [entry for entry in logged if "selected_step" in entry]
    assert len(ours) == 2 and all("eval_accuracy" in entry and "eval_taught_accuracy" in entry for entry in ours)
    selection = json.loads((run_dir / "selection.json").read_text())
    assert ours[-1]["selected_step"] == selection["selected"]["step"]
