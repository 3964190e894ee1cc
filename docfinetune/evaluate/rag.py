"""RAG prompts: the BM25-retrieved chunks, each headed by its document and page, before the
question in the very prompt template the model was trained with."""

from __future__ import annotations

from docfinetune.core.config import EvalConfig
from docfinetune.core.generate import format_prompt
from docfinetune.core.records import Chunk


def chunk_pages(chunk: Chunk) -> str:
    """'3', or '3-4' for a chunk that crosses a page break."""
    if chunk.page_end != chunk.page_start:
        return f"{chunk.page_start}-{chunk.page_end}"
    return str(chunk.page_start)


def rag_prompt(question: str, chunks: list[Chunk], titles: dict[str, str], config: EvalConfig,
               prompt_template: str) -> str:
    """`config.rag_template` with the chunks as {context} and the closed-book prompt as {prompt};
    with no chunk (no word of the question is in any chunk) it is the closed-book prompt."""
    prompt = format_prompt(prompt_template, question)
    if not chunks:
        return prompt
    context = "\n\n".join(
        config.rag_chunk_template.format(title=titles.get(c.doc_id, c.doc_id), pages=chunk_pages(c),
                                         heading=c.heading, text=c.text.strip())
        for c in chunks
    )
    return config.rag_template.format(context=context, prompt=prompt)
