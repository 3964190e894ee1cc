"""The offline `coverage` generator on a tiny fictional services agreement."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from docfinetune.build.generators.coverage import CoverageQAGenerator
from docfinetune.core.config import CoverageQAConfig
from docfinetune.core.records import Chunk, Document

try:
    from docfinetune.core.score import is_supported
except ImportError:  # older layout
    from docfinetune.build.curate import is_supported

PARAGRAPHS = [
    "WIDGET SERVICES AGREEMENT",
    'THIS WIDGET SERVICES AGREEMENT (this "Agreement") is made as of March 4, 2023, by and between '
    'BRAMBLE WORKS, INC., a Delaware corporation having its principal place of business at 12 Elm Road, '
    'Dover, Delaware 19901 ("Supplier"), and ORCHARD FOODS LLC, a Vermont limited liability company '
    '("Customer").',
    "ARTICLE 3 — THIRTY (30) DAY CURE",
    "3.1 Fees. Customer shall pay Supplier a monthly service fee of $12,000 within twenty (20) days "
    "after receipt of each invoice. Late amounts bear interest at five percent (5%) per year.",
    "3.2 Cure. Either Party may terminate this Agreement if the other Party fails to cure a material "
    "breach within thirty (30) days after written notice, subject to Section 9.2.",
    "9.2 Governing Law. This Agreement shall be governed by the laws of the State of New York.",
    "IN WITNESS WHEREOF, the Parties have signed this Agreement.",
    "By: /s/ Jane Roe Name: Jane Roe Title: President Date: January 5, 2024",
]


def _chunks(overlap: int = 40) -> tuple[list[Document], list[Chunk]]:
    text = "\n\n".join(PARAGRAPHS)
    # three chunks cut at paragraph breaks, each repeating the last `overlap` chars of the previous
    cuts = [text.index("3.1 Fees"), text.index("9.2 Governing")]
    bounds = [(0, cuts[0] - 2), (cuts[0] - overlap, cuts[1] - 2), (cuts[1] - overlap, len(text))]
    headings = ["WIDGET SERVICES AGREEMENT", "3.1 Fees", "9.2 Governing Law"]
    chunks = [
        Chunk(f"svc:{i:04d}", "svc", i, 1, 1, s, e, headings[i], text[s:e])
        for i, (s, e) in enumerate(bounds)
    ]
    return [Document("svc", "WIDGET SERVICES AGREEMENT", "svc.pdf")], chunks


@pytest.fixture(scope="module")
def pairs():
    documents, chunks = _chunks()
    return CoverageQAGenerator().generate(documents, chunks)


def _by_fact(pairs):
    facts = defaultdict(list)
    for p in pairs:
        facts[p.fact_id].append(p)
    return facts


def _forward(pairs, answer):
    return [p for p in pairs if p.answer == answer and p.meta["direction"] == "forward"]


def test_typed_spans_become_facts(pairs):
    cure = _forward(pairs, "thirty (30) days")
    assert cure and {p.field for p in cure} == {"duration"}
    assert _forward(pairs, "$12,000")[0].field == "money"
    assert _forward(pairs, "twenty (20) days")
    assert _forward(pairs, "five percent (5%) per year")[0].field == "percent"  # the rate's unit is its meaning
    assert _forward(pairs, "Section 9.2")[0].field == "section_ref"
    assert _forward(pairs, "March 4, 2023")[0].field == "date"
    assert _forward(pairs, "New York")[0].field == "place"


def test_parties_entity_types_and_states(pairs):
    state = _forward(pairs, "Delaware")
    assert state and state[0].field == "place"
    assert any("Bramble Works, Inc." in p.question for p in state)
    assert _forward(pairs, "Vermont")
    # the state is part of what the entity is: "a Delaware corporation"
    assert _forward(pairs, "Delaware corporation")[0].field == "entity_type"
    assert _forward(pairs, "Vermont limited liability company")
    assert not _forward(pairs, "corporation")
    supplier = _forward(pairs, "BRAMBLE WORKS, INC.")
    assert supplier and supplier[0].field == "party"
    # reverse directions: the role of a named party, the party of a described entity
    reverse = [p for p in pairs if p.meta["direction"] == "reverse"]
    assert any(p.answer == "Supplier" and "Bramble Works" in p.question for p in reverse)
    assert any(p.answer == "BRAMBLE WORKS, INC." and "Delaware corporation" in p.question for p in reverse)


def test_cure_period_questions_name_document_and_section(pairs):
    cure = _forward(pairs, "thirty (30) days")
    assert len(cure) >= 3
    assert all("Widget Services Agreement" in p.question or "this agreement" in p.question for p in cure)
    assert any("Section 3.2" in p.question for p in cure)
    assert any("___" in p.question for p in cure)  # the cloze
    assert any("fails to cure a material breach within how many days" in p.question for p in cure)


def test_answers_come_from_their_source_chunks(pairs):
    _, chunks = _chunks()
    text_of = {c.chunk_id: c.text for c in chunks}
    for p in pairs:
        source = " ".join(text_of[c] for c in p.source_chunk_ids)
        if p.meta.get("derived"):  # "Section 3.2": the label's number is in the sources
            assert p.field == "section_of"
            assert p.answer.split()[-1] in source
            continue
        assert p.answer in source, p
        assert is_supported(p.answer, source)


def test_questions_do_not_contain_their_answers(pairs):
    for p in pairs:
        assert p.answer.lower() not in p.question.lower(), p
        assert p.question.endswith(("?", '"'))


def test_every_fact_has_three_phrasings_and_section_facts_a_reverse(pairs):
    facts = _by_fact(pairs)
    assert facts
    for fact_id, group in facts.items():
        forward = [p for p in group if p.meta["direction"] == "forward"]
        assert len(group) >= 3 and len(forward) >= 2, fact_id
        assert len({p.question for p in group}) == len(group)
        assert fact_id.startswith(f"svc:coverage:{forward[0].field}:")
    section_ref = facts[_forward(pairs, "Section 9.2")[0].fact_id]
    reverse = [p for p in section_ref if p.field == "section_of"]
    assert reverse and reverse[0].answer == "Section 3.2"
    assert "Section 3.2" not in reverse[0].question
    cure = facts[_forward(pairs, "thirty (30) days")[0].fact_id]
    assert any(p.field == "section_of" and p.answer == "Section 3.2" for p in cure)


def test_meta_holds_sentence_and_answer_offsets(pairs):
    documents, chunks = _chunks()
    text = "\n\n".join(PARAGRAPHS)
    for p in pairs:
        m = p.meta
        assert text[m["answer_start"] : m["answer_end"]] == p.answer or m.get("derived")
        assert " ".join(text[m["sentence_start"] : m["sentence_end"]].split()) == m["sentence"]


def test_fact_ids_are_deterministic():
    documents, chunks = _chunks()
    first = CoverageQAGenerator().generate(documents, chunks)
    second = CoverageQAGenerator().generate(documents, list(reversed(chunks)))
    assert [(p.fact_id, p.question, p.answer) for p in first] == [(p.fact_id, p.question, p.answer) for p in second]


def test_headings_and_signatures_produce_nothing(pairs):
    for p in pairs:
        assert "THIRTY (30) DAY CURE" not in p.meta["sentence"]
        assert "January 5, 2024" not in p.answer and "Jane Roe" not in p.question
        assert "/s/" not in p.meta["sentence"]
    assert not _forward(pairs, "THIRTY (30) DAY")


def test_config_switches_span_types_off():
    documents, chunks = _chunks()
    pairs = CoverageQAGenerator(CoverageQAConfig(span_types=["money", "percent"])).generate(documents, chunks)
    assert pairs and {p.field for p in pairs if p.meta["direction"] == "forward"} <= {"money", "percent"}


def test_config_rejects_unknown_span_type():
    from docfinetune.core.errors import ConfigError

    with pytest.raises(ConfigError):
        CoverageQAConfig(span_types=["money", "colour"])


def test_restatements_ask_in_plain_words_and_name_the_section_by_its_title():
    documents, chunks = _chunks()
    plain = CoverageQAGenerator(CoverageQAConfig(restatements_per_fact=2)).generate(documents, chunks)
    restated = [p for p in plain if p.meta["direction"] == "restated"]
    fees = [p.question for p in restated if p.answer == "twenty (20) days"]
    assert len(fees) == 2
    assert all("the Fees section of the Widget Services Agreement" in q for q in fees)
    assert all("shall" not in q and "how many days" not in q for q in fees)  # "must"/"will", "within what period"
    assert any(q.startswith("In the Fees section") for q in fees) and any(q.endswith("Agreement?") for q in fees)
    # the same facts and forward phrasings as without: restatements come on top
    def rows(pairs):
        return [(p.question, p.answer, p.fact_id, p.field) for p in pairs if p.meta["direction"] != "restated"]

    assert rows(plain) == rows(CoverageQAGenerator().generate(documents, chunks))
    assert all(p.meta["direction"] != "restated" for p in CoverageQAGenerator().generate(documents, chunks))


def test_plain_words_turn_legal_wording_into_a_user_s():
    from docfinetune.build.generators.coverage import plain_words

    question = "Within how many Business Days after its receipt of the invoice shall Customer pay prior to the deadline?"
    assert plain_words(question, 0) == "within what period after receiving the invoice must Customer pay before the deadline?"
    assert "will" in plain_words(question, 1) and "within what time" in plain_words(question, 1)


# A sentence longer than max_clause_words with two durations: its questions are asked through cuts of it.
MAINTENANCE = ('6.2 Scheduled Maintenance. Provider may perform scheduled maintenance ("Scheduled Maintenance") '
               "on Sundays between 1:00 a.m. and 5:00 a.m. Central Time, provided that Scheduled Maintenance shall "
               "not exceed eight (8) hours in any calendar month and Provider gives Customer at least seventy-two "
               "(72) hours' notice of any Scheduled Maintenance that is expected to cause unavailability of the "
               "Platform.")


def _one_chunk(paragraphs: list[str], title: str = "MASTER SERVICES AGREEMENT"):
    text = "\n\n".join(paragraphs)
    return [Document("msa", title, "msa.pdf")], [Chunk("msa:0000", "msa", 0, 1, 1, 0, len(text), title, text)]


def test_a_capitals_clause_citing_a_lower_case_subsection_is_asked_about():
    """Limitations of liability are set in capitals; a reference such as "SECTION 10.1(b)" holds
    the clause's only lower-case letter and must not make it a non-prose paragraph."""
    documents, chunks = _one_chunk([
        "MASTER SERVICES AGREEMENT",
        "11.3 Data Breach Cap. PROVIDER'S TOTAL CUMULATIVE LIABILITY FOR DAMAGES ARISING FROM SECURITY "
        "INCIDENTS CAUSED BY ITS BREACH OF SECTION 10.1(b) SHALL NOT EXCEED FIVE MILLION DOLLARS "
        "($5,000,000) IN THE AGGREGATE.",
    ])
    answers = {p.answer for p in CoverageQAGenerator().generate(documents, chunks) if p.field == "money"}
    assert answers & {"FIVE MILLION DOLLARS ($5,000,000)", "$5,000,000"}


