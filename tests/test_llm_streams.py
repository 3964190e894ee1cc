"""The LLM paraphrase and rewrite streams against a scripted loopback endpoint, and end to end with
the tiny random Mistral."""

from __future__ import annotations

import json
import re

import pytest

from docfinetune.build.generators.llm import streams
from docfinetune.build.generators.llm.client import ReplyClient
from docfinetune.build.generators.llm.streams import (
    contains_answer,
    paraphrase_questions,
    parse_passages,
    parse_questions,
    rewrite_sections,
    section_groups,
)
from docfinetune.core.config import LLMQAConfig
from docfinetune.core.errors import DocfinetuneError
from docfinetune.core.records import Chunk, Document, QAPair
from tests.test_qa_llm import FakeEndpoint

DOC = Document("supply", "SUPPLY AGREEMENT", "supply.pdf")
T = "SUPPLY AGREEMENT"

LAW = ("12. Governing Law. This Agreement is governed by the laws of the State of Vermont. "
       "Buyer shall pay Supplier an annual fee of $25,000.")
TERM = "3. Term. The Initial Term is two (2) years from the Effective Date."
WARRANTY = "6. Warranty. Supplier warrants the Products for twelve (12) months from delivery."
NOTICES = "5. Notices. Notices shall be in writing."


def chunk(i: int, heading: str, start: int, text: str, page_start: int = 1, page_end: int = 1) -> Chunk:
    return Chunk(f"supply:{i:04d}", "supply", i, page_start, page_end, start, start + len(text), heading, text)


# The law section is split in two overlapping chunks (the second repeats 'of Vermont. ').
CHUNKS = [
    chunk(0, "12. Governing Law", 0, LAW[:86], 1, 1),
    chunk(1, "12. Governing Law", 74, LAW[74:], 1, 2),
    chunk(2, "3. Term", 200, TERM, 2, 2),
    chunk(3, "5. Notices", 300, NOTICES, 3, 3),
    chunk(4, "6. Warranty", 400, WARRANTY, 3, 3),
]


def pair(fact: int, question: str, answer: str, field: str, source: int) -> QAPair:
    return QAPair(question=question, answer=answer, fact_id=f"supply:rules:{fact}", doc_id="supply",
                  source_chunk_ids=[f"supply:{source:04d}"], generator="rules", field=field)


PAIRS = [
    pair(0, f"Which law governs the {T}?", "State of Vermont", "governing_law", 0),
    pair(1, f"What annual fee does the {T} set?", "$25,000", "fee", 1),
    pair(0, f"What state's law applies to the {T}?", "State of Vermont", "governing_law", 0),
    pair(2, f"How long is the Initial Term of the {T}?", "two (2) years", "term", 2),
    pair(3, f"How long is the warranty in the {T}?", "twelve (12) months", "warranty", 4),
]

# Answer -> the paraphrase reply ("" : a 500 on the first attempt, then the reply).
PARAPHRASES = {
    "State of Vermont": json.dumps([
        f"Under which jurisdiction's laws is the {T} construed?",
        f"Which body of law controls the {T}?",
        f"Is the {T} governed by the laws of the state of  vermont?",  # holds the answer
        f"which law governs the  {T}",  # an existing phrasing again
        f"Which body of law controls the {T}?",  # repeated in the reply
        "",
        "   ",
        f"What governing law does the {T} name?",
        f"The {T} is subject to the law of which state?",  # beyond per_fact=3
    ]),
    "$25,000": (f"Here are the new questions:\n1. How much is the annual fee under the {T}?\n"
                f"2. What yearly amount does Buyer pay Supplier under the {T}?\n"
                f"3. Is the fee $25,000 in the {T}?\nLet me know if you need more?"),
    "two (2) years": "I am sorry, I cannot help with that.",
    "twelve (12) months": json.dumps({"questions": [f"For what period does Supplier warrant the Products in the {T}?"]}),
}

