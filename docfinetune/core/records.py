"""The records stages pass through files: chunks, documents, Q&A pairs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field


@dataclass(frozen=True)
class Chunk:
    """One line of documents/<doc_id>/chunks.jsonl."""

    chunk_id: str  # "<doc_id>:<index, 4 digits>"
    doc_id: str
    index: int
    page_start: int  # 1-based, inclusive
    page_end: int
    char_start: int  # span in the document text (pages joined with "\n\n")
    char_end: int
    heading: str  # nearest section heading before the chunk, "" when none
    text: str

    @classmethod
    def from_dict(cls, row: dict) -> "Chunk":
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


CARD_SUFFIX = ":card"  # the chunk ids of fact cards (build/cards.py) end so


def is_card(chunk: Chunk) -> bool:
    """Whether `chunk` is a fact card ("question? answer.") rather than document text."""
    return chunk.chunk_id.endswith(CARD_SUFFIX)


def card_question(chunk: Chunk) -> str:
    """The question a fact card answers (its text up to the first "?"); "" for document text."""
    if not is_card(chunk):
        return ""
    question, mark, _ = chunk.text.partition("?")
    return question + mark


@dataclass(frozen=True)
class Document:
    """What a generator needs to know of a document (from source.json)."""

    doc_id: str
    title: str  # the document's own title, e.g. "DISTRIBUTOR AGREEMENT"
    file_name: str


@dataclass
class QAPair:
    """One phrasing of one fact. All phrasings of a fact share fact_id (the split unit)."""

    question: str
    answer: str
    fact_id: str
    doc_id: str
    source_chunk_ids: list[str]
    generator: str
    field: str = ""  # e.g. governing_law, agreement_date, defined_term, section
    meta: dict = dataclass_field(default_factory=dict)
    # Open-book (RAFT) rows: the chunks before the question, best first (shown in generation.rag_order);
    # [] closed-book.
    context_chunk_ids: list[str] = dataclass_field(default_factory=list)
    # A counterfactual twin (build.raft): [the answer its context states, the value shown instead]; [] none.
    context_swap: list[str] = dataclass_field(default_factory=list)
    # The clause the answer is recalled from, written before it in training (build.recite); "" none.
    recital: str = ""
    # How a closed-book row is asked: "recite" in generation.recite_prompt_template (build.recite_both's
    # copies), "" in generation.prompt_template.
    prompt: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
