"""The train stage on the tiny 2-layer Mistral: run files, loss masking, packing, selection,
resume. One reference run is trained per module and shared."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from docfinetune.core.config import TrainConfig, load_pipeline
from docfinetune.core.errors import ConfigError, DocfinetuneError
from docfinetune.core.score import CHOICE_MARK
from docfinetune.core.workspace import Workspace, read_jsonl
from docfinetune.ingest import ingest
from docfinetune.pipeline import build_then_train as train  # train on datasets built when stale, as the CLI does
from docfinetune.train import (
    IGNORE,
    PackedRows,
    check_settings,
    fused_kernels_on,
    passes_in_order,
    prepare_model,
    prompts_for,
    qa_example,
    read_datasets,
    teaches_held_out,
    tokenize,
    with_words_dropped,
)
from docfinetune.train.select import plot_curves, select_checkpoint, step_losses
from tests.conftest import CONTRACT_PAGES, write_pdf

EVAL_EVERY = 4
MICRO_BATCH = 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_config(model_dir: Path, model_overrides: dict | None = None, **train_overrides):
    """Two epochs of the tiny model; evaluation every 4 steps, so epoch ends fall between."""
    return load_pipeline("default", {
        "model": {"base_model": str(model_dir), **(model_overrides or {})},
        "generation": {"batch_size": 8, "max_new_tokens": 8},
        "build": {"split_val_fraction": 0.2, "split_test_fraction": 0.2},
        "train": {"epochs": 2.0, "eval_every_steps": EVAL_EVERY, "micro_batch_size": MICRO_BATCH,
                  "max_seq_tokens": 64, "eval_max_questions": 6, "learning_rate": 1e-3, "schedule": "shuffled",
                  **train_overrides},
    })


def expected_eval_steps(examples: int, epochs: int = 2) -> list[int]:
    """Every EVAL_EVERY steps, each epoch's end, and the last step: each once."""
    per_epoch = math.ceil(examples / MICRO_BATCH)
    total = per_epoch * epochs
    return sorted({*range(EVAL_EVERY, total + 1, EVAL_EVERY), *(per_epoch * e for e in range(1, epochs + 1))})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for this module: the tiny model gains nothing from more, and on a busy
    2-CPU machine two spinning OpenMP threads made this file take 76 s instead of 18 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(one_thread, tmp_path_factory, tiny_model_dir):
    """An ingested workspace (datasets built by train itself) and one uninterrupted run."""
    root = tmp_path_factory.mktemp("train-ws")
    pdf = write_pdf(root / "services_agreement.pdf", CONTRACT_PAGES)
    workspace = Workspace(root / "ws")
    config = tiny_config(tiny_model_dir)
    ingest([pdf], workspace, config.ingest)
    events: list[tuple[str, dict]] = []
    run_dir = train(workspace, config, on_event=lambda kind, data: events.append((kind, data)))
    return {"workspace": workspace, "config": config, "run_dir": run_dir, "events": events}


def lines(run_dir: Path) -> list[dict]:
    return list(read_jsonl(run_dir / "metrics.jsonl"))


