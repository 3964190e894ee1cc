"""`ask` on a run made here the way `train` lays it out: a tiny random Mistral, two LoRA
checkpoints with different random weights (so each one answers differently), selection.json,
config.yaml and runs/latest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from docfinetune.ask import BASE_MODEL, AskResult, ask
from docfinetune.core.config import PipelineConfig, load_pipeline
from docfinetune.core.errors import DocfinetuneError
from docfinetune.core.generate import answer_questions
from docfinetune.core.models import load_model, load_tokenizer
from docfinetune.core.workspace import Workspace
from tests.conftest import make_fake_run

QUESTION = "Which state's laws govern the agreement?"
RUN_ID = "20250101-120000"
STEPS = (1, 2)
SELECTED_STEP = 2


def make_run(workspace: Workspace, config: PipelineConfig, run_id: str = RUN_ID) -> Path:
    """runs/<run_id>/ as train and select leave it, with runs/latest naming it."""
    return make_fake_run(workspace, config, run_id, STEPS, SELECTED_STEP)


@pytest.fixture(scope="module")
def config(tiny_model_dir: Path) -> PipelineConfig:
    return load_pipeline("default", {"model": {"base_model": str(tiny_model_dir), "device": "cpu"},
                                     "generation": {"max_new_tokens": 10}})


@pytest.fixture(scope="module")
def trained(ingested_contract: Workspace, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A copy of `ingested_contract` with a finished run."""
    workspace = Workspace(tmp_path_factory.mktemp("ask-trained") / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    make_run(workspace, config)
    return workspace


@pytest.fixture
def copy_of(tmp_path: Path):
    """A scratch copy of a workspace, for tests that break a run."""

    copies = []

    def copy(workspace: Workspace) -> Workspace:
        copies.append(Workspace(tmp_path / f"ws-{len(copies)}"))
        shutil.copytree(workspace.root, copies[-1].root)
        return copies[-1]

    return copy


def reference_answer(config: PipelineConfig, adapter: Path | None, question: str = QUESTION) -> str:
    """What training-time evaluation (`answer_questions`) answers with the same weights."""
    model = load_model(config.model)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    tokenizer = load_tokenizer(config.model)
    return answer_questions(model, tokenizer, [question], config.generation)[0]


def checkpoint_dir(workspace: Workspace, step: int) -> Path:
    return workspace.root / "runs" / RUN_ID / "checkpoints" / f"checkpoint-{step}"


def test_ask_streams_the_selected_checkpoint_and_answers_as_evaluation_does(trained: Workspace, config):
    pieces: list[str] = []
    result = ask(trained, QUESTION, on_token=pieces.append)
    assert isinstance(result, AskResult)
    assert result.run_id == RUN_ID and result.step == SELECTED_STEP
    assert Path(result.checkpoint) == checkpoint_dir(trained, SELECTED_STEP)
    assert result.answer and "\n" not in result.answer and result.answer == result.answer.strip()
    assert pieces and "".join(pieces) == result.answer
    assert result.answer == reference_answer(config, checkpoint_dir(trained, SELECTED_STEP))
    assert 0 < result.seconds_to_first_token <= result.seconds
    assert result.sources == []


def test_ask_dash_answers_each_stdin_line_with_the_model_loaded_once(trained: Workspace, monkeypatch):
    from click.testing import CliRunner

    import docfinetune.ask as ask_module
    from docfinetune.cli import main

    loads = []
    real_load = ask_module.load_answerer
    monkeypatch.setattr(ask_module, "load_answerer", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    other = "Who are the parties to the agreement?"
    done = CliRunner().invoke(main, ["--workspace", str(trained.root), "ask", "-"],
                              input=f"{QUESTION}\n\n  {other}  \n")
    assert done.exit_code == 0, done.output
    assert len(loads) == 1
    answers = [ask(trained, q).answer for q in (QUESTION, other)]
    assert done.stdout.splitlines() == answers  # one line each, in order; the blank line skipped
    assert done.stderr.count("first token after") == 2


def test_checkpoint_by_step_by_path_and_the_base_model_answer_differently(trained: Workspace, config):
    pieces: list[str] = []
    first = ask(trained, QUESTION, checkpoint=1, on_token=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == first.answer  # word by word
    assert first.step == 1 and Path(first.checkpoint) == checkpoint_dir(trained, 1)
    assert first.answer == reference_answer(config, checkpoint_dir(trained, 1))
    assert ask(trained, QUESTION, checkpoint="1").answer == first.answer  # as the CLI passes it
    by_path = ask(trained, QUESTION, checkpoint=checkpoint_dir(trained, 1))
    assert (by_path.step, by_path.answer) == (1, first.answer)
    assert ask(trained, QUESTION, checkpoint="checkpoints/checkpoint-1").answer == first.answer  # run-relative

    pieces.clear()
    base = ask(trained, QUESTION, base=True, on_token=pieces.append)
    assert (base.checkpoint, base.step, base.run_id) == (BASE_MODEL, None, RUN_ID)
    assert base.answer == reference_answer(config, None) and "".join(pieces) == base.answer
    selected = ask(trained, QUESTION)
    assert len({first.answer, selected.answer, base.answer}) == 3  # each adapter is really applied


def test_sources_are_the_best_chunks_with_document_and_pages(trained: Workspace):
    result = ask(trained, "How much is the monthly fee?", sources=2)
    assert 1 <= len(result.sources) <= 2
    (chunk, score), *_ = result.sources
    assert "$12,500" in chunk.text and score > 0
    assert chunk.doc_id == "services-agreement" and (chunk.page_start, chunk.page_end) == (2, 3)
    scores = [s for _, s in result.sources]
    assert scores == sorted(scores, reverse=True)


def test_nothing_trained_is_a_clear_error_and_base_still_answers(ingested_contract: Workspace, config):
    with pytest.raises(DocfinetuneError) as caught:
        ask(ingested_contract, QUESTION)
    message = str(caught.value)
    assert f"no trained model in {ingested_contract.root / 'runs'}" in message
    assert "run `docfinetune train` first, or use --base" in message
    with pytest.raises(DocfinetuneError, match="--pipeline"):
        ask(ingested_contract, QUESTION, base=True)  # no run, and no config to fall back on
    result = ask(ingested_contract, QUESTION, base=True, config=config, sources=1)
    assert (result.run_id, result.checkpoint) == (None, BASE_MODEL)
    assert result.answer == reference_answer(config, None) and len(result.sources) == 1


def test_a_fact_card_source_comes_with_the_contracts_own_words(trained: Workspace, copy_of, config):
    from click.testing import CliRunner

    from docfinetune.build import build
    from docfinetune.cli import main

    workspace = copy_of(trained)
    build(workspace, load_pipeline("default", {"model": {"base_model": config.model.base_model},
                                               "build": {"augment_variants": 0}}))
    result = ask(workspace, QUESTION, sources=2)
    card, _ = result.sources[0]
    assert card.chunk_id.endswith(":card") and "Vermont" in card.text
    stated = result.cited[card.chunk_id]
    assert "governed by the laws of the State of Vermont" in stated.text and stated.page_start == card.page_start
    assert all(not c.chunk_id.endswith(":card") for c in result.cited.values())
    shown = CliRunner().invoke(main, ["--workspace", str(workspace.root), "ask", "--sources", "1", QUESTION])
    assert shown.exit_code == 0, shown.output
    assert "fact card of the chunk at" in shown.stdout and "the contract there:" in shown.stdout
    assert "governed by the laws of the State of Vermont" in shown.stdout


def test_unknown_checkpoint_lists_the_steps(trained: Workspace):
    with pytest.raises(DocfinetuneError, match=r"no checkpoint at step 7; available steps: 1, 2"):
        ask(trained, QUESTION, checkpoint=7)
    with pytest.raises(DocfinetuneError, match=r"not a checkpoint \(no adapter_config.json or config.json\).*steps: 1, 2"):
        ask(trained, QUESTION, checkpoint=trained.root / "datasets")
    with pytest.raises(DocfinetuneError, match="not both"):
        ask(trained, QUESTION, checkpoint=1, base=True)


def test_missing_run_and_unfinished_selection_are_clear_errors(trained: Workspace, copy_of):
    with pytest.raises(DocfinetuneError, match=rf"no such run \(runs: {RUN_ID}\)"):
        ask(trained, QUESTION, run_id="20990101-000000")
    workspace = copy_of(trained)
    (workspace.root / "runs" / "latest").write_text("gone\n")
    with pytest.raises(DocfinetuneError, match=rf"runs/gone: no such run \(runs: {RUN_ID}\)"):
        ask(workspace, QUESTION)

    # A run stopped before selecting: its checkpoints are still found on disk, by step.
    workspace = copy_of(trained)
    (workspace.root / "runs" / RUN_ID / "selection.json").unlink()
    with pytest.raises(DocfinetuneError, match=r"no checkpoint selected yet.*--checkpoint STEP \(steps: 1, 2\)"):
        ask(workspace, QUESTION)
    assert ask(workspace, QUESTION, checkpoint=2).step == 2

    (workspace.root / "runs" / RUN_ID / "config.yaml").unlink()
    with pytest.raises(DocfinetuneError, match="config.yaml: missing"):
        ask(workspace, QUESTION, checkpoint=2)


def test_bad_questions_fail_before_loading_anything(trained: Workspace):
    with pytest.raises(DocfinetuneError, match="the question is empty"):
        ask(trained, "   ")
    with pytest.raises(DocfinetuneError, match="sources: -1 is negative"):
        ask(trained, QUESTION, sources=-1)


def test_the_run_config_round_trips_through_load_pipeline(trained: Workspace, config):
    assert load_pipeline(str(trained.root / "runs" / RUN_ID / "config.yaml")) == config


def test_ask_answers_open_book_when_eval_measured_retrieval_better(trained: Workspace, copy_of, tmp_path,
                                                                   monkeypatch):
    import json

    import docfinetune.core.generate
    from docfinetune.evaluate import evaluate

    workspace = copy_of(trained)
    question = "Which state's laws govern the agreement?"
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": question, "answer": "Vermont", "field": "governing_law"}) + "\n")
    before = ask(workspace, question)
    assert not before.open_book and before.context == [] and "no evaluation" in before.why

    def reader(model, tokenizer, prompts, **settings):  # answers from the context, when there is one
        return ["the State of Vermont" if "State of Vermont" in p else "no idea" for p in prompts]

    with monkeypatch.context() as patch:
        patch.setattr(docfinetune.core.generate, "generate", reader)
        evaluate(workspace, questions_file=questions, systems="finetuned,finetuned+rag")
    systems = json.loads((workspace.root / "runs" / RUN_ID / "systems.json").read_text())
    assert systems["step"] == SELECTED_STEP and systems["accuracy"] == {"finetuned": 0.0, "finetuned+rag": 1.0}

    result = ask(workspace, question)  # the real model again
    assert result.open_book and len(result.context) == 3 and "fine-tuned + RAG 100%" in result.why
    assert any("State of Vermont" in c.text for c in result.context)
    forced = ask(workspace, question, open_book=False)
    assert not forced.open_book and forced.why == "asked for"
    other = ask(workspace, question, checkpoint=STEPS[0])  # figures of another checkpoint do not count
    assert not other.open_book


def test_a_frozen_output_layer_gets_a_contiguous_input_while_generating(tiny_model_dir):
    """matmul copies the whole output layer per prompt for the last-position slice of a frozen
    model (core.generate: 7 s a batch on the CPU for Gemma 3); generate hands it a contiguous
    input, and leaves no hook behind."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from docfinetune.core.generate import generate

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval().requires_grad_(False)
    seen: list[bool] = []
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    prompts = ["What is the cure period?", "Which state's law governs this agreement, and where?"]
    answers = generate(model, tokenizer, prompts, max_new_tokens=4, batch_size=2, stop_at_line_end=False)
    assert len(answers) == 2 and seen and all(seen)
    assert len(model.get_output_embeddings()._forward_pre_hooks) == 0


def test_decoding_on_cuda_leaves_cudnn_attention_out_and_restores_it():
    """core.generate: cuDNN re-plans its attention for each new key length (every generated token); on
    CUDA generation runs without it, and training's choice (model.cudnn_attention) is back afterwards.
    On a CPU nothing changes. The flags are process-wide, so a torch.device is enough to check them."""
    import torch

    from docfinetune.core.generate import _decoding_attention

    was = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        with _decoding_attention(torch.device("cuda")):
            assert not torch.backends.cuda.cudnn_sdp_enabled()
            assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
        assert torch.backends.cuda.cudnn_sdp_enabled()
        with _decoding_attention(torch.device("cpu")):
            assert torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)


def test_ask_with_recite_both_prints_the_recital_only_when_it_quotes_the_question(monkeypatch):
    from types import SimpleNamespace

    import docfinetune.ask as ask_module
    from docfinetune.ask import Asker

    config = load_pipeline("default", {"build": {"recite": True, "recite_both": True},
                                       "generation": {"max_new_tokens": 112, "continue_recitals": False}})
    recital = "Customer shall pay each undisputed invoice within forty-five (45) days ⇒ forty-five (45) days"
    prompts = []
    monkeypatch.setattr(ask_module, "generate", lambda model, tokenizer, asked, **kw: prompts.extend(asked) or [recital])
    asker = SimpleNamespace(config=config, chosen=object(), model=None, tokenizer=None, titles={})
    printed = []
    quoting = "Within how many days shall Customer pay each undisputed invoice?"
    assert Asker.recalled(asker, quoting, "thirty (30) days", printed.append) == recital
    assert prompts == [f"Question: {quoting}\nRecite the clause, then answer:"]
    assert printed == [f"\n(recited, the clause the question quotes: {recital})"]
    printed.clear()
    topic = "When are the vendor's bills due?"
    assert Asker.recalled(asker, topic, "thirty (30) days", printed.append) == "thirty (30) days" and not printed
    # the base model (no run) is never asked twice
    assert Asker.recalled(SimpleNamespace(config=config, chosen=None, model=None, tokenizer=None, titles={}), quoting,
                          "thirty (30) days", printed.append) == "thirty (30) days" and len(prompts) == 2


def test_ask_reads_on_from_a_recited_answer_and_prints_the_value_read(monkeypatch):
    from types import SimpleNamespace

    import docfinetune.ask as ask_module
    from docfinetune.ask import Asker

    config = load_pipeline("default", {"build": {"recite": True}, "generation": {"max_new_tokens": 112}})
    clause = "Customer shall pay each undisputed invoice within"
    asked = []
    monkeypatch.setattr(ask_module, "generate",
                        lambda model, tokenizer, prompts, **kw: asked.extend(prompts) or ["forty-five (45) days of receipt."])
    asker = SimpleNamespace(config=config, chosen=object(), model=None, tokenizer=None, titles={})
    printed = []
    got = Asker.recalled(asker, "When must invoices be paid?", f"{clause} thirty (30) days ⇒ thirty (30) days",
                         printed.append)
    assert asked == [clause]  # the clause cut before its value, continued as plain text
    assert got.endswith("⇒ forty-five (45) days of receipt") and printed == ["\n(read on from the recital: forty-five (45) days of receipt)"]
    printed.clear()
    assert Asker.recalled(asker, "When must invoices be paid?", "thirty (30) days", printed.append) == "thirty (30) days"
    assert not printed and asked == [clause]  # nothing recited: nothing read on


def test_ask_answers_a_question_naming_a_section_from_its_recall_and_says_so(monkeypatch):
    from types import SimpleNamespace

    import docfinetune.ask as ask_module
    from docfinetune.ask import Asker

    config = load_pipeline("default", {"generation": {"recall_sections": True}})
    calls = []

    def generate(model, tokenizer, prompts, stop_at_line_end=True, **kw):
        calls.append((list(prompts), stop_at_line_end))
        if not stop_at_line_end:  # the section's header continued from memory
            return [" Fees\n\n4.2 Fees. Customer shall pay each undisputed invoice within forty-five (45) days."]
        return ["forty-five (45) days" if "Context:" in prompts[0] else "thirty (30) days"]

    monkeypatch.setattr(ask_module, "generate", generate)
    asker = SimpleNamespace(config=config, chosen=object(), model=None, tokenizer=None,
                            titles={"msa": "MASTER SERVICES AGREEMENT"})
    printed = []
    question = "Under Section 4.2, within how many days shall Customer pay each undisputed invoice?"
    assert Asker.recalled(asker, question, "thirty (30) days", printed.append) == "forty-five (45) days"
    assert calls[0] == (["MASTER SERVICES AGREEMENT\n4.2"], False)
    assert calls[1][0][0].startswith("Context:\n[MASTER SERVICES AGREEMENT, page ?]\n4.2 Fees")
    assert printed == ["\n(from its recall of the section the question names: forty-five (45) days)"]
    # a question naming no section is answered as before, with nothing more asked
    calls.clear(), printed.clear()
    assert Asker.recalled(asker, "When are invoices due?", "thirty (30) days", printed.append) == "thirty (30) days"
    assert not calls and not printed


def test_ask_reads_on_from_the_clause_a_question_quotes_and_says_so(monkeypatch):
    from types import SimpleNamespace

    import docfinetune.ask as ask_module
    from docfinetune.ask import Asker

    config = load_pipeline("default", {"generation": {"read_quotes": True}})
    calls = []

    def generate(model, tokenizer, prompts, stop_at_line_end=True, **kw):
        calls.append((list(prompts), stop_at_line_end))
        return [" forty-five (45) days of receipt, without set-off."]

    monkeypatch.setattr(ask_module, "generate", generate)
    asker = SimpleNamespace(config=config, chosen=object(), model=None, tokenizer=None, titles={})
    printed = []
    question = 'What fills the blank: "Customer shall pay each undisputed invoice within ___ of receipt"?'
    got = Asker.recalled(asker, question, "thirty (30) days", printed.append)
    assert got.endswith(" ⇒ forty-five (45) days") and calls == [(["Customer shall pay each undisputed invoice within"], False)]
    assert printed == ["\n(read on from the clause the question quotes: forty-five (45) days)"]
