"""BM25 retrieval over ingested chunks: ranking on the generated contract, limits, speed, errors,
and the contract-aware parts (heading field, title words, answer types, expansion, neighbour tail)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from docfinetune.core.config import RetrievalConfig
from docfinetune.core.errors import DocfinetuneError, WorkspaceError
from docfinetune.core.records import Chunk
from docfinetune.core.retrieve import BM25Index, query_terms, stem, tokenize
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
    # The text field is BM25Okapi's own (without expansion or answer types, which add to it).
    chunks = synthetic_chunks(300, seed=1)
    index = BM25Index(chunks, settings=RetrievalConfig(expansion_weight=0.0, answer_type_weight=0.0))
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


# --------------------------------------------------------------------------- contract structure

# Clauses that share no word with the tests' questions: with only a few chunks, a word in half of
# them has no weight in BM25 (idf log(1) = 0), so each test document ends with these.
FILLER = ("Schedule A lists the hardware and software components.",
          "Exhibit B sets out the service levels and credits.",
          "Subcontractors require the prior written consent of Customer.",
          "Headings are for convenience only and do not affect interpretation.",
          "This document may be signed in counterparts and delivered electronically.",
          "Each signatory represents that he or she has authority to sign.")


def contract(*texts: str, doc_id: str = "msa", headings: list[str] | None = None, fill: bool = True) -> list[Chunk]:
    """Chunks of one document, one per text (then FILLER's), laid end to end."""
    chunks, start = [], 0
    for i, text in enumerate(texts + (FILLER if fill else ())):
        heading = headings[i] if headings and i < len(headings) else ""
        chunks.append(Chunk(f"{doc_id}:{i:04d}", doc_id, i, i + 1, i + 1, start, start + len(text), heading, text))
        start += len(text) + 2
    return chunks


MSA = contract(
    "MASTER SERVICES AGREEMENT\n\nbetween\n\nACME DATA SYSTEMS\n\nand\n\nBETA LOGISTICS",
    "Provider shall deliver the Services described in each Statement of Work under this Agreement.",
    "Customer shall pay the Fees within thirty (30) days after receipt of each invoice under this Agreement.",
    "Either Party may terminate this Agreement for material breach not cured within sixty (60) days.",
    "This Agreement shall be governed by and construed in accordance with the laws of the State of Illinois.",
    "Provider shall maintain commercial general liability insurance throughout the term of this Agreement.",
    "Each Party shall keep the Confidential Information of the other Party secret under this Agreement.",
    "Notices under this Agreement shall be in writing and delivered to the addresses set out below.",
)
MSA_TITLE = {"msa": "MASTER SERVICES AGREEMENT"}


def top(index: BM25Index, question: str, k: int = 1) -> list[int]:
    return [c.index for c, _ in index.search(question, k)]


def test_title_words_do_not_send_a_clause_question_to_the_title_page():
    question = "Which state's law governs the Master Services Agreement?"
    assert top(BM25Index(MSA, MSA_TITLE), question) == [4]
    # The index before: the title's words, dense on the short title page, outweigh "govern".
    before = RetrievalConfig(title_word_weight=1.0, title_weight=0.0, heading_field=False, expansion_weight=0.0)
    assert top(BM25Index(MSA, MSA_TITLE, before), question) == [0]


def test_a_title_still_finds_its_document_among_several():
    clause = "Customer shall pay the Fees within thirty (30) days after receipt of each invoice."
    chunks = (contract("Provider shall deliver the Services.", clause, doc_id="lease")
              + contract("Provider shall deliver the Services.", clause, doc_id="msa", fill=False))
    index = BM25Index(chunks, {"lease": "EQUIPMENT LEASE", "msa": "MASTER SERVICES AGREEMENT"})
    hits = index.search("When must the Fees under the Master Services Agreement be paid?", 3)
    assert [(c.doc_id, c.index) for c, _ in hits][:1] == [("msa", 1)]
    # without a title in the question, equal chunks tie and keep document order
    hits = index.search("When must the Fees be paid?", 2)
    assert [(c.doc_id, c.index) for c, _ in hits] == [("lease", 1), ("msa", 1)]
    # a title word alone matches no chunk's text: nothing comes back for it
    assert index.search("equipment", 5) == []


def test_from_workspace_reads_the_titles(ingested_contract: Workspace):
    index = BM25Index.from_workspace(ingested_contract)
    best, _ = index.search("Which state's laws govern the Services Agreement?", 1)[0]
    assert "State of Vermont" in " ".join(best.text.split())


def test_the_heading_is_a_field_of_its_own_worth_less_than_the_text():
    texts = ["The Provider shall keep records of all amounts invoiced for three years.",
             "The Provider shall keep records of all amounts invoiced for three years.",
             "Audit: the Customer may inspect the books on ten days' notice."]
    headings = ["9.1 Audit", "9.2 Retention", "9.3 Inspection"]
    index = BM25Index(contract(*texts, headings=headings))
    # the same text: the heading that names the question's word decides
    ranked = top(index, "How long are records of audit kept?", 3)
    assert sorted(ranked) == [0, 1, 2] and ranked.index(0) < ranked.index(1)
    # a word in a chunk's text counts more than the same word in another chunk's heading
    scores = index.scores("audit")
    assert scores[2] > scores[0] > 0 and scores[1] == 0
    assert RetrievalConfig().heading_weight < 1


def test_answer_types_prefer_the_chunk_that_states_what_is_asked():
    chunks = contract(
        "The Effective Date of this Agreement determines when the Services begin.",
        "The Services begin on the Effective Date, which is March 3, 2025.",
        "The Customer shall pay a Monthly Fee for the Services.",
        "The Monthly Fee for the Services is $48,500.",
        "Either Party may end the Services for convenience on notice to the other.",
        "Either Party may end the Services on ninety (90) days' notice to the other.",
    )
    index = BM25Index(chunks)
    assert top(index, "What is the Effective Date?") == [1]
    assert top(index, "How much is the Monthly Fee?") == [3]
    assert top(index, "How long is the notice to end the Services?") == [5]
    # the types only reorder chunks that share a word: a date alone is no match
    assert index.search("zebra when", 5) == []
    assert index.scores("zebra when").max() == 0


def test_the_preamble_answers_who_the_parties_are():
    chunks = contract(
        "Nothing in this Agreement makes the parties partners; the parties are independent contractors "
        "and neither of the parties may bind the other.",
        "This Agreement is made and entered into as of May 1, 2024 by and between Acme Data Systems, Inc., "
        "a Delaware corporation, and Beta Logistics LLC.",
        "The parties shall meet each quarter to review the Services and the parties' obligations.",
    )
    index = BM25Index(chunks)
    assert top(index, "Who are the parties to this agreement?") == [1]
    assert top(index, "On what date was this agreement made?") == [1]


def test_the_card_that_asks_the_question_comes_first():
    chunks = contract(
        "This Agreement is made and entered into as of May 1, 2024 by and between Acme Data Systems, Inc., "
        "a Delaware corporation, and Beta Logistics LLC.",
        "The parties shall meet each quarter to review the Services and the parties' obligations.",
    )
    cards = [Chunk(f"msa:{field}:0:card", "msa", 1_000_000 + i, 1, 1, 0, 10, "", text) for i, (field, text) in
             enumerate([("agreement_date", "On what date was this agreement made? May 1, 2024."),
                        ("parties", "Who are the parties to this agreement? Acme Data Systems, Inc. (the Provider); "
                                    "Beta Logistics LLC (the Customer)."),
                        ("governing_law", "Which state's or country's law governs this agreement? Delaware.")])]
    question = "Who are the parties to this agreement?"
    with_questions = BM25Index(chunks + cards)
    assert with_questions.search(question, 1)[0][0].chunk_id == "msa:parties:0:card"
    # only cards gain, the one asking most; a word every card asks ("agreement") weighs little
    off = BM25Index(chunks + cards, settings=RetrievalConfig(card_question_weight=0))
    gain = with_questions.scores(question) - off.scores(question)
    n = len(chunks)
    assert gain[n + 1] > 0 and gain[:n].max() == 0
    assert gain[n + 1] > 2 * max(gain[n], gain[n + 2])
    common = with_questions.scores("agreement") - off.scores("agreement")
    assert common[n:].max() < gain[n + 1] / 4


def test_query_expansion_brings_in_contract_words():
    terms = query_terms("Which state's law governs?")
    assert terms["law"] == terms["governs"] == 1.0
    assert terms["governed"] == terms["construed"] == RetrievalConfig().expansion_weight < 1
    assert "renewal" in query_terms("When does it renew?") and "renewal" in query_terms("renewing")
    chunks = contract("The term is automatically extended for successive one-year renewal terms.",
                      "The Customer may use the Platform during the term.")
    assert top(BM25Index(chunks), "When does the agreement renew?") == [0]


def test_query_expansion_off_and_the_old_words():
    off = RetrievalConfig(expansion_weight=0.0)
    assert query_terms("Which state's law governs the law?", off) == {"state": 1.0, "law": 2.0, "governs": 1.0}


def test_a_hit_cut_mid_sentence_comes_back_with_the_rest_of_it():
    chunks = contract(
        "The initial term of this Agreement is thirty-six (36) months, after which it renews for",
        "successive twelve (12) month periods. Either Party may give notice of non-renewal at any time "
        "before the end of the then-current term, and the renewal shall then not take place.",
        "Fees are due within thirty (30) days.",
    )
    index = BM25Index(chunks)
    (hit, _), = index.search("initial term months", 1)
    assert hit.chunk_id == "msa:0000" and hit.index == 0
    assert hit.text == chunks[0].text + " successive twelve (12) month periods."
    assert (hit.page_start, hit.page_end) == (1, 2) and hit.char_end == chunks[1].char_start + len(
        "successive twelve (12) month periods.")
    assert chunks[0].text.endswith("renews for")  # the index's own chunks are untouched
    # a chunk that ends its sentence, or the document's last chunk, comes back as stored
    assert [c for c, _ in index.search("Fees due", 3)][0] == chunks[2]
    assert index.search("successive periods", 1)[0][0] == chunks[1]


def test_the_tail_stops_at_the_limit_and_skips_overlap():
    long_sentence = "renewal " + "word " * 100 + "end."
    first = Chunk("d:0000", "d", 0, 1, 1, 0, 44, "", "The Agreement renews for successive terms of")
    second = Chunk("d:0001", "d", 1, 1, 1, 36, 45 + len(long_sentence), "", "terms of " + long_sentence)
    chunks = [first, second] + contract(doc_id="other")
    (hit, _), = BM25Index(chunks, settings=RetrievalConfig(neighbour_tail_chars=50)).search("agreement renews", 1)
    tail = hit.text[len(first.text) + 1:]
    assert tail.startswith("renewal word") and "terms of" not in tail and len(tail) <= 50
    assert BM25Index(chunks, settings=RetrievalConfig(neighbour_tail_chars=0)).search("agreement renews", 1)[0][0] \
        == first


def test_search_results_are_the_same_chunks_however_many_are_asked_for():
    index = BM25Index(MSA, MSA_TITLE)
    question = "Which state's law governs the Master Services Agreement?"
    full = index.search(question, len(index))
    assert index.search(question, 3) == full[:3]
    assert [s for _, s in full] == sorted((s for _, s in full), reverse=True)
    assert len({c.chunk_id for c, _ in full}) == len(full)


def test_stemming_joins_the_forms_of_a_word_when_switched_on():
    assert {stem(w) for w in ["govern", "governs", "governing", "governed"]} == {"govern"}
    assert stem("termination") == stem("terminate") == stem("terminated")
    assert stem("renewal") == stem("renewed") == "renew"
    assert stem("government") != stem("govern") and stem("30") == "30"
    assert not RetrievalConfig().stemming  # off: it lost recall on benchmarks/retrieval.py
    chunks = contract("Renewal is automatic.", "Payment is due monthly.")
    assert top(BM25Index(chunks, settings=RetrievalConfig(stemming=True)), "renewed") == [0]


def test_the_retrieval_section_is_checked_and_a_change_rebuilds_the_open_book_rows(ingested_contract: Workspace):
    from docfinetune.build import inputs_fingerprint
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.errors import ConfigError

    with pytest.raises(ConfigError, match="heading_weight"):
        load_pipeline("default", {"retrieval": {"heading_weight": -1}})
    changed = load_pipeline("default", {"retrieval": {"expansion_weight": 0.0}})
    assert changed.retrieval == RetrievalConfig(expansion_weight=0.0)
    # the RAFT rows' contexts come from this retriever: other settings, other datasets
    assert inputs_fingerprint(ingested_contract, changed, []) != \
        inputs_fingerprint(ingested_contract, load_pipeline("default"), [])