def test_train_builds_the_datasets_and_writes_every_run_file(reference):
    workspace, config, run_dir, events = (reference[k] for k in ("workspace", "config", "run_dir", "events"))
    assert (workspace.datasets_dir / "stats.json").is_file()  # train ran build first
    assert run_dir.parent == workspace.root / "runs" and len(run_dir.name) == len("20240101-120000")
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == dataclasses.asdict(config)

    kinds = [kind for kind, _ in events]
    start = events[0][1]
    assert kinds[0] == "start" and kinds[-1] == "done"
    steps = expected_eval_steps(start["examples"])
    assert start["total_steps"] == steps[-1] and start["tokens"] > start["examples"] and not start["warnings"]
    assert [d["step"] for k, d in events if k == "step"] == list(range(1, steps[-1] + 1))
    bad = [d for k, d in events if k == "step" and not (d["loss"] > 0 and d["tokens_per_s"] > 0 and d["eta_s"] >= 0)]
    assert not bad, bad

    rows = lines(run_dir)
    assert [r["step"] for r in rows] == steps  # e.g. 4, 8, 9 (epoch end), 12, 16, 18
    assert [d for k, d in events if k == "eval"] == rows
    epoch_ends = [r for r in rows if r["epoch"] in (1.0, 2.0)]
    assert len(epoch_ends) == 2
    # train.answer_from (0.5): the first half's evaluations measure val loss only
    answered = [r for r in rows if r["step"] >= 0.5 * steps[-1]]
    assert 0 < len(answered) < len(rows) and answered == rows[-len(answered):]
    for r in rows:
        assert set(r) == {"step", "epoch", "train_loss", "val_loss", "accuracy", "correct", "questions",
                          "open_book_accuracy", "taught_accuracy", "taught_open_book_accuracy", "tokens_per_s",
                          "peak_gpu_gib", "seconds", "eval_seconds", "learning_rate"}
        assert 0 < r["train_loss"] < 20 and 0 < r["val_loss"] < 20 and r["tokens_per_s"] > 0
        if r not in answered:
            assert r["questions"] == 0 and all(r[k] is None for k in ("accuracy", "correct", "taught_accuracy",
                                                                       "open_book_accuracy"))
            continue
        # open-book rows were trained too: the held-out and the taught questions are also asked open-book
        assert all(0 <= r[k] <= 1 for k in ("taught_accuracy", "open_book_accuracy", "taught_open_book_accuracy"))
        assert r["questions"] == 6 and r["accuracy"] == r["correct"] / 6
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns
    assert [r["seconds"] for r in rows] == sorted(r["seconds"] for r in rows)
    # each evaluation's own time (it answers the questions closed- and open-book, and saves) is part of the run's clock
    assert all(0 < r["eval_seconds"] < r["seconds"] for r in rows)

    checkpoints = sorted(run_dir.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [int(p.name.split("-")[1]) for p in checkpoints] == steps
    for folder, row in zip(checkpoints, rows):
        for name in ("adapter_model.safetensors", "adapter_config.json", "scheduler.pt",
                     "trainer_state.json", "tokenizer_config.json"):
            assert (folder / name).is_file(), folder / name
        # train.keep_optimizer_state "last": a selected run is never resumed, so no checkpoint keeps Adam's moments
        assert not list(folder.glob("optimizer*")), folder
        metrics = json.loads((folder / "metrics.json").read_text())
        assert {k: v for k, v in metrics.items() if k != "examples"} == row
        if row in answered:
            assert 1 <= len(metrics["examples"]) <= 5
            assert set(metrics["examples"][0]) == {"question", "reference", "prediction", "correct"}
        else:
            assert metrics["examples"] == []
        assert yaml.safe_load((folder / "config.yaml").read_text()) == dataclasses.asdict(config)

    selection = json.loads((run_dir / "selection.json").read_text())
    assert [c["step"] for c in selection["checkpoints"]] == steps
    # the default rule: the better of closed- and open-book, each 0.5 x held-out + 0.5 x taught
    def score(r: dict) -> float:
        return max(0.5 * r["accuracy"] + 0.5 * r["taught_accuracy"],
                   0.5 * r["open_book_accuracy"] + 0.5 * r["taught_open_book_accuracy"])
    best = min(answered, key=lambda r: (-score(r), r["val_loss"], r["step"]))
    assert selection["selected"]["step"] == best["step"]
    assert selection["selected"]["path"] == f"checkpoints/checkpoint-{best['step']}"
    assert (run_dir / selection["selected"]["path"]).is_dir()
    assert f"at step {best['step']}" in selection["reason"] and selection["run_id"] == run_dir.name
    assert events[-1][1]["selected"] == selection["selected"]
    assert (run_dir / "curves.png").read_bytes()[:8] == PNG_MAGIC
    # the curves draw the train loss of every step, from Trainer's own log history
    assert [s for s, _ in step_losses(run_dir)] == list(range(1, steps[-1] + 1))
    assert (workspace.root / "runs" / "latest").read_text().strip() == run_dir.name


def test_prompt_tokens_are_masked_out_of_the_loss(tiny_tokenizer):
    prompt = "Question: Who is the Client?\nAnswer:"
    completion = " Orrin Vale Holdings LLC"
    prompt_ids = tiny_tokenizer(prompt)["input_ids"]
    example = tokenize(tiny_tokenizer, prompt, completion, max_tokens=512, learn_prompt=False)
    ids, labels = example["input_ids"], example["labels"]
    n = len(prompt_ids)
    assert ids[:n] == prompt_ids  # the prompt is tokenized as it is when asking
    assert labels[:n] == [IGNORE] * n  # exactly the prompt's tokens (with <s>) are left out...
    assert labels[n:] == ids[n:] and IGNORE not in labels[n:]  # ...and every answer token is learned
    assert ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(ids[n:], skip_special_tokens=True) == completion

    assert tokenize(tiny_tokenizer, prompt, completion, 512, learn_prompt=True)["labels"] == ids
    document = tokenize(tiny_tokenizer, "", "12. GOVERNING LAW\n\nVermont.", 512, learn_prompt=False)
    assert document["labels"] == document["input_ids"]  # document text: every token and eos
    cut = tokenize(tiny_tokenizer, prompt, completion, max_tokens=5, learn_prompt=False)
    assert len(cut["input_ids"]) == len(cut["labels"]) == 5


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir, tiny_tokenizer):
    """A packed row's loss equals the token-weighted mean of the examples' separate losses,
    and each example's logits are the same packed or alone; padding gives the same loss."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    model = prepare_model(tiny_config(tiny_model_dir)).eval()  # eval: no LoRA dropout
    examples = [
        tokenize(tiny_tokenizer, "Question: Which law governs?\nAnswer:", " Vermont", 64, False),
        tokenize(tiny_tokenizer, "", "3. FEES The Client shall pay the Provider a monthly fee of $12,500.", 64, False),
        tokenize(tiny_tokenizer, "Question: Who is the Provider?\nAnswer:", " Tamsk Logistics, Inc.", 64, False),
    ]
    with torch.no_grad():
        separate = [model(input_ids=torch.tensor([e["input_ids"]]), labels=torch.tensor([e["labels"]]))
                    for e in examples]
        counted = [sum(label != IGNORE for label in e["labels"][1:]) for e in examples]  # shifted targets
        expected = sum(o.loss.item() * n for o, n in zip(separate, counted)) / sum(counted)

        packed_batch = DataCollatorWithFlattening()(examples)
        assert packed_batch["input_ids"].shape[0] == 1 and "attention_mask" not in packed_batch
        packed = model(**packed_batch)
        assert packed.loss.item() == pytest.approx(expected, abs=1e-5)
        offset = 0
        for e, alone in zip(examples, separate):
            length = len(e["input_ids"])
            assert torch.allclose(packed.logits[0, offset:offset + length], alone.logits[0], atol=1e-4)
            offset += length

        # The same row with a KV cache skips the packed mask: examples then see each other.
        leaky = model(**packed_batch, use_cache=True)
        assert abs(leaky.loss.item() - expected) > 1e-4

        tiny_tokenizer.padding_side = "right"
        padded = model(**DataCollatorForSeq2Seq(tiny_tokenizer, padding=True, label_pad_token_id=IGNORE)(examples))
        assert padded.loss.item() == pytest.approx(expected, abs=1e-5)

        # Several packed rows, evened out with label-less padding: the same loss and logits.
        longest = max(len(e["input_ids"]) for e in examples)
        collator = PackedRows(row_tokens=longest + 2, pad_id=tiny_tokenizer.pad_token_id or 0)
        rows = collator(examples)
        assert rows["input_ids"].shape[0] >= 2 and rows["input_ids"].shape[1] <= longest + 2
        real = (rows["input_ids"] != collator.pad_id).sum().item()  # what Trainer counts ("non_padding")
        assert real == sum(len(e["input_ids"]) for e in examples)
        in_rows = model(**rows)
        assert in_rows.loss.item() == pytest.approx(expected, abs=1e-5)
        for e, alone in zip(examples, separate):  # find each example by its tokens
            row, start = next((r, i) for r in range(rows["input_ids"].shape[0])
                              for i in range(rows["input_ids"].shape[1] - len(e["input_ids"]) + 1)
                              if rows["input_ids"][r, i:i + len(e["input_ids"])].tolist() == e["input_ids"]
                              and rows["position_ids"][r, i] == 0)
            got = in_rows.logits[row, start:start + len(e["input_ids"])]
            assert torch.allclose(got, alone.logits[0], atol=1e-4)


def test_packed_rows_fill_first_fit_longest_first():
    examples = [{"input_ids": [7] * n, "labels": [7] * n} for n in (5, 9, 3, 6, 2)]
    collator = PackedRows(row_tokens=10, pad_id=0)
    batch = collator(examples)
    # longest first: 9 | 6+3 | 5+2 -> three rows, as wide as the fullest (9), the rest padded
    assert batch["input_ids"].shape == (3, 9)
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    assert batch["position_ids"][2].tolist() == [0, 1, 2, 3, 4, 0, 1, 0, 1]  # padding restarts its positions
    assert batch["labels"][2].tolist() == [IGNORE, 7, 7, 7, 7, IGNORE, 7, IGNORE, IGNORE]
    assert (batch["input_ids"] != 0).sum().item() == 25


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    base = {"epoch": 1.0, "train_loss": 1.0, "tokens_per_s": 1.0, "seconds": 1.0, "learning_rate": 1e-4}
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({**base, **r}) + "\n" for r in rows))


def test_ties_at_zero_accuracy_go_to_the_checkpoint_that_learned_what_it_was_taught(tmp_path):
    # A small model answers no held-out fact at any step; val loss is lowest early, before the
    # taught facts are learned. The taught accuracy decides, not the val loss, under both rules.
    run_dir = tmp_path / "runs" / "r0"
    write_metrics(run_dir, [
        {"step": 10, "val_loss": 1.0, "accuracy": 0.0, "correct": 0, "questions": 20, "taught_accuracy": 0.05},
        {"step": 20, "val_loss": 1.4, "accuracy": 0.0, "correct": 0, "questions": 20, "taught_accuracy": 0.60},
        {"step": 30, "val_loss": 1.6, "accuracy": 0.0, "correct": 0, "questions": 20, "taught_accuracy": 0.55},
    ])
    selection = select_checkpoint(run_dir, "held_out_accuracy")
    assert selection["selected"]["step"] == 20
    assert "broken by taught accuracy 0.600" in selection["reason"]
    selection = select_checkpoint(run_dir, "accuracy")
    assert selection["selected"]["step"] == 20
    assert selection["reason"].startswith("highest closed-book accuracy 0.300 at step 20 (closed-book: held-out "
                                          "0.000 (0/20), taught 0.600)")


def test_accuracy_weighs_the_taught_facts_beside_the_held_out_ones(tmp_path):
    # What the H200 runs showed: open-book reading of held-out facts peaks early, while the taught
    # facts are learned later. Held-out alone picks step 10; the blend picks the checkpoint that
    # answers both (0.5 * 0.60 + 0.5 * 0.95 = 0.775 against 0.5 * 0.70 + 0.5 * 0.40 = 0.55).
    run_dir = tmp_path / "runs" / "r0"
    common = {"accuracy": 0.0, "correct": 0, "questions": 20}
    write_metrics(run_dir, [
        {"step": 10, "val_loss": 1.0, **common, "open_book_accuracy": 0.70, "taught_accuracy": 0.20,
         "taught_open_book_accuracy": 0.40},
        {"step": 20, "val_loss": 1.1, **common, "open_book_accuracy": 0.60, "taught_accuracy": 0.90,
         "taught_open_book_accuracy": 0.95},
        {"step": 30, "val_loss": 1.2, **common, "open_book_accuracy": 0.50, "taught_accuracy": 0.95,
         "taught_open_book_accuracy": 0.97},
    ])
    assert select_checkpoint(run_dir, "held_out_accuracy")["selected"]["step"] == 10
    selection = select_checkpoint(run_dir, "accuracy")
    assert selection["selected"]["step"] == 20
    assert selection["reason"].startswith("highest open-book accuracy 0.775 at step 20 (open-book: held-out 0.600, "
                                          "taught 0.950;")
    assert selection["checkpoints"][1]["taught_open_book_accuracy"] == 0.95
    # weight 0: the held-out facts alone decide; weight 1: the taught ones
    assert select_checkpoint(run_dir, "accuracy", taught_weight=0.0)["selected"]["step"] == 10
    assert select_checkpoint(run_dir, "accuracy", taught_weight=1.0)["selected"]["step"] == 30
    assert plot_curves(run_dir).read_bytes()[:8] == PNG_MAGIC


def test_a_run_trained_open_book_is_chosen_by_the_better_of_its_closed_and_open_book_accuracy(tmp_path):
    run_dir = tmp_path / "runs" / "r0"
    write_metrics(run_dir, [
        {"step": 10, "val_loss": 1.0, "accuracy": 0.30, "correct": 6, "questions": 20, "open_book_accuracy": 0.35},
        {"step": 20, "val_loss": 1.2, "accuracy": 0.20, "correct": 4, "questions": 20, "open_book_accuracy": 0.70},
        {"step": 30, "val_loss": 1.3, "accuracy": 0.40, "correct": 8, "questions": 20, "open_book_accuracy": None},
    ])
    selection = select_checkpoint(run_dir, "accuracy")
    assert selection["selected"]["step"] == 20
    assert selection["reason"].startswith("highest open-book accuracy 0.700 at step 20 (open-book: held-out 0.700, "
                                          "taught n/a; closed-book: held-out 0.200 (4/20)")
    assert select_checkpoint(run_dir, "held_out_accuracy")["reason"].startswith(
        "highest open-book accuracy 0.700 (closed-book 0.200, 4/20) at step 20")
    # metrics without a taught open-book figure (a run from before it was measured): neither system
    # blends in the taught facts, so closed-book taught accuracy cannot outweigh open-book
    with_taught = tmp_path / "runs" / "r1"
    write_metrics(with_taught, [
        {"step": 10, "val_loss": 1.0, "accuracy": 0.30, "correct": 6, "questions": 20, "open_book_accuracy": 0.50,
         "taught_accuracy": 0.90},
        {"step": 20, "val_loss": 1.2, "accuracy": 0.20, "correct": 4, "questions": 20, "open_book_accuracy": 0.55,
         "taught_accuracy": 0.10},
    ])  # blended closed-book, step 10 would score 0.5 * 0.30 + 0.5 * 0.90 = 0.60 > 0.55
    assert select_checkpoint(with_taught, "accuracy")["selected"]["step"] == 20
    assert plot_curves(run_dir).read_bytes()[:8] == PNG_MAGIC


def test_a_run_without_open_book_rows_is_scored_closed_book_only(reference, tmp_path):
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    config = tiny_config(reference["config"].model.base_model, max_steps=4, eval_every_steps=4)
    config = dataclasses.replace(config, build=dataclasses.replace(config.build, open_book_share=0.0))
    run_dir = train(workspace, config)
    row = lines(run_dir)[-1]
    assert row["open_book_accuracy"] is None and row["taught_open_book_accuracy"] is None and row["questions"] == 6


def test_selection_takes_highest_accuracy_then_lower_val_loss(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    write_metrics(run_dir, [
        {"step": 50, "val_loss": 1.10, "accuracy": 0.40, "correct": 20, "questions": 50},
        {"step": 100, "val_loss": 1.30, "accuracy": 0.62, "correct": 31, "questions": 50},
        {"step": 150, "val_loss": 1.234, "accuracy": 0.62, "correct": 31, "questions": 50},
        {"step": 200, "val_loss": 1.05, "accuracy": 0.50, "correct": 25, "questions": 50},
    ])
    selection = select_checkpoint(run_dir, "accuracy")
    assert selection["selected"]["step"] == 150
    assert selection["reason"] == ("highest closed-book accuracy 0.620 at step 150 (closed-book: held-out 0.620 "
                                   "(31/50), taught n/a); 2 checkpoints tied, broken by val loss 1.2340")
    assert json.loads((run_dir / "selection.json").read_text()) == selection
    assert select_checkpoint(run_dir, "held_out_accuracy")["reason"] == (
        "highest accuracy 0.620 (31/50) at step 150; 2 checkpoints tied, broken by taught accuracy n/a, "
        "then val loss 1.2340")
    assert [c["path"] for c in selection["checkpoints"]] == [
        f"checkpoints/checkpoint-{s}" for s in (50, 100, 150, 200)]
    assert set(selection["checkpoints"][0]) == {"step", "epoch", "path", "train_loss", "val_loss", "accuracy",
                                                "correct", "questions", "open_book_accuracy", "taught_accuracy",
                                                "taught_open_book_accuracy", "eval_seconds"}
    assert "highest accuracy" in selection["rule"] and "val loss" in selection["rule"]

    by_loss = select_checkpoint(run_dir, "val_loss")
    assert by_loss["selected"]["step"] == 200 and "lowest val loss 1.0500" in by_loss["reason"]

    assert plot_curves(run_dir).read_bytes()[:8] == PNG_MAGIC

    unscored = tmp_path / "runs" / "r2"  # no validation questions: no accuracy, no val loss
    write_metrics(unscored, [{"step": s, "val_loss": None, "accuracy": None, "correct": None, "questions": 0}
                             for s in (3, 6)])
    selection = select_checkpoint(unscored, "accuracy")
    assert selection["selected"]["step"] == 6 and "last checkpoint" in selection["rule"]
    assert plot_curves(unscored).is_file()

    with pytest.raises(DocfinetuneError, match="metrics.jsonl: no evaluations"):
        select_checkpoint(tmp_path / "runs" / "empty", "accuracy")


def test_a_tolerance_prefers_the_checkpoint_that_also_answers_closed_book(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    write_metrics(run_dir, [  # open-book best at step 10, within 0.02 at 20 and 30, which know more closed-book
        {"step": 10, "val_loss": 1.0, "accuracy": 0.10, "correct": 2, "questions": 20, "open_book_accuracy": 0.70,
         "taught_accuracy": 0.40, "taught_open_book_accuracy": 0.90},
        {"step": 20, "val_loss": 1.1, "accuracy": 0.10, "correct": 2, "questions": 20, "open_book_accuracy": 0.70,
         "taught_accuracy": 0.80, "taught_open_book_accuracy": 0.87},
        {"step": 30, "val_loss": 1.2, "accuracy": 0.05, "correct": 1, "questions": 20, "open_book_accuracy": 0.65,
         "taught_accuracy": 0.85, "taught_open_book_accuracy": 0.90},
        {"step": 40, "val_loss": 1.3, "accuracy": 0.15, "correct": 3, "questions": 20, "open_book_accuracy": 0.50,
         "taught_accuracy": 0.90, "taught_open_book_accuracy": 0.80},
    ])  # open-book scores 0.800, 0.785, 0.775, 0.650; closed-book 0.250, 0.450, 0.450, 0.525
    assert select_checkpoint(run_dir, "accuracy")["selected"]["step"] == 10
    within = select_checkpoint(run_dir, "accuracy", tolerance=0.02)
    assert within["selected"]["step"] == 20  # 30 is 0.025 below; 20 and 30 tie closed-book: lower val loss
    assert within["reason"].startswith("open-book accuracy 0.785 at step 20, within 0.02 of the best 0.800 "
                                       "(step 10), with the highest closed-book score 0.450")
    assert "within 0.02 of the best, the highest closed-book score" in within["rule"]
    assert select_checkpoint(run_dir, "accuracy", tolerance=0.03)["selected"]["step"] == 20
    assert select_checkpoint(run_dir, "accuracy", tolerance=0.2)["selected"]["step"] == 40


def copy_workspace(source: Workspace, root: Path) -> Workspace:
    """Documents and datasets of `source` (the same data), without its runs."""
    for name in ("documents", "datasets"):
        shutil.copytree(source.root / name, root / name)
    return Workspace(root)


def test_resume_continues_from_the_last_checkpoint_as_if_never_stopped(reference, tmp_path):
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    steps = [r["step"] for r in lines(reference["run_dir"])]
    stop_at = steps[1]  # the second evaluation (step 8)

    def interrupt(kind: str, data: dict) -> None:
        if kind == "eval" and data["step"] == stop_at:
            raise KeyboardInterrupt  # as Ctrl-C right after the checkpoint was saved

    with pytest.raises(KeyboardInterrupt):
        train(workspace, reference["config"], on_event=interrupt)
    run_dir = next((workspace.root / "runs").iterdir())
    assert [r["step"] for r in lines(run_dir)] == steps[:2]
    # only the newest complete checkpoint keeps the optimizer's state: the one resume reads
    kept = {int(p.name.split("-")[1]): p for p in (run_dir / "checkpoints").glob("checkpoint-*")}
    assert sorted(kept) == steps[:2] and (kept[stop_at] / "optimizer.pt").is_file()
    assert not (kept[steps[0]] / "optimizer.pt").exists() and (kept[steps[0]] / "adapter_model.safetensors").is_file()
    assert not (workspace.root / "runs" / "latest").exists()  # only a finished run is "latest"

    events: list[tuple[str, dict]] = []
    other = tiny_config(reference["config"].model.base_model, learning_rate=0.5)  # ignored: the run's config wins
    resumed = train(workspace, other, resume=True, on_event=lambda kind, data: events.append((kind, data)))
    assert resumed == run_dir
    assert events[0][0] == "start" and events[0][1]["resumed_from_step"] == stop_at
    assert [d["step"] for k, d in events if k == "step"][0] == stop_at + 1  # not from 0

    # Weights, optimizer moments, schedule and data position all came back: every figure of the
    # resumed run equals the uninterrupted reference run's, and each evaluation appears once. Equal to
    # 2e-4: two uninterrupted runs on an AMX CPU already differ by up to 4e-5 (oneDNN's threaded sums),
    # while a step of training moves the loss by 1e-3 or more, so a wrong batch or lost state shows.
    got, want = lines(run_dir), lines(reference["run_dir"])
    assert [r["step"] for r in got] == steps
    for a, b in zip(got, want):
        for key in ("epoch", "train_loss", "val_loss", "accuracy", "learning_rate"):
            assert a[key] == (None if b[key] is None else pytest.approx(b[key], rel=2e-4, abs=1e-9)), (a["step"], key)
    assert got[-1]["seconds"] > got[1]["seconds"] and got[-1]["accuracy"] is not None
    assert (workspace.root / "runs" / "latest").read_text().strip() == run_dir.name
    assert json.loads((run_dir / "selection.json").read_text())["selected"]["step"] in steps


def test_resume_without_a_run_or_checkpoint_names_the_path(tmp_path, tiny_model_dir):
    workspace = Workspace(tmp_path / "ws")
    config = tiny_config(tiny_model_dir)
    with pytest.raises(DocfinetuneError, match=r"ws/runs: no training run to resume"):
        train(workspace, config, resume=True)
    run_dir = workspace.root / "runs" / "started"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config)))
    with pytest.raises(DocfinetuneError, match=r"started/checkpoints: no complete checkpoint"):
        train(workspace, config, resume=True)
    with pytest.raises(DocfinetuneError, match=r"runs/nope: no such run"):
        train(workspace, config, resume=True, run_id="nope")


def test_without_validation_questions_training_goes_on_padded(reference, tmp_path):
    """No Q&A-val rows: a warning, no val loss or accuracy, the last checkpoint chosen; also
    the padded (packing off) path."""
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    (workspace.datasets_dir / "qa_val.jsonl").write_text("")
    config = tiny_config(reference["config"].model.base_model, packing=False, max_steps=3, eval_every_steps=2)
    events: list[tuple[str, dict]] = []
    run_dir = train(workspace, config, run_id="no-val", on_event=lambda kind, data: events.append((kind, data)))
    assert run_dir.name == "no-val"
    assert any("no validation questions" in w for w in events[0][1]["warnings"])
    rows = lines(run_dir)
    assert [r["step"] for r in rows] == [2, 3]
    assert all(r["val_loss"] is None and r["accuracy"] is None and r["questions"] == 0 for r in rows)
    assert all(r["train_loss"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["selected"]["step"] == 3 and "last checkpoint" in selection["rule"]
    with pytest.raises(DocfinetuneError, match="no-val: this run exists"):
        train(workspace, config, run_id="no-val")


def test_with_recite_both_checkpoints_are_scored_on_the_answers_ask_would_give(reference, tmp_path, monkeypatch):
    import docfinetune.train as train_stage

    calls = []

    def spy(ask, questions, generation, recite_both=False):
        got = real(ask, questions, generation, recite_both)
        calls.append((recite_both, got))
        return got

    real = train_stage.closed_book_answers
    monkeypatch.setattr(train_stage, "closed_book_answers", spy)
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    tiny = tiny_config(reference["config"].model.base_model, max_steps=2, eval_every_steps=2)
    config = load_pipeline("default", {**tiny.to_dict(), "build": {**tiny.to_dict()["build"], "recite": True,
                                                                    "recite_both": True, "recital_max_chars": 20},
                                       "generation": {"batch_size": 8, "max_new_tokens": 61}})
    run_dir = train(workspace, config, run_id="both")
    rows = lines(run_dir)
    assert [r["step"] for r in rows] == [2] and rows[0]["questions"] > 0
    # each checkpoint's questions asked plainly and for a recital, the answer chosen as eval and ask choose (and
    # a question quoting its clause read on from the quote, generation.read_quotes)
    assert calls and all(both and set(got) == {"answer", "recited", "plain", "read_on", "quote", "quoted", "unquoted"}
                         for both, got in calls)
    assert any(r.get("recital") for r in workspace.read_dataset("qa_train"))


def test_bad_settings_are_reported_together_before_a_model_loads(reference, tmp_path):
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    for name in ("cpt", "qa_train"):
        (workspace.datasets_dir / f"{name}.jsonl").write_text("")
    config = tiny_config(reference["config"].model.base_model, lr_scheduler="cosine_sometimes",
                         optimizer="adamw_magic")
    with pytest.raises(ConfigError) as caught:
        train(workspace, config)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("train.lr_scheduler: 'cosine_sometimes'") for p in problems)
    assert any(p.startswith("train.optimizer: 'adamw_magic'") for p in problems)
    assert any("cpt.jsonl and qa_train.jsonl are both empty" in p for p in problems)
    assert not (workspace.root / "runs").exists()


def test_nf4_on_cpu_is_a_clear_config_error(reference, tmp_path):
    """The QLoRA branch needs CUDA: on CPU load_model refuses it before peft is involved."""
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    config = tiny_config(reference["config"].model.base_model, {"quantization": "nf4", "device": "cpu"})
    with pytest.raises(ConfigError, match="model.quantization: nf4 .* needs a CUDA GPU"):
        train(workspace, config)
    assert not (workspace.root / "runs").exists()  # no run folder for a run that never started


def test_gradient_checkpointing_still_trains_the_adapter(tiny_model_dir, tiny_tokenizer):
    model = prepare_model(tiny_config(tiny_model_dir, gradient_checkpointing=True))
    assert model.training and model.base_model.model.is_activation_checkpointing
    example = tokenize(tiny_tokenizer, "Question: Which law governs?\nAnswer:", " Vermont", 64, False)
    model(input_ids=torch.tensor([example["input_ids"]]), labels=torch.tensor([example["labels"]])).loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    lora_b = [p for n, p in trainable.items() if "lora_B" in n]  # B starts at zero, so A's first grads are 0
    assert lora_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)


def test_train_keeps_the_qa_files_of_the_last_build(reference, tmp_path):
    """Datasets built with --qa-file are up to date for train, which must not rebuild them
    without the user's own Q&A."""
    from docfinetune.build import build

    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"question": "Who signs for the Client?", "answer": "Mara Quint"}) + "\n")
    config = tiny_config(reference["config"].model.base_model, max_steps=1, eval_every_steps=1)
    build(workspace, config, [own])
    stats = (workspace.datasets_dir / "stats.json").read_bytes()
    train(workspace, config, run_id="own-qa")
    assert (workspace.datasets_dir / "stats.json").read_bytes() == stats  # not rebuilt