GOOD_FEE = (f"Under the {T}, section 12. Governing Law, Buyer shall pay Supplier an annual fee of $25,000; "
            "Buyer is the party that pays and Supplier the party that is paid.")
GOOD_LAW = (f"The {T} states in section 12. Governing Law that the {T} is governed by the laws of the "
            "State of Vermont.")
# Section heading -> the rewrite reply.
REWRITES = {
    "12. Governing Law": (
        "Entities: Buyer; Supplier; $25,000; State of Vermont\n"
        + json.dumps([
            {"about": ["Buyer", "Supplier"], "text": GOOD_FEE},
            {"about": ["State of Vermont"], "text": "@LAW@"},
            {"about": ["Buyer"], "text": f"Under the {T}, Buyer shall pay Supplier an annual fee of $30,000 in the State of Vermont."},
            {"about": ["Vermont"], "text": "Vermont."},
            {"about": ["Buyer", "Supplier"], "text": GOOD_FEE.upper()},
        ]).replace('"@LAW@"', '"' + GOOD_LAW.replace(" that the", "\nthat the") + '"')  # a raw line break
    ),
    "3. Term": "```json\n" + json.dumps({"passages": [
        f"The {T}, section 3. Term: the Initial Term of the {T} is two (2) years from the Effective Date.",
        f"The Effective Date of the {T} starts the Initial Term, which in section 3. Term lasts two (2) years.",
    ]}) + "\n```",
    "5. Notices": "Notices are important.",
    "6. Warranty": "Entities: Supplier; Products\nPassage 1 (Supplier):\n"
                   f"In section 6. Warranty of the {T}, Supplier warrants the Products for twelve (12) months "
                   "from delivery.\n\nPassage 2:\nshort",
}


class StreamEndpoint(FakeEndpoint):
    """Answers paraphrase and rewrite prompts from the tables above; `fail_on` (answers or headings)
    gets a 400; the warranty fact's first attempt gets a 500."""

    def __init__(self, fail_on: set[str] | None = None):
        super().__init__()
        self.fail_on = fail_on or set()

    def answer(self, path: str, body: dict, count: int) -> tuple[int, dict]:
        if count > 60:
            return 400, {"error": {"message": "too many requests for one test"}}
        prompt = body["messages"][-1]["content"]
        asked = re.search(r"^Answer: (.*)$", prompt, re.M)
        key = asked.group(1) if asked else re.search(r"^Section: (.*)$", prompt, re.M).group(1)
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            first = self.attempts[key] == 1
        if key in self.fail_on:
            return 400, {"error": {"message": "bad request"}}
        if key == "twelve (12) months" and first:
            return 500, {"error": {"message": "internal error"}}
        content = PARAPHRASES[key] if asked else REWRITES[key]
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


@pytest.fixture
def endpoint():
    with StreamEndpoint() as server:
        yield server


def client_for(url: str, cache, **overrides) -> ReplyClient:
    values = dict(url=url, api_model="fake-7b", api_key_env="", batch_size=3, max_new_tokens=256, retries=2,
                  backoff_s=0.01, timeout_s=5.0)
    return ReplyClient(LLMQAConfig(**{**values, **overrides}), cache)


def prompts_sent(server: FakeEndpoint) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in server.requests]


# --------------------------------------------------------------------------- paraphrases


