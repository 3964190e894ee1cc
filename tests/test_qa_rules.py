"""The offline `rules` generator on a short fictional contract, chunked like ingest does."""

import re

import pytest

from docfinetune.build.curate import curate
from docfinetune.build.generators.rules import RulesQAGenerator
from docfinetune.core.config import RulesQAConfig
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
    """Every fact family, section recitations too (off by default)."""
    chunks = [c for d, text in docs for c in make_chunks(d.doc_id, text)]
    return list(RulesQAGenerator(RulesQAConfig(max_section_facts=400)).generate([d for d, _ in docs], chunks)), chunks


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


# --------------------------------------------------------------------------- general patterns
# Small invented contract openings and clauses, one per way contracts commonly state a fact.


def answers_of(text: str, field: str, title: str = "SERVICES AGREEMENT") -> set[str]:
    doc = Document("snippet", title, "snippet.pdf")
    pairs, _ = generate([(doc, text)])
    return {p.answer for p in pairs if p.field == field}


def assert_found(text: str, field: str, expected: str) -> None:
    found = answers_of(text, field)
    assert any(answer_matches(a, expected, field) for a in found), (field, expected, found)


FILLER = "\n\n1. Services. The Consultant shall provide the services described in Exhibit A.\n"


@pytest.mark.parametrize(
    "opening, expected",
    [
        # several parties, "on the one hand" / "on the other hand", descriptors before each role
        ('This Agreement is made by and among, on the one hand, Harrow Mills, LLC, a Delaware limited '
         'liability company ("Harrow"), and, on the other hand, Tansy Foods, Inc., a Kentucky corporation '
         '("Tansy"), and Tansy Brands, Inc. ("Brands").',
         "Harrow Mills, LLC; Tansy Foods, Inc.; Tansy Brands, Inc."),
        # no "between": the names open the sentence, addresses before the roles
        ('Quern Analytics, Inc., with a place of business at 4 Mill Lane, Ashford ("Quern") and ORVAL B.V '
         'having an address at 9 Dijkstraat, Utrecht, represented by J. Smit, ("Consultant") agree to '
         'the terms of this Consulting Agreement ("Agreement") dated May 2, 2021.',
         "Quern Analytics, Inc.; ORVAL B.V"),
        # "hereinafter referred to as" without parentheses, ";" and "And:" between the parties
        ('This Agreement is made and entered into this 3rd day of May 2018, Between:\n'
         'Pellam Capital Inc., having its office at 1 Bay Street, Miami, hereinafter referred to as "PCI";\n'
         'And:\nA Lindqvist Trading Company to be formed by its founders, having an office at 3 Oak Road, '
         'hereinafter referred to as "LTC".',
         "Pellam Capital Inc.; Lindqvist Trading Company"),
        # a role in words after an address, and a numbered company name
        ('This agreement ("Agreement") dated as of March 3, 2015 is between Corvane Corp. ("Corvane"), an '
         'Ontario corporation with its principal place of business at 12 King Street, Toronto, Ontario, '
         'and 3301442 Ontario Limited, with its principal place of business at 5 Main Street, Sudbury '
         '(the "Reseller").',
         "Corvane Corp.; 3301442 Ontario Limited"),
        # a party named with a company suffix but given no role
        ('This Promotion Agreement (herein "Agreement") dated March 12, 2001, by and between Rill Call, Inc. '
         '(herein "Rill") located at 15 Queen Street, Guelph and Beacon Paging Corporation located at '
         '100 Oak Blvd., Ventura, shall set forth the terms of the promotion.',
         "Rill Call, Inc.; Beacon Paging Corporation"),
        # a trade name after the legal name
        ('THIS AGREEMENT, dated as of October 4, 2007 is between KESTREL SUPPLY COMPANY, INC., a Delaware '
         'corporation, d/b/a NORTHLINE (hereinafter referred to as "NORTHLINE") and Brisk Materials '
         'Corporation, a Delaware corporation ("BMC").',
         "KESTREL SUPPLY COMPANY, INC. d/b/a NORTHLINE; Brisk Materials Corporation"),
    ],
)
def test_parties_introduced_in_the_opening_sentence(opening, expected):
    assert_found(opening + FILLER, "parties", expected)


