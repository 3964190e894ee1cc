"""Choose a run's checkpoint from its evaluations, and draw its curves.

    runs/<run-id>/metrics.jsonl    one line per evaluation (written by `train`)
    runs/<run-id>/selection.json   every checkpoint's figures, the one chosen and why
    runs/<run-id>/curves.png       train and val loss (left axis), accuracy (right axis)

Validation loss and answer accuracy peak at different steps on small data (accuracy often
still climbs after val loss has turned up), so the default rule is accuracy: of the system `ask`
would use (closed-book, or with retrieval for a run trained open-book), over the held-out val
facts (what the model only read) and a sample of the taught (Q&A-train) facts, weighted by
`train.taught_weight` (0.5). Users ask about both kinds of fact. On the held-out facts alone
(`held_out_accuracy`, the rule until 2026-12-01) the H200 knowledge runs chose checkpoints a
median 0.38 of the way through training: open-book reading of held-out facts peaks early, while
the taught facts are learned later (the sample: 23% answered at the chosen step 85 of 337, 89% at
the end). The blend chose at 0.75, with the same open-book score on the lawyers' + hand-written
questions and closed-book 47.5% of them against 33.9% (benchmarks/RESULTS.md). Ties go to lower
val loss, then the earlier step. With `train.selection_tolerance` (0.05), scores within it of the
best tie too, and the tied checkpoint that answers best closed-book wins: on RAG-trained runs the
open-book score is flat across the late checkpoints while closed-book recall still grows, so the
best open-book score alone sometimes picks an early checkpoint that knows little without
retrieval (H200, 2026-12-01: duostechnologies step 84 of 224, taught facts closed-book 0.36
against 0.85 at 224). From one training of 13 contracts whose every checkpoint answered the
lawyers' + hand-written questions, 0.05 against none: closed-book 76 against 67 of 123, with
retrieval 100 against 98.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from docfinetune.core.errors import WorkspaceError
from docfinetune.core.runs import CURVES_FILE, METRICS_FILE, SELECTION_FILE, checkpoint_path, checkpoint_step
from docfinetune.core.workspace import read_jsonl, write_bytes_atomic, write_json

CHECKPOINT_FIELDS = ("step", "epoch", "train_loss", "val_loss", "accuracy", "correct", "questions",
                     "open_book_accuracy", "taught_accuracy", "taught_open_book_accuracy", "eval_seconds")


def _checkpoints(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise WorkspaceError(f"{path}: no evaluations recorded; train first (docfinetune train)")
    by_step = {row["step"]: row for row in read_jsonl(path)}  # a repeated step: the last line wins
    if not by_step:
        raise WorkspaceError(f"{path}: no evaluations recorded; train first (docfinetune train)")
    return [{**{k: by_step[s].get(k) for k in CHECKPOINT_FIELDS}, "path": checkpoint_path(s)}
            for s in sorted(by_step)]


def _lower(value: float | None) -> float:
    return math.inf if value is None else value


def _blend(held_out: float, taught: float | None, taught_weight: float) -> float:
    """(1 - w) * held-out + w * taught; held-out alone where the taught sample was not asked."""
    return held_out if taught is None else (1 - taught_weight) * held_out + taught_weight * taught


def closed_book_score(checkpoint: dict, taught_weight: float) -> float:
    """The closed-book figure of a checkpoint, held-out and taught facts blended."""
    return _blend(checkpoint["accuracy"], checkpoint.get("taught_accuracy"), taught_weight)


def accuracy_of(checkpoint: dict, taught_weight: float | None = None) -> tuple[float, str]:
    """(accuracy, system) of the system `ask` would use with this checkpoint: closed-book, or
    open-book (a run trained on open-book rows is also scored with retrieval) when that is higher.
    With `taught_weight`, each system's figure blends the held-out facts' accuracy with the taught
    sample's (where measured): (1 - w) * held-out + w * taught."""
    # Both systems blend or neither (a checkpoint of a run started before the taught sample was
    # also asked open-book has no taught open-book figure: held-out alone then, for both).
    open_book_unblended = (checkpoint.get("open_book_accuracy") is not None
                           and checkpoint.get("taught_open_book_accuracy") is None)

    def blend(held_out: float, taught: float | None) -> float:
        if taught_weight is None or open_book_unblended:
            return held_out
        return _blend(held_out, taught, taught_weight)

    closed = blend(checkpoint["accuracy"], checkpoint.get("taught_accuracy"))
    if checkpoint.get("open_book_accuracy") is not None:
        open_book = blend(checkpoint["open_book_accuracy"], checkpoint.get("taught_open_book_accuracy"))
        if open_book > closed:
            return open_book, "open-book"
    return closed, "closed-book"


