"""The GPU memory estimate and the message before training (no GPU needed: weights are given)."""

import pytest
from transformers import MistralConfig

from docfinetune.config import load_pipeline
from docfinetune.errors import ConfigError
from docfinetune.memory import GIB, MemoryEstimate, bytes_per_token, check_fits, estimate, largest_micro_batch_tokens

MISTRAL_7B = MistralConfig()  # the defaults are Mistral 7B's shape


class Shaped:
    """Enough of a model for `estimate`: a config and parameters (here, the LoRA ones)."""

    def __init__(self, config, trainable: int) -> None:
        import torch

        self.config = config
        self._params = [torch.nn.Parameter(torch.zeros(trainable)), torch.nn.Parameter(torch.zeros(10), False)]

    def parameters(self):
        return iter(self._params)


def recipe(**train):
    return load_pipeline("mistral7b-qlora-a10g", {"train": train} if train else {})


def test_checkpointing_fused_loss_and_no_dropout_each_need_less_per_token():
    t = recipe().train
    lean = bytes_per_token(MISTRAL_7B, t, 0.0, fused_loss=True, element_bytes=2)
    assert bytes_per_token(MISTRAL_7B, t, 0.0, fused_loss=False, element_bytes=2) > lean
    assert bytes_per_token(MISTRAL_7B, t, 0.05, fused_loss=True, element_bytes=2) > lean
    unchecked = recipe(gradient_checkpointing=False).train
    assert bytes_per_token(MISTRAL_7B, unchecked, 0.0, fused_loss=True, element_bytes=2) > 10 * lean


def test_largest_micro_batch_packed_sums_padded_multiplies():
    lengths = [100, 120, 90, 300, 110]
    assert largest_micro_batch_tokens(lengths, recipe(micro_batch_size=2).train) == 420
    padded = load_pipeline("default", {"train": {"micro_batch_size": 2, "packing": False}}).train
    assert largest_micro_batch_tokens(lengths, padded) == 600
    assert largest_micro_batch_tokens([], padded) == 0


def test_recipe_estimate_is_near_the_peak_measured_on_the_gpu():
    """benchmarks/RESULTS.md: the recipe peaked at 7.7 GiB allocated, 8.4 reserved (64 examples,
    ~7,300 tokens, 4.0 GiB of 4-bit weights, 42M adapter parameters) on the 7B shape."""
    config = recipe()
    found = estimate(Shaped(MISTRAL_7B, 41_943_040), config, [114] * 64, fused_loss=True, weights_bytes=int(4.0 * GIB))
    assert found.tokens == 64 * 114
    assert abs(found.total_gib - 7.7) / 7.7 < 0.1  # the check itself uses the largest batch, and 8% headroom


def test_too_large_a_micro_batch_names_the_setting_and_a_size_that_fits():
    t = recipe(micro_batch_size=2048).train
    found = MemoryEstimate(weights_gib=4.0, optimizer_gib=0.2, activations_gib=50.7, tokens=111_702,
                           bytes_per_token=int(50.7 * GIB / 111_702))
    with pytest.raises(ConfigError) as raised:
        check_fits(found, 24.0, t, mean_example_tokens=104)
    message = str(raised.value)
    assert message.startswith("train.micro_batch_size: 2048 examples need about 54.9 GiB")
    fits = int(message.split("set train.micro_batch_size to ")[1].split()[0])
    assert 300 < fits < 400  # (24 * 0.92 - 4.2) GiB at ~487 KB per token, ~104 tokens per example
    check_fits(MemoryEstimate(4.0, 0.2, 50.7 * fits * 104 / 111_702, fits * 104, found.bytes_per_token), 24.0, t, 104)


def test_weights_that_cannot_fit_point_to_4bit():
    found = MemoryEstimate(weights_gib=28.0, optimizer_gib=0.2, activations_gib=1.0, tokens=1000, bytes_per_token=1)
    with pytest.raises(ConfigError, match="weights alone .* use train.quantization: nf4"):
        check_fits(found, 24.0, recipe(quantization="none").train, 100)


def test_without_checkpointing_the_advice_mentions_it():
    t = recipe(gradient_checkpointing=False).train
    found = MemoryEstimate(weights_gib=4.0, optimizer_gib=0.2, activations_gib=40.0, tokens=7000, bytes_per_token=6_000_000)
    with pytest.raises(ConfigError, match="or turn on train.gradient_checkpointing"):
        check_fits(found, 24.0, t, 110)


def test_fewer_checkpointed_layers_need_more_memory_per_token():
    full = bytes_per_token(MISTRAL_7B, recipe().train, 0.0, fused_loss=True, element_bytes=2)
    most = bytes_per_token(MISTRAL_7B, recipe(checkpointed_layers=0.75).train, 0.0, fused_loss=True, element_bytes=2)
    none = bytes_per_token(MISTRAL_7B, recipe(gradient_checkpointing=False).train, 0.0, fused_loss=True, element_bytes=2)
    assert full < most < none
    assert bytes_per_token(MISTRAL_7B, recipe(checkpointed_layers=0.0).train, 0.0, True, 2) == none