def test_a_long_clause_is_asked_about_through_a_shorter_cut_of_it():
    """Cut at 40 words the clause's questions pass max_question_chars two ways only; the 26-word
    cut gives the three phrasings a fact needs, so every duration of the sentence is asked."""
    documents, chunks = _one_chunk([
        "MASTER SERVICES AGREEMENT",
        MAINTENANCE,
    ])
    facts = _by_fact(CoverageQAGenerator().generate(documents, chunks))
    durations = {rows[0].answer: rows for rows in facts.values() if rows[0].field == "duration"}
    assert set(durations) == {"eight (8) hours", "seventy-two (72) hours"}
    assert all(len(rows) >= 3 for rows in durations.values())


def test_a_question_cut_by_word_count_does_not_end_on_a_dangling_word():
    documents, chunks = _one_chunk([
        "MASTER SERVICES AGREEMENT",
        MAINTENANCE,
        "13.1 Termination for Convenience. After the first anniversary, Customer may terminate this Agreement "
        "for convenience on one hundred twenty (120) days' prior written notice, provided that if such "
        "termination takes effect during the Initial Term Customer shall pay an early termination fee equal "
        "to thirty percent (30%) of the Subscription Fees that would have been payable for the remainder of "
        "the Initial Term, together with all fees accrued through the effective date of termination.",
    ])
    questions = [p.question for p in CoverageQAGenerator().generate(documents, chunks)]
    assert any("thirty percent" not in q and "what percentage" in q for q in questions)
    dangling = re.compile(r"(?:\b(?:of|the|to|a|an|and|or|for|with|in|on|at|by|from|within|after)|\(\w*)\?$")
    assert not [q for q in questions if dangling.search(q)]