def test_fused_kernels_only_with_cuda_and_liger():
    on_cpu = {"model": {"device": "cpu"}}
    assert fused_kernels_on(load_pipeline("default", {**on_cpu, "train": {"fused_kernels": "auto"}})) is False
    assert fused_kernels_on(load_pipeline("default", {**on_cpu, "train": {"fused_kernels": "off"}})) is False
    with pytest.raises(ConfigError, match="train.fused_kernels: on needs a CUDA GPU and liger-kernel"):
        fused_kernels_on(load_pipeline("default", {**on_cpu, "train": {"fused_kernels": "on"}}))


def test_packed_rows_must_hold_the_longest_example():
    with pytest.raises(ConfigError, match="packed_row_tokens: 256 is below max_seq_tokens"):
        TrainConfig(packed_row_tokens=256, max_seq_tokens=512)


def test_a_run_in_packed_rows_counts_exactly_the_tokens_it_trained_on(reference, tmp_path):
    """With rows of 64 tokens the micro-batches carry padding; tokens_seen must not count it."""
    config = tiny_config(reference["config"].model.base_model, epochs=1.0, packed_row_tokens=64)
    events: list[tuple[str, dict]] = []
    train(reference["workspace"], config, run_id="packed-rows", on_event=lambda kind, data: events.append((kind, data)))
    start = events[0][1]
    steps = [d for k, d in events if k == "step"]
    assert len(steps) == start["total_steps"] == math.ceil(start["examples"] / MICRO_BATCH)
    assert steps[-1]["tokens_seen"] == start["tokens"]  # every example once, padding excluded
    assert all(d["tokens_per_s"] > 0 for d in steps)


