"""The model loader on the tiny local model; the real embedded Gemma only in the slow suite."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from docfinetune.core.config import GenerationConfig, ModelConfig
from docfinetune.core.errors import ConfigError, DocfinetuneError
from docfinetune.core.generate import answer_questions
from docfinetune.core.models import cpu_has_native_bf16, load_model, load_tokenizer, resolve
from tests.tiny_model import TRAINING_TEXT, build_tiny_gemma_tokenizer

# Text that exercises normalization, pre-tokenization, byte fallback and special tokens.
VARIED_TEXTS = [
    "", " ", "Hello world", "  leading and trailing spaces  ", "tabs\tand\nnew lines\n\n  indented",
    "Ünïcödé café naïve façade", "日本語のテキストと中文", "emoji 🙂👍🏽 and a ZWJ 👩‍💻",
    "$12,500.00 (1%) due 2024-03-04",
    "<bos>specials <eos> inline <pad> and <unk> <mask> <s></s>", "<start_of_turn>user [multimodal]",
    "x" * 300, TRAINING_TEXT[:1500],
]


def test_local_directory_loads_model_and_tokenizer(tiny_model_dir):
    config = ModelConfig(base_model=str(tiny_model_dir))
    assert resolve(config).kind == "local"
    tokenizer = load_tokenizer(config)
    model = load_model(dataclasses.replace(config, device="cpu"))
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
        load_model(ModelConfig(base_model=str(tiny_model_dir), device="cpu", quantization="nf4"))


def test_batched_answers_equal_one_at_a_time(tiny_model_dir):
    config = ModelConfig(base_model=str(tiny_model_dir))
    tokenizer, model = load_tokenizer(config), load_model(dataclasses.replace(config, device="cpu"))
    questions = ["Who is the Supplier?", "What is the governing law of the agreement between the parties?",
                 "When?", "How long is the Initial Term of the Master Services Agreement?"]
    batched = answer_questions(model, tokenizer, questions, GenerationConfig(batch_size=4, max_new_tokens=12))
    single = [answer_questions(model, tokenizer, [q], GenerationConfig(batch_size=1, max_new_tokens=12))[0] for q in questions]
    assert batched == single


@pytest.mark.slow
def test_embedded_gemma_answers_in_batches_like_one_at_a_time():
    """The real Gemma 3 270M: converted from GGUF once, then cached; batched greedy answers are
    non-empty and equal to one-at-a-time answers."""
    model_config = ModelConfig()
    tokenizer, model = load_tokenizer(model_config), load_model(dataclasses.replace(model_config, device="cpu"))
    questions = ["What is the capital of France?", "Who wrote Hamlet?", "What is 2 plus 2?"]
    batched = answer_questions(model, tokenizer, questions, GenerationConfig(batch_size=3, max_new_tokens=16))
    single = [answer_questions(model, tokenizer, [q], GenerationConfig(batch_size=1, max_new_tokens=16))[0] for q in questions]
    assert batched == single and all(batched)
    assert "Paris" in batched[0]


def _same_tokenizer(got, want) -> None:
    """Equal backend, settings, special tokens, ids, offsets, decodes and padding."""
    assert got.backend_tokenizer.to_str() == want.backend_tokenizer.to_str()
    for attribute in ("padding_side", "truncation_side", "model_max_length", "model_input_names", "all_special_tokens",
                      "all_special_ids", "special_tokens_map", "pad_token_id", "eos_token_id", "bos_token_id",
                      "unk_token_id", "clean_up_tokenization_spaces", "chat_template", "vocab_size"):
        assert getattr(got, attribute) == getattr(want, attribute), attribute
    assert len(got) == len(want) and got.get_vocab() == want.get_vocab()
    assert {i: str(t) for i, t in got.added_tokens_decoder.items()} == \
        {i: str(t) for i, t in want.added_tokens_decoder.items()}
    for text in VARIED_TEXTS:
        for special in (True, False):
            a = got(text, add_special_tokens=special, return_offsets_mapping=True)
            b = want(text, add_special_tokens=special, return_offsets_mapping=True)
            assert dict(a) == dict(b), text
            assert got.convert_ids_to_tokens(a["input_ids"]) == want.convert_ids_to_tokens(b["input_ids"])
            for skip in (True, False):
                assert got.decode(a["input_ids"], skip_special_tokens=skip) == \
                    want.decode(b["input_ids"], skip_special_tokens=skip)
    for side in (None, "left", "right"):
        options = {} if side is None else {"padding_side": side}
        assert dict(got(VARIED_TEXTS, padding=True, **options)) == dict(want(VARIED_TEXTS, padding=True, **options))
    assert dict(got(VARIED_TEXTS, padding="max_length", truncation=True, max_length=8)) == \
        dict(want(VARIED_TEXTS, padding="max_length", truncation=True, max_length=8))
    if want.chat_template:
        messages = [{"role": "user", "content": "Which law governs?"}]
        assert got.apply_chat_template(messages, add_generation_prompt=True) == \
            want.apply_chat_template(messages, add_generation_prompt=True)


@pytest.mark.parametrize("kind", ["byte-level BPE", "Gemma"])
def test_a_cached_converted_tokenizer_loads_from_its_file_as_autotokenizer_would(
        kind, tiny_tokenizer, tmp_path, monkeypatch):
    """A GGUF's converted tokenizer is read from its tokenizer.json (AutoTokenizer rebuilds
    Gemma's vocabulary in Python, 2.6 s for the real one) and behaves the same in every way."""
    from transformers import AutoTokenizer

    saved = tmp_path / "saved"
    if kind == "Gemma":
        build_tiny_gemma_tokenizer(saved)
    else:
        tiny_tokenizer.save_pretrained(saved)
    monkeypatch.setenv("DOCFINETUNE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")  # never read: the converted tokenizer is in the cache already
    config = ModelConfig(base_model=str(gguf))
    shutil.copytree(saved, resolve(config).cache_dir)

    want = AutoTokenizer.from_pretrained(resolve(config).cache_dir)
    got = load_tokenizer(config)
    assert type(got).__name__ == "TokenizersBackend"  # the generic class: the file, not a rebuild
    assert type(want).__name__ == ("GemmaTokenizer" if kind == "Gemma" else "TokenizersBackend")
    assert (got.padding_side, got.name_or_path) == ("left" if kind == "Gemma" else "right",
                                                    str(resolve(config).cache_dir))
    _same_tokenizer(got, want)