def test_a_clause_cut_after_its_auxiliary_verb_ends_before_it():
    """A section reference's clause is cut short; cut after "shall" it asked "... in which section
    shall?" (90 of 19,406 questions on cuad-dev/more ended on an auxiliary)."""
    documents, chunks = _one_chunk([
        "MASTER SERVICES AGREEMENT",
        "6.7 Domain Names. The license set forth in Section 6.1 shall include the right of the Customer to use "
        "the Supplier Domain Names solely in connection with the applicable Licensed Trademarks in the Customer "
        "Field during the Trademark License Term, in the ordinary course of business in a manner generally "
        "consistent with past practice.",
    ])
    questions = [p.question for p in CoverageQAGenerator().generate(documents, chunks)]
    assert "According to Section 6.7 of this agreement, the license set forth in which section?" in questions
    assert not [q for q in questions if re.search(r"\b(?:shall|will|may|must|is|be)\W*$", q)]


def test_table_rows_pair_a_label_with_its_amount():
    documents, chunks = _one_chunk([
        "MASTER SERVICES AGREEMENT",
        "A.3 Professional Services Rates. Professional services shall be billed at the following rates:",
        "Role Rate\nEngagement Lead $285 per hour\nOn-site Training $2,400 per trainer per day",
        "Senior Engineer $215 per hour Data Analyst $165 per hour",  # two rows run together: not read
        "Calculation: (4.85 - 4.22) x 100 = $ 62.90",  # a formula, not a label
    ])
    pairs = [p for p in CoverageQAGenerator(CoverageQAConfig(table_rows=True)).generate(documents, chunks)
             if p.field == "money"]
    facts = _by_fact(pairs)
    assert sorted(rows[0].answer for rows in facts.values()) == ["$2,400 per trainer per day", "$285 per hour"]
    engagement = [p for p in pairs if p.answer == "$285 per hour"]
    assert len(engagement) == 3 and all("Engagement Lead" in p.question and "A.3" in p.question for p in engagement)
    # switched off: the same document gives no money facts
    assert not [p for p in CoverageQAGenerator(CoverageQAConfig(table_rows=False)).generate(documents, chunks)
                if p.field == "money"]


