"""One process per GPU: which one this is, and the few collective steps the stages take.

`docfinetune train` runs unchanged under `accelerate launch` or torchrun (`train --num-gpus N`
starts accelerate itself): every process runs the whole command, Trainer splits the batches
(DDP) or the weights too (FSDP), and this module lets the stage around it agree: the main
process alone builds the datasets and writes the run folder, the others wait for it; the
accuracy questions are split across processes and the answers gathered in order.

The launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK) says where we are, so a single
process never imports torch.distributed. accelerate's PartialState starts the process group
(NCCL on GPUs, gloo on CPU) and picks this process's GPU.
"""

from __future__ import annotations

import os
from typing import Any, Sequence


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def start() -> None:
    """Join the process group (idempotent); on CUDA also make this process's GPU the current one."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState()


def barrier() -> None:
    """Wait until every process gets here (nothing on one process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def from_main(value: Any) -> Any:
    """The main process's `value`, on every process (a run folder's name, made once)."""
    if world_size() == 1:
        return value
    import torch.distributed as dist

    start()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def share(items: Sequence, *, equal: bool = False) -> tuple[list, int]:
    """This process's contiguous share of `items` and how many of them are real. `equal` pads
    every share to the same length with copies of the last item (FSDP's processes must run the
    same number of forward passes, as each one gathers weights from all); drop the padding with
    `gather(answers[:real])`."""
    n, size, me = len(items), world_size(), rank()
    per = -(-n // size) if size > 1 else n
    mine = list(items[me * per:(me + 1) * per])
    real = len(mine)
    if equal and size > 1 and n:
        mine += [items[-1]] * (per - real)
    return mine, real


def gather(mine: list) -> list:
    """Every process's list, concatenated in rank order (the order `share` split them in)."""
    if world_size() == 1:
        return list(mine)
    from accelerate.utils import gather_object

    start()
    return list(gather_object(mine))
