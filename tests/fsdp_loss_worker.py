"""One process of tests/test_train_loss.py's FSDP check, run under torchrun (2 processes, gloo):

    python -m torch.distributed.run --nproc_per_node 2 tests/fsdp_loss_worker.py MODEL_DIR OUT.json

The tiny Mistral with a LoRA adapter is sharded as `train.shard` does for FSDP with the chunked
loss (each decoder layer, the output layer and the whole model a unit), and each process takes
a different batch with a different number of labelled tokens, so the processes make different
numbers of chunks of their own. Rank 0 writes how far each process's loss is from the unsharded,
unchunked loss of its batch, and how far the gathered adapter gradients are from the mean of the
two unsharded gradients (FSDP averages over processes).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(model_dir: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from docfinetune.core.config import load_pipeline
    from docfinetune.train import prepare_model, shard
    from docfinetune.train.loss import label_only_loss
    from tests.test_train_loss import packed_batch, padded_batch

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    config = load_pipeline("default", {"model": {"base_model": model_dir, "device": "cpu"},
                                       "lora": {"lora_dropout": 0.0}})
    model = prepare_model(config)
    batches = [packed_batch(), padded_batch()]  # 18 and 10 labelled tokens: 5 and 3 chunks of 4

    def reference(batch):
        plain = copy.deepcopy(model)
        loss = label_only_loss(plain, batch)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in plain.named_parameters() if p.requires_grad}

    expected = [reference(b) for b in batches]
    shard(model, output_layer_unit=True)
    loss = label_only_loss(model, batches[rank], chunk_tokens=4)
    loss.backward()
    losses = [None, None]
    dist.all_gather_object(losses, loss.item())
    worst = 0.0
    for name, p in model.named_parameters():
        if p.requires_grad:
            full = p.grad.full_tensor()
            mean = (expected[0][1][name] + expected[1][1][name]) / 2
            worst = max(worst, (full - mean).abs().max().item())
    if rank == 0:
        Path(out).write_text(json.dumps({
            "loss_diffs": [abs(losses[r] - expected[r][0]) for r in range(2)],
            "grad_max_diff": worst,
            "head_is_a_unit": type(model.get_base_model().lm_head).__name__,
        }))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
