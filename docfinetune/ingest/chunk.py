"""Cut a document's cleaned text into chunks that remember where they came from.

The document text is its pages joined by a blank line; each chunk records its character span in
that text, its page span, and the nearest section heading before it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict

from docfinetune.core.records import Chunk
from docfinetune.ingest.clean import is_heading_line

PAGE_SEPARATOR = "\n\n"
# Paragraphs first, then lines, sentences, clauses, words; the separator stays with the text
# before it, so a chunk ends on ". " rather than starting with it.
SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]
# "1.01. Distribution Right. The Company ..." -> "1.01. Distribution Right"
_INLINE_HEADING = re.compile(
    r"^((?:Section\s+)?\d{1,2}(?:\.\d{1,2})*\.?)\s+([A-Z][A-Za-z'&/,\- ]{1,60}?)[.:]\s"
)
# Numbered paragraphs are sections or table-of-contents lines ("2.1 Scope of Agreement 5"), not titles.
_NUMBERED = re.compile(r"^(?:\d+(?:\.\d+)*|[IVXLC]+|[A-Z])[.)]\s|^\d+(?:\.\d+)+\s|^(?:ARTICLE|Article|Section|SECTION)\s")
_TITLE_WORDS = re.compile(
    r"\b(AGREEMENT|CONTRACT|LEASE|LICENSE|LICENCE|POLICY|DEED|CHARTER|MEMORANDUM|TERMS)\b", re.I
)
# A sentence of the text ("The following terms shall have the following meanings:", '"Inventory"
# shall mean ...'), a table-of-contents line ending in its page number, a part's heading.
_NOT_A_TITLE = re.compile(
    r"(?i)\b(?:shall|means?|hereby|agrees?|(?:is|are)\s+(?:made|entered))\b|:$|[A-Za-z]\s+\d{1,3}$|"
    r"^(?:recitals|background|witnesseth|whereas|table\s+of\s+contents|definitions)\b|"
    r"^(?:\S+\s+){6,}\S+\.$"
)
# The preamble's own name for the document: 'This License and Hosting Agreement (the "AGREEMENT")'.
_PREAMBLE_TITLE = re.compile(
    r"\b(?:This|THIS)\s+(?P<title>[A-Z][^()\n.;]{0,100}?\b(?:AGREEMENT|CONTRACT|LEASE|LICENSE|LICENCE|Agreement|"
    r"Contract|Lease|License|Licence)|agreement|contract)\s*\([^()\n]{0,40}?[\"\u201c]"
)
# What follows the name in a one-line title: "... AGREEMENT BETWEEN GARMAN ROUTING SYSTEMS, INC. AND";
# and redaction marks ("Supply Agreement {***}").
_TITLE_TAIL = re.compile(r"(?is)\s+(?:(?:by\s+and\s+)?between|dated|made\s+and\s+entered|entered\s+into)\b.*$")
_REDACTION = re.compile(r"\s*[\[{(]\s*\*+\s*[\]})]")


def page_offsets(pages: list[str]) -> list[int]:
    """Where each page starts in the document text (pages joined by PAGE_SEPARATOR)."""
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + len(PAGE_SEPARATOR)
    return starts


def heading_of(paragraph: str) -> str | None:
    """The heading a paragraph is or starts with, or None."""
    first_line = paragraph.split("\n", 1)[0]
    if is_heading_line(first_line):
        return first_line.lstrip("# ").strip()
    m = _INLINE_HEADING.match(paragraph)
    if m:
        return f"{m.group(1)} {m.group(2).strip()}"
    return None


def find_headings(text: str) -> tuple[list[int], list[str]]:
    """Start offsets and texts of every heading paragraph, in order."""
    starts, headings = [], []
    for m in re.finditer(r"[^\n]+(?:\n[^\n]+)*", text):
        heading = heading_of(m.group(0))
        if heading:
            starts.append(m.start())
            headings.append(heading)
    return starts, headings


def document_title(pages: list[str], fallback: str) -> str:
    """The document's own title: the first short paragraph on its first pages that names a kind
    of document ("DISTRIBUTOR AGREEMENT") as a heading, else the preamble's name for it ('This
    License and Hosting Agreement (the "Agreement")'), else a short paragraph naming a kind of
    document, else the first heading that is not a part of the text ("RECITALS"), else `fallback`.
    On the 60 contracts of cuad-dev/more/ the paragraph rules alone named 7 by a sentence, a
    contents line ("2.1 Scope of Agreement 5"), a heading ("RECITALS") or a title running on into
    the parties; every question and reading record names the document by it."""
    paragraphs = [p for page in pages[:2] for p in page.split("\n\n") if p.strip()][:40]
    short = [_TITLE_TAIL.sub("", _REDACTION.sub("", p.lstrip("# ").strip())).strip(" ,;") for p in paragraphs
             if len(p) <= 120 and not _NUMBERED.match(p)]
    short = [p for p in short if p and not _NOT_A_TITLE.search(p)]
    preamble = _PREAMBLE_TITLE.search("\n\n".join(pages[:6]))  # after a cover page and contents
    title = (
        next((p for p in short if _TITLE_WORDS.search(p) and is_heading_line(p)), None)
        or (" ".join(preamble.group("title").split()) if preamble else None)
        or next((p for p in short if _TITLE_WORDS.search(p)), None)
        or next((p for p in short if is_heading_line(p)), None)
    )
    if not title:
        return fallback
    title = _TITLE_TAIL.sub("", title).strip(" ,;")
    return title.capitalize() if title.islower() else title  # 'This agreement ("Agreement")' -> Agreement


def make_splitter(chunk_chars: int, overlap_chars: int):
    # Imported here: langchain pulls in pydantic, which only ingest needs.
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_chars,
        chunk_overlap=overlap_chars,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_document(
    doc_id: str, pages: list[str], chunk_chars: int, overlap_chars: int
) -> list[dict]:
    """Chunks of the document whose cleaned page texts are `pages`, as chunks.jsonl rows."""
    text = PAGE_SEPARATOR.join(pages)
    page_starts = page_offsets(pages)
    heading_starts, headings = find_headings(text)
    rows: list[dict] = []
    search_from = 0
    for i, piece in enumerate(make_splitter(chunk_chars, overlap_chars).split_text(text)):
        start = text.find(piece, search_from)
        if start < 0:  # cannot happen with strip_whitespace; guard against library changes
            raise AssertionError(f"chunk {i} of {doc_id} is not a span of the document text")
        end = start + len(piece)
        # The next chunk starts after this one's start and at most `overlap` before its end.
        search_from = max(start + 1, end - overlap_chars - 1)
        h = bisect.bisect_right(heading_starts, start) - 1
        rows.append(
            asdict(
                Chunk(
                    chunk_id=f"{doc_id}:{i:04d}",
                    doc_id=doc_id,
                    index=i,
                    page_start=bisect.bisect_right(page_starts, start),
                    page_end=bisect.bisect_right(page_starts, end - 1),
                    char_start=start,
                    char_end=end,
                    heading=headings[h] if h >= 0 else "",
                    text=piece,
                )
            )
        )
    return rows
