"""GPU memory for training: cap it, estimate what a micro-batch needs, refuse what cannot fit.

A 7B model that runs out of memory does so minutes in, after loading and the first steps. This
check runs right after the model is loaded — its weights are then measured, not guessed — and
adds the adapter's optimizer state and the activations of the largest micro-batch the data can
make, from the model's shape. When the sum is over the budget it names the setting to change.

The constants are counted from what a decoder layer keeps for its backward pass and fitted to
peaks measured on the GPU machine (benchmarks/RESULTS.md, "Training throughput"). The check
takes the largest micro-batch a shuffled run will meet and keeps 15% of the budget for the
caching allocator's fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from docfinetune.core.config import PipelineConfig, TrainConfig
from docfinetune.core.errors import ConfigError

GIB = 2 ** 30
HEADROOM = 0.85  # the caching allocator fragments: reserved peaks ran up to 16% above the estimate
OPTIMIZER_STATE_BYTES = {"8bit": 2, "default": 8}  # per trainable parameter: Adam's two moments


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gib: float  # measured: the loaded model with its adapter
    optimizer_gib: float  # the adapter's gradients and optimizer state
    activations_gib: float  # what the largest micro-batch keeps for its backward pass
    tokens: int  # tokens in that micro-batch
    bytes_per_token: int

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.optimizer_gib + self.activations_gib


def apply_cap(t: TrainConfig) -> float:
    """Limit this process's GPU to `gpu_memory_gib` (when set); returns the budget in GiB."""
    import torch

    from docfinetune.core.distributed import local_rank

    gpu = local_rank()  # one GPU per process under `accelerate launch`
    total = torch.cuda.get_device_properties(gpu).total_memory / GIB
    if not t.gpu_memory_gib:
        return total
    if t.gpu_memory_gib > total:
        raise ConfigError(f"train.gpu_memory_gib: {t.gpu_memory_gib:g} GiB is more than this GPU's {total:.1f} GiB")
    torch.cuda.set_per_process_memory_fraction(t.gpu_memory_gib / total, gpu)
    return t.gpu_memory_gib


def layer_activation_bytes(model_config, tokens: int, lora_dropout: float, element_bytes: int) -> int:
    """What one decoder layer keeps for its backward pass over `tokens` tokens: ~4 hidden-sized
    and ~3 MLP-sized tensors per token (norm outputs, q/k/v/o inputs, rotary copies, gate, up and
    their product), plus about one byte per weight of the layer that does not shrink with the
    batch. Fitted to the peaks allocated by 11 configurations of the Mistral 7B shape: within
    -6%..+11% (benchmarks/RESULTS.md, "Training throughput").
    LoRA dropout adds a masked copy of each adapted input."""
    hidden = model_config.hidden_size
    inner = getattr(model_config, "intermediate_size", 4 * hidden)
    heads = getattr(model_config, "num_attention_heads", 1)
    kv = hidden * getattr(model_config, "num_key_value_heads", heads) // heads
    weights = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inner
    per_token = (4 * hidden + 3 * inner) * element_bytes
    if lora_dropout > 0:
        per_token += (6 * hidden + inner) * element_bytes
    return tokens * per_token + weights


def activation_bytes(model_config, t: TrainConfig, tokens: int, lora_dropout: float, fused_loss: bool,
                     element_bytes: int) -> int:
    """Activation bytes of a micro-batch of `tokens` tokens at the peak of its backward pass."""
    hidden = model_config.hidden_size
    layers = model_config.num_hidden_layers
    layer = layer_activation_bytes(model_config, tokens, lora_dropout, element_bytes)
    recomputed = round(layers * t.checkpointed_layers) if t.gradient_checkpointing else 0
    # Recomputed layers keep only their input; one of them at a time is rebuilt, holding its
    # activations and the gradients flowing through it.
    kept = recomputed * tokens * hidden * element_bytes + (layers - recomputed) * layer + (2 * layer if recomputed else 0)
    # Unfused loss: the logits, their fp32 copy in the cross-entropy and its gradient; chunked
    # (train.loss_chunk_tokens), one chunk's at a time beside the hidden states it reads.
    scored = min(tokens, t.loss_chunk_tokens) if t.loss_chunk_tokens and t.label_only_logits else tokens
    logits = 0 if fused_loss else scored * model_config.vocab_size * (element_bytes + 4 + 4)
    return kept + logits