def test_selective_checkpointing_leaves_the_last_layers_alone(tiny_model_dir):
    from transformers.modeling_layers import GradientCheckpointingLayer

    model = prepare_model(tiny_config(tiny_model_dir, gradient_checkpointing=True, checkpointed_layers=0.5))
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert [layer.gradient_checkpointing for layer in layers] == [True, False]  # the tiny model has 2 layers
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "labels": torch.tensor([[5, 6, 7, 8]])}
    model(**batch).loss.backward()  # both kinds of layer train
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_qa_with_text_puts_each_chunks_qa_before_its_text_and_evaluates_every_epoch(reference):
    workspace = reference["workspace"]
    config = dataclasses.replace(reference["config"],
                                 train=dataclasses.replace(reference["config"].train, schedule="qa_with_text"))
    data = read_datasets(workspace)
    prompt_of = prompts_for(workspace, config, data["qa_train"])
    examples, ends = passes_in_order(data, config.train, prompt_of)
    per_epoch = len(data["cpt"]) + len(data["qa_train"]) * config.train.qa_repeats
    assert ends == [per_epoch, 2 * per_epoch] and len(examples) == 2 * per_epoch
    # Within an epoch, every Q&A row comes right before the reading text of its source chunk.
    chunk_of_text = {row["text"]: row["chunk_id"] for row in data["cpt"]}
    question_chunk = {qa_example(prompt_of, r)["prompt"]: r["source_chunk_ids"][0]
                      for r in data["qa_train"]}
    first_epoch = examples[:per_epoch]
    for i, example in enumerate(first_epoch):
        if example["prompt"]:
            following = next(e for e in first_epoch[i:] if not e["prompt"])
            assert chunk_of_text[following["completion"]] == question_chunk[example["prompt"]]
    assert examples[:per_epoch] != examples[per_epoch:]  # a new chunk order each epoch

    run_dir = train(workspace, config, run_id="in-order")
    steps = [r["step"] for r in lines(run_dir)]
    epoch_ends = [math.ceil(n / MICRO_BATCH) for n in ends]
    assert set(epoch_ends) <= set(steps) and steps[-1] == epoch_ends[-1]
    assert set(range(EVAL_EVERY, epoch_ends[-1] + 1, EVAL_EVERY)) <= set(steps)