def test_parties_of_an_agree_as_follows_opening_and_a_closing_signed_date():
    # no "between" or "entered into" up front: the parties open the document and "agree as follows";
    # the words "entered into" come pages later, and the date only above the signatures; a firm's
    # name holds commas
    body = "".join(f"\n{n}. Duties. The Agency shall solicit proposals and transmit them to Harlow." for n in range(2, 60))
    text = ("AGENCY AGREEMENT\n\nHarlow Mutual Insurance Company of America, a Michigan insurance corporation "
            '(HARLOW) and Stratton, Pender & Walsh, Inc., a Nevada corporation, ("Agency") agree as follows:\n'
            "1. Authority. The Agency is authorized to solicit insurance proposals." + body +
            "\n60. Integration. This Agreement supersedes all agreements entered into between Harlow and the "
            "Agency.\nSigned and effective this 25th day of May, 1999.\n\nAGENCY\nBy: /s/ T. Walsh\n"
            "HARLOW\nBy: /s/ T. Payne\n")
    assert_found(text, "parties", "Harlow Mutual Insurance Company of America; Stratton, Pender & Walsh, Inc.")
    # the firm's name whole, commas and all: not "Pender & Walsh, Inc."
    assert any(a.endswith("Stratton, Pender & Walsh, Inc. (the Agency)") for a in answers_of(text, "parties"))
    assert_found(text, "agreement_date", "5/25/99")


def test_parties_in_a_labelled_list():
    text = ("This Cooperation Agreement is entered into in Hangzhou on March 8, 2012 between the following "
            "parties: Party A: Lanting Network Technology (Hangzhou) Co., Ltd. Registered Address: 5 West "
            "Road, Hangzhou Party B: Hangzhou Qiyun Software Co., Ltd. Registered Address: 8 East Road.\n"
            "WHEREAS:\n1. Party A provides network services." + FILLER)
    assert_found(text, "parties", "Lanting Network Technology (Hangzhou) Co., Ltd.; Hangzhou Qiyun Software Co., Ltd.")
    roles = {p.question for p in generate([(Document("s", "X", "s.pdf"), text)])[0] if p.field == "parties"}
    assert "Who is the Party B under this agreement?" in roles


def test_parties_in_a_title_block():
    text = ("OUTSOURCING AGREEMENT\nBY AND BETWEEN\nMARLOW COUNTY BANK\nand\nFENWICK DATA CORPORATION\n"
            "DATED AS OF June 2, 1999\nTABLE OF CONTENTS\n1. DEFINITIONS\n2. TERM\n" + FILLER)
    assert_found(text, "parties", "Marlow County Bank; Fenwick Data Corporation")


def test_section_numbers_and_titles_are_not_parties():
    text = ('CO-BRANDING AGREEMENT\nTHIS AGREEMENT (the "Agreement") is made as of June 21, 2001 by and '
            'between K-PAY, INC., with its principal place of business at 1 Elm Blvd., San Mateo ("k-Pay"), '
            'and 4THEHOME.COM, INC. having its principal place of business at 9 Oak Avenue ("4TheHome").\n'
            '1. DEFINITIONS.\n(a) "CONTENT" means all content. Content provided by k-Pay is referred to '
            'herein as "k-Pay Content."\n')
    [combined] = [a for a in answers_of(text, "parties") if ";" in a]
    assert answer_matches(combined, "K-PAY, INC.; 4THEHOME.COM, INC.", "parties")
    assert "DEFINITIONS" not in combined and "Content" not in combined


OPENING = 'This Agreement is made as of March 3, 2015 by and between Alder Works, Inc. ("Alder") and Birch Labs LLC ("Birch").\n\n'


