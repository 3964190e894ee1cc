"""The model loader on the tiny local model; the real embedded Gemma only in the slow suite."""

from __future__ import annotations

import pytest

from docfinetune.config import ModelConfig, TrainConfig
from docfinetune.errors import ConfigError, DocfinetuneError
from docfinetune.generate import answer_questions
from docfinetune.models import load_model, load_tokenizer, resolve


def test_local_directory_loads_model_and_tokenizer(tiny_model_dir):
    config = ModelConfig(base_model=str(tiny_model_dir))
    assert resolve(config).kind == "local"
    tokenizer = load_tokenizer(config)
    model = load_model(config, TrainConfig(device="cpu"))
    assert tokenizer.pad_token is not None and next(model.parameters()).device.type == "cpu"


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(DocfinetuneError, match="downloads are off"):
        load_tokenizer(ModelConfig(base_model="someorg/not-cached-model"))


def test_missing_paths_are_named(tmp_path):
    with pytest.raises(DocfinetuneError, match="no such GGUF file"):
        resolve(ModelConfig(base_model=str(tmp_path / "absent.gguf")))
    with pytest.raises(DocfinetuneError, match="no such model directory"):
        resolve(ModelConfig(base_model=str(tmp_path / "absent" / "model")))


def test_qlora_needs_cuda(tiny_model_dir):
    with pytest.raises(ConfigError, match="nf4 .* needs a CUDA GPU"):
        load_model(ModelConfig(base_model=str(tiny_model_dir)), TrainConfig(device="cpu", quantization="nf4"))


def test_batched_answers_equal_one_at_a_time(tiny_model_dir):
    config = ModelConfig(base_model=str(tiny_model_dir))
    tokenizer, model = load_tokenizer(config), load_model(config, TrainConfig(device="cpu"))
    questions = ["Who is the Supplier?", "What is the governing law of the agreement between the parties?",
                 "When?", "How long is the Initial Term of the Master Services Agreement?"]
    batched = answer_questions(model, tokenizer, questions, "Question: {question}\nAnswer:", 4, 12)
    single = [answer_questions(model, tokenizer, [q], "Question: {question}\nAnswer:", 1, 12)[0] for q in questions]
    assert batched == single


@pytest.mark.slow
def test_embedded_gemma_answers_in_batches_like_one_at_a_time():
    """The real Gemma 3 270M: converted from GGUF once, then cached; batched greedy answers are
    non-empty and equal to one-at-a-time answers."""
    model_config = ModelConfig()
    tokenizer, model = load_tokenizer(model_config), load_model(model_config, TrainConfig(device="cpu"))
    questions = ["What is the capital of France?", "Who wrote Hamlet?", "What is 2 plus 2?"]
    batched = answer_questions(model, tokenizer, questions, "Question: {question}\nAnswer:", 3, 16)
    single = [answer_questions(model, tokenizer, [q], "Question: {question}\nAnswer:", 1, 16)[0] for q in questions]
    assert batched == single and all(batched)
    assert "Paris" in batched[0]