def test_paraphrases_keep_the_fact_and_drop_leaks_duplicates_and_empties(endpoint, tmp_path):
    stats: dict = {}
    out = paraphrase_questions(PAIRS, [DOC], client_for(endpoint.url, tmp_path / "cache"), per_fact=3,
                               chunks=CHUNKS, stats=stats)

    by_fact: dict[str, list[QAPair]] = {}
    for p in out:
        by_fact.setdefault(p.fact_id, []).append(p)
    assert [p.question for p in by_fact["supply:rules:0"]] == [
        f"Under which jurisdiction's laws is the {T} construed?",
        f"Which body of law controls the {T}?",
        f"What governing law does the {T} name?",
    ]
    assert [p.question for p in by_fact["supply:rules:1"]] == [  # one question per line, prose left out
        f"How much is the annual fee under the {T}?",
        f"What yearly amount does Buyer pay Supplier under the {T}?",
    ]
    assert "supply:rules:2" not in by_fact  # an unreadable reply
    assert len(by_fact["supply:rules:3"]) == 1
    assert [p.fact_id for p in out] == sorted(p.fact_id for p in out)  # fact order, not finish order

    originals = {p.fact_id: p for p in PAIRS}
    for p in out:
        src = originals[p.fact_id]
        assert (p.answer, p.doc_id, p.source_chunk_ids, p.field) == (src.answer, src.doc_id, src.source_chunk_ids,
                                                                      src.field)
        assert p.generator == "llm_paraphrase" and p.meta["of_generator"] == "rules"
        assert not contains_answer(p.question, p.answer)
    assert [p.meta["paraphrase"] for p in by_fact["supply:rules:0"]] == [0, 1, 2]

    assert stats["facts"] == 4 and stats["skipped"] == 1 and stats["pairs"] == len(out) == 6
    assert stats["dropped_answer"] == 2 and stats["dropped_duplicate"] == 2 and stats["dropped_empty"] == 2
    assert stats["dropped_extra"] == 1
    assert stats["requests"] == 5 and stats["retries"] == 1 and stats["cache_hits"] == 0
    assert stats["repaired"] == 2  # the numbered lines and the wrapper object

    # One prompt per fact, with the phrasings so far, the answer, the document and the source text.
    law = next(p for p in prompts_sent(endpoint) if "Answer: State of Vermont" in p)
    assert f"- Which law governs the {T}?\n- What state's law applies to the {T}?" in law
    assert "Document: SUPPLY AGREEMENT" in law and "Write 3 new questions" in law
    assert "governed by the laws of the State of Vermont" in law  # the source snippet


