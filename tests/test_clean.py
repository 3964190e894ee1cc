"""Cleanup rules on hand-made page text (the PDF path is covered in test_ingest)."""

from docfinetune.ingest.clean import clean_pages, unwrap_paragraphs

FULL = 80


def test_shouted_paragraph_stays_one_paragraph_and_is_no_heading():
    lines = [
        "11.1 Exclusion of Damages. EXCEPT FOR THE EXCLUDED CLAIMS, IN NO EVENT SHALL EITHER",
        "PARTY BE LIABLE FOR ANY INDIRECT, INCIDENTAL, CONSEQUENTIAL OR SPECIAL DAMAGES",
        "ARISING OUT OF OR RELATING TO THIS AGREEMENT.",
        "11.2 Cap. The total liability of each party is limited to the fees paid.",
    ]
    paragraphs = unwrap_paragraphs(lines, FULL).split("\n\n")
    assert len(paragraphs) == 2
    assert paragraphs[0].endswith("RELATING TO THIS AGREEMENT.")


def test_wrapped_cross_reference_is_not_an_article_heading():
    lines = ['(q) "Term" means the Initial Term with any Renewal Terms, each as defined in',
             "Article V.", "(r) \"Territory\" means the State of Vermont."]
    paragraphs = unwrap_paragraphs(lines, FULL).split("\n\n")
    assert paragraphs[0].endswith("as defined in Article V.") and len(paragraphs) == 2


def test_article_number_joins_its_title():
    assert unwrap_paragraphs(["ARTICLE IV", "PAYMENT TERMS", "4.1 Fees. The fees are due."], FULL) == \
        "ARTICLE IV PAYMENT TERMS\n\n4.1 Fees. The fees are due."


def test_real_hyphens_stay_and_layout_hyphens_go():
    pages = ["The decision-\nmaking body meets monthly and records each decision making step.",
             "Notice of termi-\nnation is due; termination is final. This is a decision-making rule."]
    text = "\n\n".join(clean_pages(pages).pages)
    assert "decision-making body" in text and "notice of termination is due".lower() in text.lower()


def test_ligatures_quotes_and_spaces_are_normalized():
    [page] = clean_pages(["The \ufb01rst \u201cParty\u201d\u00a0\u00a0pays   $5."]).pages
    assert page == 'The first "Party" pays $5.'


def test_section_numbers_glued_to_text_get_their_space_back():
    [page] = clean_pages(["10.INTELLECTUAL PROPERTY\n10.1Except as agreed, all rights stay.\n"
                          "(i)information that is public; and 3.5 mm of margin."]).pages
    assert page.startswith("10. INTELLECTUAL PROPERTY\n\n10.1 Except as agreed")
    assert "(i) information that is public" in page and "3.5 mm" in page


def test_deep_section_numbers_glued_to_lowercase_text():
    [page] = clean_pages(["11.2.1keep it secret; and\n11.3A party may disclose it.\n1.5mm margins apply."]).pages
    assert "11.2.1 keep it secret" in page and "11.3 A party may" in page and "1.5mm" in page