def test_phased_schedule_trains_qa_alone_first_and_the_text_alone_last(reference):
    workspace = reference["workspace"]
    data = read_datasets(workspace)
    t = dataclasses.replace(reference["config"].train, schedule="phased", epochs=8)
    prompt_of = prompts_for(workspace, reference["config"], data["qa_train"])
    examples, ends = passes_in_order(data, t, prompt_of)
    epochs = [examples[a:b] for a, b in zip([0, *ends], ends)]
    n_qa, n_text = len(data["qa_train"]) * t.qa_repeats, len(data["cpt"])
    assert [len(e) for e in epochs] == [n_qa] * 2 + [n_qa + n_text] * 4 + [n_text] * 2
    assert all(e["prompt"] for epoch in epochs[:2] for e in epoch)  # Q&A only
    assert not any(e["prompt"] for epoch in epochs[6:] for e in epoch)  # reading text only
    # the middle epochs are qa_with_text's, example for example
    same, _ = passes_in_order(data, dataclasses.replace(t, schedule="qa_with_text"), prompt_of)
    assert examples[ends[1]:ends[5]] == same[(n_qa + n_text) * 2:(n_qa + n_text) * 6]
    # one epoch (the CPU demo) is qa_with_text's whole epoch
    one = dataclasses.replace(t, epochs=1)
    assert passes_in_order(data, one, prompt_of) == passes_in_order(
        data, dataclasses.replace(one, schedule="qa_with_text"), prompt_of)
    # train() runs it: 4 epochs are 1 of Q&A, 2 of both, 1 of text, each end evaluated
    config = dataclasses.replace(reference["config"], train=dataclasses.replace(t, epochs=4))
    ends = passes_in_order(data, config.train, prompt_of)[1]
    run_dir = train(workspace, config, run_id="phased")
    steps = [r["step"] for r in lines(run_dir)]
    assert {math.ceil(n / MICRO_BATCH) for n in ends} <= set(steps) and steps[-1] == math.ceil(ends[-1] / MICRO_BATCH)


