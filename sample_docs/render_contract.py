#!/usr/bin/env python3
"""Render the project's fictional sample contract to PDF.

Reads the contract source (a small Markdown-like format, documented at the top
of the source file) and writes a Letter-size PDF with a running header on every
page after the first and a "Page N of M" footer on every page. Output is
byte-for-byte reproducible (reportlab invariant mode, built-in fonts only).

Usage, from the repository root:

    python sample_docs/render_contract.py            # render
    python sample_docs/render_contract.py --check    # render, then verify

--check extracts the PDF text with pypdfium2 and verifies the page count, the
running header/footer, and that every reference answer in the questions file
appears in both the source text and the extracted PDF text.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "quillmere_msa.md"
OUTPUT = HERE / "quillmere_msa.pdf"
QUESTIONS = HERE / "quillmere_msa.questions.jsonl"

RUNNING_HEADER = "Master Services Agreement \u2014 Confidential"
MIN_PAGES = 10
MAX_BYTES = 300 * 1024

rl_config.invariant = 1  # fixed timestamps and document ID -> identical bytes

# ---------------------------------------------------------------- styles ---
SERIF, SERIF_BOLD, SERIF_ITALIC = "Times-Roman", "Times-Bold", "Times-Italic"

BODY = ParagraphStyle(
    "Body", fontName=SERIF, fontSize=11, leading=14, alignment=TA_JUSTIFY,
    spaceAfter=7,
)
CLAUSE = ParagraphStyle(
    "Clause", parent=BODY, leftIndent=54, bulletIndent=30, bulletFontName=SERIF,
    bulletFontSize=11,
)
TITLE = ParagraphStyle(
    "Title", fontName=SERIF_BOLD, fontSize=16, leading=20, alignment=TA_CENTER,
    spaceBefore=6, spaceAfter=10,
)
HEADING = ParagraphStyle(
    "Heading", fontName=SERIF_BOLD, fontSize=11.5, leading=14,
    alignment=TA_CENTER, spaceBefore=10, spaceAfter=8, keepWithNext=1,
)
CENTER = ParagraphStyle("Center", parent=BODY, alignment=TA_CENTER, spaceAfter=2)
LINES = ParagraphStyle("Lines", parent=BODY, alignment=TA_LEFT, leftIndent=54)
CELL = ParagraphStyle("Cell", fontName=SERIF, fontSize=10, leading=12.5)
CELL_HEAD = ParagraphStyle("CellHead", parent=CELL, fontName=SERIF_BOLD)
SIGN = ParagraphStyle("Sign", fontName=SERIF, fontSize=11, leading=14)

CLAUSE_LABEL = re.compile(r"^\(([a-z]{1,2}|[ivx]{1,5})\)\s+")


def inline(text: str) -> str:
    """Escape XML, then turn **bold** / *italic* into reportlab markup."""
    text = escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return text


def plain(text: str) -> str:
    """Source text without markup, for checking answers against the source."""
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = text.replace("**", "").replace("*", "").replace("\\newpage", " ")
    text = re.sub(r"^(#+|:::\s*\w*)", " ", text, flags=re.M)
    text = text.replace("|", " ")
    return " ".join(text.split())


# ---------------------------------------------------------------- parser ---
def parse(source: str) -> list:
    """Turn the Markdown-like source into a list of reportlab flowables."""
    source = re.sub(r"<!--.*?-->", "", source, flags=re.S)
    lines = source.splitlines()
    story: list = []
    para: list[str] = []

    def flush() -> None:
        if not para:
            return
        text = " ".join(s.strip() for s in para)
        para.clear()
        m = CLAUSE_LABEL.match(text)
        if m:
            story.append(Paragraph(inline(text[m.end():]), CLAUSE,
                                   bulletText=f"({m.group(1)})"))
        else:
            story.append(Paragraph(inline(text), BODY))

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        stripped = line.strip()
        if not stripped:
            flush()
        elif stripped == "\\newpage":
            flush()
            story.append(PageBreak())
        elif stripped.startswith("## "):
            flush()
            story.append(Paragraph(inline(stripped[3:]), HEADING))
        elif stripped.startswith("# "):
            flush()
            story.append(Paragraph(inline(stripped[2:]), TITLE))
        elif stripped.startswith(":::"):
            flush()
            kind = stripped[3:].strip()
            block = []
            i += 1
            while lines[i].strip() != ":::":
                block.append(lines[i].strip())
                i += 1
            story.append(special_block(kind, block))
        elif stripped.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            story.append(table(rows))
            continue
        else:
            para.append(line)
        i += 1
    flush()
    return story


def special_block(kind: str, block: list[str]):
    if kind == "center":
        return KeepTogether([Paragraph(inline(s), CENTER) for s in block]
                            + [Spacer(1, 8)])
    if kind == "lines":
        return KeepTogether(Paragraph("<br/>".join(inline(s) for s in block), LINES))
    if kind == "signatures":
        rows = []
        for s in block:
            left, right = (c.strip() for c in s.split("|"))
            rows.append([Paragraph(inline(left), SIGN), Paragraph(inline(right), SIGN)])
        t = Table(rows, colWidths=[3.25 * inch, 3.25 * inch])
        t.setStyle(TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("TOPPADDING", (0, 0), (-1, 0), 0),
            ("BOTTOMPADDING", (0, 0), (-1, 0), 22),  # room to sign
            ("TOPPADDING", (0, 1), (-1, -1), 3),
        ]))
        return KeepTogether([Spacer(1, 18), t])
    raise ValueError(f"unknown block type ::: {kind}")


def table(rows: list[list[str]]) -> Table:
    ncols = len(rows[0])
    width = LETTER[0] - 2 * inch
    # Column widths proportional to the square root of the longest cell text.
    weights = [max(len(r[c]) for r in rows) ** 0.5 for c in range(ncols)]
    col_widths = [width * w / sum(weights) for w in weights]
    data = [[Paragraph(inline(c), CELL_HEAD if r == 0 else CELL) for c in row]
            for r, row in enumerate(rows)]
    t = Table(data, colWidths=col_widths, repeatRows=1, hAlign="CENTER")
    t.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.88, 0.88)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    return KeepTogether([t, Spacer(1, 10)])


# ------------------------------------------------------- page decoration ---
class NumberedCanvas(rl_canvas.Canvas):
    """Defers page output so every page can show 'Page N of M'."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self._decorate(total)
            super().showPage()
        super().save()

    def _decorate(self, total: int) -> None:
        w, h = LETTER
        n = self._pageNumber
        self.saveState()
        if n == 1:
            self.setFont(SERIF_ITALIC, 9)
            self.drawRightString(w - inch, h - 0.6 * inch, "Execution Version")
        else:
            self.setFont(SERIF_ITALIC, 9)
            self.drawCentredString(w / 2, h - 0.6 * inch, RUNNING_HEADER)
            self.setLineWidth(0.4)
            self.line(inch, h - 0.66 * inch, w - inch, h - 0.66 * inch)
        self.setFont(SERIF, 9)
        self.drawCentredString(w / 2, 0.55 * inch, f"Page {n} of {total}")
        self.restoreState()


