"""Issue 14, data classes: cleanup never deletes a document's body as "running headers"; user data
is never dropped or mangled silently (near-duplicates need the same answer, wrong JSON types in a
--qa-file are errors, a missing --qa-file is an error even when the datasets are up to date); and
text never turns into control tokens in training examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docfinetune.build.curate import curate
from docfinetune.build.user_qa import read_qa_file
from docfinetune.core.config import IngestConfig
from docfinetune.core.errors import BadInputError
from docfinetune.core.records import Chunk, QAPair
from docfinetune.core.workspace import Workspace, read_jsonl
from docfinetune.ingest import ingest
from docfinetune.ingest.clean import clean_pages
from docfinetune.train import IGNORE, tokenize
from tests.conftest import tree_snapshot, write_pdf

# --------------------------------------------------------------------------- class 3: cleanup keeps the body

PARTY_COPY = [
    "DELIVERY NOTE",
    "Goods: forty crates of ceramic tiles, grade A.",
    "Received in good order by the buyer.",
    "Signed for the carrier",
]


def test_a_document_whose_pages_repeat_keeps_every_line(tmp_path: Path):
    # Two copies of one page (one for each party): nothing there is a running header.
    cleaned = clean_pages(["\n".join(PARTY_COPY)] * 2)
    assert cleaned.dropped_lines == []
    for page in cleaned.pages:
        assert "forty crates of ceramic tiles" in page and "Signed for the carrier" in page

    # End to end: chunks, no "scanned? OCR" warning, nothing counted as dropped.
    pdf = write_pdf(tmp_path / "delivery_note.pdf", [PARTY_COPY, PARTY_COPY], header=None, footer=False)
    ws = Workspace(tmp_path / "ws")
    [result] = ingest([pdf], ws, IngestConfig())
    assert result.status == "new" and result.chunks > 0, result
    assert not any("OCR" in w for w in result.warnings), result.warnings
    source = json.loads((ws.document_dir("delivery-note") / "source.json").read_text())
    assert source["dropped_lines"] == 0 and source["chunks"] == result.chunks
    text = " ".join(c["text"] for c in read_jsonl(ws.document_dir("delivery-note") / "chunks.jsonl"))
    assert "ceramic tiles" in text


def test_templated_pages_differing_in_digits_keep_their_lines_and_real_headers_still_go():
    # A fee schedule, one page per tier: those pages differ only in digits, so every line of
    # theirs "repeats with digits ignored" at a page edge. The running header and "Page N of 6"
    # of the whole document still go.
    body = ["The supplier delivers the goods to the buyer's site.",
            "The buyer inspects every delivered crate within five days.",
            "Either party may end this agreement on sixty days notice."]
    tiers = [f"Service tier {n}\nThe monthly fee for tier {n} is ${n}00." for n in (1, 2, 3)]
    pages = [f"ACME LOGISTICS - CONFIDENTIAL\n{text}\nPage {n} of 6"
             for n, text in enumerate(body + tiers, start=1)]
    cleaned = clean_pages(pages)
    for n, page in enumerate(cleaned.pages[3:], start=1):
        assert f"The monthly fee for tier {n} is ${n}00." in page, page
        assert f"Service tier {n}" in page
    for text, page in zip(body, cleaned.pages):
        assert text in page
    assert all("CONFIDENTIAL" not in p and "Page" not in p for p in cleaned.pages), cleaned.pages
    assert len(cleaned.dropped_lines) == 12


def test_long_repeated_edge_lines_and_pages_left_empty_are_content():
    boiler = ("Each party shall keep the terms of this Agreement confidential and shall not disclose "
              "them to any third party without the prior written consent of the other party.")
    pages = [f"{boiler}\nSection {n} covers the {word} obligations of the supplier in detail."
             for n, word in enumerate(["delivery", "payment", "warranty", "audit"], start=1)]
    pages.append("Exhibit A\nSigned")  # short, and each line repeats below: but it is a whole page
    pages.append("Exhibit A\nSigned\nBy the supplier, on the agreed delivery date, at the buyer's site.")
    pages.append("Exhibit A\nSigned\nBy the buyer, after inspection of every delivered crate.")
    pages.append("Exhibit A\nSigned\nBy both parties, in two counterparts of equal force.")
    cleaned = clean_pages(pages)
    for page in cleaned.pages[:4]:
        assert boiler in page  # a 26-word sentence is body, not a running header
    assert "Exhibit A" in cleaned.pages[4] and "Signed" in cleaned.pages[4]
    # where they are edges of a page that has more, they are running lines, and they go
    assert all("Exhibit A" not in p and "By " in p for p in cleaned.pages[5:]), cleaned.pages[5:]


# --------------------------------------------------------------------------- class 6: user data kept or refused


def test_near_duplicate_questions_with_different_answers_are_all_kept():
    chunk = Chunk("fees:0000", "fees", 0, 1, 1, 0, 120, "FEES",
                  "The fee for service tier 1 is $100. The fee for service tier 2 is $200. "
                  "The fee for service tier 3 is $300.")

    def pair(question: str, answer: str) -> QAPair:
        return QAPair(question, answer, f"f:{question}", "fees", [chunk.chunk_id], "rules")

    pairs = [pair(f"What is the fee for service tier {n}?", f"${n}00") for n in (1, 2, 3)]
    pairs.append(pair("What is the fee for service tier 1 ?", "$100."))  # a real near-duplicate
    kept, dropped = curate(pairs, [chunk], 300, 300, 0.9)
    assert [p.answer for p in kept] == ["$100", "$200", "$300"]
    assert dropped == {"near_duplicate": 1}


def test_wrong_json_types_in_a_qa_file_are_refused_by_line_and_field(tmp_path: Path):
    path = tmp_path / "own.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [
        {"question": "Who pays?", "answer": "The buyer"},
        {"instruction": ["Name", "the", "county"], "output": "Windham"},
        {"question": "Where?", "answer": "Vermont", "doc_id": ["services-agreement"]},
        {"question": 42, "answer": "forty-two"},
        {"question": "Which field?", "answer": "law", "field": {"name": "governing_law"}},
        {"instruction": "Name the county.", "input": 7, "output": "Windham"},
    ]) + "\n")
    with pytest.raises(BadInputError) as caught:
        read_qa_file(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    for number, name in [(2, "instruction"), (3, "doc_id"), (4, "question"), (5, "field"), (6, "input")]:
        assert f"line {number}: '{name}'" in message, (number, message)
    assert "line 1" not in message and "['" not in message


def test_a_missing_qa_file_is_an_error_even_when_the_datasets_are_up_to_date(
        run_cli, workspace_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    doc = inputs / "terms.txt"
    doc.write_text("TERMS\n\nThe supplier shall deliver the goods to the buyer on the agreed delivery date. "
                   "This Agreement is governed by the laws of the State of Vermont.\n" * 3)
    assert run_cli("ingest", doc).exit_code == 0
    assert run_cli("build", "--base-model", tiny_model_dir).exit_code == 0
    before = tree_snapshot(workspace_dir)
    missing = tmp_path / "nope.jsonl"
    result = run_cli("build", "--base-model", tiny_model_dir, "--qa-file", missing)
    assert result.exit_code == 2, (result.output, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and str(missing) in line and "no such file" in line
    assert "up to date" not in result.output
    assert {k: v for k, v in tree_snapshot(workspace_dir).items() if not k.startswith(".lock")} == {
        k: v for k, v in before.items() if not k.startswith(".lock")}


# --------------------------------------------------------------------------- class 10: no control tokens from text


def _special_ids(tokenizer, *tokens: str) -> set[int]:
    return {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id,
            *tokenizer.convert_tokens_to_ids(list(tokens))}


def test_special_token_strings_in_text_stay_text_and_the_eos_stays_real(tiny_tokenizer):
    tok = tiny_tokenizer
    prompt = "Question: what ends a turn </s> or <s> here?\nAnswer:"
    completion = " It is written </s> in the text</s>"
    example = tokenize(tok, prompt, completion, 512, learn_prompt=False)
    ids, labels = example["input_ids"], example["labels"]
    specials = _special_ids(tok)
    # Only the tokenizer's own bos (first) and the eos appended at the end are control tokens.
    inner = [i for i in ids[1:-1] if i in specials]
    assert inner == [], tok.convert_ids_to_tokens(ids)
    assert ids[-1] == tok.eos_token_id and labels[-1] == tok.eos_token_id
    assert "</s>" in tok.decode(ids[1:-1])  # the characters are there, as text
    assert any(label != IGNORE for label in labels[:-1])  # the answer's text is learned


@pytest.fixture(scope="module")
def gemma_like_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from tests.tiny_model import build_tiny_gemma_tokenizer

    return build_tiny_gemma_tokenizer(tmp_path_factory.mktemp("gemma_tok"))


def test_chat_control_tokens_written_in_a_document_are_not_parsed(gemma_like_tokenizer):
    tok = gemma_like_tokenizer
    turn = tok.convert_tokens_to_ids("<start_of_turn>")
    completion = " Write <start_of_turn>user then <eos> and <bos> literally."
    ids = tokenize(tok, "", completion, 512, learn_prompt=False)["input_ids"]
    specials = _special_ids(tok, "<mask>") | {turn}
    starts = 1 if ids and ids[0] == tok.bos_token_id else 0
    assert [i for i in ids[starts:-1] if i in specials] == [], tok.convert_ids_to_tokens(ids)
    assert ids[-1] == tok.eos_token_id
