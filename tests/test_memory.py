"""The GPU memory estimate and the message before training (no GPU needed: weights are given)."""

import pytest
from transformers import MistralConfig

from docfinetune.core.config import load_pipeline
from docfinetune.core.errors import ConfigError
from docfinetune.train.memory import (
    GIB,
    MemoryEstimate,
    activation_bytes,
    check_fits,
    estimate,
    largest_micro_batch_tokens,
)

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


def test_checkpointing_fused_loss_and_no_dropout_each_need_less():
    t = recipe(checkpointed_layers=1.0).train
    lean = activation_bytes(MISTRAL_7B, t, 7000, 0.0, fused_loss=True, element_bytes=2)
    assert activation_bytes(MISTRAL_7B, t, 7000, 0.0, fused_loss=False, element_bytes=2) > lean
    assert activation_bytes(MISTRAL_7B, t, 7000, 0.05, fused_loss=True, element_bytes=2) > lean
    assert activation_bytes(MISTRAL_7B, t, 14000, 0.0, fused_loss=True, element_bytes=2) > 1.8 * lean  # per token, beside a fixed part per layer
    unchecked = recipe(gradient_checkpointing=False).train
    assert activation_bytes(MISTRAL_7B, unchecked, 7000, 0.0, fused_loss=True, element_bytes=2) > 8 * lean
    # the chunked loss keeps one chunk's logits: between the fused loss and the whole row's
    chunked = recipe(checkpointed_layers=1.0, loss_chunk_tokens=1024).train
    whole = activation_bytes(MISTRAL_7B, t, 7000, 0.0, fused_loss=False, element_bytes=2)
    part = activation_bytes(MISTRAL_7B, chunked, 7000, 0.0, fused_loss=False, element_bytes=2)
    assert lean < part < whole and whole - part == (7000 - 1024) * MISTRAL_7B.vocab_size * (2 + 4 + 4)


def test_largest_micro_batch_of_a_shuffled_run():
    lengths = [100] * 50 + [120] * 50 + [400]
    packed = recipe(micro_batch_size=2).train
    mean = sum(lengths) / len(lengths)
    assert largest_micro_batch_tokens(lengths, packed) == round(400 + mean)  # the longest beside an average one
    many = recipe(micro_batch_size=64).train
    assert 64 * mean < largest_micro_batch_tokens(lengths, many) < 400 + 63 * 120  # not the 64 longest together
    padded = load_pipeline("default", {"train": {"micro_batch_size": 2, "packing": False}}).train
    assert largest_micro_batch_tokens(lengths, padded) == 800  # some batch holds the longest, padded to it
    assert largest_micro_batch_tokens([], padded) == 0


@pytest.mark.parametrize("train, tokens, allocated", [
    ({"checkpointed_layers": 1.0}, 7254, 7.73),  # peaks allocated on the GPU machine (benchmarks/RESULTS.md)
    ({"checkpointed_layers": 0.8}, 7254, 13.30),
    ({"checkpointed_layers": 1.0, "micro_batch_size": 128}, 13626, 11.37),
    ({"gradient_checkpointing": False, "micro_batch_size": 8}, 954, 13.30),
])
def test_estimate_is_near_the_peaks_measured_on_the_7b_shape(train, tokens, allocated):
    config = recipe(**train)
    found = estimate(Shaped(MISTRAL_7B, 41_943_040), config, [tokens // 64] * 64, fused_loss=True,
                     weights_bytes=int(4.0 * GIB))
    activations = activation_bytes(MISTRAL_7B, config.train, tokens, 0.0, True, 2) / GIB
    assert abs(found.weights_gib + found.optimizer_gib + activations - allocated) / allocated < 0.12


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
    with pytest.raises(ConfigError, match="weights alone .* use model.quantization: nf4"):
        check_fits(found, 24.0, recipe(quantization="none").train, 100)


def test_without_checkpointing_the_advice_mentions_it():
    t = recipe(gradient_checkpointing=False).train
    found = MemoryEstimate(weights_gib=4.0, optimizer_gib=0.2, activations_gib=40.0, tokens=7000, bytes_per_token=6_000_000)
    with pytest.raises(ConfigError, match="or turn on train.gradient_checkpointing"):
        check_fits(found, 24.0, t, 110)


def test_fewer_checkpointed_layers_need_more_memory():
    def need(**train):
        return activation_bytes(MISTRAL_7B, recipe(**train).train, 7000, 0.0, fused_loss=True, element_bytes=2)

    assert need(checkpointed_layers=1.0) < need(checkpointed_layers=0.75) < need(gradient_checkpointing=False)
    assert need(checkpointed_layers=0.0) == need(gradient_checkpointing=False)