def render(source_path: Path = SOURCE, out_path: Path = OUTPUT) -> Path:
    story = parse(source_path.read_text(encoding="utf-8"))
    doc = SimpleDocTemplate(
        str(out_path), pagesize=LETTER,
        leftMargin=inch, rightMargin=inch, topMargin=inch, bottomMargin=inch,
        title="Master Services Agreement (fictional sample)",
        author="docfinetune sample documents",
        subject="Quillmere Data Systems, Inc. / Veltrane Cold Chain Logistics, LLC",
        creator="sample_docs/render_contract.py",
        invariant=1,
    )
    doc.build(story, canvasmaker=NumberedCanvas)
    return out_path


# ------------------------------------------------------------------ check ---
def check(pdf_path: Path = OUTPUT, source_path: Path = SOURCE,
          questions_path: Path = QUESTIONS) -> list[str]:
    import pypdfium2 as pdfium

    problems: list[str] = []
    pdf = pdfium.PdfDocument(str(pdf_path))
    pages = [pdf[i].get_textpage().get_text_bounded() for i in range(len(pdf))]
    total = len(pages)
    if total < MIN_PAGES:
        problems.append(f"only {total} pages (< {MIN_PAGES})")
    size = pdf_path.stat().st_size
    if size > MAX_BYTES:
        problems.append(f"PDF is {size} bytes (> {MAX_BYTES})")
    for n, text in enumerate(pages, 1):
        flat = " ".join(text.split())
        if f"Page {n} of {total}" not in flat:
            problems.append(f"page {n}: footer missing")
        if n > 1 and RUNNING_HEADER not in flat:
            problems.append(f"page {n}: running header missing")
    pdf_text = " ".join(" ".join(pages).split())
    src_text = plain(source_path.read_text(encoding="utf-8"))
    for k, line in enumerate(questions_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        for part in q["answer"].split("; "):
            for where, text in (("source", src_text), ("pdf", pdf_text)):
                if part not in text:
                    problems.append(f"question {k}: {part!r} not in {where} text")
    print(f"{pdf_path.name}: {total} pages, {size} bytes")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="after rendering, verify the PDF text with pypdfium2")
    args = ap.parse_args(argv)
    out = render()
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    if args.check:
        problems = check()
        for p in problems:
            print("PROBLEM:", p)
        if problems:
            return 1
        print("check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
