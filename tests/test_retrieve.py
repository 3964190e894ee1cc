"""BM25 retrieval over ingested chunks: ranking on the generated contract, limits, speed, errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from docfinetune.core.errors import DocfinetuneError, WorkspaceError
from docfinetune.core.records import Chunk
from docfinetune.core.retrieve import BM25Index, tokenize
from docfinetune.core.workspace import Workspace


@pytest.fixture(scope="module")
def index(ingested_contract: Workspace) -> BM25Index:
    return BM25Index.from_workspace(ingested_contract)


def synthetic_chunks(count: int, words_per_chunk: int = 80, seed: int = 0) -> list[Chunk]:
    """`count` chunks of Zipf-distributed made-up words, like real text's mix of common and rare."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(20000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [
        Chunk(f"doc:{i:04d}", "doc", i, i // 4 + 1, i // 4 + 1, i * 512, i * 512 + 512, "",
              " ".join(rng.choices(vocabulary, weights, k=words_per_chunk)))
        for i in range(count)
    ]


def test_tokenize_keeps_numbers_and_drops_stopwords():
    assert tokenize("Within thirty (30) days of the 4th of March, 2024?") == [
        "within", "thirty", "30", "days", "4", "th", "march", "2024"]
    assert tokenize("a fee of $12,500.00 at 1.5%") == ["fee", "12500.00", "1.5"]
    assert tokenize("The Client's") == ["client"]
    assert tokenize("What is it?") == []


@pytest.mark.parametrize("question, expected", [
    ("How much is the monthly fee?", "$12,500"),
    ("What is the monthly fee of 12,500 due within?", "$12,500"),
    ("When was the agreement made?", "4th day of March, 2024"),
    ("How many days of written notice are needed for termination?", "sixty (60) days written notice"),
    ("Which state's laws govern the agreement?", "State of Vermont"),
])
def test_the_chunk_holding_the_fact_ranks_first(index: BM25Index, question: str, expected: str):
    results = index.search(question, 3)
    assert results, question
    best, score = results[0]
    assert expected in " ".join(best.text.split())
    assert score > 0 and [s for _, s in results] == sorted((s for _, s in results), reverse=True)


def test_results_carry_document_and_pages(index: BM25Index):
    (chunk, _), = index.search("How much is the monthly fee?", 1)
    assert chunk.doc_id == "services-agreement"
    assert chunk.chunk_id.startswith("services-agreement:")
    assert (chunk.page_start, chunk.page_end) == (2, 3)


def test_k_limits_the_results(index: BM25Index):
    question = "When was the agreement made between the Client and the Provider?"
    assert len(index.search(question, 1)) == 1
    assert len(index.search(question, 2)) == 2
    assert len(index.search(question, 100)) == len(index) == 3
    assert index.search(question, 0) == []
    assert index.search(question, 2) == index.search(question, 3)[:2]


def test_no_shared_word_means_no_results(index: BM25Index):
    assert index.search("zebra xylophone", 5) == []
    assert index.search("what is it?", 5) == []  # only stopwords


def test_scores_are_bm25okapi_scores():
    chunks = synthetic_chunks(300, seed=1)
    index = BM25Index(chunks)
    reference = BM25Okapi([tokenize(f"{c.heading}\n{c.text}") for c in chunks])
    rng = random.Random(2)
    for _ in range(20):
        query = " ".join(rng.choice(chunks).text.split()[:6])
        np.testing.assert_allclose(index.scores(query), reference.get_scores(tokenize(query)), rtol=1e-12)
        top = index.search(query, 5)
        ranked = np.argsort(-reference.get_scores(tokenize(query)), kind="stable")[:5]
        assert [c.index for c, _ in top] == [int(i) for i in ranked]


def test_ties_keep_document_order():
    texts = ["renewal term"] * 4 + ["payment due"] * 6
    chunks = [Chunk(f"d:{i}", "d", i, 1, 1, 0, 10, "", text) for i, text in enumerate(texts)]
    assert [c.index for c, _ in BM25Index(chunks).search("renewal", 3)] == [0, 1, 2]


def test_three_thousand_chunks_each_found_by_its_own_words():
    # Scale without a clock (timings belong in benchmarks/): an 8-word query taken from a chunk
    # ranks that chunk in the top 5.
    chunks = synthetic_chunks(3000)
    index = BM25Index(chunks)
    for i in range(200):
        chunk = random.Random(i).choice(chunks)
        top = [c.chunk_id for c, _ in index.search(" ".join(chunk.text.split()[:8]), 5)]
        assert chunk.chunk_id in top


def test_empty_index_and_empty_workspace_are_clear_errors(tmp_path: Path):
    with pytest.raises(WorkspaceError, match="no chunks to search"):
        BM25Index([])
    with pytest.raises(WorkspaceError, match="no documents ingested yet"):
        BM25Index.from_workspace(Workspace(tmp_path / "empty"))
    blank = [Chunk("d:0", "d", 0, 1, 1, 0, 5, "", "the of a")]
    with pytest.raises(WorkspaceError, match="searchable word"):
        BM25Index(blank)
    assert issubclass(WorkspaceError, DocfinetuneError)