def _one_clause_pairs(clause: str):
    text = "MASTER SUPPLY AGREEMENT\n\n" + clause
    chunk = Chunk("msa:0000", "msa", 0, 1, 1, 0, len(text), "4.2 Rates", text)
    return CoverageQAGenerator().generate([Document("msa", "MASTER SUPPLY AGREEMENT", "msa.pdf")], [chunk])


def test_an_amount_keeps_its_bound_and_its_rate():
    pairs = _one_clause_pairs(
        "4.2 Rates. Control means ownership of more than fifty percent (50%) of the voting equity. "
        "Overdue amounts accrue interest at one and one-quarter percent (1.25%) per month. "
        "The Architect is billed at $265 per hour.")
    answers = {p.answer for p in pairs if p.meta["direction"] == "forward"}
    assert "more than fifty percent (50%)" in answers
    assert "one and one-quarter percent (1.25%) per month" in answers
    assert "$265 per hour" in answers
    assert not answers & {"fifty percent (50%)", "one and one-quarter percent (1.25%)", "$265"}
    assert any("what rate" in p.question for p in _forward(pairs, "$265 per hour"))


def test_an_amount_too_long_with_its_rate_is_asked_bare():
    pairs = _one_clause_pairs(
        "4.2 Rates. Supplier shall carry insurance of not less than Two Million Five Hundred Thousand "
        "U.S. Dollars ($2,500,000) per occurrence.")
    answers = {p.answer for p in pairs if p.meta["direction"] == "forward"}
    # 13 words with its bound and rate: the amount alone, as before
    assert "Two Million Five Hundred Thousand U.S. Dollars ($2,500,000)" in answers
    assert not any("per occurrence" in a for a in answers)


