"""The ingest stage end to end on generated PDFs, text and Markdown files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from docfinetune.core.config import IngestConfig
from docfinetune.core.workspace import Workspace, read_jsonl
from docfinetune.ingest import doc_id_for, ingest
from docfinetune.ingest.chunk import PAGE_SEPARATOR, document_title
from tests.conftest import CONTRACT_PAGES, write_pdf


def load(ws: Workspace, doc_id: str):
    folder = ws.document_dir(doc_id)
    source = json.loads((folder / "source.json").read_text())
    return source, list(read_jsonl(folder / "pages.jsonl")), list(read_jsonl(folder / "chunks.jsonl"))


def test_pdf_is_cleaned_chunked_and_traced_to_pages(contract_pdf: Path, workspace_dir: Path):
    ws = Workspace(workspace_dir)
    config = IngestConfig(chunk_chars=200, chunk_overlap_chars=40)
    [result] = ingest([contract_pdf], ws, config)
    assert result.status == "new" and result.pages == 3

    source, pages, chunks = load(ws, "services-agreement")
    assert source["sha256"] and source["pages"] == 3 and source["chunks"] == len(chunks) > 3
    assert source["title"] == "SERVICES AGREEMENT"
    assert source["extractor"] == "pypdfium2"
    text = PAGE_SEPARATOR.join(p["text"] for p in pages)
    # Running header and "Page N of 3" footers are gone; hyphenation across lines is undone.
    assert "Confidential" not in text and "Page 2 of 3" not in text
    assert "notice of termination with sixty (60) days" in text
    assert '"Client"' in text  # curly quotes straightened
    assert source["dropped_lines"] == 6
    # Wrapped lines are rejoined into paragraphs.
    assert "between Orrin Vale Holdings LLC" in text
    for chunk in chunks:
        assert text[chunk["char_start"]:chunk["char_end"]] == chunk["text"]
        assert len(chunk["text"]) <= 200
        assert chunk["doc_id"] == "services-agreement"
        assert 1 <= chunk["page_start"] <= chunk["page_end"] <= 3
        first = pages[chunk["page_start"] - 1]
        assert first["char_start"] <= chunk["char_start"] <= first["char_start"] + len(first["text"])
    assert [c["char_start"] for c in chunks] == sorted(c["char_start"] for c in chunks)
    law = next(c for c in chunks if "State of Vermont" in c["text"])
    assert law["page_start"] == 3 and law["heading"] == "12. GOVERNING LAW"
    fee = next(c for c in chunks if "$12,500" in c["text"])
    assert fee["heading"] == "3. FEES" and fee["page_start"] == 2
    defined = next(c for c in chunks if '"Services" means' in c["text"])
    assert defined["heading"] in ("1.1 Services", "ARTICLE I DEFINITIONS")
    assert any(c["heading"] == "ARTICLE I DEFINITIONS" for c in chunks)


def test_reingesting_unchanged_file_does_nothing(contract_pdf: Path, workspace_dir: Path):
    ws = Workspace(workspace_dir)
    ingest([contract_pdf], ws, IngestConfig())
    source = ws.document_dir("services-agreement") / "source.json"
    before = source.stat().st_mtime_ns, source.read_bytes()
    [result] = ingest([contract_pdf], ws, IngestConfig())
    assert result.status == "unchanged"
    assert (source.stat().st_mtime_ns, source.read_bytes()) == before


def test_changed_file_replaces_old_version_and_settings_change_reingests(contract_pdf: Path, workspace_dir: Path):
    ws = Workspace(workspace_dir)
    ingest([contract_pdf], ws, IngestConfig())
    write_pdf(contract_pdf, [CONTRACT_PAGES[0], ["5. NOTICES", "Notices go to 9 Quarry Lane, Brattleboro."]])
    [result] = ingest([contract_pdf], ws, IngestConfig())
    assert result.status == "replaced" and result.pages == 2
    _, pages, chunks = load(ws, "services-agreement")
    assert len(pages) == 2 and any("Quarry Lane" in c["text"] for c in chunks)
    assert not any("Vermont" in c["text"] for c in chunks)
    assert sorted(p.name for p in ws.documents_dir.iterdir()) == ["services-agreement"]
    [result] = ingest([contract_pdf], ws, IngestConfig(chunk_chars=128, chunk_overlap_chars=16))
    assert result.status == "replaced"


def test_parallel_extraction_matches_serial_and_pypdf_works(contract_pdf: Path, tmp_path: Path):
    serial = Workspace(tmp_path / "serial")
    parallel = Workspace(tmp_path / "parallel")
    ingest([contract_pdf], serial, IngestConfig(workers=1))
    ingest([contract_pdf], parallel, IngestConfig(workers=2, parallel_min_pages=1))
    assert load(serial, "services-agreement")[2] == load(parallel, "services-agreement")[2]
    other = Workspace(tmp_path / "pypdf")
    ingest([contract_pdf], other, IngestConfig(extractor="pypdf"))
    source, _, chunks = load(other, "services-agreement")
    assert source["extractor"] == "pypdf"
    assert any("State of Vermont" in c["text"] for c in chunks)


def test_text_markdown_and_directories(tmp_path: Path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / ".hidden").mkdir()
    (docs / "notes.md").write_text("# Lease Terms\n\nThe rent is $900 per month.\n\n## Deposit\n\nA deposit of "
                                   "two months' rent is due at signing.\n")
    (docs / "sub" / "memo.txt").write_text("Page one text.\fPage two text about the renewal term.\n")
    (docs / ".hidden" / "secret.txt").write_text("should be skipped")
    (docs / "image.png").write_bytes(b"\x89PNG")
    ws = Workspace(tmp_path / "ws")
    results = ingest([docs], ws, IngestConfig(chunk_chars=64, chunk_overlap_chars=0))
    assert sorted(r.doc_id for r in results) == ["memo", "notes"]
    _, pages, chunks = load(ws, "memo")
    assert len(pages) == 2 and chunks[-1]["page_end"] == 2
    source, _, chunks = load(ws, "notes")
    assert source["extractor"] == "text" and source["title"] == "Lease Terms"
    assert any(c["heading"] == "Deposit" and "two months' rent" in c["text"] for c in chunks)


def test_encrypted_pdf_opens_with_password(contract_pdf: Path, tmp_path: Path):
    from tests.conftest import write_encrypted_pdf

    locked = write_encrypted_pdf(contract_pdf, tmp_path / "locked.pdf", "s3cret")
    ws = Workspace(tmp_path / "ws")
    [result] = ingest([locked], ws, IngestConfig(), password="s3cret")
    assert result.status == "new" and result.chunks > 0


def test_interrupted_swap_is_recovered(contract_pdf: Path, workspace_dir: Path):
    ws = Workspace(workspace_dir)
    ingest([contract_pdf], ws, IngestConfig())
    # A crash after the old version was moved aside but before the new one arrived:
    target = ws.document_dir("services-agreement")
    os.replace(target, ws.documents_dir / ".retired-services-agreement")
    (ws.documents_dir / ".staging-services-agreement-x").mkdir()
    assert ws.doc_ids() == []
    ws.recover()
    assert ws.doc_ids() == ["services-agreement"]
    assert sorted(p.name for p in ws.documents_dir.iterdir()) == ["services-agreement"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("BLACKBOX_08_05_2014-EX-10.1-DISTRIBUTOR AGREEMENT.PDF", "blackbox-08-05-2014-ex-10-1-distributor-agreement"),
     ("  .pdf", "document")],
)
def test_doc_id_is_a_safe_slug_of_the_file_name(name: str, expected: str):
    assert doc_id_for(Path(name)) == expected


@pytest.mark.parametrize(("pages", "expected"), [
    # a heading that names a kind of document wins, cut before the parties it runs on to
    (["Exhibit 10.1\n\nSOFTWARE LICENSE AGREEMENT BETWEEN GARMAN, INC. AND ACME LTD.\n\nThis Agreement is made"],
     "SOFTWARE LICENSE AGREEMENT"),
    # contents lines and sentences are not titles; the preamble's own name is, pages after the cover
    (["Exhibit 10.10\n\nTABLE OF CONTENTS\n\nARTICLE 1 DEFINITIONS 1\n\n2.1 Scope of Agreement 5",
      "2.2 Exclusive Supply 6", "The following terms shall have the following meanings:",
      'THIS SUPPLY AGREEMENT (the "Agreement") is entered into by and between'], "SUPPLY AGREEMENT"),
    (['"Inventory" shall mean the Product purchased under this Agreement.\n\nWHEREAS:\n\n'
      'This Joint Supply and Marketing Agreement (hereinafter referred to as the "Agreement")'],
     "Joint Supply and Marketing Agreement"),
    (['CONFIDENTIAL PORTIONS OF THIS EXHIBIT HAVE BEEN OMITTED AND REPLACED WITH "[***]".\n\n'
      'This agreement ("Agreement") is entered into as of the 15th day of December\n\nRECITALS'], "Agreement"),
    (["Sales, Marketing, and Supply Agreement {***}\n\nbetween the parties"], "Sales, Marketing, and Supply Agreement"),
    (["LICENSE AGREEMENT\nBETWEEN ACME, INC.\nAND BETA LLC\n\nThis Agreement is made"], "LICENSE AGREEMENT"),
    (["RECITALS\n\nA. Acme makes widgets."], "fallback"),
])
def test_document_title_is_the_documents_name_not_a_sentence_or_contents_line(pages, expected):
    assert document_title(pages, fallback="fallback") == expected
