"""`docfinetune train` under a launcher with 2 processes (torchrun, gloo on CPU): the DDP path.

One process with micro-batch 4 and two with micro-batch 2 train on the same global batch in the
same order (the qa_with_text schedule reads its examples in a fixed order), so their loss curves
must agree to float error; the run folder is written once, by the main process, with the
evaluation's questions split across both processes and gathered; and a run saved by two
processes resumes in one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from docfinetune.core import distributed
from docfinetune.core.runs import CHECKPOINT_METRICS_FILE, METRICS_FILE, SELECTION_FILE
from docfinetune.core.workspace import Workspace, read_jsonl
from docfinetune.train.select import step_losses
from tests.conftest import CONTRACT_PAGES, write_pdf

TRAIN_FLAGS = ["--epochs", "1", "--eval-every-steps", "6", "--max-seq-tokens", "64", "--eval-max-questions", "5",
               "--learning-rate", "1e-3", "--lora-dropout", "0", "--schedule", "qa_with_text",
               "--packed-row-tokens", "0", "--max-new-tokens", "6", "--batch-size", "4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docfinetune(workspace: Path, *args: str, processes: int = 1) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: alone, or under torchrun with `processes` processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    launcher = [] if processes == 1 else [
        "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
        "--master_port", str(free_port())]
    command = [sys.executable, *launcher, "-m", "docfinetune", "--workspace", str(workspace), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """The same built workspace trained by one process and by two."""
    root = tmp_path_factory.mktemp("ddp")
    pdf = write_pdf(root / "services_agreement.pdf", CONTRACT_PAGES)
    one, two = root / "one", root / "two"
    docfinetune(one, "ingest", str(pdf))
    docfinetune(one, "build", "--base-model", str(tiny_model_dir))
    shutil.copytree(one, two)
    model = ["--base-model", str(tiny_model_dir)]
    single = docfinetune(one, "train", *model, *TRAIN_FLAGS, "--micro-batch-size", "4")
    double = docfinetune(two, "train", *model, *TRAIN_FLAGS, "--micro-batch-size", "2", processes=2)
    return {"one": Workspace(one), "two": Workspace(two), "single": single, "double": double, "model": model}


def only_run(workspace: Workspace) -> Path:
    runs = [p for p in (workspace.root / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_two_processes_follow_the_loss_curve_of_one_with_the_same_global_batch(runs):
    single, double = step_losses(only_run(runs["one"])), step_losses(only_run(runs["two"]))
    assert [step for step, _ in single] == [step for step, _ in double]
    assert len(single) >= 6
    # All but the last step: when the examples do not fill it, accelerate evens the last batch out
    # across the processes with examples from the start (its `even_batches`), one process does not.
    for (step, a), (_, b) in zip(single[:-1], double[:-1]):
        assert b == pytest.approx(a, rel=2e-3, abs=2e-3), f"step {step}: one process {a}, two {b}"


def test_the_main_process_alone_writes_the_run(runs):
    run_dir = only_run(runs["two"])  # rank 1 made no run folder of its own
    lines = list(read_jsonl(run_dir / METRICS_FILE))
    steps = [line["step"] for line in lines]
    assert steps == sorted(set(steps))  # one line per evaluation, not one per process
    assert any(line["questions"] == 0 for line in lines) and lines[-1]["questions"] == 5
    for line in lines:
        # the 5 sampled questions were split 3 + 2 and gathered: all 5 scored once (from half the steps on,
        # train.answer_from; val loss alone before)
        assert line["questions"] == (5 if line["step"] >= 0.5 * steps[-1] else 0)
        assert (run_dir / "checkpoints" / f"checkpoint-{line['step']}" / CHECKPOINT_METRICS_FILE).is_file()
    assert json.loads((run_dir / SELECTION_FILE).read_text())["selected"]["step"] in steps
    assert (run_dir / "curves.png").is_file()
    assert (runs["two"].root / "runs" / "latest").read_text().strip() == run_dir.name
    # the held-out facts are taught after selection (train.teach_held_out_passes, on by default) by both
    # processes, in as many steps of the same global batch as one process takes, and written once
    taught = json.loads((run_dir / SELECTION_FILE).read_text())["taught_all"]
    alone = json.loads((only_run(runs["one"]) / SELECTION_FILE).read_text())["taught_all"]
    assert taught["steps"] == alone["steps"] > 0 and taught["rows"] == alone["rows"]
    assert (run_dir / taught["path"] / "adapter_model.safetensors").is_file()
    # the selection table is printed once, by the main process
    assert runs["double"].stdout.count("selected") == runs["single"].stdout.count("selected") >= 1


def test_a_run_of_two_processes_resumes_in_one(runs, tmp_path):
    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(runs["two"].root, workspace.root)
    run_dir = only_run(workspace)
    saved = [p for p in (run_dir / "checkpoints").iterdir() if p.name != "taught-all"]  # checkpoint-<step>
    checkpoints = sorted(saved, key=lambda p: int(p.name.split("-")[1]))
    first = int(checkpoints[0].name.split("-")[1])
    for later in checkpoints[1:]:  # as if the run had died after its first checkpoint
        shutil.rmtree(later)
    shutil.rmtree(run_dir / "checkpoints" / "taught-all")  # taught after selection, by both processes
    (run_dir / SELECTION_FILE).unlink()
    docfinetune(workspace.root, "train", "--resume")
    steps = [line["step"] for line in read_jsonl(run_dir / METRICS_FILE)]
    assert steps[0] == first and steps == sorted(set(steps)) and len(steps) > 1
    assert (run_dir / SELECTION_FILE).is_file() and (run_dir / "checkpoints" / "taught-all").is_dir()


def test_num_gpus_needs_that_many_gpus(runs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # no GPU, on any machine
    done = subprocess.run([sys.executable, "-m", "docfinetune", "--workspace", str(runs["one"].root), "train",
                           "--num-gpus", "2", *runs["model"]], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: train --num-gpus 2: this machine has 0 CUDA GPUs"]


def test_shares_split_in_order_and_pad_for_fsdp(monkeypatch):
    items = list(range(5))
    got = []
    for rank in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        got.append(distributed.share(items, equal=True))
    assert got == [([0, 1, 2], 3), ([3, 4, 4], 2)]
    assert [x for share, real in got for x in share[:real]] == items