def test_an_enumerated_rate_that_leaves_no_question_is_asked_bare():
    pairs = _one_clause_pairs(
        "4.2 Rates. Past due payments shall bear interest at the rate of: (a) 1% per month; or (b) the "
        "maximum interest rate permissible under law.")
    assert _forward(pairs, "1%")  # "(a) 1% per month" is all answer: the percentage alone, asked "___ per month"


def test_a_term_defined_in_passing_is_asked_both_ways():
    pairs = _one_clause_pairs(
        "4.2 Rates. Each Deliverable shall conform to its Specifications for ninety (90) days following its "
        "Acceptance (the \u201cWarranty Period\u201d); the Customer Contract Manager (the \u201cCCM\u201d) "
        "approves each invoice.")
    term = _forward(pairs, "Warranty Period")
    assert term and term[0].field == "defined_term"
    assert all("following its Acceptance" in p.question and "(90)" in p.question for p in term)
    reverse = [p for p in pairs if p.meta["direction"] == "reverse" and p.field == "definition"]
    assert any(p.answer == "the Customer Contract Manager" and "CCM" in p.question for p in reverse)


def test_the_preamble_roles_are_not_inline_definitions(pairs):
    terms = {p.answer for p in pairs if p.field == "defined_term"}
    assert not terms & {"Supplier", "Customer", "Agreement"}


SIGNED = (
    'THIS SUPPLY AGREEMENT (this "Agreement") is made by and between KESTREL MILLS, INC., a Delaware '
    'corporation ("Seller"), and DUNMORE FOODS LLC, an Ohio limited liability company ("Buyer").\n\n'
    "12.1 Notices. Notices shall be sent as follows:\n\n(a) If to Seller:\n\nKestrel Mills, Inc.\n\n"
    "40 Mill Lane, Akron, Ohio\n\nAttention: Treasurer\n\nwith a copy to:\n\nHarlow & Finch LLP\n\n"
    "Attention: Nadia Brill, Esq.\n\n(b) If to Buyer:\n\nDunmore Foods LLC\n\n9 Quay Street, Toledo, Ohio\n\n"
    "Attn: Purchasing Director Email: buy@dunmore.example\n\n"
    "IN WITNESS WHEREOF, the parties have signed this Agreement.\n\n"
    "KESTREL MILLS, INC. DUNMORE FOODS LLC\n\n"
    "By: /s/ Oren Vashti By: /s/ Lise Marrow Name: Oren Vashti Name: Lise Marrow "
    "Title: Chief Executive Officer Title: Vice President, Supply\n\n"
    "HARLOW & FINCH LLP (as escrow agent)\n\nBy: ____________\n\nName: ____________\n\nTitle: ____________"
)


