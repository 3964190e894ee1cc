"""Rule-made restatements of the reading text (docfinetune.build.augment)."""

from __future__ import annotations

import re
from collections import Counter

from docfinetune.build.augment import augmented_records, parse_aliases, split_sentences, title_case
from docfinetune.core.records import Chunk, Document

DOC = Document("supply", "MASTER SUPPLY AGREEMENT", "supply.pdf")
TEXTS = [
    ("", 'MASTER SUPPLY AGREEMENT\n\nThis Master Supply Agreement (this "Agreement") is entered '
         'into as of March 5, 2023 (the "Effective Date") by and between ORCHARD VALE FOODS, INC., '
         'a Delaware corporation ("Supplier"), and Brightwater Grocers LLC, an Ohio limited liability '
         'company (the "Buyer"). Supplier and Buyer are each a "Party".'),
    ("ARTICLE 4 — PAYMENT",
     "ARTICLE 4 — PAYMENT\n\n4.1 Invoices. Supplier shall invoice Buyer monthly. Buyer shall pay "
     "each invoice within thirty (30) days after receipt. Late amounts bear interest at 1.5% per "
     "month.\n\n4.2 Price. The price is $12,500.00 per shipment, as set out in Schedule B."),
    ("9. TERMINATION",
     "9.2 Termination for Cause. Either Party may terminate this Agreement upon written notice if "
     "the other Party fails to cure a material breach within fifteen (15) days. Upon termination, "
     "Buyer shall pay Supplier all undisputed amounts due as of the termination date. The Supplier "
     "shall return all Buyer materials by June 30, 2024."),
    ("TABLE OF CONTENTS",
     "TABLE OF CONTENTS\n\n1. Definitions . . . . . . . . . 1\n4. Payment . . . . . . . . . . 3"),
]


def make_chunks() -> list[Chunk]:
    chunks, pos = [], 0
    for i, (heading, text) in enumerate(TEXTS):
        chunks.append(Chunk(f"supply:{i:04d}", "supply", i, i + 1, i + 1, pos, pos + len(text), heading, text))
        pos += len(text) + 2
    return chunks


def output_sentences(text: str) -> list[str]:
    return [s for para in text.split("\n\n") for s in split_sentences(para)]


def digit_tokens(text: str) -> Counter:
    tokens = (t.strip(".,;:()\"“”'") for t in re.findall(r"\S*\d\S*", text))
    return Counter(t for t in tokens if any(c.isdigit() for c in t))


def records(variants: int = 3, seed: int = 7) -> list[dict]:
    return augmented_records([DOC], make_chunks(), variants, seed)


def test_aliases_found_with_full_names():
    text = "\n\n".join(t for _, t in TEXTS)
    aliases = {a.alias: a for a in parse_aliases(text)}
    assert aliases["Supplier"].full == "Orchard Vale Foods, Inc."  # title-cased, suffix kept
    assert aliases["Supplier"].party and aliases["Buyer"].party
    assert aliases["Buyer"].full == "Brightwater Grocers LLC"
    assert aliases["Effective Date"].full == "March 5, 2023"
    assert "Party" not in aliases and "Agreement" not in aliases  # generic labels skipped


def test_title_case_keeps_suffixes_and_acronyms():
    assert title_case("QUILLMERE DATA SYSTEMS, INC.") == "Quillmere Data Systems, Inc."
    assert title_case("VELTRANE COLD CHAIN LOGISTICS, LLC") == "Veltrane Cold Chain Logistics, LLC"
    assert title_case("SHBV (HONG KONG) LTD") == "SHBV (Hong Kong) Ltd."
    assert title_case("Already Mixed Case Corp.") == "Already Mixed Case Corp."


def test_every_sentence_with_an_alias_carries_the_full_name():
    for rec in records():
        for sentence in output_sentences(rec["text"]):
            # (the quoted label in the defining sentence itself is left as written)
            if re.search(r"(?<![\"“])\bSupplier\b(?![\"”])", sentence):
                assert "Orchard Vale Foods, Inc." in sentence, sentence
            if re.search(r"(?<![\"“])\bBuyer\b(?![\"”])", sentence):
                assert "Brightwater Grocers LLC" in sentence, sentence
    payment = [r for r in records() if r["chunk_id"] == "supply:0001"]
    assert all("Orchard Vale Foods, Inc." in r["text"] for r in payment)
    assert all("ORCHARD" not in r["text"] for r in payment)


def test_every_sentence_names_document_and_section():
    for rec in records():
        for sentence in output_sentences(rec["text"]):
            assert "Master Supply Agreement" in sentence, sentence
            assert re.search(r"Section \d|Article 4|preamble|cover page", sentence), sentence
    termination = [r["text"] for r in records() if r["chunk_id"] == "supply:0002"]
    # the section number comes from the clause itself ("9.2"), not only the heading ("9.")
    assert all(t.count("Section 9.2") == 3 for t in termination)


def test_numbers_dates_and_amounts_preserved():
    chunks = {c.chunk_id: c for c in make_chunks()}
    recs = records(variants=4)
    assert recs
    for rec in recs:
        source = digit_tokens(chunks[rec["chunk_id"]].text)
        missing = source - digit_tokens(rec["text"])
        assert not missing, (rec["chunk_id"], rec["variant"], missing)
    payment = [r["text"] for r in recs if r["chunk_id"] == "supply:0001"]
    for text in payment:
        for fact in ("thirty (30) days", "1.5% per month", "$12,500.00 per shipment", "Schedule B"):
            assert fact in text


def test_sentence_order_differs_between_variants():
    payment = [r["text"] for r in records(variants=3) if r["chunk_id"] == "supply:0001"]
    orders = []
    for text in payment:
        marks = ["monthly", "thirty (30) days", "1.5% per month"]
        orders.append(tuple(sorted(marks, key=text.index)))
    assert len(set(orders)) >= 2, orders


def test_deterministic_for_a_seed_and_variants_differ():
    assert records(seed=3) == records(seed=3)
    assert records(seed=3) != records(seed=4)
    by_chunk: dict[str, list[str]] = {}
    for rec in records(variants=4):
        by_chunk.setdefault(rec["chunk_id"], []).append(rec["text"])
    for texts in by_chunk.values():
        assert len(set(texts)) == len(texts)


def test_variant_count_shape_and_order():
    for variants in (1, 2, 4):
        recs = records(variants=variants)
        keys = [(r["chunk_id"], r["variant"]) for r in recs]
        assert keys == sorted(keys)
        # the table of contents chunk is skipped; every other chunk has every variant
        assert keys == [(f"supply:{i:04d}", k) for i in range(3) for k in range(1, variants + 1)]
        for rec in recs:
            assert set(rec) == {"text", "doc_id", "chunk_id", "page_start", "page_end", "variant"}
            assert rec["doc_id"] == "supply"
    assert records(variants=0) == []


def test_length_stays_proportionate():
    chunks = make_chunks()[:3]
    source = sum(len(c.text) for c in chunks)
    out = sum(len(r["text"]) for r in records(variants=1))
    assert 1.2 * source < out < 3.0 * source


def test_sentence_split_respects_abbreviations_and_clause_numbers():
    text = ("Acme Inc. shall pay under Sec. 4.2 of Agreement No. 7. See the U.S. rules, e.g. the "
            "Code, and clause (a) hereof. Payment is due in 14.5 days. All done.")
    assert split_sentences(text) == [
        "Acme Inc. shall pay under Sec. 4.2 of Agreement No. 7.",
        "See the U.S. rules, e.g. the Code, and clause (a) hereof.",
        "Payment is due in 14.5 days.",
        "All done.",
    ]
