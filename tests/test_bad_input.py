"""Bad input: one line naming the file and the problem, exit code 2, workspace unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import (
    CONTRACT_PAGES,
    tree_snapshot,
    write_encrypted_pdf,
    write_pdf,
    write_scanned_pdf,
    write_zero_page_pdf,
)


def _encrypted(d: Path) -> Path:
    return write_encrypted_pdf(write_pdf(d / "plain.pdf", CONTRACT_PAGES), d / "locked.pdf", "pw")


def _truncated(d: Path) -> Path:
    data = write_pdf(d / "whole.pdf", CONTRACT_PAGES).read_bytes()
    (d / "cut.pdf").write_bytes(data[: len(data) * 2 // 3])
    return d / "cut.pdf"


def _no_files_dir(d: Path) -> Path:
    (d / "only_docx").mkdir()
    (d / "only_docx" / "letter.docx").write_bytes(b"PK\x03\x04")
    return d / "only_docx"


def _garbled(d: Path) -> Path:
    # Valid header and end marker, nothing parseable between.
    (d / "garbled.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    return d / "garbled.pdf"


BAD_INPUTS = {
    "encrypted": (_encrypted, "encrypted PDF: give its password with --password"),
    "scanned": (lambda d: write_scanned_pdf(d / "scan.pdf"), "OCR is not done"),
    "truncated": (_truncated, "truncated PDF"),
    "corrupt": (_garbled, "corrupt PDF"),
    "not a pdf": (lambda d: (d / "notes.pdf").write_text("just some text") and d / "notes.pdf",
                  "not a PDF file"),
    "empty": (lambda d: (d / "empty.pdf").touch() or d / "empty.pdf", "empty file"),
    "zero pages": (lambda d: write_zero_page_pdf(d / "zero.pdf"), "the PDF has no pages"),
    "missing": (lambda d: d / "nowhere.pdf", "no such file or directory"),
    "no supported files": (_no_files_dir, "directory holds no .pdf, .txt or .md files"),
    "unsupported type": (lambda d: (d / "deck.pptx").write_bytes(b"x") and d / "deck.pptx",
                         "unsupported file type"),
    "empty text": (lambda d: (d / "blank.md").write_text("  \n\n ") and d / "blank.md", "no text"),
    "binary text": (lambda d: (d / "bin.txt").write_bytes(b"\xff\xfe\x00garbage") and d / "bin.txt",
                    "not UTF-8"),
}


@pytest.fixture
def populated_workspace(run_cli, contract_pdf: Path, workspace_dir: Path) -> Path:
    """A workspace that already holds one document: bad input must leave it byte for byte."""
    assert run_cli("ingest", contract_pdf).exit_code == 0
    return workspace_dir


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_2_workspace_unchanged(case, run_cli, populated_workspace, tmp_path):
    make, problem = BAD_INPUTS[case]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    path = make(bad_dir)
    before = tree_snapshot(populated_workspace)
    result = run_cli("ingest", path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and problem in lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert tree_snapshot(populated_workspace) == before


@pytest.mark.parametrize("case", ["scanned", "missing"])
def test_bad_input_in_fresh_workspace_creates_nothing(case, run_cli, workspace_dir, tmp_path):
    path = BAD_INPUTS[case][0](tmp_path)
    result = run_cli("ingest", path)
    assert result.exit_code == 2
    assert not workspace_dir.exists()


def test_one_bad_file_among_good_ones_ingests_nothing_unless_keep_going(run_cli, workspace_dir, tmp_path):
    good = write_pdf(tmp_path / "good.pdf", CONTRACT_PAGES)
    bad = write_scanned_pdf(tmp_path / "scan.pdf")
    result = run_cli("ingest", good, bad)
    assert result.exit_code == 2
    assert "scan.pdf" in result.stderr and "nothing was ingested" in result.stderr
    assert not workspace_dir.exists()

    result = run_cli("ingest", "--keep-going", good, bad)
    assert result.exit_code == 2
    assert (workspace_dir / "documents" / "good" / "source.json").is_file()
    assert not (workspace_dir / "documents" / "scan").exists()
    assert "OCR is not done" in result.stderr


def test_wrong_password(run_cli, tmp_path):
    locked = _encrypted(tmp_path)
    result = run_cli("ingest", "--password", "nope", locked)
    assert result.exit_code == 2 and "wrong password" in result.stderr


def test_same_name_twice_in_one_call_is_refused(run_cli, tmp_path, workspace_dir):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = write_pdf(tmp_path / "a" / "contract.pdf", CONTRACT_PAGES)
    two = write_pdf(tmp_path / "b" / "contract.pdf", CONTRACT_PAGES[:1])
    result = run_cli("ingest", one, two)
    assert result.exit_code == 2 and "same document id 'contract'" in result.stderr
    assert not workspace_dir.exists()