def test_question_dropout_deletes_words_of_closed_book_questions_anew_each_epoch(reference):
    workspace = reference["workspace"]
    data = read_datasets(workspace)
    prompt_of = prompts_for(workspace, reference["config"], data["qa_train"])
    plain = dataclasses.replace(reference["config"].train, schedule="qa_with_text", epochs=3)
    dropped = dataclasses.replace(plain, question_dropout=1.0, question_dropout_words=0.5)
    before, ends = passes_in_order(data, plain, prompt_of)
    after, same_ends = passes_in_order(data, dropped, prompt_of)
    assert ends == same_ends  # the same rows, in the same order: only questions change
    assert [e["completion"] for e in before] == [e["completion"] for e in after]
    changed = [(b["prompt"], a["prompt"]) for b, a in zip(before, after) if b["prompt"] != a["prompt"]]
    assert len(changed) > len(data["qa_train"])  # most questions, in every epoch
    for full, short in changed:  # words deleted, never added or reordered, three or more kept
        asked = short.split("Question: ", 1)[1].split("\nAnswer:")[0].split()
        words = iter(full.split("Question: ", 1)[1].split("\nAnswer:")[0].split())
        assert len(asked) >= 3 and all(any(w == x for x in words) for w in asked)
    # a new draw per epoch: one row's question differs between epochs
    first = {e["completion"]: e["prompt"] for e in after[:ends[0]] if e["prompt"]}
    second = {e["completion"]: e["prompt"] for e in after[ends[0]:ends[1]] if e["prompt"]}
    assert any(first[c] != second[c] for c in first.keys() & second.keys())
    # the option is checked: shuffled rows are built once
    with pytest.raises(ConfigError, match="question_dropout"):
        dataclasses.replace(plain, schedule="shuffled", question_dropout=0.5)
    # a multiple-choice row keeps its options whole
    row = {"question": f"Under Section 4.1 of the Agreement, what is the fee for the Platform?{CHOICE_MARK}(A) $1 (B) $2",
           "answer": "$1"}
    short = with_words_dropped(row, dropped, random.Random(0))
    assert short["question"].endswith(f"{CHOICE_MARK}(A) $1 (B) $2") and short["question"] != row["question"]


