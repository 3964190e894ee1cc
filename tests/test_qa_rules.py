"""The offline `rules` generator on a short fictional contract, chunked like ingest does."""

import re

import pytest

from docfinetune.build.generators.rules import RulesQAGenerator
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.score import answer_matches

CONTRACT = """SUPPLY AGREEMENT

This Supply Agreement (the "Agreement") is made as of the 3rd day of March, 2021 (the "Effective Date"), by and between Quillfeather Widgets, Inc., a Delaware corporation with offices at 12 Elm Road, Dover ("Supplier"), and Brambleton Retail LLC, an Ohio limited liability company ("Buyer").

NOW, THEREFORE, the parties agree as follows:

1. Definitions. "Products" means the widgets listed in Exhibit A, including spare parts. "Territory" means the State of Ohio.

2. Fees. Buyer shall pay Supplier an annual license fee of $25,000.00 per year, due each January.

3. Term. The term of this Agreement shall begin on the Effective Date and continue for two (2) years thereafter (the "Initial Term"). This Agreement shall automatically renew for successive one (1) year terms unless either party gives written notice of non-renewal at least sixty (60) days prior to the end of the then-current term.

4. Termination. Either party may terminate this Agreement upon thirty (30) days' prior written notice to the other party.

5. Governing Law. This Agreement shall be governed by and construed in accordance with the laws of the State of Vermont, without regard to its conflict of laws principles. The parties submit to the exclusive jurisdiction of the state and federal courts located in Burlington, Vermont.
"""


def make_chunks(doc_id: str, text: str, size: int = 300, overlap: int = 60) -> list[Chunk]:
    chunks, start, i = [], 0, 0
    while start < len(text):
        end = min(len(text), start + size)
        chunks.append(Chunk(f"{doc_id}:{i:04d}", doc_id, i, 1, 1, start, end, "", text[start:end]))
        if end == len(text):
            break
        start, i = end - overlap, i + 1
    return chunks


def generate(docs):
    chunks = [c for d, text in docs for c in make_chunks(d.doc_id, text)]
    return list(RulesQAGenerator().generate([d for d, _ in docs], chunks)), chunks


def facts(pairs):
    out = {}
    for p in pairs:
        out.setdefault(p.fact_id, []).append(p)
    return out


DOC = Document("supply", "SUPPLY AGREEMENT", "supply.pdf")


@pytest.fixture(scope="module")
def single():
    return generate([(DOC, CONTRACT)])


@pytest.mark.parametrize(
    "field, expected",
    [
        ("parties", 'Quillfeather Widgets, Inc. ("Supplier"); Brambleton Retail LLC ("Buyer")'),
        ("agreement_date", "3/3/21"),
        ("effective_date", "2021-03-03"),
        ("initial_term", "2 years"),
        ("expiration_date", "3/3/23"),
        ("renewal_term", "successive 1 year"),
        ("renewal_notice", "60 days"),
        ("notice_period", "30 days"),
        ("governing_law", "Vermont"),
        ("venue", "Burlington, Vermont"),
        ("fees", "$25,000 per year"),
    ],
)
def test_expected_facts_found(single, field, expected):
    pairs, _ = single
    answers = {p.answer for p in pairs if p.field == field}
    assert any(answer_matches(a, expected, field) for a in answers), (field, answers)


def test_party_roles_defined_terms_and_sections(single):
    pairs, _ = single
    by_q = {p.question: p.answer for p in pairs}
    assert by_q["Who is the Buyer under this agreement?"] == "Brambleton Retail LLC"
    assert any(q.startswith('What does "Products" mean') and a.startswith("the widgets") for q, a in by_q.items())
    sections = {p.meta["section"]: p for p in pairs if p.field == "section"}
    assert {"1", "2", "3", "4", "5"} <= set(sections)
    assert "Section 4 (Termination)" in sections["4"].question
    assert sections["4"].answer.startswith("Either party may terminate this Agreement")


def test_each_fact_has_three_distinct_phrasings_and_one_answer(single):
    pairs, _ = single
    for fact_id, group in facts(pairs).items():
        assert len({p.question for p in group}) >= 3, fact_id
        assert len({p.answer for p in group}) == 1
        assert all(isinstance(p, QAPair) and p.generator == "rules" for p in group)
    # no question is asked of two different facts
    assert len({p.question for p in pairs}) == len(pairs)


def test_answers_come_from_their_source_chunks(single):
    pairs, chunks = single
    text_of = {c.chunk_id: c.text for c in chunks}
    for p in pairs:
        if p.meta.get("derived") or (p.field == "parties" and ";" in p.answer):
            continue
        joined = " ".join(re.sub(r"\s+", " ", text_of[c]) for c in p.source_chunk_ids)
        merged = re.sub(r"\s+", " ", "".join(text_of[c] for c in p.source_chunk_ids))
        assert p.answer in joined or p.answer in merged or p.answer in re.sub(
            r"\s+", " ", CONTRACT), (p.fact_id, p.answer)
        assert p.answer in re.sub(r"\s+", " ", CONTRACT)
    # a derived expiration cites both the start date's chunk and the term's chunk
    [expiry] = {p.fact_id: p for p in pairs if p.field == "expiration_date"}.values()
    assert expiry.meta["derived"] and len(expiry.source_chunk_ids) >= 2


def test_fact_ids_are_stable_and_deterministic(single):
    pairs, _ = single
    again, _ = generate([(DOC, CONTRACT)])
    assert [p.to_dict() for p in pairs] == [p.to_dict() for p in again]
    assert "supply:governing_law:0" in {p.fact_id for p in pairs}
    assert all(re.fullmatch(r"supply:[a-z_]+:\d+", p.fact_id) for p in pairs)


def test_several_documents_are_named_in_questions():
    other_text = CONTRACT.replace("Quillfeather Widgets", "Otterbrook Gears").replace("Vermont", "Maine")
    other = Document("lease", "EQUIPMENT LEASE", "lease.pdf")
    pairs, _ = generate([(DOC, CONTRACT), (other, other_text.replace("SUPPLY AGREEMENT", "EQUIPMENT LEASE"))])
    for p in pairs:
        assert "this agreement" not in p.question.lower()
        expected = "the Supply Agreement" if p.doc_id == "supply" else "the Equipment Lease"
        assert expected.lower() in p.question.lower(), p.question
    laws = {p.doc_id: p.answer for p in pairs if p.field == "governing_law"}
    assert "Vermont" in laws["supply"] and "Maine" in laws["lease"]


def test_same_titles_are_told_apart_by_parties():
    twin = Document("supply2", "SUPPLY AGREEMENT", "supply2.pdf")
    twin_text = CONTRACT.replace("Quillfeather Widgets", "Otterbrook Gears")
    pairs, _ = generate([(DOC, CONTRACT), (twin, twin_text)])
    q = next(p.question for p in pairs if p.doc_id == "supply2" and p.field == "governing_law")
    assert "Otterbrook Gears" in q and "Brambleton Retail LLC" in q