def _figures(checkpoint: dict, system: str) -> str:
    """The measured accuracies behind a checkpoint's score, in words."""
    def pct(key: str) -> str:
        return "n/a" if checkpoint.get(key) is None else f"{checkpoint[key]:.3f}"

    if system == "open-book":
        return (f"open-book: held-out {pct('open_book_accuracy')}, taught {pct('taught_open_book_accuracy')}; "
                f"closed-book: held-out {pct('accuracy')} ({checkpoint['correct']}/{checkpoint['questions']}), "
                f"taught {pct('taught_accuracy')}")
    return (f"closed-book: held-out {pct('accuracy')} ({checkpoint['correct']}/{checkpoint['questions']}), "
            f"taught {pct('taught_accuracy')}")


def _choose(checkpoints: list[dict], select_by: str, taught_weight: float = 0.5,
            tolerance: float = 0.0) -> tuple[dict, str, str]:
    """(the chosen checkpoint, the rule in words, why this one)."""
    scored = [c for c in checkpoints if c["accuracy"] is not None]
    with_loss = [c for c in checkpoints if c["val_loss"] is not None]
    if select_by == "accuracy" and scored:
        rule = (f"highest accuracy of the system ask uses (closed-book, or open-book where measured and higher), "
                f"{1 - taught_weight:g} x held-out facts + {taught_weight:g} x taught facts; ties broken by lower "
                "val loss, then the earlier step")
        best = min(scored, key=lambda c: (-accuracy_of(c, taught_weight)[0], _lower(c["val_loss"]), c["step"]))
        accuracy, system = accuracy_of(best, taught_weight)
        reason = f"highest {system} accuracy {accuracy:.3f} at step {best['step']} ({_figures(best, system)})"
        tied = [c for c in scored if accuracy_of(c, taught_weight)[0] == accuracy]
        if tolerance > 0:
            rule += (f"; within {tolerance:g} of the best, the highest closed-book score ({1 - taught_weight:g} x "
                     f"held-out + {taught_weight:g} x taught)")
            near = [c for c in scored if accuracy_of(c, taught_weight)[0] >= accuracy - tolerance]
            knows = min(near, key=lambda c: (-closed_book_score(c, taught_weight), _lower(c["val_loss"]), c["step"]))
            if knows is not best:
                score, system = accuracy_of(knows, taught_weight)
                return knows, rule, (
                    f"{system} accuracy {score:.3f} at step {knows['step']}, within {tolerance:g} of the best "
                    f"{accuracy:.3f} (step {best['step']}), with the highest closed-book score "
                    f"{closed_book_score(knows, taught_weight):.3f} ({_figures(knows, system)})")
        if len(tied) > 1:
            loss = "n/a" if best["val_loss"] is None else f"{best['val_loss']:.4f}"
            reason += f"; {len(tied)} checkpoints tied, broken by val loss {loss}"
        return best, rule, reason
    if select_by == "held_out_accuracy" and scored:
        rule = ("highest accuracy on the held-out val facts (closed-book, or open-book where measured and higher); "
                "ties broken by higher taught accuracy, then lower val loss, then the earlier step")
        best = min(scored, key=lambda c: (-accuracy_of(c)[0], -(c.get("taught_accuracy") or 0.0),
                                          _lower(c["val_loss"]), c["step"]))
        accuracy, system = accuracy_of(best)
        if system == "open-book":
            reason = (f"highest open-book accuracy {accuracy:.3f} (closed-book {best['accuracy']:.3f}, "
                      f"{best['correct']}/{best['questions']}) at step {best['step']}")
        else:
            reason = (f"highest accuracy {best['accuracy']:.3f} ({best['correct']}/{best['questions']}) "
                      f"at step {best['step']}")
        tied = [c for c in scored if accuracy_of(c)[0] == accuracy]
        if len(tied) > 1:
            loss = "n/a" if best["val_loss"] is None else f"{best['val_loss']:.4f}"
            taught = "n/a" if best.get("taught_accuracy") is None else f"{best['taught_accuracy']:.3f}"
            reason += (f"; {len(tied)} checkpoints tied, broken by taught accuracy {taught}, "
                       f"then val loss {loss}")
        return best, rule, reason
    if with_loss:
        rule = "lowest val loss; ties broken by the earlier step"
        if select_by != "val_loss":
            rule += " (no accuracy was measured: no validation questions)"
        best = min(with_loss, key=lambda c: (c["val_loss"], c["step"]))
        return best, rule, f"lowest val loss {best['val_loss']:.4f} at step {best['step']}"
    best = checkpoints[-1]
    return (best, "the last checkpoint (no validation questions, so neither accuracy nor val loss)",
            f"last checkpoint, step {best['step']}")