@pytest.mark.parametrize(
    "clause, expiration",
    [
        # a stated end date
        ("2. Term. This Agreement shall commence on the date hereof and continue until December 31, 2020.", "12/31/20"),
        ("2. Term. The term of this Agreement will begin on the date hereof and will end the later of (i) "
         "June 15, 2019 or (ii) delivery of all Units.", "6/15/19"),
        ("2. The promotion shall begin on June 1, 2015 and shall terminate June 1, 2016 (herein \"Term\").", "6/1/16"),
        ('2. "Contract Period" means the period commencing on January 1, 2016 and concluding December 31, 2018, '
         "unless terminated sooner.", "12/31/18"),
        # a duration from the agreement's date
        ("2. The term of this Agreement is five (5) years unless terminated earlier.", "3/3/20"),
        ("2. Unless terminated earlier, this Agreement shall terminate on the date three (3) years from the "
         "Effective Date.", "3/3/18"),
        ("2. This contract shall remain in effect initially for the two (2) year term from the date signed.", "3/3/17"),
        ("2. This Agreement shall expire on the later of (i) four (4) years from the date hereof, or (ii) "
         "completion of the Services.", "3/3/19"),
    ],
)
def test_expiration_from_a_stated_date_or_a_duration(clause, expiration):
    assert_found(OPENING + clause + FILLER, "expiration_date", expiration)


def test_a_range_inside_the_term_is_not_its_end():
    text = (OPENING + "2. Converge shall pay each installment during the Initial Term (April 2015 through "
            "March 2016).\n3. The initial period of this Agreement (the \"Initial Term\") shall commence upon "
            "the date hereof and continue until March 31, 2017." + FILLER)
    assert answers_of(text, "expiration_date") == {"March 31, 2017"}


def test_a_term_that_starts_on_the_first_names_its_last_day():
    text = (OPENING + "2. The term of this Agreement shall begin on January 1, 2016 and continue for an initial "
            "period of five (5) years unless earlier terminated." + FILLER)
    # either way of counting: the anniversary, or the last day of the term
    assert_found(text, "expiration_date", "1/1/21")
    assert_found(text, "expiration_date", "12/31/20")
    assert_found(text, "effective_date", "1/1/16")  # the day the term begins


def test_a_period_after_termination_is_not_the_term():
    text = (OPENING + "2. The license in this Section shall remain in effect during the term of this Agreement "
            "and for a period of nine (9) months after termination of this Agreement.\n3. The term of this "
            "Agreement shall commence on the date hereof and shall continue in full force and effect for an "
            "initial period of two (2) years." + FILLER)
    assert_found(text, "initial_term", "2 years")
    assert_found(text, "expiration_date", "3/3/17")


def test_a_term_counted_from_another_event_is_not_dated():
    text = (OPENING + "2. This Agreement shall continue in force for three years from the Launch Date (the "
            "\"Initial Term\") unless earlier terminated." + FILLER)
    assert_found(text, "initial_term", "3 years")
    assert not answers_of(text, "expiration_date")


def test_effective_date_defaults_to_the_agreement_date():
    text = ("This Intellectual Property Agreement is entered into in Shenzhen on February 08, 2011 between "
            "Alder Works, Inc. (\"Alder\") and Birch Labs LLC (\"Birch\")." + FILLER)
    [answer] = answers_of(text, "effective_date")
    assert answer_matches(answer, "2/8/11", "effective_date") and "no other effective date" in answer


@pytest.mark.parametrize(
    "clause, notice",
    [
        ("3. The Agreement shall automatically renew for successive one year additional terms unless "
         "terminated by either party at least six months prior to the expiration of the then-current term.",
         "6 months"),
        ("3. After the Initial Term, the Agreement may be extended on a yearly basis at Alder's sole "
         "discretion, with renewal notice to be provided no later than twelve (12) months prior to the "
         "expiry of any yearly extension.", "12 months"),
    ],
)
def test_renewal_notice_without_notice_of_non_renewal(clause, notice):
    assert_found(OPENING + clause + FILLER, "renewal_notice", notice)