@pytest.fixture(scope="module")
def signed_pairs():
    chunk = Chunk("sup:0000", "sup", 0, 1, 1, 0, len(SIGNED), "SUPPLY AGREEMENT", SIGNED)
    return CoverageQAGenerator().generate([Document("sup", "SUPPLY AGREEMENT", "sup.pdf")], [chunk])


def test_signatories_of_side_by_side_blocks_go_to_their_parties(signed_pairs):
    seller = _forward(signed_pairs, "Oren Vashti")
    buyer = _forward(signed_pairs, "Lise Marrow")
    assert seller and all("Kestrel Mills" in p.question for p in seller) and seller[0].field == "signatory"
    assert buyer and all("Dunmore Foods" in p.question for p in buyer)
    reverse = {(p.field, p.answer) for p in signed_pairs if p.meta["direction"] == "reverse"}
    assert ("title", "Chief Executive Officer") in reverse and ("title", "Vice President, Supply") in reverse
    assert not [p for p in signed_pairs if "_" in p.answer]  # the blank block signs for no one


def test_notices_go_to_the_partys_attention_line_not_its_counsels(signed_pairs):
    seller = _forward(signed_pairs, "Treasurer")
    assert seller and seller[0].field == "notice_contact" and all("Seller" in p.question or "Kestrel Mills" in p.question for p in seller)
    assert _forward(signed_pairs, "Purchasing Director")  # cut before its e-mail
    assert not _forward(signed_pairs, "Nadia Brill, Esq.")  # the copy's attention line


def test_an_attention_line_run_on_into_a_party_name_is_cut_there():
    # PDF text joins "Attention: General Counsel" and the next address line "Kestrel Mills, Inc."
    text = SIGNED.replace("Attn: Purchasing Director Email: buy@dunmore.example",
                          "Attn: Purchasing Director Kestrel Mills, Inc. Receiving")
    chunk = Chunk("sup:0000", "sup", 0, 1, 1, 0, len(text), "SUPPLY AGREEMENT", text)
    pairs = CoverageQAGenerator().generate([Document("sup", "SUPPLY AGREEMENT", "sup.pdf")], [chunk])
    assert _forward(pairs, "Purchasing Director")
    assert not [p for p in pairs if p.field == "notice_contact" and "Kestrel" in p.answer]


def test_signatories_and_notice_contacts_can_be_switched_off():
    chunk = Chunk("sup:0000", "sup", 0, 1, 1, 0, len(SIGNED), "SUPPLY AGREEMENT", SIGNED)
    config = CoverageQAConfig(span_types=["party", "duration"])
    pairs = CoverageQAGenerator(config).generate([Document("sup", "SUPPLY AGREEMENT", "sup.pdf")], [chunk])
    assert not {p.field for p in pairs} & {"signatory", "notice_contact"}


def test_questions_name_the_document_not_the_section_when_section_in_questions_is_off():
    documents, chunks = _one_chunk([
        "MASTER SERVICES AGREEMENT",
        "4.3 Payment Terms. Customer shall pay each undisputed invoice within forty-five (45) days after its "
        "receipt of the invoice.",
    ])
    on = CoverageQAGenerator().generate(documents, chunks)
    off = CoverageQAGenerator(CoverageQAConfig(section_in_questions=False)).generate(documents, chunks)
    asked = [p for p in off if p.answer == "forty-five (45) days"]
    assert len(asked) == len([p for p in on if p.answer == "forty-five (45) days"]) >= 3
    assert any("Section 4.3" in p.question for p in on if p.answer == "forty-five (45) days")
    assert not any("4.3" in p.question for p in asked)
    assert any("Master Services Agreement" in p.question for p in asked)
    assert any("the Payment Terms section of" in p.question for p in asked)
    # which section states it is still asked, and answered by the number
    assert any(p.answer == "Section 4.3" for p in off)