def test_prepare_writes_nothing_and_takes_the_rows_it_is_given(reference, tmp_path):
    # The seam the throughput benchmark uses: the recipe's own preparation on the reading text alone.
    from docfinetune.train import prepare

    workspace = reference["workspace"]
    before = sorted(p.name for p in (workspace.root / "runs").iterdir())
    cpt = read_datasets(workspace)["cpt"]
    ready = prepare(workspace, reference["config"], data={"cpt": cpt, "qa_train": [], "qa_val": []})
    assert len(ready.train_set) == len(cpt) and len(ready.val_set) == 0 and ready.questions == []
    assert all(label != IGNORE for row in ready.train_set["labels"] for label in row[:1])  # text: every token learned
    assert sorted(p.name for p in (workspace.root / "runs").iterdir()) == before  # no run folder


def test_keep_optimizer_state_every_leaves_each_checkpoint_resumable(reference, tmp_path):
    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    config = tiny_config(reference["config"].model.base_model, max_steps=8, keep_optimizer_state="every")
    run_dir = train(workspace, config)
    folders = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in folders] == ["checkpoint-4", "checkpoint-8"]
    assert all((p / "optimizer.pt").stat().st_size > 0 for p in folders)


def test_full_fine_tuning_trains_the_layers_not_the_embeddings_and_answers_from_its_checkpoint(reference, tmp_path):
    from docfinetune.core.runs import find_run, load_answerer, resolve_checkpoint

    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    config = tiny_config(reference["config"].model.base_model, method="full", max_steps=4, eval_every_steps=4)
    run_dir = train(workspace, config)
    folder = run_dir / "checkpoints" / "checkpoint-4"
    assert (folder / "model.safetensors").is_file() and not (folder / "adapter_config.json").exists()

    run = find_run(workspace, run_dir.name)
    checkpoint = resolve_checkpoint(run)
    assert checkpoint.step == 4
    tuned, _ = load_answerer(config, checkpoint.path)
    base, _ = load_answerer(config, None)
    tuned_weights, base_weights = tuned.state_dict(), base.state_dict()
    moved = [name for name, w in base_weights.items() if not torch.equal(w, tuned_weights[name])]
    assert moved and all("embed_tokens" not in name and "lm_head" not in name for name in moved)
    assert any("layers.0.mlp" in name for name in moved)  # every layer's weights train, not an adapter

    # eval's base systems answer with the base weights, not the fine-tune (no adapter to switch off)
    from docfinetune.evaluate import evaluate

    report = evaluate(workspace, config=config, systems="base,finetuned")
    answers = {s: [r["answers"][s]["answer"] for r in report["records"]] for s in ("base", "finetuned")}
    base_only = evaluate(workspace, config=config, systems="base", run_id=run_dir.name)
    assert answers["base"] == [r["answers"]["base"]["answer"] for r in base_only["records"]]
    assert answers["base"] != answers["finetuned"]


def test_eval_merges_the_adapter_only_after_the_base_systems_answered(reference, tmp_path):
    """eval answers the base systems with the adapter off, then merges it for the fine-tuned ones:
    each system's answers equal those of a model that only ever did that one thing."""
    from docfinetune.core.generate import format_prompt, generate
    from docfinetune.core.runs import find_run, load_answerer, resolve_checkpoint
    from docfinetune.evaluate import evaluate

    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    config = tiny_config(reference["config"].model.base_model, max_steps=4, eval_every_steps=4,
                         teach_held_out_passes=4)
    run_dir = train(workspace, config)
    # teaching the held-out facts (4 passes: 142 steps uncut here) takes no more steps than the training did
    assert json.loads((run_dir / "selection.json").read_text())["taught_all"]["steps"] == 4
    report = evaluate(workspace, config=config, systems="base,finetuned")
    questions = [r["question"] for r in report["records"]]
    base_only = evaluate(workspace, config=config, systems="base")
    assert [r["answers"]["base"]["answer"] for r in report["records"]] == \
        [r["answers"]["base"]["answer"] for r in base_only["records"]]

    checkpoint = resolve_checkpoint(find_run(workspace), held_out=True)  # eval asks Q&A-test rows of the selected one
    unmerged, tokenizer = load_answerer(config, checkpoint.path)
    prompts = [format_prompt(config.generation.prompt_template, q) for q in questions]
    expected = generate(unmerged, tokenizer, prompts, max_new_tokens=config.generation.max_new_tokens,
                        batch_size=config.generation.batch_size)
    # the answers as asked (before any quote read on, generation.read_quotes, kept beside them)
    assert [r["answers"]["finetuned"].get("unquoted", r["answers"]["finetuned"])["answer"]
            for r in report["records"]] == expected
    merged, _ = load_answerer(config, checkpoint.path, merged=True)
    assert all(layer.merged for name, layer in merged.named_modules() if hasattr(layer, "merged") and "lora" not in name)


def test_full_fine_tuning_refuses_a_4bit_model(tiny_model_dir):
    with pytest.raises(ConfigError, match="train.method: full"):
        tiny_config(tiny_model_dir, {"quantization": "nf4"}, method="full")


