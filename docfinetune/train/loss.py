"""The training loss with the output layer applied only where there is a label.

Gemma 3 270M's output layer (262,144 entries x 640, tied to the embeddings) holds 168M of its
270M weights: at every position it costs 335 MFLOP forward and as much backward, against
~200 MFLOP each way for all 18 decoder layers, and its 1 MiB row of fp32 logits goes through
log-softmax and back. With prompts masked, 13% of the cpu-demo's training tokens carry a label
(the rest are questions and retrieved passages), so the model's own loss spends ~87% of that
work on logits nobody reads: 1.7x the tokens/s on 2 CPU cores (benchmarks/RESULTS.md, "CPU
training speed").
Here the model's own forward runs with `logits_to_keep` set to the mask of labelled positions
(transformers >= 5.2x slices the hidden states with it before `lm_head` and Gemma's final-logit
softcapping), so it also runs under DDP and FSDP, whose hooks sit on that forward; then the
cross-entropy on the labelled rows only: the same loss and gradients, summed and divided as
transformers' `ForCausalLMLoss` does (by `num_items_in_batch` when Trainer passes it for
gradient accumulation, else by the labelled count). An older transformers takes the decoder
and the output layer one after the other (one process only).
"""

from __future__ import annotations

import functools

from docfinetune.train import IGNORE


def causal_lm(model):
    """The transformers *ForCausalLM under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@functools.cache
def masks_logits() -> bool:
    """Whether the models' forward takes a boolean mask as `logits_to_keep` (transformers 5.2x)."""
    import inspect

    from transformers import modeling_utils

    slicer = getattr(modeling_utils, "slice_logits_to_keep", None)
    return slicer is not None and "boolean" in (inspect.getdoc(slicer) or "")


def label_only_loss(model, inputs: dict, num_items_in_batch=None, chunk_tokens: int = 0):
    """Cross-entropy of next-token prediction over the positions whose shifted label is not
    IGNORE, equal to `model(**inputs).loss` (packed rows with position ids, or padded rows
    with an attention mask). `inputs` is not changed. `chunk_tokens` > 0: at most that many
    labelled positions' logits at a time (`chunked_sum`)."""
    import torch
    import torch.nn.functional as F

    inputs = dict(inputs)
    labels = inputs.pop("labels")
    targets = inputs.pop("shift_labels", None)  # a padding-free collator may shift them itself
    if targets is None:
        targets = F.pad(labels, (0, 1), value=IGNORE)[..., 1:]
    keep = targets != IGNORE
    # use_cache off: with a cache the forward makes a causal mask and packed examples would see
    # each other (as in prepare_model).
    if chunk_tokens:
        loss = chunked_sum(model, inputs, keep, targets[keep], chunk_tokens)
    else:
        loss = F.cross_entropy(_labelled_logits(model, inputs, keep).float(), targets[keep], reduction="sum")
    if num_items_in_batch is None:
        return loss / keep.sum()  # a mean: NaN without labels, as the model's own loss
    return loss / torch.as_tensor(num_items_in_batch, device=loss.device)


def _labelled_logits(model, inputs: dict, keep):
    """The logits of the labelled positions only, (labelled, vocab)."""
    if masks_logits():
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits  # (labelled, vocab)
    else:
        causal = causal_lm(model)
        hidden = causal.get_decoder()(**inputs, use_cache=False).last_hidden_state
        logits = _output_layer(causal, hidden[keep])  # (labelled, vocab), not (rows, length, vocab)
    return logits


def _output_layer(causal, hidden):
    """What the model's forward does after its decoder: the output layer, then Gemma's final-logit
    softcapping where the config has it. `hidden` is read in the output layer's dtype: under
    Trainer's bf16 the model's forward returns its hidden states in fp32 (accelerate's autocast
    wrapper), and the chunks of `chunked_sum` run outside that forward, on bf16 weights."""
    import torch

    layer = causal.get_output_embeddings()
    if layer.weight.dtype.is_floating_point:  # not a quantized layer's packed bytes
        hidden = hidden.to(layer.weight.dtype)
    logits = layer(hidden)
    cap = getattr(causal.config, "final_logit_softcapping", None)
    return logits if cap is None else torch.tanh(logits / cap) * cap


def chunked_sum(model, inputs: dict, keep, targets, chunk_tokens: int):
    """The summed cross-entropy of the labelled positions, the output layer applied to at most
    `chunk_tokens` of them at a time and each chunk's logits recomputed in the backward pass:
    one chunk's logits exist at a time, not all of them (the Mistral 7B shape's micro-batch of
    packed reading text: ~2.8 GB of logits, their fp32 copy and gradient, which FSDP cannot use
    liger's fused loss to avoid). The decoder runs through the model's own forward, asked for
    no logits, so DDP's and FSDP's hooks run; under FSDP the output layer is its own unit
    (`train.shard`), gathered at each call."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    causal = causal_lm(model)
    if masks_logits():
        out = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=torch.zeros_like(keep))
        hidden = out.hidden_states[-1][keep]  # after the final norm: what the output layer reads
    else:
        hidden = causal.get_decoder()(**inputs, use_cache=False).last_hidden_state[keep]

    def chunk_loss(h, t):
        return F.cross_entropy(_output_layer(causal, h).float(), t, reduction="sum")

    # Every process makes as many chunks as the one with the most labels (some may be empty): an
    # FSDP output layer gathers its weight at each call, and the processes must call it alike.
    chunks = torch.tensor(max(1, -(-len(targets) // chunk_tokens)), device=hidden.device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(chunks, op=torch.distributed.ReduceOp.MAX)
    pieces = zip(torch.tensor_split(hidden, int(chunks)), torch.tensor_split(targets, int(chunks)))
    return sum(checkpoint(chunk_loss, h, t, use_reentrant=False) for h, t in pieces)


def label_only_trainer(trainer_class, chunk_tokens: int = 0):
    """`trainer_class` (a transformers Trainer) computing its training and val loss with
    `label_only_loss` (`chunk_tokens`: its argument). Not for liger-kernel (train.fused_kernels):
    its patched forward already fuses the output layer with the cross-entropy and never builds
    the logits."""

    class LabelOnlyLogits(trainer_class):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = label_only_loss(model, inputs, num_items_in_batch, chunk_tokens)
            # Trainer.compute_loss's own step for a loss normalised by num_items_in_batch (x1 on one device).
            if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1
                               else self.args.n_gpu)
            # prediction_step (val loss, prediction_loss_only) reads the loss and drops the rest.
            return (loss, {"loss": loss}) if return_outputs else loss

    return LabelOnlyLogits
