"""The label-only loss (train/loss.py) against the model's own: the same loss and gradients for
packed and padded batches, with Gemma's final-logit softcapping on and off, normalised by
Trainer's num_items_in_batch, through Trainer's training and val-loss steps."""

from __future__ import annotations

import pytest
import torch

from docfinetune.core.config import load_pipeline
from docfinetune.train import IGNORE, PackedRows, prepare_model
from docfinetune.train.loss import label_only_loss, label_only_trainer

PAD = 0
# Three examples: a masked prompt then a short answer (labels only on the answer), and a
# reading row learned whole. 40% of the tokens carry a label, about the cpu-demo's share.
EXAMPLES = [([5, 17, 33, 41, 8, 99, 100], 5), ([7, 12, 60, 61, 62], 3), ([9, 70, 71, 72, 73, 74], 0)]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny models gain nothing from more (see test_train.py)
    yield
    torch.set_num_threads(threads)


def features() -> list[dict]:
    return [{"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]} for ids, prompt in EXAMPLES]


def packed_batch() -> dict:
    """DataCollatorWithFlattening's shape: one row, position ids restarting per example."""
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening()(features())


def padded_batch() -> dict:
    """Right-padded rows with an attention mask; padding carries no label."""
    width = max(len(ids) for ids, _ in EXAMPLES)
    rows = features()
    pad = [width - len(r["input_ids"]) for r in rows]
    return {"input_ids": torch.tensor([r["input_ids"] + [PAD] * p for r, p in zip(rows, pad)]),
            "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * p for r, p in zip(rows, pad)]),
            "labels": torch.tensor([r["labels"] + [IGNORE] * p for r, p in zip(rows, pad)])}


def rows_batch() -> dict:
    """PackedRows (train.packed_row_tokens): two rows evened out with pad tokens."""
    return PackedRows(11, PAD)(features())


BATCHES = {"packed": packed_batch, "padded": padded_batch, "packed rows": rows_batch}


def tiny_gemma(softcap: float | None):
    """A 2-layer random Gemma 3 (the embedded model's class: tied output layer, sliding and full
    attention) with a LoRA adapter on every projection and no dropout."""
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=4,
                              layer_types=["sliding_attention", "full_attention"], pad_token_id=PAD,
                              final_logit_softcapping=softcap, use_cache=False)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    # Random weights give logits of ~0.1; scaled up so that a cap of 1.0 bends most of them.
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,  # B != 0: every grad flows
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    return get_peft_model(model, lora)


def loss_and_grads(model, compute) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    assert any(g.abs().sum() > 0 for g in grads.values())
    return loss.detach(), grads


def assert_same(model, batch: dict, num_items=None) -> None:
    extra = {} if num_items is None else {"num_items_in_batch": num_items}
    own_loss, own_grads = loss_and_grads(model, lambda: model(**batch, **extra).loss)
    loss, grads = loss_and_grads(model, lambda: label_only_loss(model, batch, num_items))
    torch.testing.assert_close(loss, own_loss, rtol=1e-6, atol=1e-6)
    for name, grad in own_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("layout", BATCHES)
@pytest.mark.parametrize("softcap", [None, 1.0])
def test_label_only_loss_equals_the_models_own_loss_and_gradients(layout, softcap):
    model = tiny_gemma(softcap)
    batch = BATCHES[layout]()
    assert_same(model, batch)
    # Trainer with gradient accumulation: sums divided by the labelled tokens of all micro-batches.
    assert_same(model, batch, num_items=torch.tensor(40))
    assert_same(model, batch, num_items=40)


@pytest.mark.parametrize("layout", BATCHES)
@pytest.mark.parametrize("softcap", [None, 1.0])
def test_the_chunked_loss_is_the_same_loss_and_gradients(layout, softcap):
    model = tiny_gemma(softcap)
    batch = BATCHES[layout]()
    whole, whole_grads = loss_and_grads(model, lambda: label_only_loss(model, batch, 40))
    for chunk in (1, 4, 1000):  # one token a chunk, several, all in one
        loss, grads = loss_and_grads(model, lambda: label_only_loss(model, batch, 40, chunk_tokens=chunk))
        torch.testing.assert_close(loss, whole, rtol=1e-6, atol=1e-6)
        for name, grad in whole_grads.items():  # summed in another order: float error only
            torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_chunked_loss_under_trainer_mixed_precision():
    """Trainer's bf16 (accelerate wraps the model's forward in autocast and hands its outputs back in
    fp32) on bf16 weights: the chunks' output layer runs outside that forward and must read the fp32
    hidden states in its own dtype (the H200 run of 2026-12-03 stopped at the first step: "expected
    mat1 and mat2 to have the same dtype"). The same loss as unchunked, to bf16's precision."""
    from accelerate.utils import convert_outputs_to_fp32

    model = tiny_gemma(None)
    model.base_model.model.to(torch.bfloat16)
    model.forward = convert_outputs_to_fp32(torch.autocast("cpu", dtype=torch.bfloat16)(model.forward))
    batch = packed_batch()
    whole, _ = loss_and_grads(model, lambda: label_only_loss(model, batch, 40))
    for chunk in (1, 4):
        loss, _ = loss_and_grads(model, lambda: label_only_loss(model, batch, 40, chunk_tokens=chunk))
        torch.testing.assert_close(loss, whole, rtol=2e-2, atol=2e-2)


def test_the_chunked_loss_keeps_no_logits_for_the_backward_pass():
    """What the loss keeps for its backward pass (autograd's saved tensors), on a row of 600
    labelled tokens over a 50,000-word vocabulary: the whole row's logits without chunks, only
    hidden states with them (each chunk's logits are made again in the backward pass), and the
    output layer never sees more than a chunk."""
    from types import SimpleNamespace

    torch.manual_seed(0)

    class Tiny(torch.nn.Module):  # what label_only_loss reads of a causal LM
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(50_000, 32)
            self.lm_head = torch.nn.Linear(32, 50_000, bias=False)
            self.config = SimpleNamespace(final_logit_softcapping=None)

        def get_decoder(self):
            return self

        def get_output_embeddings(self):
            return self.lm_head

        def forward(self, input_ids, use_cache=False, logits_to_keep=None, output_hidden_states=False, **kwargs):
            hidden = self.embed(input_ids)
            kept = hidden[logits_to_keep] if logits_to_keep is not None else hidden
            return SimpleNamespace(logits=self.lm_head(kept), hidden_states=(hidden,), last_hidden_state=hidden)

    model = Tiny()
    rows_seen: list[int] = []
    model.lm_head.register_forward_hook(lambda module, args, out: rows_seen.append(args[0].shape[0]))
    ids = torch.randint(0, 50_000, (1, 601))
    batch = {"input_ids": ids, "labels": ids}
    weights = {p.data_ptr() for p in model.parameters()}  # saved too, but they cost nothing extra
    largest = {}
    for chunk in (0, 64):
        saved: list[int] = []

        def pack(t):
            if t.data_ptr() not in weights:
                saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = label_only_loss(model, batch, chunk_tokens=chunk)
        loss.backward()
        largest[chunk] = max(saved)
        if chunk:
            assert max(rows_seen) <= chunk
        rows_seen.clear()
    assert largest[0] >= 600 * 50_000  # the logits
    assert largest[64] < 600 * 50_000 / 100


def test_the_chunked_loss_under_fsdp_equals_the_unsharded_loss(tiny_model_dir, tmp_path):
    """Two processes (torchrun, gloo) shard the tiny Mistral as `train.shard` does with the chunked
    loss, each on a batch with a different number of labelled tokens (tests/fsdp_loss_worker.py)."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    out = tmp_path / "fsdp.json"
    worker = Path(__file__).with_name("fsdp_loss_worker.py")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(port), str(worker), str(tiny_model_dir), str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(out.read_text())
    assert found["head_is_a_unit"].startswith("FSDP")
    assert max(found["loss_diffs"]) < 1e-5 and found["grad_max_diff"] < 1e-5


def test_softcapping_is_applied():
    batch = packed_batch()
    capped, plain = (label_only_loss(tiny_gemma(cap), batch).item() for cap in (1.0, None))
    assert abs(capped - plain) > 0.1


def test_the_tiny_mistral_of_the_pipeline_gets_the_same_loss(tiny_model_dir):
    """The project's own model set-up (prepare_model: peft LoRA on every projection, untied
    output layer), dropout switched off so that both passes draw nothing at random."""
    config = load_pipeline("default", {"model": {"base_model": str(tiny_model_dir)},
                                       "lora": {"lora_dropout": 0.0}})
    model = prepare_model(config)
    for make in BATCHES.values():
        assert_same(model, make(), num_items=torch.tensor(30))


def test_trainer_training_and_val_loss_take_the_label_only_path(tmp_path):
    """Trainer's compute_loss (with num_items_in_batch) and prediction_step (the val loss with
    prediction_loss_only) give what the stock Trainer gives."""
    from transformers import Trainer, TrainingArguments

    model = tiny_gemma(1.0)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], prediction_loss_only=True,
                             label_names=["labels"], remove_unused_columns=False)
    stock, ours = Trainer(model=model, args=args), label_only_trainer(Trainer)(model=model, args=args)
    batch = packed_batch()
    items = batch["labels"][..., 1:].ne(IGNORE).sum()
    for trainer in (stock, ours):
        assert trainer.model_accepts_loss_kwargs  # so Trainer counts num_items_in_batch for us too
    torch.testing.assert_close(ours.compute_loss(model, dict(batch), num_items_in_batch=items),
                               stock.compute_loss(model, dict(batch), num_items_in_batch=items))
    (val_loss, logits, labels), (stock_val, _, _) = (t.prediction_step(model, dict(batch), prediction_loss_only=True)
                                                     for t in (ours, stock))
    torch.testing.assert_close(val_loss, stock_val)
    assert logits is None and labels is None


def test_label_only_loss_leaves_the_batch_alone():
    batch = packed_batch()
    before = {k: v.clone() for k, v in batch.items()}
    label_only_loss(tiny_gemma(None), batch)
    assert batch.keys() == before.keys() and all(torch.equal(batch[k], before[k]) for k in batch)


def test_a_run_trains_the_same_with_and_without_label_only_logits(tmp_path, tiny_model_dir, monkeypatch):
    """End to end through fit(): the same step losses (gradient accumulation of 2, so Trainer's
    num_items_in_batch divides) and the same val loss, either way."""
    from docfinetune.core.workspace import Workspace
    from docfinetune.ingest import ingest
    from docfinetune.pipeline import build_then_train
    from docfinetune.train import loss as loss_module
    from tests.conftest import CONTRACT_PAGES, write_pdf

    workspace = Workspace(tmp_path / "ws")
    runs, calls = {}, []
    monkeypatch.setattr(loss_module, "label_only_loss", lambda *a: calls.append(1) or label_only_loss(*a))
    for label_only in (True, False):
        config = load_pipeline("default", {
            "model": {"base_model": str(tiny_model_dir)}, "generation": {"max_new_tokens": 4},
            "build": {"split_val_fraction": 0.2, "split_test_fraction": 0.2},
            "train": {"max_steps": 3, "eval_every_steps": 3, "micro_batch_size": 4, "gradient_accumulation_steps": 2,
                      "max_seq_tokens": 64, "eval_max_questions": 2, "learning_rate": 1e-3,
                      "label_only_logits": label_only}})
        if label_only:
            ingest([write_pdf(tmp_path / "agreement.pdf", CONTRACT_PAGES)], workspace, config.ingest)
        events: list[tuple[str, dict]] = []
        build_then_train(workspace, config, run_id=f"label-only-{label_only}",
                         on_event=lambda kind, data: events.append((kind, data)))
        runs[label_only] = (len(calls), [d["loss"] for k, d in events if k == "step"],
                            [d["val_loss"] for k, d in events if k == "eval"])
    (used, steps, val), (used_after, own_steps, own_val) = runs[True], runs[False]
    assert used >= 3 * 2 and used_after == used  # every micro-batch, and only when asked for
    assert len(steps) == 3 and len(val) == 1
    assert steps == pytest.approx(own_steps, rel=1e-4) and val == pytest.approx(own_val, rel=1e-4)