def select_checkpoint(run_dir: Path, select_by: str, taught_weight: float = 0.5, tolerance: float = 0.0,
                      write: bool = True) -> dict:
    """Choose a checkpoint of `run_dir` by `select_by` (accuracy, held_out_accuracy or
    val_loss; see the module docstring); writes (unless not `write`: the caller does, when the
    run is finished) and returns selection.json's content."""
    run_dir = Path(run_dir)
    checkpoints = _checkpoints(run_dir)
    selected, rule, reason = _choose(checkpoints, select_by, taught_weight, tolerance)
    selection = {"run_id": run_dir.name, "rule": rule, "checkpoints": checkpoints,
                 "selected": selected, "reason": reason}
    if write:
        write_json(run_dir / SELECTION_FILE, selection)
    return selection


def step_losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, train loss) of every logging step, from Trainer's own log history in the newest
    checkpoint (trainer_state.json); [] when there is none or it is unreadable."""
    states = [p for p in (run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json")
              if checkpoint_step(p.parent) is not None]
    if not states:
        return []
    try:
        newest = max(states, key=lambda p: checkpoint_step(p.parent))
        history = json.loads(newest.read_text(encoding="utf-8")).get("log_history", [])
    except (OSError, ValueError):
        return []  # the curves are a picture: a damaged state file only loses the thin line
    return [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h and "step" in h]


def plot_curves(run_dir: Path) -> Path:
    """Draw curves.png: train and val loss against step (left axis), accuracy (right axis),
    with the selected step marked when selection.json exists."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # the object API: no global backend switch, no pyplot state

    run_dir = Path(run_dir)
    rows = _checkpoints(run_dir)
    steps = [r["step"] for r in rows]

    def series(key: str) -> tuple[list[int], list[float]]:
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        return [s for s, _ in points], [v for _, v in points]

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    loss_axis = figure.add_subplot()
    logged = step_losses(run_dir)
    if logged:
        loss_axis.plot([s for s, _ in logged], [v for _, v in logged], "-", color="tab:blue", alpha=0.35,
                       linewidth=0.8, label="train loss (every step)")
    loss_axis.plot(*series("train_loss"), "o-", color="tab:blue", label="train loss (mean since last eval)")
    loss_axis.plot(*series("val_loss"), "s-", color="tab:orange", label="val loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss")
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(*series("accuracy"), "^-", color="tab:green", label="accuracy")
    if any(r.get("open_book_accuracy") is not None for r in rows):
        accuracy_axis.plot(*series("open_book_accuracy"), "v--", color="tab:olive", label="open-book accuracy")
    for key, style, label in (("taught_accuracy", "^:", "taught accuracy"),
                              ("taught_open_book_accuracy", "v:", "taught open-book accuracy")):
        if any(r.get(key) is not None for r in rows):
            accuracy_axis.plot(*series(key), style, color="tab:purple" if "open" in key else "tab:cyan", label=label)
    accuracy_axis.set_ylabel("accuracy")
    accuracy_axis.set_ylim(-0.02, 1.02)
    selection_path = run_dir / SELECTION_FILE
    if selection_path.is_file():
        selected = json.loads(selection_path.read_text(encoding="utf-8"))["selected"]["step"]
        loss_axis.axvline(selected, color="tab:red", linestyle="--", label=f"selected (step {selected})")
    handles = loss_axis.get_legend_handles_labels()
    more = accuracy_axis.get_legend_handles_labels()
    loss_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="best", fontsize="small")
    loss_axis.set_xlim(0, max(steps) * 1.05 + 1)
    loss_axis.set_title(f"run {run_dir.name}")
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = run_dir / CURVES_FILE
    write_bytes_atomic(path, buffer.getvalue())
    return path