def test_a_gguf_conversion_that_cannot_read_is_refused_and_not_cached(tiny_model_dir, tmp_path, monkeypatch):
    """transformers 5.17 turns the Gemma 3 GGUF into a model with loss ~9 on plain English; such a
    conversion must fail loudly instead of being cached and trained on. A random tiny model
    stands in for the broken conversion."""
    import transformers

    from docfinetune.core import models

    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setenv("DOCFINETUNE_CACHE", str(tmp_path / "cache"))
    broken = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: broken)
    tiny = load_tokenizer(ModelConfig(base_model=str(tiny_model_dir)))
    monkeypatch.setattr(models, "load_tokenizer", lambda config: tiny)
    config = ModelConfig(base_model=str(fake))
    with pytest.raises(DocfinetuneError, match="cannot read plain English"):
        models.load_model(dataclasses.replace(config, device="cpu"))
    assert not any((tmp_path / "cache").rglob("*.safetensors"))


def test_nf4_asks_transformers_for_4bit_nf4_with_double_quantization(monkeypatch, tiny_model_dir):
    """The CUDA-only branch, checked on a CPU: what from_pretrained is asked for."""
    import torch
    from transformers import AutoModelForCausalLM

    import docfinetune.core.models as models

    asked = {}
    monkeypatch.setattr(models, "resolve_device", lambda train: "cuda")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda location, **kwargs: asked.update(kwargs))
    models.load_model(ModelConfig(base_model=str(tiny_model_dir), quantization="nf4"))
    q = asked["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and asked["dtype"] == torch.bfloat16
    assert asked["device_map"] == {"": 0} and asked["attn_implementation"] == "sdpa"


@pytest.mark.parametrize("cudnn", [False, True])
def test_cuda_attention_uses_cudnn_only_when_asked(monkeypatch, tiny_model_dir, cudnn):
    """cuDNN's attention plans per sequence length (train_profile on the H200: 3.9 ms of CPU a call), yet
    trains faster on a shared GPU: load_model sets model.cudnn_attention for the process (checked on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    import docfinetune.core.models as models

    was = torch.backends.cuda.cudnn_sdp_enabled()
    monkeypatch.setattr(models, "resolve_device", lambda train: "cuda")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda location, **kwargs: None)
    torch.backends.cuda.enable_cudnn_sdp(not cudnn)
    try:
        models.load_model(ModelConfig(base_model=str(tiny_model_dir), quantization="nf4", cudnn_attention=cudnn))
        assert torch.backends.cuda.cudnn_sdp_enabled() is cudnn
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)


def test_weights_too_large_for_the_gpu_say_to_use_nf4(monkeypatch, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    import docfinetune.core.models as models

    def out_of_memory(location, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(models, "resolve_device", lambda train: "cuda")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", out_of_memory)
    with pytest.raises(ConfigError, match="does not fit in the GPU's memory .* use model.quantization: nf4"):
        models.load_model(ModelConfig(base_model=str(tiny_model_dir)))


NATIVE_BF16_CHECK = cpu_has_native_bf16  # bound at import, before conftest pins it


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_on_cpu_is_bf16_only_where_the_cpu_computes_it(monkeypatch, native, expected):
    import torch

    from docfinetune.core import models
    from docfinetune.core.models import resolve_dtype

    monkeypatch.setattr(models, "cpu_has_native_bf16", NATIVE_BF16_CHECK)  # the real check (conftest pins fp32)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_dtype(ModelConfig(precision="auto"), "cpu") == getattr(torch, expected)
    assert resolve_dtype(ModelConfig(precision="bf16"), "cpu") == torch.bfloat16  # asked for: kept
    assert resolve_dtype(ModelConfig(precision="fp32"), "cpu") == torch.float32
    assert resolve_dtype(ModelConfig(precision="auto"), "cuda") == torch.bfloat16
