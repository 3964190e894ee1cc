"""Continued-pretraining records: one per chunk, headed by where the text lives."""

from __future__ import annotations

from docfinetune.core.records import Chunk, Document


def cpt_records(documents: list[Document], chunks: list[Chunk], with_context: bool = True) -> list[dict]:
    """One text record per chunk. With context, the text starts with the document title and
    the section heading, so the model learns which document and section each fact sits in."""
    titles = {d.doc_id: d.title for d in documents}
    records = []
    for chunk in chunks:
        header = [titles.get(chunk.doc_id, chunk.doc_id)]
        if chunk.heading and chunk.heading != header[0]:
            header.append(chunk.heading)
        text = "\n".join(header) + "\n\n" + chunk.text if with_context else chunk.text
        records.append(reading_record(chunk, text))
    return records


def reading_record(chunk: Chunk, text: str, **extra) -> dict:
    """One line of datasets/cpt.jsonl: the text and where it comes from (every reading stream)."""
    return {"text": text, "doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id,
            "page_start": chunk.page_start, "page_end": chunk.page_end, **extra}