def largest_micro_batch_tokens(lengths: list[int], t: TrainConfig) -> int:
    """Tokens in the largest micro-batch a run will meet. Padded batches: micro_batch_size times
    the longest example (some batch holds it). Packed rows hold the sum of micro_batch_size
    examples drawn at random: their mean plus four standard deviations of that sum — what a
    shuffled run reaches, where the sum of the longest examples would almost never come together
    — and never more than that sum."""
    n = min(t.micro_batch_size, len(lengths))
    if not n:
        return 0
    longest = sorted(lengths, reverse=True)[:n]
    if not t.packing:
        return longest[0] * t.micro_batch_size
    mean = sum(lengths) / len(lengths)
    spread = (sum((x - mean) ** 2 for x in lengths) / len(lengths)) ** 0.5
    # ... and at least the batch that holds the longest example, beside average ones
    return min(sum(longest), round(max(n * mean + 4 * spread * n ** 0.5, longest[0] + (n - 1) * mean)))


def estimate(model, config: PipelineConfig, lengths: list[int], fused_loss: bool,
             weights_bytes: int | None = None, shards: int = 1) -> MemoryEstimate:
    """The peak a training step should reach on one GPU, for the model as loaded now: its
    weights are what the GPU holds (`weights_bytes` overrides, for tests). `shards`: FSDP over
    that many GPUs keeps 1/shards of the weights, the adapter's gradients and its optimizer
    state on each, plus one decoder layer's weights gathered whole while it computes (and the
    next one prefetched); activations are per GPU and do not shrink. DDP: shards 1, as each GPU
    holds the whole model."""
    t = config.train
    if weights_bytes is None:
        import torch

        weights_bytes = torch.cuda.memory_allocated()
    if shards > 1:
        layers = max(getattr(model.config, "num_hidden_layers", 1), 1)
        weights_bytes = weights_bytes / shards + 2 * weights_bytes / layers
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state = OPTIMIZER_STATE_BYTES["8bit" if "8bit" in t.optimizer else "default"]
    element_bytes = 2 if config.model.precision != "fp32" else 4
    tokens = largest_micro_batch_tokens(lengths, t)
    activations = activation_bytes(model.config, t, tokens, config.lora.lora_dropout, fused_loss, element_bytes)
    return MemoryEstimate(weights_gib=weights_bytes / GIB,
                          optimizer_gib=trainable * (4 + state) / shards / GIB,
                          activations_gib=activations / GIB, tokens=tokens,
                          bytes_per_token=activations // max(tokens, 1))


def check_fits(found: MemoryEstimate, budget_gib: float, t: TrainConfig, mean_example_tokens: float) -> None:
    """Raise a ConfigError naming the setting to change when the estimate is over the budget."""
    usable = budget_gib * HEADROOM
    if found.total_gib <= usable:
        return
    need = (f"about {found.total_gib:.1f} GiB of GPU memory (weights {found.weights_gib:.1f}, optimizer "
            f"{found.optimizer_gib:.1f}, activations {found.activations_gib:.1f} for {found.tokens:,} tokens), "
            f"more than the {usable:.1f} GiB usable of {budget_gib:.1f}")
    room = usable - found.weights_gib - found.optimizer_gib
    if room <= 0:
        raise ConfigError(f"model: the weights alone need {need}; use model.quantization: nf4 (QLoRA) "
                          "or a GPU with more memory")
    fits = int(room * GIB / found.bytes_per_token / max(mean_example_tokens, 1))
    advice = (f"set train.micro_batch_size to {fits} or less (raise gradient_accumulation_steps to keep the "
              "batch)" if fits >= 1 else "shorten train.max_seq_tokens")
    if not t.gradient_checkpointing:
        advice += ", or turn on train.gradient_checkpointing"
    raise ConfigError(f"train.micro_batch_size: {t.micro_batch_size} examples need {need}; {advice}")