def test_teach_held_out_teaches_the_held_out_facts_after_selection_and_eval_keeps_them_held_out(
        reference, tmp_path, tiny_model_dir):
    from docfinetune.core.runs import load_answerer, load_run, measured_system, resolve_checkpoint
    from docfinetune.evaluate import evaluate

    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    config = tiny_config(tiny_model_dir, schedule="qa_with_text", epochs=1.0, teach_held_out_passes=3,
                         teach_held_out_learning_rate=5e-3, teach_held_out_replay=1.5,
                         teach_held_out_replay_rules=False)  # the sample alone: its size is asserted
    events: list[tuple[str, dict]] = []
    run_dir = train(workspace, config, run_id="taught", on_event=lambda kind, data: events.append((kind, data)))
    selection = json.loads((run_dir / "selection.json").read_text())
    taught, selected = selection["taught_all"], selection["selected"]
    teach = [d for k, d in events if k == "teach"]  # progress on the way, then "done" with the entry
    assert [d["step"] for d in teach] == list(range(1, taught["steps"] + 1))
    assert teach[-1]["total_steps"] == taught["steps"] and teach[-1]["loss"] > 0
    assert events[-1][0] == "done" and events[-1][1]["taught_all"] == taught
    data = read_datasets(workspace)
    held = data["qa_val"] + workspace.read_dataset("qa_test")
    assert taught["path"] == "checkpoints/taught-all" and taught["from_step"] == selected["step"]
    assert taught["rows"]["held_out"] == len(held) > 0 and taught["rows"]["replayed"] == round(1.5 * len(held))
    assert taught["steps"] > 0 and not (run_dir / "teaching").exists()
    assert not (run_dir / "checkpoints" / "taught-all.partial").exists()

    run = load_run(run_dir)
    answering = resolve_checkpoint(run)  # ask and export: the taught adapter
    assert answering.path == run_dir / "checkpoints" / "taught-all" and answering.step is None
    assert resolve_checkpoint(run, held_out=True).step == selected["step"]

    closed_book = [r for r in data["qa_train"] if not r.get("context_chunk_ids")][:len(held)]

    def answer_losses(adapter: Path) -> tuple[float, float]:
        """Mean answer loss of the held-out rows and of as many training rows."""
        model, tokenizer = load_answerer(config, adapter)
        prompt_of = prompts_for(workspace, config, held)
        means = []
        with torch.no_grad():
            for rows in (held, closed_book):
                losses = []
                for row in rows:
                    example = qa_example(prompt_of, row)
                    ids = tokenize(tokenizer, example["prompt"], example["completion"], 64, False)
                    losses.append(model(input_ids=torch.tensor([ids["input_ids"]]),
                                        labels=torch.tensor([ids["labels"]])).loss.item())
                means.append(sum(losses) / len(losses))
        return means[0], means[1]

    # the held-out answers are learned: their loss falls from the selected adapter to the taught
    # one (the tiny random model's whole training moved the val loss 6.47 -> 6.36), more than the
    # training rows' loss moves
    (held_before, train_before), (held_after, train_after) = (
        answer_losses(run_dir / selected["path"]), answer_losses(answering.path))
    assert held_before - held_after > 0.1 and held_before - held_after > train_before - train_after

    # eval asks the held-out facts of the checkpoint that never saw them, other questions of the taught one
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Which state's laws govern the agreement?", "answer": "Vermont"}) + "\n")
    held_report = evaluate(workspace, config=config, include_test=True, systems="finetuned,finetuned+rag")
    assert held_report["run"]["step"] == selected["step"]
    # ask, on the taught adapter, answers with the system that eval measured better on the step it was taught from
    best, measured, measured_on = measured_system(load_run(run_dir), answering)
    accuracy = {name: figures["accuracy"] for name, figures in held_report["systems"].items()}
    assert best == ("finetuned+rag" if accuracy["finetuned+rag"] > accuracy["finetuned"] else "finetuned")
    assert measured["step"] == selected["step"] and measured_on.startswith(f"step {selected['step']}, before")
    asked_report = evaluate(workspace, config=config, questions_file=questions, systems="finetuned")
    assert asked_report["run"]["step"] is None and asked_report["run"]["checkpoint"] == "checkpoints/taught-all"
    systems = json.loads((run_dir / "systems.json").read_text())
    assert systems["checkpoint"] == "checkpoints/taught-all"

    # the export is the taught adapter; its card names it and quotes the selected step's held-out figures
    from docfinetune.core.config import ExportConfig
    from docfinetune.export import export_run

    out = export_run(workspace, ExportConfig(format="adapter"), run_id="taught", out=tmp_path / "adapter")
    card = (out / "README.md").read_text()
    assert "checkpoint taught-all" in card and f"checkpoint {selected['step']} answered" in card
    assert f"Then the {len(held)} held-out Q&A rows were taught too" in card

    # full fine-tuning has no adapter to teach on: the selected checkpoint is the model, and train says so
    full = tiny_config(tiny_model_dir, teach_held_out_passes=1, method="full")
    assert teaches_held_out(config) and not teaches_held_out(full)
    warnings = check_settings(full, data, workspace.datasets_dir)
    assert any("held-out facts are not taught after selection (method full" in w for w in warnings)
    assert not any("teach_held_out" in w for w in check_settings(config, data, workspace.datasets_dir))


def test_a_run_stopped_while_teaching_held_out_facts_is_unfinished_and_resume_teaches_them(
        reference, tmp_path, tiny_model_dir, monkeypatch):
    import docfinetune.train

    workspace = copy_workspace(reference["workspace"], tmp_path / "ws")
    # replaying only the rules generator's rows: each of them, and no random draw
    config = tiny_config(tiny_model_dir, schedule="qa_with_text", epochs=1.0, teach_held_out_passes=1,
                         teach_held_out_replay=0.0, teach_held_out_replay_rules=True)
    teach = docfinetune.train.teach_held_out

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(docfinetune.train, "teach_held_out", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, config, run_id="stopped")
    run_dir = workspace.root / "runs" / "stopped"
    assert not (run_dir / "selection.json").exists()  # not finished: resumable
    monkeypatch.setattr(docfinetune.train, "teach_held_out", teach)
    assert train(workspace, config, resume=True) == run_dir
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["taught_all"]["from_step"] == selection["selected"]["step"]
    assert (run_dir / "checkpoints" / "taught-all" / "adapter_config.json").is_file()
    rules = [r for r in read_datasets(workspace)["qa_train"] if r["generator"] == "rules"]
    assert selection["taught_all"]["rows"]["replayed"] == len(rules) > 0
    # the knowledge benchmark teaches the same checkpoint again beside it (run --also-teach): the run's
    # own adapter and selection stay as they were
    adapter = run_dir / "checkpoints" / "taught-all" / "adapter_model.safetensors"
    written = adapter.read_bytes()
    again = teach(workspace, run_dir, docfinetune.train.prepare(workspace, config), selection["selected"]["path"],
                  lambda kind, data: None, quiet=True, target="checkpoints/taught-other")
    assert again["path"] == "checkpoints/taught-other" and again["from_step"] == selection["selected"]["step"]
    assert (run_dir / "checkpoints" / "taught-other" / "adapter_model.safetensors").is_file()
    assert adapter.read_bytes() == written
    assert json.loads((run_dir / "selection.json").read_text()) == selection