def test_paraphrases_are_cached_and_a_prompt_change_reasks_only_its_stream(endpoint, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = paraphrase_questions(PAIRS, [DOC], client_for(endpoint.url, cache), per_fact=3)
    records = rewrite_sections([DOC], CHUNKS, client_for(endpoint.url, cache), rewrites=3)
    sent = len(endpoint.requests)

    stats: dict = {}
    client = client_for(endpoint.url, cache)
    again = paraphrase_questions(PAIRS, [DOC], client, per_fact=3, stats=stats)
    assert len(endpoint.requests) == sent and stats["requests"] == 0 and stats["cache_hits"] == 4
    assert [p.to_dict() for p in again] == [p.to_dict() for p in first]
    assert client.stats == {"requests": 0, "cache_hits": 4, "retries": 0}

    # Another per_fact is another prompt: asked again.
    other: dict = {}
    paraphrase_questions(PAIRS, [DOC], client_for(endpoint.url, cache), per_fact=2, stats=other)
    assert other["requests"] == 4 and other["cache_hits"] == 0

    # A new paraphrase prompt version re-asks the paraphrases only.
    monkeypatch.setattr(streams, "PARAPHRASE_VERSION", "llm-paraphrase-test")
    para: dict = {}
    paraphrase_questions(PAIRS, [DOC], client_for(endpoint.url, cache), per_fact=3, stats=para)
    assert para["cache_hits"] == 0 and para["requests"] == 4
    rew: dict = {}
    assert rewrite_sections([DOC], CHUNKS, client_for(endpoint.url, cache), rewrites=3, stats=rew) == records
    assert rew["cache_hits"] == 4 and rew["requests"] == 0


def test_paraphrases_resume_after_an_interrupted_run(tmp_path):
    cache = tmp_path / "cache"
    with StreamEndpoint(fail_on={"two (2) years"}) as server:
        with pytest.raises(DocfinetuneError, match="HTTP 400"):
            paraphrase_questions(PAIRS, [DOC], client_for(server.url, cache, batch_size=1), per_fact=3)
        # The replies that came in before the failure were kept (the next request may already have
        # been in flight when the failure stopped the run: it is kept too).
        kept = len(list(cache.glob("*.json")))
        assert kept in (2, 3)
        server.fail_on.clear()
        sent = len(server.requests)
        stats: dict = {}
        out = paraphrase_questions(PAIRS, [DOC], client_for(server.url, cache, batch_size=1), per_fact=3,
                                   stats=stats)
        assert stats["cache_hits"] == kept and stats["requests"] == len(server.requests) - sent
        asked = {re.search(r"^Answer: (.*)$", p, re.M).group(1) for p in prompts_sent(server)[sent:]}
        assert "two (2) years" in asked and len(asked) == 4 - kept  # only what was not cached
    assert len(out) == 6
    assert len(list(cache.glob("*.json"))) == 4


def test_paraphrases_of_nothing(endpoint, tmp_path):
    stats: dict = {}
    client = client_for(endpoint.url, tmp_path / "cache")
    assert paraphrase_questions([], [DOC], client, stats=stats) == []
    assert paraphrase_questions(PAIRS, [DOC], client, per_fact=0) == []
    assert stats["facts"] == 0 and not endpoint.requests


# --------------------------------------------------------------------------- rewrites


def test_rewrites_return_reading_records_per_section(endpoint, tmp_path):
    stats: dict = {}
    records = rewrite_sections([DOC], CHUNKS, client_for(endpoint.url, tmp_path / "cache"), rewrites=3, stats=stats)

    assert all(list(r) == ["text", "doc_id", "chunk_id", "page_start", "page_end", "variant"] for r in records)
    assert [(r["chunk_id"], r["variant"], r["page_start"], r["page_end"]) for r in records] == [
        ("supply:0000", "llm:1", 1, 2),  # the two law chunks make one section, pages 1-2
        ("supply:0000", "llm:2", 1, 2),
        ("supply:0002", "llm:1", 2, 2),
        ("supply:0002", "llm:2", 2, 2),
        ("supply:0004", "llm:1", 3, 3),
    ]
    assert records[0]["text"] == f"{T}\n12. Governing Law\n\n{GOOD_FEE}"
    assert records[1]["text"].endswith(GOOD_LAW)  # the line break inside the JSON string was repaired
    assert all(r["doc_id"] == "supply" for r in records)

    assert stats["sections"] == 4 and stats["skipped"] == 1  # the notices reply holds no passage
    assert stats["dropped_numbers"] == 1 and stats["dropped_short"] == 2 and stats["dropped_duplicate"] == 1
    assert stats["entities"] == 6 and stats["records"] == 5 and stats["requests"] == 4

    # The overlapping chunks reached the model once, as one text; the prompt asks for 3 passages.
    law = next(p for p in prompts_sent(endpoint) if "Section: 12. Governing Law" in p)
    assert f'Text:\n"""\n{LAW}\n"""' in law
    assert "Write 3 passages" in law and '("SUPPLY AGREEMENT")' in law

    plain = rewrite_sections([DOC], CHUNKS, client_for(endpoint.url, tmp_path / "cache"), rewrites=1,
                             with_context=False)
    assert plain[0]["text"] == GOOD_FEE and {r["variant"] for r in plain} == {"llm:1"}


def test_section_groups_join_overlaps_and_split_at_headings_and_length():
    groups = section_groups(CHUNKS)
    assert [[c.index for c in members] for members, _ in groups] == [[0, 1], [2], [3], [4]]
    assert groups[0][1] == LAW
    short = section_groups(CHUNKS, max_chars=100)
    assert [[c.index for c in members] for members, _ in short] == [[0], [1], [2], [3], [4]]
    assert short[1][1] == CHUNKS[1].text


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("reply, expected, repaired", [
    ('["Q1 of the X?", "Q2 of the X?"]', ["Q1 of the X?", "Q2 of the X?"], False),
    ('Sure:\n```json\n["Q1 of the X?",]\n```', ["Q1 of the X?"], True),
    ('{"paraphrases": [{"question": "Q1 of the X?"}, "Q2 of the X?"]}', ["Q1 of the X?", "Q2 of the X?"], True),
    ("Here you go:\n- Q1 of the X?\n* Q2 of the X\nMore?", ["Q1 of the X?", "Q2 of the X"], True),
    ("Q1 of the X [s. 2]?\nQ2 of the X?\nThanks.", ["Q1 of the X [s. 2]?", "Q2 of the X?"], True),
    ("[]", [], False),
])
def test_parse_questions(reply, expected, repaired):
    assert parse_questions(reply) == (expected, repaired)


@pytest.mark.parametrize("reply", ["", "No questions.", "[1, 2]", '{"note": "none"}'])
def test_parse_questions_skips_what_it_cannot_read(reply):
    assert parse_questions(reply) == (None, False)


@pytest.mark.parametrize("question, answer, found", [
    ("Is the fee $25,000?", "$25,000", True),
    ("Is it governed by VERMONT  law?", "Vermont", True),
    ("What does Section 15 say?", "5", False),
    ("What is in Section 5?", "5", True),
    ("Which state?", "", False),
])
def test_contains_answer(question, answer, found):
    assert contains_answer(question, answer) is found


def test_parse_passages_prefers_the_passages_to_an_entity_list():
    long = "x" * 70
    reply = 'Entities: ["Buyer", "Supplier"]\n[{"about": "Buyer", "text": "' + long + '"}]'
    passages, entities, repaired = parse_passages(reply)
    assert passages == [{"text": long, "about": ["Buyer"]}] and repaired is False
    assert parse_passages("nothing to read") == (None, [], False)
    truncated = '[{"text": "' + long + '"}, {"text": "cut of'
    assert parse_passages(truncated) == ([{"text": long, "about": []}], [], True)


# --------------------------------------------------------------------------- local model


def test_local_model_runs_both_streams_end_to_end(tiny_model_dir, tmp_path):
    config = LLMQAConfig(model=str(tiny_model_dir), batch_size=2, max_new_tokens=12)
    client = ReplyClient(config, tmp_path / "cache")
    para: dict = {}
    pairs = paraphrase_questions(PAIRS, [DOC], client, per_fact=2, chunks=CHUNKS, stats=para)
    rew: dict = {}
    records = rewrite_sections([DOC], CHUNKS, client, rewrites=2, stats=rew)

    # A random model: only the shape is checked. Every reply is either read or counted as skipped.
    assert para["requests"] == 4 and rew["requests"] == 4
    facts = {p.fact_id: p for p in PAIRS}
    for p in pairs:
        assert p.fact_id in facts and p.answer == facts[p.fact_id].answer and p.generator == "llm_paraphrase"
        assert p.question.strip() and not contains_answer(p.question, p.answer)
    assert len(pairs) <= 2 * 4
    assert all(set(r) == {"text", "doc_id", "chunk_id", "page_start", "page_end", "variant"} for r in records)
    assert all(re.fullmatch(r"llm:[12]", r["variant"]) for r in records)
    assert para["skipped"] + sum(1 for f in facts if any(p.fact_id == f for p in pairs)) <= 4
    assert rew["skipped"] <= 4 and rew["sections"] == 4
    assert client.stats["requests"] == 8 and len(list((tmp_path / "cache").glob("*.json"))) == 8

    again = ReplyClient(config, tmp_path / "cache")
    assert paraphrase_questions(PAIRS, [DOC], again, per_fact=2, chunks=CHUNKS) == pairs
    assert rewrite_sections([DOC], CHUNKS, again, rewrites=2) == records
    assert again.stats == {"requests": 0, "cache_hits": 8, "retries": 0} and again._local is None