@pytest.mark.parametrize(
    "clause, renewal",
    [
        ("3. This Agreement shall be for a term of thirty (30) years from the Effective Date, which shall "
         "automatically renew from year-to-year thereafter unless terminated by a Party.", "successive 1 year"),
        ("3. Thereafter, this Agreement shall renew only upon the mutual written agreement of the parties for "
         "up to three additional renewal terms of one year each.", "1 year"),
        # a period named by an adjective
        ("3. Extension of Term. This Agreement will extend automatically for monthly periods unless either "
         "party notifies the other in writing at least thirty (30) days before the end of the then current term.",
         "successive 1 month"),
        ("3. This Agreement shall renew for successive annual terms unless terminated.", "successive 1 year"),
    ],
)
def test_renewal_terms_in_other_words(clause, renewal):
    assert_found(OPENING + clause + FILLER, "renewal_term", renewal)
    # the gloss "(successive one-month terms)" is not the text's words: marked derived, curation keeps it
    pairs, chunks = generate([(DOC, OPENING + clause + FILLER)])
    kept, _ = curate(pairs, chunks, 300, 300, 0.95)
    assert any(answer_matches(p.answer, renewal, "renewal_term") for p in kept if p.field == "renewal_term")


def test_extractors_run_in_a_fixed_order_and_ids_count_within_a_field():
    from docfinetune.build.generators.rules import EXTRACTORS

    names = [name for name, _ in EXTRACTORS]
    assert len(set(names)) == len(names)
    assert names.index("initial_term") < names.index("expiration_date")  # it builds on the term
    pairs, _ = generate([(DOC, CONTRACT)])
    by_field: dict[str, set[int]] = {}
    for p in pairs:
        by_field.setdefault(p.field, set()).add(int(p.fact_id.rsplit(":", 1)[1]))
    for field_name, indexes in by_field.items():
        assert min(indexes) == 0, field_name


def test_parties_with_the_clause_that_names_them_together():
    opening = ('This Licence Agreement is made as of May 2, 2016 by and between Harrowgate Mills, LLC, a '
               'Maine limited liability company ("Harrowgate"), and Tessel Optics, Inc., a Utah corporation '
               '(the "Company"). Harrowgate and the Company are sometimes referred to herein as a "Party" and '
               'collectively as the "Parties".\n\nRECITALS\n')
    expected = ('Harrowgate Mills, LLC ("Harrowgate"); Tessel Optics, Inc. ("Company"); (Harrowgate and the '
                'Company are sometimes referred to herein as a "Party" and collectively as the "Parties")')
    assert_found(opening + FILLER, "parties", expected)


def test_parties_introduction_as_written_keeps_descriptors_of_the_name():
    opening = ('This Agreement is made on June 1, 2012 between Corvane Freight Ltd. ("Corvane") and Lindqvist '
               'Haulage Ltd., a subsidiary of Brightwater Logistics Inc. ("Lindqvist").\n\nWHEREAS\n')
    assert_found(opening + FILLER, "parties",
                 'Corvane Freight Ltd. ("Corvane"); Lindqvist Haulage Ltd. a subsidiary of Brightwater Logistics Inc.')
    intro = [a for a in answers_of(opening + FILLER, "parties") if "subsidiary" in a]
    assert intro and all(a in re.sub(r"\s+", " ", opening) for a in intro)


@pytest.mark.parametrize(
    "clause, expected",
    [
        # a term that ends on an anniversary of the effective date
        ("3. Term. The term of this Agreement will commence upon the Effective Date and will continue until "
         "the fourth (4th) anniversary of the Effective Date, unless earlier terminated.", "3/3/19"),
        # "the Effective Date through <date>": the end of the term, not a range of dates
        ("3. Term. The initial term of this Agreement is the Effective Date through June 30, 2018.", "6/30/18"),
        # the term of an agreement named by its initials
        ("3. The term of this MSA shall commence on April 1, 2015 and ends at March 31, 2020.", "3/31/20"),
        # a duration named as the term in a sentence about something else
        ("3. Term. Supplier's engagement shall commence on the Effective Date and shall continue for two years "
         'thereafter (the "Initial Term").', "3/3/17"),
        # an agreement that says it commences and remains in effect
        ("3. This Agreement commences on the date first above written, and will remain in effect for the period "
         "of three (3) years.", "3/3/18"),
    ],
)
def test_expiration_dates_in_other_words(clause, expected):
    assert_found(OPENING + clause + FILLER, "expiration_date", expected)


