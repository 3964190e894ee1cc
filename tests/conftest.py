"""Fixture files generated in the tests: real PDFs (reportlab), and broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from docfinetune.cli import main

pytest_plugins = ["tests.fixtures_models"]


@pytest.fixture(autouse=True)
def _fp32_on_every_cpu(monkeypatch):
    """The tests' figures are fp32 figures whatever CPU runs them: `precision: auto` picks bf16 on
    one that computes it natively (core/models.cpu_has_native_bf16)."""
    from docfinetune.core import models

    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: False)

# A short contract: three pages with a running header, "Page N of 3" footers, numbered
# headings, and a word hyphenated across a line break ("termi-" / "nation").
CONTRACT_PAGES = [
    [
        "SERVICES AGREEMENT",
        "",
        "This Services Agreement is made on the 4th day of March, 2024 between Orrin Vale",
        "Holdings LLC (the \u201cClient\u201d) and Tamsk Logistics, Inc. (the \u201cProvider\u201d).",
        "",
        "ARTICLE I",
        "DEFINITIONS",
        "1.1 Services. \u201cServices\u201d means the freight brokerage described in Schedule A.",
        "",
        "2. TERM",
        "The initial term is three (3) years from the Effective Date. Either party may give",
        "notice of termi-",
        "nation with sixty (60) days written notice. The termination of this Agreement",
        "does not end accrued payment duties.",
    ],
    [
        "3. FEES",
        "The Client shall pay the Provider a monthly fee of $12,500 within thirty (30) days",
        "of each invoice. Late payments bear interest at one percent (1%) per month.",
        "",
        "4. CONFIDENTIALITY",
        "Each party shall keep the other party's confidential information secret for five",
        "(5) years after the end of this Agreement.",
    ],
    [
        "12. GOVERNING LAW",
        "This Agreement is governed by the laws of the State of Vermont, and the courts of",
        "Windham County have exclusive jurisdiction over any dispute.",
        "",
        "IN WITNESS WHEREOF the parties have signed this Agreement.",
    ],
]


def write_pdf(path: Path, pages: list[list[str]], header: str | None = "Services Agreement - Confidential",
              footer: bool = True) -> Path:
    """Render pages of lines as a real text PDF (Letter, Helvetica 10pt)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=letter, invariant=1)
    for number, lines in enumerate(pages, start=1):
        c.setFont("Helvetica", 10)
        if header:
            c.drawString(72, 750, header)
        y = 720
        for line in lines:
            c.drawString(72, y, line)
            y -= 14
        if footer:
            c.drawString(280, 40, f"Page {number} of {len(pages)}")
        c.showPage()
    c.save()
    return path


def write_scanned_pdf(path: Path) -> Path:
    """Two pages with only drawn shapes, as a scan without OCR has only images."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=letter, invariant=1)
    for _ in range(2):
        for i in range(30):
            c.rect(72, 700 - i * 20, 400, 8, fill=1)
        c.showPage()
    c.save()
    return path


def write_encrypted_pdf(source: Path, path: Path, password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(source)))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    with path.open("wb") as f:
        writer.write(f)
    return path


def write_zero_page_pdf(path: Path) -> Path:
    from pypdf import PdfWriter

    with path.open("wb") as f:
        PdfWriter().write(f)
    return path


@pytest.fixture
def contract_pdf(tmp_path: Path) -> Path:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    return write_pdf(inputs / "services_agreement.pdf", CONTRACT_PAGES)


@pytest.fixture(scope="session")
def ingested_contract(tmp_path_factory: pytest.TempPathFactory):
    """A workspace holding the generated contract, ingested with the default settings and
    nothing else; shared by the session's tests, so treat it as read-only (copy it to change it)."""
    from docfinetune.core.config import IngestConfig
    from docfinetune.core.workspace import Workspace
    from docfinetune.ingest import ingest

    root = tmp_path_factory.mktemp("ingested")
    workspace = Workspace(root / "ws")
    ingest([write_pdf(root / "services_agreement.pdf", CONTRACT_PAGES)], workspace, IngestConfig())
    return workspace


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def run_cli(workspace_dir: Path):
    """Invoke the CLI in-process; returns click's Result (stdout, stderr, exit_code)."""

    def run(*args: str, workspace: Path | None = None):
        runner = CliRunner()
        return runner.invoke(main, ["--workspace", str(workspace or workspace_dir), *map(str, args)])

    return run


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones too) with its bytes: 'unchanged' means equal."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} | {
        str(p.relative_to(root)) + "/": b"" for p in sorted(root.rglob("*")) if p.is_dir()
    }


def make_fake_run(workspace, config, run_id: str, steps: tuple[int, ...], selected: int,
                  targets: tuple[str, ...] = ("q_proj", "v_proj", "o_proj")) -> Path:
    """A finished run made through the real run-folder and selection code: config.yaml, one random
    LoRA adapter per step (init_lora_weights=False, so each changes the answers), metrics.jsonl and
    each checkpoint's metrics.json as `train` writes them, with `selected` the most accurate; then
    `select_checkpoint`, `plot_curves` and runs/latest as `train` ends."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from docfinetune.core.models import load_model
    from docfinetune.core.runs import CHECKPOINT_METRICS_FILE, CONFIG_FILE, METRICS_FILE, config_yaml, write_latest
    from docfinetune.core.workspace import write_jsonl, write_text_atomic
    from docfinetune.train.select import plot_curves, select_checkpoint

    run_dir = workspace.root / "runs" / run_id
    write_text_atomic(run_dir / CONFIG_FILE, config_yaml(config))
    lines = []
    for n, step in enumerate(steps):
        torch.manual_seed(step)
        model = get_peft_model(load_model(config.model), LoraConfig(
            r=4, lora_alpha=16, target_modules=list(targets), init_lora_weights=False))
        folder = run_dir / "checkpoints" / f"checkpoint-{step}"
        model.save_pretrained(folder)
        accuracy = 0.5 if step == selected else 0.1
        line = {"step": step, "epoch": float(n + 1), "train_loss": 2.0 / (n + 1), "val_loss": 2.5 / (n + 1),
                "accuracy": accuracy, "correct": round(accuracy * 20), "questions": 20, "taught_accuracy": 0.2,
                "open_book_accuracy": accuracy + 0.1, "taught_open_book_accuracy": 0.4,
                "tokens_per_s": 100.0, "peak_gpu_gib": None, "seconds": float(n + 1), "learning_rate": 1e-4}
        lines.append(line)
        (folder / CHECKPOINT_METRICS_FILE).write_text(json.dumps(line))
    write_jsonl(run_dir / METRICS_FILE, lines)
    select_checkpoint(run_dir, config.train.select_by, config.train.taught_weight)
    plot_curves(run_dir)
    write_latest(workspace, run_dir)
    return run_dir