def test_a_survival_period_after_the_term_is_not_the_term():
    clause = ("3. Non-solicitation aside, during the Term of this Agreement, and for one year thereafter, "
              "Alder shall not market any services to Birch's customers.")
    found = answers_of(OPENING + clause + FILLER, "expiration_date")
    assert not any(answer_matches(a, "3/3/16", "expiration_date") for a in found), found


@pytest.mark.parametrize(
    "clause",
    [
        "3. This Agreement and the licence granted under it shall remain in effect perpetually as long as fees are paid.",
        "3. This Agreement shall apply from the Effective Date and remain in effect perpetually thereafter unless terminated.",
        "3. Either party may end this Agreement by thirty days' written notice to the other.",  # no term at all
    ],
)
def test_agreements_without_a_fixed_end(clause):
    assert_found(OPENING + clause + FILLER, "expiration_date", "perpetual")


@pytest.mark.parametrize(
    "clause, law",
    [
        ("9. This Agreement shall be governed by the law of California, U.S.A. and the arbitrators shall apply "
         "California law.", "California"),
        ("9. This Agreement shall be governed by the internal laws, and not by the laws regarding conflicts of "
         "laws, of the State of Oregon.", "Oregon"),
        ("9. This Agreement is controlled by the laws of the State of Idaho, and venue lies in Ada County.", "Idaho"),
        ("9. The performance of this Agreement will be governed by PRC Laws.", "People's Republic of China"),
        ("9. The interpretation of this Agreement shall be governed by the laws of PRC.", "People's Republic of China"),
    ],
)
def test_governing_law_in_other_words(clause, law):
    text = OPENING + "2. A provision unenforceable by any law is severed.\n" + clause + FILLER
    assert_found(text, "governing_law", law)
    assert not any(re.fullmatch(r"(?i)(?:the|any) law", a) for a in answers_of(text, "governing_law"))


def test_the_renewal_clause_is_preferred_over_other_extensions():
    clause = ("3. Force Majeure. A suspension shall not extend for a period longer than twenty-four (24) months.\n"
              "4. This Agreement shall be for a term of ten (10) years, which shall automatically renew from "
              "year-to-year thereafter unless terminated by a Party upon sixty (60) days' written notice.\n"
              "5. Upon expiration of the Initial Term, this Agreement will automatically renew for additional, "
              "successive two (2) year periods.")
    found = answers_of(OPENING + clause + FILLER, "renewal_term")
    assert len(found) == 1 and not any("twenty-four" in a for a in found), found


def test_renewal_clause_with_a_comma_before_the_period():
    clause = ("3. This Agreement will automatically renew for additional, successive five (5) year periods unless "
              "either Party gives notice.")
    assert_found(OPENING + clause + FILLER, "renewal_term", "successive 5 year")


@pytest.mark.parametrize(
    "clause, notice",
    [
        ("3. This Agreement shall be automatically renewed for successive two (2) year terms until either Party "
         "provides written notice of non-renewal no later than sixty (60) days prior the end of the Initial Term.",
         "60 days"),
        ("3. The term shall automatically renew for one year periods. This Agreement will be terminated as of the "
         "end of the Term or any renewal term by either Party giving written notice of non-renewal no less than "
         "90 prior to the applicable expiry date.", "90 days"),
    ],
)
def test_renewal_notice_with_missing_words(clause, notice):
    assert_found(OPENING + clause + FILLER, "renewal_notice", notice)


def test_a_fee_ends_on_its_last_digit_not_the_comma_after_it():
    clause = ("3. Fees. The monthly subscription fee from the Effective Date until Go-Live shall be $24,250, "
              "prorated for partial months, and $1,250,000.00 thereafter.")
    found = answers_of(OPENING + clause + FILLER, "fees")
    amounts = [part.strip() for a in found for part in a.split(";")]
    assert "$24,250" in amounts and not any(part.endswith(",") for part in amounts), found
